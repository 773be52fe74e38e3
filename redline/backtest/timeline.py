"""From evaluation results to firing episodes: the alert state machine on the evaluation grid.

Evaluations happen at start + k * step. An alert becomes pending at the first evaluation where its
condition holds (activeAt), firing at the first evaluation at least `for` after activeAt, and resolves
at the first evaluation where the condition no longer holds; a missed evaluation (no result) resets it.
This is what Prometheus' rule manager and vmalert's replay (rule/alerting.go, execRange) both do;
`episodes_from_firing` reads vmalert's ALERTS back, `episodes_from_signal` computes the same from a
recorded signal for another value or `for` (the suggestions), without another replay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from redline.backtest.notifications import Episode, Labels, labels_of

# Labels vmalert puts on ALERTS that Prometheus does not send to Alertmanager.
VMALERT_LABELS = ("__name__", "alertstate", "alertgroup")


@dataclass(frozen=True)
class Grid:
    """The evaluation timestamps start, start + step, ..., last (inclusive), in seconds."""

    start: int
    end: int  # the last evaluation
    step: int

    @property
    def points(self) -> int:
        return (self.end - self.start) // self.step + 1

    @property
    def seconds(self) -> int:
        """The span the evaluations cover (one step per evaluation)."""
        return self.points * self.step


@dataclass
class Series:
    """One series of results on the grid: its labels, timestamps (seconds) and values (lists, or
    compact arrays for the many samples read back from the scratch store)."""

    labels: dict[str, str]
    timestamps: Sequence[int]
    values: Sequence[float]


def runs(timestamps: Sequence[int], step: int) -> Iterable[tuple[int, int]]:
    """Maximal runs of consecutive evaluations (no gap above one step): (first, last) timestamps."""
    if not timestamps:
        return
    first = previous = timestamps[0]
    for t in timestamps[1:]:
        if t - previous > step:
            yield first, previous
            first = t
        previous = t
    yield first, previous


def for_steps(for_seconds: int, step: int) -> int:
    """Evaluations after activeAt until firing: the first k with k * step >= for."""
    return math.ceil(for_seconds / step) if for_seconds > 0 else 0


def episodes_from_runs(
    labels: Labels, active_runs: Iterable[tuple[int, int]], for_seconds: int, grid: Grid
) -> list[Episode]:
    """The episodes of an alert whose condition held over these runs of evaluations."""
    wait = for_steps(for_seconds, grid.step) * grid.step
    found = []
    for first, last in active_runs:
        start = first + wait
        if start <= last:
            end = last + grid.step if last < grid.end else None
            found.append(Episode(labels, float(first), float(start), None if end is None else float(end)))
    return found


def alert_labels(series_labels: dict[str, str], drop: Iterable[str] = ()) -> Labels:
    """What Alertmanager receives: vmalert's own labels (and any in `drop`) removed."""
    skip = set(VMALERT_LABELS) | set(drop)
    return labels_of({k: v for k, v in series_labels.items() if k not in skip})


def episodes_from_firing(
    series: Series, for_seconds: int, grid: Grid, drop: Iterable[str] = ()
) -> list[Episode]:
    """Episodes from the timestamps of one ALERTS{alertstate="firing"} series (activeAt = start - for)."""
    labels = alert_labels(series.labels, drop)
    wait = for_steps(for_seconds, grid.step) * grid.step
    found = []
    for first, last in runs(series.timestamps, grid.step):
        end = last + grid.step if last < grid.end else None
        found.append(Episode(labels, float(first - wait), float(first), None if end is None else float(end)))
    return found


def breaching(series: Series, operator: str, value: float) -> list[int]:
    """The timestamps at which `signal operator value` holds (one comparison inlined per operator)."""
    pairs = zip(series.timestamps, series.values, strict=True)
    if operator == ">":
        return [t for t, v in pairs if v > value]
    if operator == ">=":
        return [t for t, v in pairs if v >= value]
    if operator == "<":
        return [t for t, v in pairs if v < value]
    return [t for t, v in pairs if v <= value]


def only_breaching(series: Series, operator: str, value: float) -> Series:
    """The samples past the value (a less sensitive value can only breach at these)."""
    keep = set(breaching(series, operator, value))
    pairs = [(t, v) for t, v in zip(series.timestamps, series.values, strict=True) if t in keep]
    return Series(series.labels, [t for t, _ in pairs], [v for _, v in pairs])


def episodes_from_signal(
    series: Series, operator: str, value: float, for_seconds: int, grid: Grid, labels: Labels
) -> list[Episode]:
    """Episodes of `signal operator value` over a recorded signal series, with this `for`."""
    return episodes_from_runs(labels, runs(breaching(series, operator, value), grid.step), for_seconds, grid)


def firing_seconds(episodes: Iterable[Episode], grid: Grid) -> int:
    """How long at least one of the episodes fired (their union), in seconds within the grid."""
    spans = sorted((e.start, grid.end + grid.step if e.end is None else e.end) for e in episodes)
    total, reach = 0.0, -math.inf
    for start, end in spans:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return int(total)


def dedupe(timestamps: Sequence[int], values: Sequence[float]) -> tuple[list[int], list[float]]:
    """Sorted by time with repeated timestamps dropped (vmalert writes a chunk's boundary twice)."""
    merged = dict(zip(timestamps, values, strict=True))
    ordered = sorted(merged)
    return ordered, [merged[t] for t in ordered]
