"""Synthetic metric history with known incidents, backfilled into a real Prometheus TSDB.

Each catalogue entry's `test:` fixture says how its raw series drive its signal: a gauge's value, or a
counter's per-second rate, is scale * v + offset when the signal is v. A Driver gives an entry's signal
over time (a baseline and incidents) for one scrape target; `write_openmetrics` writes every series of
every driver, sampled every `interval` seconds, as OpenMetrics text, and `backfill` turns that into
TSDB blocks with `promtool tsdb create-blocks-from openmetrics` for a real Prometheus to serve
(redline.testing.components.prometheus(..., tsdb=...)).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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
    return lambda _t: value


def samples(
    driver: Driver,
    kind: str,
    scale: float,
    offset: float,
    times: range,
    total: float = 0.0,
    previous: int | None = None,
) -> Iterator[float]:
    """The values of one series at these times (a counter starts at `total`, 0 unless it goes on from
    an earlier stretch that ended at `previous`, and adds its rate each interval)."""
    for t in times:
        level = scale * driver.signal(t) + offset
        if kind == "gauge":
            yield level
            continue
        if level < 0:
            raise ValueError(f"{driver.where}: counter rate {level} < 0 at t={t}")
        if previous is not None:
            total += level * (t - previous)
        previous = t
        yield total


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
    one stretch in memory) passes the same `counters` dict to each: counters go on where they ended."""
    counters = {} if counters is None else counters
    times = range(start, end, interval)
    by_name: dict[str, list[tuple[str, Driver, str, float, float]]] = {}
    seen: set[str] = set()
    for driver in drivers:
        for text, kind, scale, offset in driver.series():
            if text not in seen:
                seen.add(text)
                by_name.setdefault(text.split("{", 1)[0], []).append((text, driver, kind, scale, offset))
    written = 0
    for rows in by_name.values():
        for text, driver, kind, scale, offset in rows:
            values = list(samples(driver, kind, scale, offset, times, *counters.get(text, (0.0, None))))
            out.writelines(f"{text} {format_number(v)} {t}\n" for t, v in zip(times, values, strict=True))
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
