"""Render the catalogue into Prometheus rule files: prometheus/rules/<system>.yml.

Per system: a group of recording rules for the threshold signals, a group of SLO recording rules
(error ratio per burn-rate window, objective, budget left), and a group of alerting rules.
"""

from __future__ import annotations

import dataclasses

from redline.generate.catalogue import (
    Alert,
    BurnRate,
    Catalogue,
    Slo,
    System,
    Threshold,
    format_number,
    parse_duration,
)
from redline.generate.conventions import dashboard_url, runbook_url
from redline.generate.humanize import format_value, humanize_percentage, value_template
from redline.generate.render.common import header, yaml_dump

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


def rule_path(system_id: str) -> str:
    return f"prometheus/rules/{system_id}.yml"


def burn_rate_windows(catalogue: Catalogue) -> list[str]:
    """Every window the burn-rate tiers read, shortest first."""
    windows = {w for tier in catalogue.settings.burn_rates for w in (tier.long_window, tier.short_window)}
    return sorted(windows, key=parse_duration)


def slo_record(window: str) -> str:
    """Recording rule name of an SLO's error ratio over one window."""
    return f"slo:sli_error:ratio_rate{window}"


def tiers_by_severity(catalogue: Catalogue) -> dict[str, list[BurnRate]]:
    tiers: dict[str, list[BurnRate]] = {}
    for tier in catalogue.settings.burn_rates:
        tiers.setdefault(tier.severity, []).append(tier)
    return tiers


# ----------------------------------------------------------------------------------------------------
# Alerts: the flat view (Catalogue.alerts) and its annotations


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


# ----------------------------------------------------------------------------------------------------
# Rule files


def _recording_rules(system: System) -> list[dict]:
    rules, seen = [], set()
    for threshold in system.thresholds:
        if threshold.record and threshold.record not in seen:
            seen.add(threshold.record)
            rules.append({"record": threshold.record, "expr": threshold.signal})
    return rules


def _slo_rules(catalogue: Catalogue, system: System) -> list[dict]:
    rules: list[dict] = []
    for slo in system.slos:
        labels = {"slo": slo.slo_label, "system": slo.system}
        for window in burn_rate_windows(catalogue):
            rules.append(
                {"record": slo_record(window), "expr": slo.error_ratio_for(window), "labels": labels}
            )
        shortest = slo_record(burn_rate_windows(catalogue)[0])
        rules.append(
            {
                "record": slo_record(slo.period),
                "expr": f'avg_over_time({shortest}{{slo="{slo.slo_label}"}}[{slo.period}])',
                "labels": labels,
            }
        )
        rules.append(
            {
                "record": "slo:objective:ratio",
                "expr": f"vector({format_number(slo.objective)})",
                "labels": labels,
            }
        )
        rules.append(
            {
                "record": "slo:error_budget_remaining:ratio",
                "expr": f'1 - {slo_record(slo.period)}{{slo="{slo.slo_label}"}}'
                f" / {format_number(slo.error_budget)}",
                "labels": labels,
            }
        )
    return rules


def _alert_rule(alert: Alert) -> dict:
    rule: dict = {"alert": alert.alert_name, "expr": alert.expr}
    if parse_duration(alert.for_) > 0:
        rule["for"] = alert.for_
    rule["labels"] = dict(sorted(alert.labels.items()))
    rule["annotations"] = alert.annotations
    return rule


def render_system_rules(catalogue: Catalogue, system: System) -> str:
    groups = []
    records = _recording_rules(system)
    if records:
        groups.append({"name": f"{system.id}-records", "rules": records})
    slo_rules = _slo_rules(catalogue, system)
    if slo_rules:
        groups.append({"name": f"{system.id}-slo-records", "rules": slo_rules})
    alerts = [_alert_rule(a) for a in system_alerts(catalogue, system)]
    if alerts:
        groups.append({"name": f"{system.id}-alerts", "rules": alerts})
    return header("#", [f"thresholds/{system.file}"]) + yaml_dump({"groups": groups})


def render_rules(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: one rule file per system."""
    return {rule_path(s.id): render_system_rules(catalogue, s) for s in catalogue.systems}


def with_for_override(catalogue: Catalogue, duration: str) -> Catalogue:
    """A copy of the catalogue whose every alert (thresholds and burn-rate tiers) uses `for: duration`."""
    systems = [
        dataclasses.replace(s, thresholds=[dataclasses.replace(t, for_=duration) for t in s.thresholds])
        for s in catalogue.systems
    ]
    tiers = tuple(dataclasses.replace(t, for_=duration) for t in catalogue.settings.burn_rates)
    return dataclasses.replace(
        catalogue, systems=systems, settings=dataclasses.replace(catalogue.settings, burn_rates=tiers)
    )
