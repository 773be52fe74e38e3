"""One inline SVG plot per alert, drawn here (no JavaScript, no external file): the signal of every
series, the documented target, the alert value and the intervals the alert would have fired.

Each series is reduced to one point per horizontal pixel column, keeping the value on the alerting
side (the maximum for a `>` alert, the minimum for `<`), so a short spike stays visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from redline.backtest.timeline import Grid, Series

WIDTH, HEIGHT = 860, 220
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 10, 28
COLUMNS = 600
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MAX_SERIES = len(PALETTE)
TIME_TICKS = (3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400, 14 * 86400)


@dataclass(frozen=True)
class Line:
    value: float
    label: str
    color: str
    dash: str = "6 4"


def _columns(series: Series, grid: Grid, high: bool) -> list[tuple[int, float]]:
    """(column, value) with the alerting-side extreme of the samples that fall in each column."""
    scale = COLUMNS / max(1, grid.end + grid.step - grid.start)
    found: dict[int, float] = {}
    for t, v in zip(series.timestamps, series.values, strict=True):
        if not math.isfinite(v):
            continue
        column = int((t - grid.start) * scale)
        kept = found.get(column)
        if kept is None or (v > kept if high else v < kept):
            found[column] = v
    return sorted(found.items())


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(count + 2) if first + i * step <= high + 1e-12]


def svg(
    signal: Sequence[Series],
    lines: Sequence[Line],
    firing: Sequence[tuple[float, float]],
    grid: Grid,
    high: bool,
    fmt: Callable[[float], str],
    title: str,
) -> str:
    """The plot as an <svg> element (text already escaped)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    reduced = [(_columns(s, grid, high), s) for s in list(signal)[:MAX_SERIES]]
    values = [v for points, _ in reduced for _, v in points] + [line.value for line in lines]
    low, top = (min(values), max(values)) if values else (0.0, 1.0)
    if top == low:
        low, top = low - 1, top + 1
    pad = (top - low) * 0.08
    low, top = low - pad, top + pad
    span = max(1, grid.end + grid.step - grid.start)

    def x_of_time(t: float) -> float:
        return LEFT + (t - grid.start) * plot_w / span

    def y_of(v: float) -> float:
        return TOP + (top - v) * plot_h / (top - low)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" class="plot">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>',
    ]
    for start, end in firing:
        x0, x1 = x_of_time(start), x_of_time(end)
        parts.append(
            f'<rect x="{x0:.1f}" y="{TOP}" width="{max(1.0, x1 - x0):.1f}" height="{plot_h}" '
            'fill="#d62728" fill-opacity="0.18"><title>would have fired</title></rect>'
        )
    for tick in _ticks(low, top):
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        label = escape(fmt(tick))
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{label}</text>')
    every = next((s for s in TIME_TICKS if span / s <= 8), TIME_TICKS[-1])
    t = -(-grid.start // every) * every  # the first whole tick (UTC) in the range
    while t <= grid.end:
        label = datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")
        x = x_of_time(t)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10">{label}</text>')
        t += every
    for index, (points, series) in enumerate(reduced):
        coords = " ".join(f"{LEFT + (c + 0.5) * plot_w / COLUMNS:.1f},{y_of(v):.1f}" for c, v in points)
        name = ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{PALETTE[index]}" stroke-width="1.2">'
            f"<title>{escape(name)}</title></polyline>"
        )
    for index, line in enumerate(lines):
        y = y_of(line.value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{line.color}" '
            f'stroke-dasharray="{line.dash}" stroke-width="1.5"><title>{escape(line.label)}</title></line>'
        )
        # labels alternate left and right, so two lines at the same value stay readable
        x, anchor = (WIDTH - RIGHT - 4, "end") if index % 2 else (LEFT + 4, "start")
        parts.append(
            f'<text x="{x}" y="{y - 3:.1f}" text-anchor="{anchor}" font-size="10" '
            f'fill="{line.color}">{escape(line.label)}</text>'
        )
    if len(signal) > MAX_SERIES:
        note = f"first {MAX_SERIES} of {len(signal)} series"
        parts.append(f'<text x="{LEFT + 6}" y="{TOP + 14}" font-size="10">{note}</text>')
    parts.append("</svg>")
    return "".join(parts)
