"""The synthetic history writer (redline.testing.history) against the point-at-a-time algorithm it
replaced: the same OpenMetrics text, byte for byte, for gauges, counters (in one file and in
stretches), overlapping and partial incidents, series two drivers share, and baselines with and
without `over`; a negative counter rate fails the same way."""

from __future__ import annotations

import io
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

import pytest

from redline.generate.model import Fixture, FixtureSeries, format_number
from redline.testing.history import Driver, Incident, baseline_over, constant, signal_over, write_openmetrics

T0 = 1_800_000_000  # on the minute


# The reference: write_openmetrics as it was before it worked a range at a time (one sample, one
# Driver.signal call and one line at a time).
def reference_samples(
    driver: Driver,
    kind: str,
    scale: float,
    offset: float,
    times: range,
    total: float = 0.0,
    previous: int | None = None,
) -> Iterator[float]:
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


def reference_write(
    drivers: Iterable[Driver],
    start: int,
    end: int,
    interval: int,
    out: TextIO,
    counters: dict[str, tuple[float, int]] | None = None,
) -> int:
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
            values = list(
                reference_samples(driver, kind, scale, offset, times, *counters.get(text, (0.0, None)))
            )
            out.writelines(f"{text} {format_number(v)} {t}\n" for t, v in zip(times, values, strict=True))
            written += len(values)
            if kind == "counter" and values:
                counters[text] = (values[-1], times[-1])
    out.write("# EOF\n")
    return written


def noisy(seed: int) -> Callable[[int], float]:
    """A plain callable (no `over`): values with many decimals, per-minute noise."""
    return lambda t: (
        0.5 + 0.3 * math.sin(t / 7919 + seed) + random.Random(seed * 7 + t // 60).uniform(-0.1, 0.1)
    )


class Ramp:
    """A baseline with `over`: the writer takes the whole range from it."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def __call__(self, t: int) -> float:
        return 0.25 + self.slope * ((t - T0) % 3600)

    def over(self, times: range) -> list[float]:
        return [self(t) for t in times]


GAUGE = Fixture((FixtureSeries('tmux_cycle_seconds{job="tmux"}', "gauge", 1.0, 0.0),), ())
SCALED = Fixture((FixtureSeries("cache_hit_ratio", "gauge", 100.0, 0.3333),), ())
RATIO = Fixture(  # a counter pair: errors at rate v, requests at rate 1 (v <= 1)
    (
        FixtureSeries('requests_errors_total{code="500"}', "counter", 1.0, 0.0),
        FixtureSeries("requests_total", "counter", 0.0, 1.0),
    ),
    (),
)
RATE = Fixture((FixtureSeries("jobs_failed_total", "counter", 3.7, 0.01),), ())
UP = Fixture((FixtureSeries("up", "gauge", 1.0, 0.0),), ())

A = {"job": "a", "instance": "10.0.0.1:9100"}
B = {"job": "b", "instance": "10.0.0.2:9100"}


def drivers() -> list[Driver]:
    return [
        Driver(UP, A, constant(1.0), [Incident(T0 + 600, T0 + 1200, 0.0)], "up a"),
        Driver(UP, B, constant(1.0), [], "up b"),
        Driver(
            GAUGE,
            A,
            noisy(1),
            # overlapping (the first holding t wins), off the sample grid, before the start, past the end
            [
                Incident(T0 + 300, T0 + 907, 5.0),
                Incident(T0 + 800, T0 + 2000, 0.9),
                Incident(T0 - 500, T0 + 31, 2.5),
                Incident(T0 + 20_000, T0 + 99_999, 7.25),
                Incident(T0 + 5000, T0 + 5000, 9.0),  # empty
            ],
            "gauge a",
        ),
        Driver(SCALED, B, Ramp(1e-5), [Incident(T0 + 3601, T0 + 7200, 0.1)], "scaled b"),
        Driver(RATIO, A, noisy(2), [Incident(T0 + 1000, T0 + 4000, 1.0)], "ratio a"),
        Driver(RATIO, B, Ramp(2e-4), [Incident(T0 + 59, T0 + 61, 0.0)], "ratio b"),
        Driver(RATE, A, noisy(3), [Incident(T0 + 4500, T0 + 9000, 12.5)], "rate a"),
        # shares its series with "rate a": written once, from the first driver
        Driver(RATE, A, constant(99.0), [], "rate a again"),
    ]


def both(start: int, end: int, interval: int, stretches: list[int] | None = None) -> tuple[str, str]:
    """The reference's text and the writer's, in one file or in stretches split at these times."""
    cuts = [start, *(stretches or []), end]
    texts = []
    for write in (reference_write, write_openmetrics):
        given = drivers()
        counters: dict[str, tuple[float, int]] = {}
        out, written = io.StringIO(), 0
        for first, last in itertools.pairwise(cuts):
            written += write(given, first, last, interval, out, counters)
        assert written == sum(1 for line in out.getvalue().splitlines() if not line.startswith("#"))
        texts.append(out.getvalue())
    return texts[0], texts[1]


@pytest.mark.parametrize("interval", [15, 60, 37])
def test_same_text_as_the_point_at_a_time_writer(interval: int) -> None:
    old, new = both(T0, T0 + 6 * 3600, interval)
    assert new == old
    assert "# EOF\n" in new and 'tmux_cycle_seconds{instance="10.0.0.1:9100",job="tmux"} 5 ' in new


def test_same_text_in_stretches() -> None:
    """Counters go on across stretches, also where a stretch does not start one interval after the
    last sample of the one before (the first sample adds rate * the gap)."""
    old, new = both(T0, T0 + 8 * 3600, 60, [T0 + 3600, T0 + 2 * 3600 + 30, T0 + 5 * 3600 + 7])
    assert new == old
    assert new.count("# EOF\n") == 4


def test_empty_and_one_sample_ranges() -> None:
    assert both(T0, T0, 60) == (("# EOF\n",) * 2)
    old, new = both(T0, T0 + 1, 60)
    assert new == old


def test_signal_over_matches_signal() -> None:
    times = range(T0 - 120, T0 + 25_000, 45)
    for driver in drivers():
        assert signal_over(driver, times) == [driver.signal(t) for t in times]
    assert baseline_over(constant(2.0), range(0, 10, 3)) == [2.0] * 4


def test_a_negative_counter_rate_fails_as_before() -> None:
    driver = Driver(RATE, A, noisy(4), [Incident(T0 + 3000, T0 + 3600, -1.0)], "rate a")
    errors = []
    for write in (reference_write, write_openmetrics):
        with pytest.raises(ValueError) as caught:
            write([driver], T0, T0 + 7200, 60, io.StringIO())
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert errors[1].startswith(f"rate a: counter rate {3.7 * -1.0 + 0.01} < 0 at t={T0 + 3000}")


def test_an_over_of_the_wrong_length_is_refused() -> None:
    class Short:
        def __call__(self, t: int) -> float:
            return 1.0

        def over(self, times: range) -> list[float]:
            return [1.0]

    with pytest.raises(ValueError, match="gave 1 values for 3 times"):
        baseline_over(Short(), range(0, 3))
