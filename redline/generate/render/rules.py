"""Render the catalogue into Prometheus rule files: prometheus/rules/<system>.yml.

Per system: a group of recording rules for the threshold signals, a group of SLO recording rules
(error ratio per burn-rate window and over the period, and budget left, each per system and env as the
catalogue's error ratio is; the objective, one per SLO), and a group of alerting rules.
"""

from __future__ import annotations

from redline.generate.alerts import Alert, system_alerts
from redline.generate.conventions import (
    SLO_BUDGET,
    SLO_OBJECTIVE,
    burn_rate_windows,
    rule_groups,
    rule_path,
    slo_record,
)
from redline.generate.model import Catalogue, System, format_number, parse_duration
from redline.generate.render.common import header, yaml_dump


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
                "record": SLO_OBJECTIVE,
                "expr": f"vector({format_number(slo.objective)})",
                "labels": labels,
            }
        )
        # arithmetic with a number keeps the ratio's labels: one budget per env, as the ratios are
        rules.append(
            {
                "record": SLO_BUDGET,
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
    """One system's rule file: its recording, SLO recording and alerting groups (conventions.rule_groups)."""
    records = _recording_rules(system)
    slo_rules = _slo_rules(catalogue, system)
    alerts = [_alert_rule(a) for a in system_alerts(catalogue, system)]
    present = [rules for rules in (records, slo_rules, alerts) if rules]
    groups = [{"name": n, "rules": r} for n, r in zip(rule_groups(system), present, strict=True)]
    return header("#", [f"thresholds/{system.file}"]) + yaml_dump({"groups": groups})


def render_rules(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: one rule file per system."""
    return {rule_path(s.id): render_system_rules(catalogue, s) for s in catalogue.systems}
