"""The catalogue as the generator sees it: frozen dataclasses, durations and numbers.

The bottom layer of redline.generate: it imports nothing of the project. `schema` builds these objects
from thresholds/*.yml, `validate` checks them across entries, the renderers read them. A threshold entry
with warning and critical levels becomes two Threshold objects with the same alert name.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from redline import durations
from redline.durations import format_duration
from redline.generate.promql import PromqlNameError, metric_names
from redline.inventory import DEMO, Inventory

SEVERITIES = ("critical", "warning", "info")  # most severe first
OPERATORS = (">", ">=", "<", "<=")
METRIC_TYPES = ("counter", "gauge", "histogram", "summary")
# unit -> what a value means; the renderers choose formatting from it.
UNITS = ("seconds", "bytes", "ratio", "count", "fps", "multiplier", "boolean")
# linear: the signal equals v when the series follow scale * v + offset; baseline: the same, compared with
# a history one week earlier (qerrors); always: the alert fires whatever the input (Watchdog); silence:
# v counts the samples in the signal's window, and the tests stop the series instead (RedlineAgentSilent).
FIXTURE_KINDS = ("linear", "baseline", "always", "silence")
DURATION_PATTERN = r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$"
_DURATION_RE = re.compile(DURATION_PATTERN)
# Range windows of a PromQL expression over the present ([5m]; subquery steps are not windows, and a
# window moved back with `offset` reads history, not the breach).
_RANGE_RE = re.compile(r"\[(\d+[smhdw](?:\d+[smhdw])*)(?::[^\]]*)?\](?!\s*offset)")
# Windows that average a counter's increase, or count samples: a step into a breach (or series that
# stop) reaches them gradually.
_RATE_RANGE_RE = re.compile(
    r"\b(?:rate|increase|count_over_time)\s*\([^()\[]*\[(\d+[smhdw](?:\d+[smhdw])*)\](?!\s*offset)"
)


def parse_duration(text: str) -> int:
    """Seconds in a catalogue duration such as '5m' or '1h30m'; ValueError when it is not one."""
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h, 1d")
    return int(durations.seconds(text))


def format_le(value: float) -> str:
    """A histogram bucket bound as Prometheus 3 normalises the `le` label ('0.1', '1.0', '10.0')."""
    return repr(float(value))


def clip(text: str, limit: int) -> str:
    """The text cut to `limit` characters, marked with '...' where cut (error messages stay readable)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_number(value: float) -> str:
    """A threshold number as written in PromQL and YAML: no exponent, no trailing zeros."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12f}".rstrip("0").rstrip(".")


_COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def breaches(op: str, value: float, threshold: float) -> bool:
    """True when `value <op> threshold` holds (the alerting side of a threshold)."""
    return bool(_COMPARISONS[op](value, threshold))


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a system's contract."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    system: str = ""
    origin: str = "target"  # target | exporter | push: who publishes it


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
    standard_name: bool = False  # the alert name is a convention of its own (Watchdog), not prefixed

    @property
    def window_seconds(self) -> int:
        """The longest range window the signal reads (0: an instant signal)."""
        return max((parse_duration(w) for w in _RANGE_RE.findall(self.signal)), default=0)

    @property
    def rate_window_seconds(self) -> int:
        """The longest rate()/increase() window of the signal: how long a step into a breach takes to
        fill it (0: the signal follows its samples at once)."""
        return max((parse_duration(w) for w in _RATE_RANGE_RE.findall(self.signal)), default=0)

    @property
    def detection_seconds(self) -> int:
        """Detection time for a sustained breach that starts from a healthy state: the rate window full of
        breaching samples, then `for` (plus up to one scrape and one evaluation interval at run time)."""
        return self.rate_window_seconds + parse_duration(self.for_)

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

    @property
    def past_target(self) -> str:
        """The comparison `signal OP target` that means the documented target is missed: on the alerting
        side of it, or at it too where the target is not an alert value ("CPU < 70%" alerts above 70%:
        70% keeps it; "cycle < 0.5s" alerts above 1s: 0.5s is past it)."""
        if self.target in self.entry_values or self.unit == "boolean":
            return self.operator
        return ">=" if self.operator in (">", ">=") else "<="


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
    external_metrics: tuple[str, ...] = ()  # read by its queries, published outside redline's contracts

    def entries(self) -> list[Threshold | Slo]:
        """Every threshold level and SLO, in file order."""
        return [*self.thresholds, *self.slos]

    def entry_ids(self) -> list[str]:
        """Distinct threshold and SLO entry ids, in file order (one dashboard panel each)."""
        return list(dict.fromkeys(item.id for item in self.entries()))

    def alert_names(self) -> list[str]:
        """Distinct alert names, in file order (one runbook section each)."""
        return list(dict.fromkeys(item.alert_name for item in self.entries()))


@dataclass(frozen=True)
class Catalogue:
    """The whole catalogue."""

    systems: list[System]
    settings: Settings
    directory: Path
    inventory: Inventory = DEMO  # the real services (or the demo) the stack watches; links, targets

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

    def metrics(self) -> Iterator[MetricSpec]:
        """Every contract metric of every system."""
        for system in self.systems:
            yield from system.metrics

    def thresholds(self) -> Iterator[Threshold]:
        for system in self.systems:
            yield from system.thresholds

    def slos(self) -> Iterator[Slo]:
        for system in self.systems:
            yield from system.slos


SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def series_names(metric: MetricSpec) -> list[str]:
    """The series names a metric is read by: its name, and a histogram's or summary's suffixed series."""
    return [metric.name, *(metric.name + suffix for suffix in SERIES_SUFFIXES.get(metric.type, ()))]


def reads_metric(query: str, metric: MetricSpec) -> bool:
    """True when a PromQL query reads the metric (a histogram: one of its _bucket/_sum/_count series)."""
    try:
        read = set(metric_names(query))
    except PromqlNameError:
        return False  # redline.generate.validate refuses such a query
    return any(name in read for name in series_names(metric))


def for_override(override: str) -> Callable[[str], str]:
    """An alert's new `for` from its own: `override` itself (a duration), or with '/N' its own divided
    by N (at least 1s), a time-scaled run. ValueError when override is neither."""
    if not override.startswith("/"):
        parse_duration(override)
        return lambda current: override
    if not (override[1:].isdigit() and int(override[1:]) > 0):
        raise ValueError(f"{override!r} is not /N with a whole N above 0")
    divisor = int(override[1:])
    return lambda current: format_duration(max(1, round(parse_duration(current) / divisor)))


# A range window ([1h], or a subquery's range [1h:1m]) or an offset (offset 1w): its duration in group 1 or 2.
_WINDOW_OR_OFFSET_RE = re.compile(
    r"\[(\d+[smhdw](?:\d+[smhdw])*)(?=[\]:])|\boffset\s+(\d+[smhdw](?:\d+[smhdw])*)"
)
# A divided window is never shorter than this: rate() needs two samples, and a time-scaled stack scrapes
# its targets every second (prometheus.yml), so a window keeps five of them.
WINDOW_FLOOR_SECONDS = 5


def window_divisor(divisor: int) -> Callable[[str], str]:
    """A duration divided by `divisor` (at least WINDOW_FLOOR_SECONDS), for a time-scaled run.
    ValueError when divisor is not a whole number above 0."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"{divisor!r} is not a whole number above 0")
    return lambda text: format_duration(max(WINDOW_FLOOR_SECONDS, round(parse_duration(text) / divisor)))


def divide_windows(query: str, divide: Callable[[str], str]) -> str:
    """The PromQL with every range window and offset replaced by divide(it); subquery steps stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"[{divide(match.group(1))}"
        return f"offset {divide(match.group(2))}"

    return _WINDOW_OR_OFFSET_RE.sub(replace, query)


def with_window_divisor(catalogue: Catalogue, divisor: int) -> Catalogue:
    """A copy of the catalogue for a time-scaled run whose history is minutes old: the burn-rate tiers'
    windows, each SLO's period, and the windows and offsets of every threshold signal that reads history
    (an `offset`: the qerrors baseline) divided by `divisor` (window_divisor). Thresholds, objectives and
    factors are unchanged, so each alert decides as before on a clock `divisor` times faster."""
    divide = window_divisor(divisor)

    def threshold(t: Threshold) -> Threshold:
        if not re.search(r"\boffset\b", t.signal):
            return t
        return dataclasses.replace(t, signal=divide_windows(t.signal, divide))

    systems = [
        dataclasses.replace(
            s,
            thresholds=[threshold(t) for t in s.thresholds],
            slos=[dataclasses.replace(slo, period=divide(slo.period)) for slo in s.slos],
        )
        for s in catalogue.systems
    ]
    tiers = tuple(
        dataclasses.replace(t, long_window=divide(t.long_window), short_window=divide(t.short_window))
        for t in catalogue.settings.burn_rates
    )
    return dataclasses.replace(
        catalogue, systems=systems, settings=dataclasses.replace(catalogue.settings, burn_rates=tiers)
    )


def with_for_override(catalogue: Catalogue, override: str) -> Catalogue:
    """A copy of the catalogue whose every alert (thresholds and burn-rate tiers) has the `for` that
    for_override(override) gives it."""
    new_for = for_override(override)

    systems = [
        dataclasses.replace(
            s, thresholds=[dataclasses.replace(t, for_=new_for(t.for_)) for t in s.thresholds]
        )
        for s in catalogue.systems
    ]
    tiers = tuple(dataclasses.replace(t, for_=new_for(t.for_)) for t in catalogue.settings.burn_rates)
    return dataclasses.replace(
        catalogue, systems=systems, settings=dataclasses.replace(catalogue.settings, burn_rates=tiers)
    )
