"""The catalogue's rules as the backtest evaluates them: self-contained, over raw metrics only.

The datasource (the stack's Prometheus or any Prometheus-compatible URL) stays read-only, so no
recording rule result can be stored next to the raw history. Every alert is therefore rendered with
its recording rules inlined: a threshold's condition is `(signal) op value` (model.Threshold.expr); an
SLO's multi-window burn-rate condition compares the error-ratio expression per window directly; a
recording rule read inside another expression is replaced by its own expression, as a subquery at the
evaluation step when a range is taken over it (`avg_over_time(record[1h])` becomes
`avg_over_time((expr)[1h:1m])`, which Prometheus evaluates at the same aligned timestamps as the rule).

Beside the alerts, one recording rule per catalogue entry records its signal (a threshold's signal, an
SLO's error ratio over its shortest burn window) for compliance, plots and suggestions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from redline.generate.alerts import Alert, catalogue_alerts
from redline.generate.conventions import burn_rate_windows, tiers_by_severity
from redline.generate.model import Catalogue, Slo, Threshold, format_duration, format_number, parse_duration

SIGNAL_METRIC = "redline_backtest_signal"
RULE_LABEL = "backtest_rule"  # on every backtest alert: which rule (ALERTS of two catalogues apart)
SIGNAL_LABEL = "backtest_signal"  # on every recorded signal: which catalogue entry
GROUP = "redline-backtest"

_DURATION = r"\d+[smhdwy](?:\d+[smhdwy])*"
_RANGE_RE = re.compile(rf"\[({_DURATION})(?::({_DURATION})?)?\](\s*offset\s+({_DURATION}))?")
_OFFSET_RE = re.compile(rf"\boffset\s+({_DURATION})")
_SELECTOR_RE = re.compile(r"(?<![A-Za-z0-9_:])(?:[A-Za-z_:][A-Za-z0-9_:]*)?\{[^}]*\}")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_MODIFIER_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT_RE = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_KEYWORDS |= {"group_left", "group_right", "start", "end"}
_MATCHER_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"')


class RuleError(ValueError):
    """A catalogue rule cannot be rendered self-contained; one line naming the entry."""


@dataclass(frozen=True)
class BacktestRule:
    """One alerting rule evaluated by the backtest (shared by the catalogues that define it alike)."""

    id: str  # r1, r2, ...: the RULE_LABEL value on its ALERTS
    alert_name: str
    expr: str
    for_: str
    labels: tuple[tuple[str, str], ...]
    lookback: int  # seconds of history each evaluation reads before its timestamp
    selectors: frozenset[str]  # the series selectors it reads


@dataclass(frozen=True)
class SignalRule:
    """The recorded signal of one catalogue entry."""

    id: str  # <system>/<entry id>
    expr: str
    lookback: int
    window: str = ""  # an SLO's: the burn-rate window of its error ratio


@dataclass(frozen=True)
class Evaluated:
    """One catalogue alert, the rule that evaluates it and the signal of its entry."""

    alert: Alert
    rule: BacktestRule
    signal: SignalRule
    bounds: tuple[float, ...] = ()  # the only values the catalogue accepts (histogram buckets), or any


@dataclass(frozen=True)
class CatalogueRules:
    """What one catalogue contributes to the backtest."""

    alerts: list[Evaluated]
    skipped: list[Alert]  # alerts that fire whatever the input (the dead-man's switch)


def records(catalogue: Catalogue) -> dict[str, str]:
    """Recording rule name -> its expression, for every threshold that has one."""
    return {t.record: t.signal for t in catalogue.thresholds() if t.record}


def inline(expr: str, record_exprs: dict[str, str], step: int, where: str) -> str:
    """expr with every catalogue recording rule it reads replaced by that rule's expression."""
    for _ in range(10):  # records that read records: a few rounds at most
        found = False
        for name, body in record_exprs.items():
            pattern = re.compile(
                rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:])(\{{[^}}]*\}})?(\[({_DURATION})\])?"
            )

            def replace(match: re.Match[str], name: str = name, body: str = body) -> str:
                for label, value in _MATCHER_PAIR_RE.findall(match.group(1) or ""):
                    if not re.search(rf'\b{re.escape(label)}\s*=\s*"{re.escape(value)}"', body):
                        raise RuleError(
                            f'{where}: reads {name}{{{label}="{value}"}}, a selector its expression '
                            "does not guarantee; cannot inline it"
                        )
                if match.group(2):
                    return f"({body.strip()})[{match.group(3)}:{format_duration(step)}]"
                return f"({body.strip()})"

            expr, count = pattern.subn(replace, expr)
            found = found or count > 0
        if not found:
            return expr
    raise RuleError(f"{where}: recording rules read each other in a loop; cannot inline them")


def lookback(expr: str) -> int:
    """Seconds of history before an evaluation that expr reads: the longest range plus its offset."""
    longest = 0
    for match in _RANGE_RE.finditer(expr):
        offset = parse_duration(match.group(4)) if match.group(4) else 0
        longest = max(longest, parse_duration(match.group(1)) + offset)
    for match in _OFFSET_RE.finditer(expr):
        longest = max(longest, parse_duration(match.group(1)))
    return longest


def selectors(expr: str) -> frozenset[str]:
    """The series selectors of a PromQL expression: `name{...}`, `{...}` and bare metric names."""
    found = {m.group(0).strip() for m in _SELECTOR_RE.finditer(expr)}
    text = _SELECTOR_RE.sub(" ", expr)
    text = _STRING_RE.sub('""', text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _MODIFIER_RE.sub(" ", text)
    text = re.sub(rf"\boffset\s+{_DURATION}", " ", text)
    found |= {name for name in _IDENT_RE.findall(text) if name not in _KEYWORDS}
    return frozenset(found)


def threshold_expr(threshold: Threshold, record_exprs: dict[str, str], step: int) -> str:
    where = f"{threshold.file}: entry {threshold.id!r}"
    signal = inline(threshold.signal, record_exprs, step, where)
    return f"({signal.strip()}) {threshold.operator} {format_number(threshold.value)}"


def error_ratio(slo: Slo, window: str, record_exprs: dict[str, str], step: int) -> str:
    return inline(slo.error_ratio_for(window), record_exprs, step, f"{slo.file}: entry {slo.id!r}")


def slo_expr(catalogue: Catalogue, alert: Alert, record_exprs: dict[str, str], step: int) -> str:
    """The burn-rate condition of one SLO alert with each window's error ratio written out."""
    assert isinstance(alert.source, Slo)
    slo = alert.source
    budget = format_number(slo.error_budget)
    parts = []
    for tier in tiers_by_severity(catalogue)[alert.severity]:
        limit = f"({format_number(tier.factor)} * {budget})"
        long = error_ratio(slo, tier.long_window, record_exprs, step)
        short = error_ratio(slo, tier.short_window, record_exprs, step)
        parts.append(f"(\n  ({long}) > {limit}\n  and\n  ({short}) > {limit}\n)")
    return "\nor\n".join(parts)


def bucket_bounds(catalogue: Catalogue, alert: Alert) -> tuple[float, ...]:
    """A threshold in seconds on a histogram must be one of its bucket bounds (redline check says so)."""
    source = alert.source
    if not isinstance(source, Threshold) or source.unit != "seconds":
        return ()
    metric = catalogue.metric(source.metric)
    return metric.buckets if metric.type == "histogram" else ()


def always_fires(alert: Alert) -> bool:
    """The dead-man's switch: fires whatever the input, so there is nothing to backtest."""
    fixture = alert.source.fixture
    return fixture is not None and fixture.kind == "always"


class RuleSet:
    """The backtest rules of one or more catalogues: identical rules are evaluated once."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.rules: dict[tuple, BacktestRule] = {}
        self.signals: dict[str, SignalRule] = {}

    def add_catalogue(self, catalogue: Catalogue) -> CatalogueRules:
        exprs = records(catalogue)
        evaluated: list[Evaluated] = []
        skipped: list[Alert] = []
        for alert in catalogue_alerts(catalogue):
            if always_fires(alert):
                skipped.append(alert)
                continue
            if isinstance(alert.source, Threshold):
                expr = threshold_expr(alert.source, exprs, self.step)
            else:
                expr = slo_expr(catalogue, alert, exprs, self.step)
            rule, signal = self._rule(alert, expr), self._signal(catalogue, alert, exprs)
            evaluated.append(Evaluated(alert, rule, signal, bucket_bounds(catalogue, alert)))
        return CatalogueRules(evaluated, skipped)

    def _rule(self, alert: Alert, expr: str) -> BacktestRule:
        labels = tuple(sorted(alert.labels.items()))
        key = (alert.alert_name, expr, alert.for_, labels)
        if key not in self.rules:
            self.rules[key] = BacktestRule(
                id=f"r{len(self.rules) + 1}",
                alert_name=alert.alert_name,
                expr=expr,
                for_=alert.for_,
                labels=labels,
                lookback=lookback(expr),
                selectors=selectors(expr),
            )
        return self.rules[key]

    def _signal(self, catalogue: Catalogue, alert: Alert, exprs: dict[str, str]) -> SignalRule:
        source = alert.source
        window = ""
        if isinstance(source, Threshold):
            expr = inline(source.signal, exprs, self.step, f"{source.file}: entry {source.id!r}")
        else:
            window = burn_rate_windows(catalogue)[0]
            expr = error_ratio(source, window, exprs, self.step)
        signal_id = f"{alert.system}/{alert.entry_id}"
        existing = self.signals.get(signal_id)
        if existing is not None and existing.expr != expr:
            signal_id += f"@{len(self.signals)}"  # the other catalogue's signal differs: keep both
        return self.signals.setdefault(signal_id, SignalRule(signal_id, expr, lookback(expr), window))

    def rules_yaml(self, concurrency: int) -> str:
        """The vmalert rule file: one group at the evaluation step, signals first, then the alerts."""
        rules: list[dict] = [
            {"record": SIGNAL_METRIC, "expr": s.expr, "labels": {SIGNAL_LABEL: s.id}}
            for s in self.signals.values()
        ]
        for rule in self.rules.values():
            rules.append(
                {
                    "alert": rule.alert_name,
                    "expr": rule.expr,
                    "for": rule.for_,
                    "labels": {**dict(rule.labels), RULE_LABEL: rule.id},
                }
            )
        group = {"name": GROUP, "interval": f"{self.step}s", "concurrency": concurrency, "rules": rules}
        return yaml.safe_dump({"groups": [group]}, sort_keys=False, width=1000)
