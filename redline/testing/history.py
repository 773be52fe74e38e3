"""Synthetic metric history with known incidents, backfilled into a real Prometheus TSDB.

Each catalogue entry's `test:` fixture says how its raw series drive its signal: a gauge's value, or a
counter's per-second rate, is scale * v + offset when the signal is v. A Driver gives an entry's signal
over time (a baseline and incidents) for one scrape target; `write_openmetrics` writes every series of
every driver, sampled every `interval` seconds, as OpenMetrics text (a series' samples worked out and
written a range at a time: the same text as one sample at a time, tests/unit/test_history.py), and
`backfill` turns that into TSDB blocks with `promtool tsdb create-blocks-from openmetrics` for a real
Prometheus to serve (redline.testing.components.prometheus(..., tsdb=...)).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, islice
from pathlib import Path
from typing import TextIO

from redline.generate.model import Fixture, format_number
from redline.generate.render.promtool_series import parse_series, series_text
from redline.testing.processes import tool


@dataclass(frozen=True)
class Incident:
    """The signal holds `value` from `start` (inclusive) to `end` (exclusive), seconds."""

    start: int
    end: int
    value: float


@dataclass
class Driver:
    """One entry's fixture series for one target, following baseline(t) except during incidents."""

    fixture: Fixture
    target: dict[str, str]
    baseline: Callable[[int], float]
    incidents: list[Incident] = field(default_factory=list)
    where: str = ""

    def signal(self, t: int) -> float:
        for incident in self.incidents:
            if incident.start <= t < incident.end:
                return incident.value
        return self.baseline(t)

    def series(self) -> Iterator[tuple[str, str, float, float]]:
        """(series text with the target's labels, gauge|counter, scale, offset) of each fixture series."""
        for item in self.fixture.series:
            name, labels = parse_series(item.series)
            yield series_text(name, {**self.target, **labels}), item.type, item.scale, item.offset


def constant(value: float) -> Callable[[int], float]:
    return Constant(value)


@dataclass(frozen=True)
class Constant:
    """A baseline that holds one value (a callable, with `over` for a whole range at once)."""

    value: float

    def __call__(self, _t: int) -> float:
        return self.value

    def over(self, times: range) -> list[float]:
        return [self.value] * len(times)


def baseline_over(baseline: Callable[[int], float], times: range) -> list[float]:
    """baseline(t) for every t of times: through the baseline's own `over(times)` when it has one (the
    same values, computed a range at a time), else one call per t. A baseline is a function of t
    alone: it is asked for every t, also those an incident covers."""
    over = getattr(baseline, "over", None)
    if over is not None:
        values = list(over(times))
        if len(values) != len(times):
            raise ValueError(f"{baseline!r}.over gave {len(values)} values for {len(times)} times")
        return values
    return [baseline(t) for t in times]


def signal_over(driver: Driver, times: range) -> list[float]:
    """driver.signal(t) for every t of times: the baseline, then each incident as a slice (the first
    incident holding t wins, as in signal, so they are laid from the last to the first)."""
    values = baseline_over(driver.baseline, times)
    if not times:
        return values
    first, step, count = times.start, times.step, len(times)
    for incident in reversed(driver.incidents):
        # t = first + i * step is in the incident when start <= t < end: i from ceil((start - first) /
        # step) to ceil((end - first) / step), exclusive (integer ceilings: -(-a // b)).
        low = min(count, max(0, -(-(incident.start - first) // step)))
        high = min(count, max(0, -(-(incident.end - first) // step)))
        if low < high:
            values[low:high] = [incident.value] * (high - low)
    return values


def samples(
    driver: Driver,
    kind: str,
    scale: float,
    offset: float,
    times: range,
    total: float = 0.0,
    previous: int | None = None,
    signal: list[float] | None = None,
) -> list[float]:
    """The values of one series at these times (a counter starts at `total`, 0 unless it goes on from
    an earlier stretch that ended at `previous`, and adds its rate each interval). `signal` is the
    driver's signal at these times when the caller has it already (signal_over)."""
    signal = signal_over(driver, times) if signal is None else signal
    levels = [scale * v + offset for v in signal]
    if kind == "gauge" or not levels:
        return levels
    negative = next((i for i, level in enumerate(levels) if level < 0), None)
    if negative is not None:
        raise ValueError(f"{driver.where}: counter rate {levels[negative]} < 0 at t={times[negative]}")
    # The total after each sample, added up in time order as one running sum (the same floats as
    # adding level * (t - previous) sample by sample); the first sample adds nothing without a
    # previous one.
    step = times.step
    first = total if previous is None else total + levels[0] * (times[0] - previous)
    return list(accumulate((level * step for level in islice(levels, 1, None)), initial=first))


def write_openmetrics(
    drivers: Iterable[Driver],
    start: int,
    end: int,
    interval: int,
    out: TextIO,
    counters: dict[str, tuple[float, int]] | None = None,
) -> int:
    """Every series of every driver from start to end (exclusive) every `interval` seconds, grouped by
    metric name as OpenMetrics wants; a series two drivers share is written once. Returns the samples.

    A history written in stretches (one file each, backfilled one after the other, so promtool holds
    one stretch in memory) passes the same `counters` dict to each: counters go on where they ended.

    Each driver's signal is worked out once for the whole range (signal_over) and each series' lines
    are joined into one write: the same text as sampling one point at a time, several times faster."""
    counters = {} if counters is None else counters
    times = range(start, end, interval)
    by_name: dict[str, list[tuple[str, Driver, str, float, float]]] = {}
    seen: set[str] = set()
    for driver in drivers:
        for text, kind, scale, offset in driver.series():
            if text not in seen:
                seen.add(text)
                by_name.setdefault(text.split("{", 1)[0], []).append((text, driver, kind, scale, offset))
    stamps = [f" {t}\n" for t in times]
    signals: dict[int, list[float]] = {}  # by id(driver): a driver's series share its signal
    remaining: dict[int, int] = {}
    for rows in by_name.values():
        for _text, driver, *_ in rows:
            remaining[id(driver)] = remaining.get(id(driver), 0) + 1
    written = 0
    for rows in by_name.values():
        for text, driver, kind, scale, offset in rows:
            key = id(driver)
            signal = signals.get(key)
            if signal is None:
                signal = signals[key] = signal_over(driver, times)
            remaining[key] -= 1
            if not remaining[key]:
                del signals[key]
            total, previous = counters.get(text, (0.0, None))
            values = samples(driver, kind, scale, offset, times, total, previous, signal)
            head = f"{text} "
            out.write(
                "".join([head + v + s for v, s in zip(map(format_number, values), stamps, strict=True)])
            )
            written += len(values)
            if kind == "counter" and values:
                counters[text] = (values[-1], times[-1])
    out.write("# EOF\n")
    return written


def backfill(openmetrics: Path, tsdb: Path, block: str = "2400h") -> None:
    """promtool tsdb create-blocks-from openmetrics into `tsdb` (blocks of up to `block`: few passes)."""
    command = [tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet"]
    result = subprocess.run(
        [*command, f"--max-block-duration={block}", str(openmetrics), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool create-blocks-from openmetrics failed: {result.stderr[-2000:]}")
