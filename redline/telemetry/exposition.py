"""The Prometheus text format 0.0.4, byte for byte as prometheus_client's `generate_latest()` writes it.

Between two scrapes of an exporter the metric families and their label sets rarely change; only the
values do. `generate_latest()` still formats every family's `# HELP`/`# TYPE` lines and every sample's
escaped, sorted label set on each scrape (about a quarter of a host exporter scrape's CPU). `text_format()`
writes the same bytes, but a `TextMemo` kept between scrapes remembers those rendered parts, so a scrape
only formats the values.

Only the default 0.0.4 output (names escaped with underscores) is rendered here; OpenMetrics and the
negotiated text format 1.0.0 stay with prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name

# Type names of the text format 0.0.4, and the suffix its sample names take, for the OpenMetrics types
# prometheus_client's families use.
_TYPES = {
    "counter": ("counter", "_total"),
    "info": ("gauge", "_info"),
    "stateset": ("gauge", ""),
    "gaugehistogram": ("histogram", ""),
    "unknown": ("untyped", ""),
}
# Samples only OpenMetrics has a place for; generate_latest() moves them into gauges after the family.
_OPENMETRICS_ONLY = ("_created", "_gcount", "_gsum")
_GO_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


class _Family(NamedTuple):
    """A family's rendered header, and the headers of the gauges its OpenMetrics-only samples move to."""

    header: str
    moved: dict[str, str]  # suffix -> gauge header, filled when first needed (most families have none)


def go_float(value: Any) -> str:
    """`value` as prometheus_client writes it (its floatToGoString): Python's shortest repr, except
    `+Inf`, `-Inf`, `NaN` and an exponent for positive numbers of 1e7 and more, as Go prints them."""
    return _go_repr(repr(float(value)))


def _go_repr(text: str) -> str:
    """The Go form of a float's Python repr; `render()` calls it only for a repr without a dot or with
    one past its sixth character (the others are the same in both)."""
    dot = text.find(".")
    if dot < 0:  # inf, nan, or already an exponent such as 1e+16 or 1e-05
        return _GO_SPECIAL.get(text, text)
    if dot > 6 and text[0] != "-":
        # 12345678.5 -> 1.23456785e+07; trailing zeros and a bare dot dropped (10000000.0 -> 1e+07)
        mantissa = (text[0] + "." + text[1:dot] + text[dot + 1 :]).rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(name: str, kind: str, documentation: str) -> str:
    name = escape_metric_name(name)
    return f"# HELP {name} {_escape_help(documentation)}\n# TYPE {name} {kind}\n"


def _family(metric: Metric) -> _Family:
    kind, suffix = _TYPES.get(metric.type, (metric.type, ""))
    return _Family(_header(metric.name + suffix, kind, metric.documentation), {})


def _series(name: str, labels: dict[str, str]) -> str:
    """`name{label="value",...} `: the start of a sample line, labels sorted by name."""
    if not labels:
        return escape_metric_name(name) + " "
    pairs = ",".join(
        f'{escape_label_name(key)}="{_escape_label_value(value)}"' for key, value in sorted(labels.items())
    )
    return f"{escape_metric_name(name)}{{{pairs}}} "


class TextMemo:
    """What `text_format()` remembers between scrapes: the rendered header of each family and the start of
    each series' line, keyed by what they are rendered from (so a changed help text or label set is a new
    key, never a stale line). It keeps only what the last full scrape used, so series that disappear are
    forgotten. Safe to share between threads: a render reads the memo and replaces it whole."""

    def __init__(self) -> None:
        self._families: dict[tuple[str, str, str], _Family] = {}
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def __len__(self) -> int:
        """The number of series remembered."""
        return len(self._series)

    def render(self, families: Iterable[Metric], *, full: bool = True) -> bytes:
        """The text format of `families`. `full=False` for a partial scrape (e.g. `?name[]=`): it uses
        the memo but leaves it as it is, instead of keeping only the series it saw."""
        known_families, known_series = self._families, self._series
        used_families: dict[tuple[str, str, str], _Family] = {}
        used_series: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        out: list[str] = []
        append = out.append
        for metric in families:
            try:
                key = (metric.name, metric.type, metric.documentation)
                family = known_families.get(key) or _family(metric)
                used_families[key] = family
                append(family.header)
                stem = metric.name
                later: list[tuple[str, str]] = []  # (suffix, line) of OpenMetrics-only samples
                for sample in metric.samples:
                    name, labels = sample.name, sample.labels
                    # dict order is part of the key: the same labels in another order are only a miss
                    series_key = (name, tuple(labels.items()))
                    start = known_series.get(series_key)
                    if start is None:
                        start = _series(name, labels)
                    used_series[series_key] = start
                    value = repr(float(sample.value))
                    if not 0 < value.find(".") < 7:  # most values print as Python prints them
                        value = _go_repr(value)
                    if sample.timestamp is None:
                        line = start + value + "\n"
                    else:  # in milliseconds
                        line = f"{start}{value} {int(float(sample.timestamp) * 1000):d}\n"
                    if (
                        name.endswith(_OPENMETRICS_ONLY)
                        and name.startswith(stem)
                        and name[len(stem) :] in _OPENMETRICS_ONLY
                    ):
                        later.append((name[len(stem) :], line))
                    else:
                        append(line)
            except Exception as err:
                err.args = (*(err.args or ("",)), metric)  # as generate_latest() reports it
                raise
            if later:  # after the family, in gauges of their own, by suffix
                moved = family.moved
                for suffix in sorted({suffix for suffix, _ in later}):
                    if suffix not in moved:
                        moved[suffix] = _header(stem + suffix, "gauge", metric.documentation)
                    append(moved[suffix])
                    out.extend(line for other, line in later if other == suffix)
        if full:
            self._families, self._series = used_families, used_series
        return "".join(out).encode("utf-8")


def text_format(registry: Any, memo: TextMemo | None = None, *, full: bool = True) -> bytes:
    """The text format 0.0.4 of `registry` (anything with `collect()`), the bytes `generate_latest()`
    gives for it; with `memo` (one per registry, kept between scrapes) only the values are formatted anew.
    """
    return (TextMemo() if memo is None else memo).render(registry.collect(), full=full)
