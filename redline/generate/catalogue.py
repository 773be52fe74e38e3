"""The thresholds catalogue: load `thresholds/*.yml`, validate it, and expose it as frozen dataclasses.

Every number a seed document states lives in the catalogue and nowhere else. Rules, promtool tests,
runbooks and dashboards are rendered from the objects defined here. Schema: `thresholds/README.md`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from redline.paths import ROOT

DEFAULT_DIRECTORY = ROOT / "thresholds"

SYSTEMS = ("gamebook", "qerrors", "pipeline", "tmux", "host", "redline")
SEVERITIES = ("critical", "warning", "info")
OPERATORS = (">", ">=", "<", "<=")
METRIC_TYPES = ("counter", "gauge", "histogram", "summary")
# unit -> what a value means; the renderers choose formatting from it.
UNITS = ("seconds", "bytes", "ratio", "count", "fps", "multiplier", "boolean")
# linear: the signal equals v when the series follow scale * v + offset; baseline: the same, compared with
# a history one week earlier (qerrors); always: the alert fires whatever the input (Watchdog).
FIXTURE_KINDS = ("linear", "baseline", "always")
ALERT_NAME_RE = re.compile(r"^[A-Z][a-zA-Z0-9]*$")
ENTRY_ID_RE = re.compile(r"^[a-z][a-z0-9-]*$")
RECORD_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_UNITS = (604800, 86400, 3600, 60, 1)


class CatalogueError(Exception):
    """Bad catalogue input; the message names the file, the entry and the field."""

    def __init__(self, file: str, entry: str, field_name: str, problem: str) -> None:
        self.file, self.entry, self.field, self.problem = file, entry, field_name, problem
        super().__init__(f"{file}: entry {entry!r}: field {field_name!r}: {problem}")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus duration such as '5m' or '1h30m'; ValueError when it is not one."""
    match = DURATION_RE.match(text) if isinstance(text, str) and text else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h, 1d")
    return sum(int(g) * unit for g, unit in zip(match.groups(), DURATION_UNITS, strict=True) if g)


def format_duration(seconds: int) -> str:
    """The shortest Prometheus duration string for a number of seconds ('90s' -> '1m30s')."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, suffix in zip(DURATION_UNITS, "wdhms", strict=True):
        count, seconds = divmod(seconds, unit)
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)


def format_le(value: float) -> str:
    """A histogram bucket bound as Prometheus 3 normalises the `le` label ('0.1', '1.0', '10.0')."""
    return repr(float(value))


# ----------------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a system's contract."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    system: str = ""


@dataclass(frozen=True)
class Runbook:
    """What on-call reads: meaning, causes, first steps, escalation."""

    meaning: str
    causes: tuple[str, ...]
    actions: tuple[str, ...]
    escalation: str


@dataclass(frozen=True)
class FixtureSeries:
    """A promtool input series whose value (gauge) or per-second rate (counter) is scale * v + offset,
    where v is the signal value the test wants to produce."""

    series: str
    type: str  # gauge | counter
    scale: float
    offset: float


@dataclass(frozen=True)
class Fixture:
    """How the generated promtool tests drive a signal to a chosen value."""

    series: tuple[FixtureSeries, ...]
    keeps: tuple[str, ...]  # labels the signal keeps (values taken from the series labels)
    kind: str = "linear"  # one of FIXTURE_KINDS


@dataclass(frozen=True)
class Threshold:
    """One alerting level of one catalogue entry (an entry with warning and critical gives two)."""

    id: str
    system: str
    alert_name: str
    summary: str
    measures: str
    signal: str
    record: str | None
    metric: str
    operator: str
    value: float
    target: float
    unit: str
    for_: str
    severity: str
    quote: str
    source: str
    runbook: Runbook
    fixture: Fixture | None
    file: str
    extra_labels: tuple[tuple[str, str], ...] = ()
    description: str | None = None  # replaces the generated description when the entry gives one
    entry_values: tuple[float, ...] = ()  # the alert values of every level of the entry

    @property
    def expr(self) -> str:
        """The full, self-contained alert condition over raw metrics (works without recording rules)."""
        return f"({self.signal.strip()}) {self.operator} {format_number(self.value)}"

    @property
    def rule_expr(self) -> str:
        """The alert condition as written in the rule file (reads the recording rule when there is one)."""
        if self.record:
            return f"{self.record} {self.operator} {format_number(self.value)}"
        return self.expr

    @property
    def labels(self) -> dict[str, str]:
        return {"severity": self.severity, "system": self.system, **dict(self.extra_labels)}


@dataclass(frozen=True)
class Slo:
    """A service level objective, rendered as multi-window multi-burn-rate alerts."""

    id: str
    system: str
    alert_name: str
    name: str
    summary: str
    objective: float
    period: str
    error_ratio: str  # PromQL with the placeholder {window}
    metric: str
    quote: str
    source: str
    runbook: Runbook
    fixture: Fixture | None
    file: str
    le: float | None = None

    @property
    def slo_label(self) -> str:
        """Value of the `slo` label on the recording rules and alerts."""
        return f"{self.system}-{self.id}"

    @property
    def error_budget(self) -> float:
        return round(1 - self.objective, 12)

    def error_ratio_for(self, window: str) -> str:
        """The error-ratio PromQL over one window."""
        return self.error_ratio.strip().replace("{window}", window)


@dataclass(frozen=True)
class BurnRate:
    """One tier of the multi-window multi-burn-rate alerts (from redline.yml settings)."""

    severity: str
    factor: float
    long_window: str
    short_window: str
    for_: str


@dataclass(frozen=True)
class Settings:
    """Stack-wide settings (thresholds/redline.yml `settings:`)."""

    grafana_url: str
    runbook_base_url: str
    burn_rates: tuple[BurnRate, ...]
    test_interval: str
    test_settle: str


@dataclass(frozen=True)
class System:
    """One monitored system: its metric contract, thresholds and SLOs."""

    id: str
    name: str
    source: str
    file: str
    alert_prefix: str
    metrics: list[MetricSpec]
    thresholds: list[Threshold]
    slos: list[Slo]
    test_targets: tuple[tuple[tuple[str, str], ...], ...] = ()

    def entry_ids(self) -> list[str]:
        """Distinct threshold and SLO entry ids, in file order (one dashboard panel each)."""
        seen: list[str] = []
        items: list[Threshold | Slo] = [*self.thresholds, *self.slos]
        for item in items:
            if item.id not in seen:
                seen.append(item.id)
        return seen


@dataclass(frozen=True)
class Alert:
    """One alerting rule as rendered into prometheus/rules (flat view over thresholds and SLOs)."""

    alert_name: str
    severity: str
    system: str
    entry_id: str
    kind: str  # threshold | slo
    expr: str
    value: float
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]
    source: Threshold | Slo


@dataclass(frozen=True)
class Catalogue:
    """The whole catalogue."""

    systems: list[System]
    settings: Settings
    directory: Path = field(default=DEFAULT_DIRECTORY)

    def system(self, system_id: str) -> System:
        for system in self.systems:
            if system.id == system_id:
                return system
        raise KeyError(system_id)

    def metric(self, name: str) -> MetricSpec:
        """The contract entry of a metric, looked up across all systems."""
        for system in self.systems:
            for metric in system.metrics:
                if metric.name == name:
                    return metric
        raise KeyError(name)

    def thresholds(self) -> Iterator[Threshold]:
        for system in self.systems:
            yield from system.thresholds

    def slos(self) -> Iterator[Slo]:
        for system in self.systems:
            yield from system.slos

    def alerts(self) -> list[Alert]:
        """Every alerting rule the generator renders, in file order."""
        from redline.generate.render.rules import (
            catalogue_alerts,  # the rule renderer owns labels and annotations
        )

        return catalogue_alerts(self)


def reads_metric(query: str, metric: MetricSpec) -> bool:
    """True when a PromQL query names the metric (a histogram: one of its _bucket/_sum/_count series)."""
    names = [metric.name]
    if metric.type == "histogram":
        names += [metric.name + suffix for suffix in ("_bucket", "_sum", "_count")]
    return any(re.search(rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:])", query) for name in names)


def format_number(value: float) -> str:
    """A threshold number as written in PromQL and YAML: no exponent, no trailing zeros."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text


# ----------------------------------------------------------------------------------------------------
# Loading and validation


class _Entry:
    """Typed access to one YAML mapping, raising CatalogueError that names file, entry and field."""

    def __init__(self, file: str, entry: str, data: Any, allowed: set[str], required: set[str]) -> None:
        self.file, self.entry = file, entry
        if not isinstance(data, dict):
            raise CatalogueError(file, entry, "(entry)", f"must be a mapping, got {type(data).__name__}")
        self.data = data
        for key in data:
            if key not in allowed:
                raise CatalogueError(
                    file, entry, str(key), f"unknown field; allowed: {', '.join(sorted(allowed))}"
                )
        for key in sorted(required):
            if key not in data or data[key] is None:
                raise CatalogueError(file, entry, key, "missing (required)")

    def error(self, field_name: str, problem: str) -> CatalogueError:
        return CatalogueError(self.file, self.entry, field_name, problem)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, key: str) -> float:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, f"must be a number, got {value!r}")
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.data.get(key, default)
        if value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def duration(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        try:
            parse_duration(str(value))
        except ValueError as err:
            raise self.error(key, str(err)) from None
        return str(value)

    def seq(self, key: str, default: list | None = None) -> list:
        value = self.data.get(key, default)
        if not isinstance(value, list):
            raise self.error(key, f"must be a list, got {type(value).__name__}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        items = self.seq(key, [])
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise self.error(key, f"every item must be a non-empty string, got {item!r}")
        return tuple(items)


SYSTEM_FIELDS = {
    "system",
    "name",
    "source",
    "alert_prefix",
    "metrics",
    "thresholds",
    "slos",
    "settings",
    "test_targets",
}
METRIC_FIELDS = {"name", "type", "help", "labels", "buckets"}
THRESHOLD_FIELDS = {
    "id",
    "alert",
    "summary",
    "measures",
    "signal",
    "record",
    "metric",
    "operator",
    "value",
    "target",
    "unit",
    "for",
    "severity",
    "levels",
    "quote",
    "source",
    "runbook",
    "test",
    "labels",
    "standard_name",
    "description",
}
LEVEL_FIELDS = {"severity", "value", "for", "quote"}
SLO_FIELDS = {
    "id",
    "alert",
    "name",
    "summary",
    "objective",
    "period",
    "error_ratio",
    "metric",
    "le",
    "quote",
    "source",
    "runbook",
    "test",
}
RUNBOOK_FIELDS = {"meaning", "causes", "actions", "escalation"}
TEST_FIELDS = {"series", "keeps", "kind"}
SERIES_FIELDS = {"series", "type", "scale", "offset"}
SETTINGS_FIELDS = {"grafana_url", "runbook_base_url", "burn_rates", "test_interval", "test_settle"}
BURN_FIELDS = {"severity", "factor", "long_window", "short_window", "for"}


def load_catalogue(directory: Path | None = None, check_promql: bool = True) -> Catalogue:
    """Load and validate every `*.yml` in the catalogue directory (default: the repo's thresholds/).

    With check_promql, every PromQL expression is parsed by promtool (one batched call).
    Raises CatalogueError naming the file, entry and field of the first problem found.
    """
    directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise CatalogueError(str(directory), "(catalogue)", "(files)", "no *.yml files found")
    raw: dict[str, tuple[str, dict]] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise CatalogueError(path.name, "(file)", "(yaml)", f"not valid YAML: {err}") from None
        top = _Entry(path.name, "(file)", data, SYSTEM_FIELDS, {"system", "name", "source", "alert_prefix"})
        system_id = top.choice("system", SYSTEMS)
        if path.stem != system_id:
            raise top.error("system", f"is {system_id!r} but the file is named {path.name}")
        raw[system_id] = (path.name, data)
    if "redline" not in raw:
        raise CatalogueError(str(directory), "(catalogue)", "redline.yml", "missing: it holds the settings")
    redline_file, redline_data = raw["redline"]
    settings = _load_settings(redline_file, redline_data)
    systems = [_load_system(file, data) for _, (file, data) in sorted(raw.items(), key=_system_order)]
    catalogue = Catalogue(systems=systems, settings=settings, directory=directory)
    _check_cross_references(catalogue)
    if check_promql:
        from redline.generate.validate import check_catalogue_promql

        check_catalogue_promql(catalogue)
    return catalogue


def _system_order(item: tuple[str, tuple[str, dict]]) -> int:
    return SYSTEMS.index(item[0])


def _load_settings(file: str, data: dict) -> Settings:
    if "settings" not in data:
        raise CatalogueError(file, "(file)", "settings", "missing (required in redline.yml)")
    entry = _Entry(file, "settings", data["settings"], SETTINGS_FIELDS, SETTINGS_FIELDS)
    tiers = []
    for index, item in enumerate(entry.seq("burn_rates")):
        tier = _Entry(file, f"settings.burn_rates[{index}]", item, BURN_FIELDS, BURN_FIELDS)
        tiers.append(
            BurnRate(
                severity=tier.choice("severity", SEVERITIES),
                factor=tier.number("factor"),
                long_window=tier.duration("long_window"),
                short_window=tier.duration("short_window"),
                for_=tier.duration("for"),
            )
        )
    for burn in tiers:
        first = next(t for t in tiers if t.severity == burn.severity)
        if burn.for_ != first.for_:
            raise entry.error(
                "burn_rates", f"all {burn.severity} tiers need the same 'for' (one alert rule each)"
            )
    if not tiers:
        raise entry.error("burn_rates", "needs at least one tier")
    for key in ("grafana_url", "runbook_base_url"):
        if not entry.text(key).startswith(("http://", "https://")):
            raise entry.error(key, "must be an http(s) URL")
    return Settings(
        grafana_url=entry.text("grafana_url").rstrip("/"),
        runbook_base_url=entry.text("runbook_base_url").rstrip("/"),
        burn_rates=tuple(tiers),
        test_interval=entry.duration("test_interval"),
        test_settle=entry.duration("test_settle"),
    )


def _load_system(file: str, data: dict) -> System:
    top = _Entry(file, "(file)", data, SYSTEM_FIELDS, {"system", "name", "source", "alert_prefix"})
    system_id = top.text("system")
    source = top.text("source")
    prefix = top.text("alert_prefix")
    if not ALERT_NAME_RE.match(prefix):
        raise top.error("alert_prefix", f"must be CamelCase, got {prefix!r}")
    metrics = [_load_metric(file, system_id, i, m) for i, m in enumerate(top.seq("metrics", []))]
    targets = []
    for index, item in enumerate(top.seq("test_targets", [{}])):
        if not isinstance(item, dict) or not all(
            isinstance(k, str) and LABEL_RE.match(k) and isinstance(v, str) for k, v in item.items()
        ):
            raise top.error("test_targets", f"item {index} must map label names to strings")
        targets.append(tuple(sorted(item.items())))
    thresholds: list[Threshold] = []
    for index, item in enumerate(top.seq("thresholds", [])):
        thresholds.extend(_load_threshold(file, system_id, source, prefix, index, item))
    slos = [_load_slo(file, system_id, source, prefix, i, s) for i, s in enumerate(top.seq("slos", []))]
    return System(
        id=system_id,
        name=top.text("name"),
        source=source,
        file=file,
        alert_prefix=prefix,
        metrics=metrics,
        thresholds=thresholds,
        slos=slos,
        test_targets=tuple(targets),
    )


def _load_metric(file: str, system: str, index: int, data: Any) -> MetricSpec:
    name = data.get("name") if isinstance(data, dict) else None
    entry = _Entry(
        file, f"metrics[{index}] {name or ''}".strip(), data, METRIC_FIELDS, {"name", "type", "help"}
    )
    if not METRIC_RE.match(entry.text("name")):
        raise entry.error("name", f"not a valid metric name: {name!r}")
    metric_type = entry.choice("type", METRIC_TYPES)
    labels = entry.texts("labels")
    for label in labels:
        if not LABEL_RE.match(label):
            raise entry.error("labels", f"not a valid label name: {label!r}")
    buckets: tuple[float, ...] = ()
    if metric_type == "histogram":
        values = entry.seq("buckets", None) if entry.has("buckets") else None
        if not values:
            raise entry.error("buckets", "a histogram needs its bucket bounds")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise entry.error("buckets", f"every bound must be a number, got {value!r}")
        buckets = tuple(float(v) for v in values)
        if list(buckets) != sorted(set(buckets)):
            raise entry.error("buckets", "bounds must be strictly increasing")
    elif entry.has("buckets"):
        raise entry.error("buckets", f"only histograms have buckets (type is {metric_type})")
    return MetricSpec(
        name=entry.text("name"),
        type=metric_type,
        help=entry.text("help"),
        labels=labels,
        buckets=buckets,
        system=system,
    )


def _load_runbook(file: str, entry_name: str, data: Any) -> Runbook:
    entry = _Entry(file, entry_name, data, RUNBOOK_FIELDS, RUNBOOK_FIELDS)
    causes, actions = entry.texts("causes"), entry.texts("actions")
    if not causes:
        raise entry.error("causes", "list at least one likely cause")
    if not actions:
        raise entry.error("actions", "list at least one first step")
    return Runbook(
        meaning=entry.text("meaning"), causes=causes, actions=actions, escalation=entry.text("escalation")
    )


def _load_fixture(file: str, entry_name: str, data: Any) -> Fixture:
    entry = _Entry(file, entry_name, data, TEST_FIELDS, {"series", "keeps"})
    series = []
    for index, item in enumerate(entry.seq("series")):
        one = _Entry(file, f"{entry_name}.series[{index}]", item, SERIES_FIELDS, {"series", "type"})
        scale = one.number("scale") if one.has("scale") else 0.0
        offset = one.number("offset") if one.has("offset") else 0.0
        series.append(
            FixtureSeries(one.text("series"), one.choice("type", ("gauge", "counter")), scale, offset)
        )
    if not series:
        raise entry.error("series", "needs at least one input series")
    keeps = entry.texts("keeps")
    return Fixture(series=tuple(series), keeps=keeps, kind=entry.choice("kind", FIXTURE_KINDS, "linear"))


def _load_threshold(
    file: str, system: str, source: str, prefix: str, index: int, data: Any
) -> list[Threshold]:
    label = (
        str(data["id"])
        if isinstance(data, dict) and isinstance(data.get("id"), str)
        else f"thresholds[{index}]"
    )
    required = {
        "id",
        "alert",
        "summary",
        "measures",
        "signal",
        "metric",
        "operator",
        "target",
        "unit",
        "for",
        "quote",
        "runbook",
    }
    entry = _Entry(file, label, data, THRESHOLD_FIELDS, required)
    entry_id = entry.text("id")
    if not ENTRY_ID_RE.match(entry_id):
        raise entry.error("id", f"must be lower-case words joined by '-', got {entry_id!r}")
    alert_name = entry.text("alert")
    _check_alert_name(entry, alert_name, prefix, bool(entry.data.get("standard_name", False)))
    record = None
    if entry.has("record"):
        record = entry.text("record")
        if not RECORD_RE.match(record):
            raise entry.error("record", f"must be named level:metric:operations, got {record!r}")
    operator = entry.choice("operator", OPERATORS)
    unit = entry.choice("unit", UNITS)
    target = entry.number("target")
    for_ = entry.duration("for")
    extra_labels = entry.data.get("labels", {})
    if not isinstance(extra_labels, dict) or not all(
        isinstance(k, str) and LABEL_RE.match(k) and isinstance(v, str) for k, v in extra_labels.items()
    ):
        raise entry.error("labels", "must map label names to strings")
    for reserved in ("severity", "system", "alertname"):
        if reserved in extra_labels:
            raise entry.error("labels", f"{reserved!r} is set by the generator")
    if entry.has("levels") == (entry.has("value") or entry.has("severity")):
        raise entry.error("levels", "give either 'value' and 'severity', or 'levels' (one per severity)")
    if entry.has("levels"):
        levels = []
        for level_index, item in enumerate(entry.seq("levels")):
            level = _Entry(
                file, f"{entry_id}.levels[{level_index}]", item, LEVEL_FIELDS, {"severity", "value"}
            )
            levels.append(
                (
                    level.choice("severity", SEVERITIES),
                    level.number("value"),
                    level.duration("for", for_),
                    level.text("quote") if level.has("quote") else entry.text("quote"),
                )
            )
        if not levels:
            raise entry.error("levels", "needs at least one level")
        if len({sev for sev, *_ in levels}) != len(levels):
            raise entry.error("levels", "each level needs its own severity")
    else:
        if not entry.has("value"):
            raise entry.error("value", "missing (required)")
        if not entry.has("severity"):
            raise entry.error("severity", "missing (required)")
        levels = [(entry.choice("severity", SEVERITIES), entry.number("value"), for_, entry.text("quote"))]
    value_field = "levels" if entry.has("levels") else "value"
    for _severity, value, _for, _quote in levels:
        wrong = {">": target > value, ">=": target >= value, "<": target < value, "<=": target <= value}[
            operator
        ]
        if wrong:
            raise entry.error(
                "target",
                f"target {format_number(target)} is on the alerting side of "
                f"'{operator} {format_number(value)}'",
            )
    if value_field == "levels":
        ascending = operator in (">", ">=")
        for sev_a, value_a, _f, _q in levels:
            for sev_b, value_b, _f2, _q2 in levels:
                # a more severe level (lower index in SEVERITIES) must sit further on the alerting side
                more_severe = SEVERITIES.index(sev_a) < SEVERITIES.index(sev_b)
                if more_severe and ((value_a <= value_b) if ascending else (value_a >= value_b)):
                    raise entry.error(
                        "levels",
                        f"{sev_a} ({format_number(value_a)}) must be further past the threshold "
                        f"than {sev_b} ({format_number(value_b)})",
                    )
    runbook = _load_runbook(file, f"{entry_id}.runbook", entry.data["runbook"])
    fixture = _load_fixture(file, f"{entry_id}.test", entry.data["test"]) if entry.has("test") else None
    return [
        Threshold(
            id=entry_id,
            system=system,
            alert_name=alert_name,
            summary=entry.text("summary"),
            measures=entry.text("measures"),
            signal=entry.text("signal").strip(),
            record=record,
            metric=entry.text("metric"),
            operator=operator,
            value=value,
            target=target,
            unit=unit,
            for_=level_for,
            severity=severity,
            quote=quote.strip(),
            source=entry.text("source", source),
            runbook=runbook,
            fixture=fixture,
            file=file,
            extra_labels=tuple(sorted(extra_labels.items())),
            description=entry.text("description").strip() if entry.has("description") else None,
            entry_values=tuple(level[1] for level in levels),
        )
        for severity, value, level_for, quote in levels
    ]


def _check_alert_name(entry: _Entry, alert_name: str, prefix: str, standard: bool) -> None:
    if not ALERT_NAME_RE.match(alert_name):
        raise entry.error("alert", f"must be CamelCase, got {alert_name!r}")
    if not standard and not alert_name.startswith(prefix):
        raise entry.error("alert", f"must start with the system prefix {prefix!r}, got {alert_name!r}")


def _load_slo(file: str, system: str, source: str, prefix: str, index: int, data: Any) -> Slo:
    label = (
        str(data["id"]) if isinstance(data, dict) and isinstance(data.get("id"), str) else f"slos[{index}]"
    )
    required = {
        "id",
        "alert",
        "name",
        "summary",
        "objective",
        "period",
        "error_ratio",
        "metric",
        "quote",
        "runbook",
    }
    entry = _Entry(file, label, data, SLO_FIELDS, required)
    slo_id = entry.text("id")
    if not ENTRY_ID_RE.match(slo_id):
        raise entry.error("id", f"must be lower-case words joined by '-', got {slo_id!r}")
    _check_alert_name(entry, entry.text("alert"), prefix, False)
    objective = entry.number("objective")
    if not 0 < objective < 1:
        raise entry.error("objective", f"must be a ratio between 0 and 1 (0.999 for 99.9%), got {objective}")
    error_ratio = entry.text("error_ratio")
    if "{window}" not in error_ratio:
        raise entry.error("error_ratio", "must use the placeholder {window} for the range")
    le = entry.number("le") if entry.has("le") else None
    if le is not None:
        if "{le}" not in error_ratio:
            raise entry.error("error_ratio", "must use the placeholder {le} when 'le' is set")
        error_ratio = error_ratio.replace("{le}", format_le(le))
    elif "{le}" in error_ratio:
        raise entry.error("le", "missing: error_ratio uses {le}")
    fixture = _load_fixture(file, f"{slo_id}.test", entry.data["test"]) if entry.has("test") else None
    if fixture and le is not None:
        fixture = Fixture(
            series=tuple(
                FixtureSeries(s.series.replace("{le}", format_le(le)), s.type, s.scale, s.offset)
                for s in fixture.series
            ),
            keeps=fixture.keeps,
            kind=fixture.kind,
        )
    return Slo(
        id=slo_id,
        system=system,
        alert_name=entry.text("alert"),
        name=entry.text("name"),
        summary=entry.text("summary"),
        objective=objective,
        period=entry.duration("period"),
        error_ratio=error_ratio.strip(),
        metric=entry.text("metric"),
        quote=entry.text("quote").strip(),
        source=entry.text("source", source),
        runbook=_load_runbook(file, f"{slo_id}.runbook", entry.data["runbook"]),
        fixture=fixture,
        file=file,
        le=le,
    )


def _check_cross_references(catalogue: Catalogue) -> None:
    """Checks that span entries: unique names, metrics in the contract, thresholds on bucket bounds."""
    from redline.generate.conventions import panel_id

    metric_owner: dict[str, str] = {}
    for system in catalogue.systems:
        for metric in system.metrics:
            if metric.name in metric_owner and metric_owner[metric.name] != system.file:
                # the same metric may appear in two contracts only with the same type
                other = catalogue.metric(metric.name)
                if other.type != metric.type:
                    raise CatalogueError(
                        system.file,
                        metric.name,
                        "type",
                        f"{metric.type} here but {other.type} in {metric_owner[metric.name]}",
                    )
            metric_owner.setdefault(metric.name, system.file)
        names = [m.name for m in system.metrics]
        for name in names:
            if names.count(name) > 1:
                raise CatalogueError(system.file, name, "name", "metric listed twice")
    alert_owner: dict[str, tuple[str, str]] = {}
    records: dict[str, tuple[str, str]] = {}
    recorded = {t.record: t.signal for t in catalogue.thresholds() if t.record}
    test_interval = parse_duration(catalogue.settings.test_interval)
    for system in catalogue.systems:
        entry_ids: dict[str, str] = {}
        panel_ids: dict[int, str] = {}
        items: list[Threshold | Slo] = [*system.thresholds, *system.slos]
        for item in items:
            kind = "threshold" if isinstance(item, Threshold) else "slo"
            if item.id in entry_ids and entry_ids[item.id] != kind + item.alert_name:
                raise CatalogueError(system.file, item.id, "id", "used by two entries")
            entry_ids[item.id] = kind + item.alert_name
            pid = panel_id(system.id, item.id)
            if panel_ids.setdefault(pid, item.id) != item.id:
                raise CatalogueError(
                    system.file,
                    item.id,
                    "id",
                    f"dashboard panel id {pid} collides with {panel_ids[pid]!r}; rename one",
                )
            owner = alert_owner.get(item.alert_name)
            if owner and owner != (system.file, item.id):
                raise CatalogueError(
                    system.file,
                    item.id,
                    "alert",
                    f"duplicate alert name {item.alert_name!r} (also {owner[0]} {owner[1]!r})",
                )
            alert_owner[item.alert_name] = (system.file, item.id)
            try:
                metric = catalogue.metric(item.metric)
            except KeyError:
                raise CatalogueError(
                    system.file, item.id, "metric", f"{item.metric!r} is not in any system's metrics contract"
                ) from None
            query = item.signal if isinstance(item, Threshold) else item.error_ratio
            # A query may read the metric through a recording rule of the catalogue.
            query += "".join(f"\n{signal}" for record, signal in recorded.items() if record in query)
            always = item.fixture is not None and item.fixture.kind == "always"  # Watchdog reads nothing
            if not always and not reads_metric(query, metric):
                raise CatalogueError(
                    system.file, item.id, "metric", f"{item.metric!r} does not occur in the entry's query"
                )
            if isinstance(item, Threshold):
                for window in re.findall(r"\[(\d+[smhdw])\]", item.signal):
                    if parse_duration(window) < 2 * test_interval:
                        raise CatalogueError(
                            system.file,
                            item.id,
                            "signal",
                            f"range [{window}] holds fewer than two samples at the generated tests' "
                            f"interval ({catalogue.settings.test_interval}, settings.test_interval)",
                        )
                if item.record:
                    owner = records.get(item.record)
                    if owner and owner != (system.file, item.id):
                        raise CatalogueError(
                            system.file,
                            item.id,
                            "record",
                            f"{item.record!r} is also recorded by {owner[0]} {owner[1]!r}",
                        )
                    records[item.record] = (system.file, item.id)
                if metric.type == "histogram" and item.unit == "seconds":
                    for field_name, number in (("value", item.value), ("target", item.target)):
                        if number not in metric.buckets:
                            raise CatalogueError(
                                system.file,
                                item.id,
                                field_name,
                                f"{format_number(number)} is not a bucket bound of {metric.name} "
                                f"({', '.join(format_number(b) for b in metric.buckets)})",
                            )
            elif item.le is not None:
                if metric.type != "histogram":
                    raise CatalogueError(system.file, item.id, "le", f"{metric.name} is not a histogram")
                if item.le not in metric.buckets:
                    raise CatalogueError(
                        system.file,
                        item.id,
                        "le",
                        f"{format_number(item.le)} is not a bucket bound of {metric.name} "
                        f"({', '.join(format_number(b) for b in metric.buckets)})",
                    )
