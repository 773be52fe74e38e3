"""The alerting rules the catalogue defines: labels, expressions and annotations, as data.

Every renderer that needs an alert as Prometheus will evaluate it (rule files, promtool tests, route
tests, runbooks, dashboards) reads it from here, so the description text, the `for` and the links are
built once. A threshold entry gives one alert per level; an SLO one alert per burn-rate severity.
"""

from __future__ import annotations

from dataclasses import dataclass

from redline.generate.conventions import dashboard_url, runbook_url, slo_record, tiers_by_severity
from redline.generate.humanize import format_value, humanize_percentage, value_template
from redline.generate.model import BurnRate, Catalogue, Slo, System, Threshold, format_number


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


SIDE_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}
TARGET_WORDS = {">": "below", ">=": "below", "<": "above", "<=": "above"}
# Where the target is an alert value of the entry ("CPU < 70%", alert above 70%), the target includes it.
TARGET_AT_VALUE_WORDS = {">": "at most", ">=": "below", "<": "at least", "<=": "above"}


def target_phrase(threshold: Threshold) -> str:
    """'below 0.5s', 'at most 5', '1' ...: the documented target of an entry, the same on every level."""
    if threshold.unit == "boolean":
        return format_value(threshold.unit, threshold.target)
    words = TARGET_AT_VALUE_WORDS if threshold.target in threshold.entry_values else TARGET_WORDS
    return f"{words[threshold.operator]} {format_value(threshold.unit, threshold.target)}"


def threshold_description(threshold: Threshold) -> str:
    """The description template: what is measured, the current value, the real threshold, the source."""
    if threshold.description:
        return threshold.description
    unit = threshold.unit
    return (
        f"{threshold.measures} is {value_template(unit)}: {threshold.severity} when "
        f"{SIDE_WORDS[threshold.operator]} {format_value(unit, threshold.value)} for {threshold.for_} "
        f"(target: {target_phrase(threshold)}). "
        f'Source {threshold.source}: "{threshold.quote}"'
    )


def threshold_alert(catalogue: Catalogue, threshold: Threshold) -> Alert:
    annotations = {
        "summary": threshold.summary,
        "description": threshold_description(threshold),
        "runbook_url": runbook_url(catalogue.settings, threshold.system, threshold.alert_name),
        "dashboard_url": dashboard_url(catalogue.settings, threshold.system, threshold.id),
    }
    return Alert(
        alert_name=threshold.alert_name,
        severity=threshold.severity,
        system=threshold.system,
        entry_id=threshold.id,
        kind="threshold",
        expr=threshold.rule_expr,
        value=threshold.value,
        for_=threshold.for_,
        labels=threshold.labels,
        annotations=annotations,
        source=threshold,
    )


def slo_condition(slo: Slo, tiers: list[BurnRate]) -> str:
    """Multi-window multi-burn-rate condition: each tier needs both its long and short window burning."""
    budget = format_number(slo.error_budget)
    parts = []
    for tier in tiers:
        factor = format_number(tier.factor)
        selector = f'{{slo="{slo.slo_label}"}}'
        parts.append(
            f"(\n  {slo_record(tier.long_window)}{selector} > ({factor} * {budget})\n"
            f"  and\n  {slo_record(tier.short_window)}{selector} > ({factor} * {budget})\n)"
        )
    return "\nor\n".join(parts)


def slo_description(slo: Slo, tiers: list[BurnRate]) -> str:
    windows = " or ".join(
        f"{format_number(t.factor)}x over {t.long_window} and {t.short_window}" for t in tiers
    )
    return (
        f"{slo.name}: error ratio {{{{ $value | humanizePercentage }}}} over the long window. "
        f"Objective {humanize_percentage(slo.objective)} over {slo.period} leaves an error budget of "
        f"{humanize_percentage(slo.error_budget)}; this fires when the budget burns faster than {windows}. "
        f'Source {slo.source}: "{slo.quote}"'
    )


def slo_alerts(catalogue: Catalogue, slo: Slo) -> list[Alert]:
    alerts = []
    for severity, tiers in tiers_by_severity(catalogue).items():
        speed = "fast" if severity == "critical" else "steadily"
        alerts.append(
            Alert(
                alert_name=slo.alert_name,
                severity=severity,
                system=slo.system,
                entry_id=slo.id,
                kind="slo",
                expr=slo_condition(slo, tiers),
                value=min(t.factor for t in tiers) * slo.error_budget,
                for_=tiers[0].for_,
                labels={"severity": severity, "slo": slo.slo_label, "system": slo.system},
                annotations={
                    "summary": f"{slo.summary}: error budget burning {speed}",
                    "description": slo_description(slo, tiers),
                    "runbook_url": runbook_url(catalogue.settings, slo.system, slo.alert_name),
                    "dashboard_url": dashboard_url(catalogue.settings, slo.system, slo.id),
                },
                source=slo,
            )
        )
    return alerts


def system_alerts(catalogue: Catalogue, system: System) -> list[Alert]:
    alerts = [threshold_alert(catalogue, t) for t in system.thresholds]
    for slo in system.slos:
        alerts.extend(slo_alerts(catalogue, slo))
    return alerts


def catalogue_alerts(catalogue: Catalogue) -> list[Alert]:
    """Every alerting rule of the catalogue, system by system, in file order."""
    return [alert for system in catalogue.systems for alert in system_alerts(catalogue, system)]
