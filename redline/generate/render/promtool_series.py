"""The pieces of a promtool test: input series that drive a signal to a value, and expected alerts.

A fixture series follows scale * v + offset (a gauge's value, or a counter's rate per second), so the
signal of its entry equals v. Expected labels and annotations are what Prometheus renders for the
alert at that value (the humanize functions print exactly what its templates print).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from redline.generate.alerts import Alert
from redline.generate.humanize import format_value, humanize_percentage, value_template
from redline.generate.model import Fixture, FixtureSeries, Threshold, format_number

SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
LABEL_PAIR_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
SLO_VALUE_TEMPLATE = "{{ $value | humanizePercentage }}"


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """'name{a="b"}' -> ('name', {'a': 'b'}) (the promtool series notation, not a PromQL selector)."""
    match = SERIES_RE.match(text.strip())
    if not match:
        raise ValueError(f'not a series like name{{label="value"}}: {text!r}')
    name, body = match.group(1), match.group(2) or ""
    labels, position = {}, 0
    while position < len(body):
        pair = LABEL_PAIR_RE.match(body, position)
        if not pair or pair.end() == position:
            raise ValueError(f"cannot read labels of {text!r}")
        labels[pair.group(1)] = pair.group(2)
        position = pair.end()
    return name, labels


def series_text(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


@dataclass(frozen=True)
class Timeline:
    """Phases of one test group: [(signal value v, number of samples)], sampled every `interval` seconds."""

    interval: int
    phases: tuple[tuple[float, int], ...]


def series_values(kind: str, scale: float, offset: float, timeline: Timeline, where: str) -> str:
    """promtool expanding notation for one series over the timeline."""
    parts, cumulative = [], 0.0
    for index, (v, samples) in enumerate(timeline.phases):
        level = scale * v + offset
        if kind == "gauge":
            parts.append(f"{format_number(level)}x{samples - 1}")
            continue
        if level < 0:
            raise ValueError(f"{where}: counter rate {level} < 0 at v={v}")
        step = level * timeline.interval
        start = cumulative if index == 0 else cumulative + step
        parts.append(f"{format_number(start)}+{format_number(step)}x{samples - 1}")
        cumulative = start + step * (samples - 1)
    return " ".join(parts)


def input_series(
    fixture: Fixture, target: dict[str, str], timeline: Timeline, where: str
) -> tuple[list[dict], dict[str, str]]:
    """The group's input_series and the merged labels of all series (for expected alert labels)."""
    return fixture_rows(
        fixture, target, lambda item: series_values(item.type, item.scale, item.offset, timeline, where)
    )


def fixture_rows(
    fixture: Fixture, target: dict[str, str], values: Callable[[FixtureSeries], str]
) -> tuple[list[dict], dict[str, str]]:
    """One input_series row per fixture series with the target's labels, its promtool values from
    values(series); and the merged labels of all series (for expected alert labels)."""
    rows: list[dict] = []
    seen_labels: dict[str, str] = {}
    for item in fixture.series:
        name, labels = parse_series(item.series)
        merged = {**target, **labels}
        for key, value in merged.items():
            seen_labels.setdefault(key, value)
        rows.append({"series": series_text(name, merged), "values": values(item)})
    return rows, seen_labels


def breach_and_safe(threshold: Threshold) -> tuple[float, float]:
    """(a value just past the threshold, a value just on its good side)."""
    value, op = threshold.value, threshold.operator
    alerting_up = op in (">", ">=")
    if threshold.unit == "boolean":
        safe = threshold.target
        return (1.0 - safe, safe)
    if threshold.unit == "count":
        step = 1.0
        if op == ">":
            return value + step, value
        if op == ">=":
            return value, value - step
        if op == "<":
            return value - step, value
        return value, value + step
    delta = abs(value) * 0.02 if value else 0.01
    breach = value + delta if alerting_up else value - delta
    safe = value - delta if alerting_up else value + delta
    return round(breach, 12), round(safe, 12)


LABEL_TEMPLATE_RE = re.compile(r"\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}")


def expected_annotations(alert: Alert, value: float, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The alert's annotations as Prometheus renders them for $value = value (and `{{ $labels.NAME }}`
    = the alert's label, when its labels are given)."""
    out = {}
    for key, text in alert.annotations.items():
        if labels is not None:
            text = LABEL_TEMPLATE_RE.sub(lambda m: labels.get(m.group(1), ""), text)
        if isinstance(alert.source, Threshold):
            text = text.replace(value_template(alert.source.unit), format_value(alert.source.unit, value))
        else:
            text = text.replace(SLO_VALUE_TEMPLATE, humanize_percentage(value))
        if "{{" in text:
            raise ValueError(f"annotation {key} of {alert.alert_name} has a template the test cannot predict")
        out[key] = text
    return out


def expected_labels(alert: Alert, fixture: Fixture, seen: dict[str, str], where: str) -> dict[str, str]:
    labels = {}
    for key in fixture.keeps:
        if key not in seen:
            raise ValueError(f"{where}: kept label {key!r} is on no input series")
        labels[key] = seen[key]
    labels.update(alert.labels)
    return dict(sorted(labels.items()))
