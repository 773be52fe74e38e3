"""A signal over time as inline SVG, drawn on the server: no JavaScript, no charting library.

One polyline per series with a dot at its latest sample, the documented target (green) and the alert
value(s) (red, orange for a lower level) as dashed lines, and the intervals the alert fired shaded. Values
are formatted in the catalogue's unit, exactly as the alert annotations print them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from redline.generate.humanize import format_value

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28  # plot margins for the axis labels
LABEL_CHAR_WIDTH = 5.5  # at font-size 10: lines at one value get their labels side by side
SERIES_COLORS = ("#3366cc", "#7b4fc4", "#0f8b8d", "#a05d00", "#555555")


@dataclass(frozen=True)
class Line:
    """A horizontal reference line: a target or an alert value."""

    value: float
    label: str
    color: str


@dataclass(frozen=True)
class Series:
    """One series of the signal: its label text and (unix seconds, value) points."""

    name: str
    points: Sequence[tuple[float, float]]


def _scale(lo: float, hi: float, size: float, flip: bool) -> tuple[float, float]:
    span = hi - lo or 1.0
    factor = size / span
    return (-factor, size + lo * factor) if flip else (factor, -lo * factor)


def signal_chart(
    series: Sequence[Series],
    start: float,
    end: float,
    unit: str,
    lines: Sequence[Line] = (),
    firing: Sequence[tuple[float, float]] = (),
) -> str:
    """The SVG text of the chart (empty series: a chart that says there is no data)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in series for _t, v in s.points if math.isfinite(v)] + [line.value for line in lines]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    if unit in ("ratio", "seconds", "bytes", "count", "fps") and lo < 0 <= min(values or [0]):
        lo = 0.0
    xa, xb = _scale(start, end, plot_w, flip=False)
    ya, yb = _scale(lo, hi, plot_h, flip=True)

    def x(t: float) -> float:
        return LEFT + xa * t + xb

    def y(v: float) -> float:
        return TOP + ya * v + yb

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for begin, finish in firing:
        x0, x1 = x(max(begin, start)), x(min(finish, end))
        parts.append(
            f'<rect class="firing" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" height="{plot_h}" '
            'fill="#d62728" fill-opacity="0.12"><title>firing</title></rect>'
        )
    for index in range(5):
        value = lo + (hi - lo) * index / 4
        parts.append(
            f'<text x="{LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{escape(format_value(unit, value))}</text>"
        )
        moment = start + (end - start) * index / 4
        label = dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%H:%M")
        parts.append(
            f'<text x="{x(moment):.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10">{label}</text>'
        )
    label_x: dict[float, float] = {}  # where the next label at this height goes: one after the other
    for line in lines:
        at = round(y(line.value))
        text_x = label_x.get(at, LEFT + 4)
        label_x[at] = text_x + LABEL_CHAR_WIDTH * len(line.label) + 10
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(line.value):.1f}" y2="{y(line.value):.1f}" '
            f'stroke="{line.color}" stroke-dasharray="6 4"><title>{escape(line.label)}</title></line>'
            f'<text x="{text_x:.0f}" y="{y(line.value) - 3:.1f}" font-size="10" fill="{line.color}">'
            f"{escape(line.label)}</text>"
        )
    for index, one in enumerate(series):
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in one.points if math.isfinite(v))
        color = SERIES_COLORS[index % len(SERIES_COLORS)]
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}">'
            f"<title>{escape(one.name)}</title></polyline>"
        )
        latest = next(((t, v) for t, v in reversed(one.points) if math.isfinite(v)), None)
        if latest is not None:  # the value now; also what shows a series of a single sample
            parts.append(
                f'<circle class="latest" cx="{x(latest[0]):.1f}" cy="{y(latest[1]):.1f}" r="2.5" '
                f'fill="{color}"><title>{escape(one.name)}: {escape(format_value(unit, latest[1]))}'
                "</title></circle>"
            )
    if not series:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def visible_span(series: Sequence[Series], start: float, end: float, shortest: float = 900) -> float:
    """Where the chart should begin: `start`, or later when the data begins later (a young stack), so
    that the data fills the width; at least `shortest` seconds are shown."""
    first = min((t for s in series for t, _v in s.points), default=start)
    return max(start, min(first, end - shortest))


def intervals(points: Sequence[tuple[float, float]], step: float) -> list[tuple[float, float]]:
    """Contiguous runs of samples (of an ALERTS series) as (start, end) intervals."""
    runs: list[tuple[float, float]] = []
    for t, _v in points:
        if runs and t - runs[-1][1] <= step * 1.5:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return [(begin, finish + step) for begin, finish in runs]
