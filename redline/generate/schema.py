"""The catalogue file format (thresholds/<system>.yml) as pydantic models: the one schema.

Structure, types, enumerations, patterns and the rules that concern one entry alone (a target on the
good side of its threshold, levels in order, ratios within [0, 1], templates only in descriptions) are
declared here. The same models give `thresholds/schema.json` for editors and the schema section of
`thresholds/README.md` (both rendered by `redline generate`). `load` turns validated files into
`model` objects; `validate` checks what spans entries.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from redline.generate.markdown import unsafe_link
from redline.generate.model import DURATION_PATTERN, SEVERITIES, breaches, format_number, parse_duration
from redline.topology import SYSTEMS

ALERT_NAME_PATTERN = r"^[A-Z][a-zA-Z0-9]*$"
ENTRY_ID_PATTERN = r"^[a-z][a-z0-9-]*$"
RECORD_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+$"
LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
METRIC_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
URL_PATTERN = r"^https?://[^\s<>()\[\]{}\"'`\\]+$"  # written into Markdown and annotations as is
# What a pattern mismatch means, by pattern: the message a person reads.
PATTERN_MEANINGS = {
    ALERT_NAME_PATTERN: "must be CamelCase",
    ENTRY_ID_PATTERN: "must be lower-case words joined by '-'",
    RECORD_PATTERN: "must be named level:metric:operations",
    LABEL_PATTERN: "is not a valid label name",
    METRIC_PATTERN: "is not a valid metric name",
    DURATION_PATTERN: "is not a duration like 30s, 5m, 1h, 1d",
    URL_PATTERN: "is not an http(s) URL (no spaces, quotes, brackets or parentheses)",
}
TEMPLATE_MARKERS = ("{{", "}}", "{%", "%}")  # Go template delimiters: only descriptions may hold them

Text = Annotated[str, Field(min_length=1, pattern=r"\S")]
MAX_DURATION = "365d"  # no alert, window or SLO period of the catalogue is longer


def _bounded_duration(text: str) -> str:
    if parse_duration(text) > parse_duration(MAX_DURATION):
        raise PydanticCustomError(
            "duration_bound", "{text} is longer than {bound}", {"text": text, "bound": MAX_DURATION}
        )
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, min_length=2, examples=["30s", "5m", "1h30m", "30d"]),
    AfterValidator(_bounded_duration),
]
AlertName = Annotated[str, Field(pattern=ALERT_NAME_PATTERN)]
EntryId = Annotated[str, Field(pattern=ENTRY_ID_PATTERN)]
LabelName = Annotated[str, Field(pattern=LABEL_PATTERN)]
MetricName = Annotated[str, Field(pattern=METRIC_PATTERN)]
Severity = Literal["critical", "warning", "info"]
Operator = Literal[">", ">=", "<", "<="]
Unit = Literal["seconds", "bytes", "ratio", "count", "fps", "multiplier", "boolean"]
SystemId = Literal[SYSTEMS]  # type: ignore[valid-type]  # the topology's systems, as an enumeration


def fail(field: str, problem: str) -> PydanticCustomError:
    """A validation error that names the field it is about (the loader adds it to the location)."""
    return PydanticCustomError("catalogue", "{problem}", {"field": field, "problem": problem})


def _no_template(field: str, text: str) -> None:
    if any(marker in text for marker in TEMPLATE_MARKERS):
        raise fail(field, "templates ({{ }}) are allowed only in 'description'; write the text out")


def _safe_links(field: str, text: str) -> None:
    """Text a runbook page shows links only to http(s) or relative targets (no javascript:, data:...)."""
    target = unsafe_link(text)
    if target is not None:
        raise fail(field, f"link to {target!r} not allowed: runbook text links only to http(s) or relative")


class Strict(BaseModel):
    """Unknown fields are errors; values keep their YAML type (no '1.5' for 1.5); numbers are finite."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Metric(Strict):
    """One metric of the system's contract: what exporters and instrumentation publish."""

    name: str = Field(pattern=METRIC_PATTERN, description="metric name, in base units")
    type: Literal["counter", "gauge", "histogram", "summary"]
    help: Text = Field(description="what the metric measures")
    labels: list[LabelName] = Field(default_factory=list, description="label names the metric carries")
    buckets: list[float] | None = Field(
        None, description="histograms only: bucket bounds, strictly increasing; every threshold one of them"
    )
    origin: Literal["target", "exporter", "push"] = Field(
        "target",
        description="who publishes it: the system's scraped service (target), another exporter or "
        "Prometheus (exporter), or OTLP senders such as browsers (push); `redline verify-target` checks "
        "the target's",
    )

    @model_validator(mode="after")
    def _buckets(self) -> Metric:
        if self.type == "histogram":
            if not self.buckets:
                raise fail("buckets", "a histogram needs its bucket bounds")
            if self.buckets != sorted(set(self.buckets)):
                raise fail("buckets", "bounds must be strictly increasing")
        elif self.buckets is not None:
            raise fail("buckets", f"only histograms have buckets (type is {self.type})")
        return self


class Runbook(Strict):
    """What on-call reads in the alert's runbook section: one paragraph of Markdown each (line breaks
    become spaces, raw HTML shows as text); links only to http(s) or relative targets."""

    meaning: Text = Field(description="what the alert means")
    causes: list[Text] = Field(min_length=1, description="likely causes")
    actions: list[Text] = Field(min_length=1, description="first steps, in order (the seed's procedures)")
    escalation: Text = Field(description="who to call when the first steps do not help")

    @model_validator(mode="after")
    def _links(self) -> Runbook:
        _safe_links("meaning", self.meaning)
        for name in ("causes", "actions"):
            for index, text in enumerate(getattr(self, name)):
                _safe_links(f"{name}.{index}", text)
        _safe_links("escalation", self.escalation)
        return self


class Series(Strict):
    """A test input series: gauge value, or counter rate per second, = scale * v + offset."""

    series: Text = Field(description="promtool series notation, e.g. 'name{label=\"value\"}'")
    type: Literal["gauge", "counter"]
    scale: float = Field(0.0, description="multiplies the signal value v")
    offset: float = Field(0.0, description="added to scale * v")


class Fixture(Strict):
    """How the generated promtool tests drive the signal to a chosen value v."""

    kind: Literal["linear", "baseline", "always", "silence"] = Field(
        "linear",
        description="linear; baseline (history a week back); always (Watchdog); silence (the series "
        "stop arriving: RedlineAgentSilent)",
    )
    series: list[Series] = Field(min_length=1)
    keeps: list[LabelName] = Field(description="labels the signal's result keeps")


class Level(Strict):
    """One severity of an entry with several (same alert name, one rule each)."""

    severity: Severity
    value: float = Field(description="alert threshold of this level; more severe levels further past it")
    for_: Duration | None = Field(None, alias="for", description="default: the entry's 'for'")
    quote: Text | None = Field(None, description="default: the entry's 'quote'")


def _ratio_bounds(number_fields: tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema: while unit is ratio, these numbers lie within [0, 1] (editors show it as you type)."""
    within = {"minimum": 0, "maximum": 1}
    properties: dict[str, Any] = {name: within for name in number_fields}
    properties["levels"] = {"items": {"properties": {"value": within}}}
    return {
        "allOf": [{"if": {"properties": {"unit": {"const": "ratio"}}}, "then": {"properties": properties}}]
    }


class Threshold(Strict):
    """A documented number turned into an alert: `value` and `severity`, or `levels`."""

    model_config = ConfigDict(json_schema_extra=_ratio_bounds(("value", "target")))

    id: EntryId = Field(description="unique in the file; the dashboard panel id derives from it")
    alert: AlertName = Field(description="CamelCase, starting with the system's alert_prefix")
    standard_name: bool = Field(False, description="true: the alert name need not start with the prefix")
    summary: Text = Field(description="annotation summary")
    measures: Text = Field(description="what the signal measures; starts the annotation description")
    signal: Text = Field(description="PromQL over the metric contract: the value compared with the threshold")
    record: str | None = Field(None, pattern=RECORD_PATTERN, description="recording rule for the signal")
    metric: Text = Field(description="the contract metric the signal is about")
    operator: Operator = Field(description="the alerting side: the alert fires while `signal operator value`")
    value: float | None = Field(None, description="alert threshold (or levels)")
    severity: Severity | None = Field(None, description="(or levels)")
    levels: list[Level] | None = Field(None, min_length=1, description="one alert rule per severity")
    target: float = Field(description="documented target; never on the alerting side of a level")
    unit: Unit = Field(description="base units; ratio values lie within [0, 1] (0.7 for 70%)")
    for_: Duration = Field(alias="for", description="how long the condition must hold")
    quote: Text = Field(description="the line of the source document the number comes from")
    source: Text | None = Field(None, description="default: the file's source")
    labels: dict[LabelName, str] = Field(default_factory=dict, description="extra alert labels")
    description: Text | None = Field(None, description="replaces the generated description")
    runbook: Runbook
    test: Fixture | None = Field(None, description="how the generated promtool tests reach the threshold")

    @model_validator(mode="after")
    def _entry(self) -> Threshold:
        if (self.levels is None) == (self.value is None and self.severity is None):
            raise fail("levels", "give either 'value' and 'severity', or 'levels' (one per severity)")
        if self.levels is None:
            if self.value is None:
                raise fail("value", "missing (required)")
            if self.severity is None:
                raise fail("severity", "missing (required)")
        for reserved in ("severity", "system", "alertname"):
            if reserved in self.labels:
                raise fail("labels", f"{reserved!r} is set by the generator")
        for label, text in self.labels.items():
            _no_template(f"labels.{label}", text)
        for name in ("summary", "measures", "quote", "source"):  # annotation text Prometheus expands
            _no_template(name, getattr(self, name) or "")
            _safe_links(name, getattr(self, name) or "")  # and the runbook page shows
        for index, level in enumerate(self.levels or ()):
            _no_template(f"levels.{index}.quote", level.quote or "")
            _safe_links(f"levels.{index}.quote", level.quote or "")
        levels = self.level_values()
        if self.unit == "ratio":
            for field, number in [("target", self.target), *[(self._value_field(), v) for _, v in levels]]:
                if not 0 <= number <= 1:
                    raise fail(field, f"{format_number(number)} is not a ratio within [0, 1] (0.7 for 70%)")
        for _severity, value in levels:
            if breaches(self.operator, self.target, value):
                raise fail(
                    "target",
                    f"target {format_number(self.target)} is on the alerting side of "
                    f"'{self.operator} {format_number(value)}'",
                )
        if self.levels is not None:
            if len({level.severity for level in self.levels}) != len(self.levels):
                raise fail("levels", "each level needs its own severity")
            ordered = sorted(levels, key=lambda level: SEVERITIES.index(level[0]))
            alerting_up = self.operator in (">", ">=")
            for (severe, severe_value), (lesser, lesser_value) in itertools.pairwise(ordered):
                if (severe_value <= lesser_value) if alerting_up else (severe_value >= lesser_value):
                    raise fail(
                        "levels",
                        f"{severe} ({format_number(severe_value)}) must be further past the threshold "
                        f"than {lesser} ({format_number(lesser_value)})",
                    )
        return self

    def level_values(self) -> list[tuple[Severity, float]]:
        """(severity, value) of every level."""
        if self.levels is not None:
            return [(level.severity, level.value) for level in self.levels]
        return [(self.severity, self.value)] if self.severity and self.value is not None else []

    def _value_field(self) -> str:
        return "levels" if self.levels is not None else "value"


class Slo(Strict):
    """A service level objective: multi-window multi-burn-rate alerts over an error ratio."""

    id: EntryId = Field(description="unique in the file (the levels of a threshold share theirs)")
    alert: AlertName = Field(description="CamelCase, starting with the system's alert_prefix")
    name: Text = Field(description="what the SLO is about, in the alert description")
    summary: Text = Field(description="annotation summary (the burn speed is appended)")
    objective: float = Field(gt=0, lt=1, description="ratio, e.g. 0.999 for 99.9%")
    period: Duration = Field(description="the SLO window, e.g. 30d")
    error_ratio: Text = Field(
        description="PromQL of the error ratio with {window} (and {le} when le is set); per system and env: "
        "every aggregation keeps both"
    )
    le: float | None = Field(None, description="histogram bucket the query uses; one of the metric's buckets")
    metric: Text = Field(description="the contract metric the error ratio reads")
    quote: Text = Field(description="the line of the source document the objective comes from")
    source: Text | None = Field(None, description="default: the file's source")
    runbook: Runbook
    test: Fixture | None = Field(None, description="v is the error ratio")

    @model_validator(mode="after")
    def _placeholders(self) -> Slo:
        if "{window}" not in self.error_ratio:
            raise fail("error_ratio", "must use the placeholder {window} for the range")
        if self.le is not None and "{le}" not in self.error_ratio:
            raise fail("error_ratio", "must use the placeholder {le} when 'le' is set")
        if self.le is None and "{le}" in self.error_ratio:
            raise fail("le", "missing: error_ratio uses {le}")
        for name in ("summary", "name", "quote", "source"):  # annotation text Prometheus expands
            _no_template(name, getattr(self, name) or "")
            _safe_links(name, getattr(self, name) or "")  # and the runbook page shows
        return self


class BurnRate(Strict):
    """One multi-window burn-rate tier: both windows must burn faster than factor x budget."""

    severity: Severity = Field(description="critical tiers page, warning tiers open a ticket")
    factor: float = Field(gt=0, description="burn rate: multiples of the error budget spent per window")
    long_window: Duration
    short_window: Duration = Field(description="also burning: the burn is still going on")
    for_: Duration = Field(alias="for", description="the same for every tier of a severity")


class Settings(Strict):
    """Stack-wide settings (redline.yml only)."""

    burn_rates: list[BurnRate] = Field(min_length=1)
    test_interval: Duration = Field(description="sample interval of the generated promtool tests")
    test_settle: Duration = Field(description="time a signal needs after a change (its longest range)")

    @model_validator(mode="after")
    def _one_for_per_severity(self) -> Settings:
        if parse_duration(self.test_interval) == 0:
            raise fail("test_interval", "must be longer than 0s")
        for tier in self.burn_rates:
            first = next(t for t in self.burn_rates if t.severity == tier.severity)
            if tier.for_ != first.for_:
                raise fail(
                    "burn_rates", f"all {tier.severity} tiers need the same 'for' (one alert rule each)"
                )
        return self


class SystemFile(Strict):
    """thresholds/<system>.yml: one monitored system (redline.yml also holds the settings)."""

    system: SystemId = Field(description="equals the file name; one of redline/topology.py's SYSTEMS")
    name: Text = Field(description="display name")
    source: Text = Field(description="the source document (default `source` of every entry)")
    alert_prefix: AlertName = Field(description="every alert name starts with it")
    settings: Settings | None = Field(None, description="redline.yml only")
    metrics: list[Metric] = Field(default_factory=list, description="the metric contract")
    external_metrics: list[MetricName] = Field(
        default_factory=list,
        description="metrics this file's queries read that no contract lists, as nothing of redline "
        "publishes them (e.g. ALERTS); any other metric a signal or error_ratio reads must be in a contract",
    )
    thresholds: list[Threshold] = Field(default_factory=list)
    slos: list[Slo] = Field(default_factory=list)

    @model_validator(mode="after")
    def _links(self) -> SystemFile:
        for name in ("name", "source"):  # the runbook page's title and introduction
            _safe_links(name, getattr(self, name))
        return self
