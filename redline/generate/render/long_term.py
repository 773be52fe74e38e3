"""Render the long-range recording rules: prometheus/long-term/rules.yml, evaluated by vmalert against the
long-term store (redline up --scale, compose profile `scale`; docs/scale.md).

Their windows exceed what a replica keeps (redline/storage.py PROMETHEUS_RETENTION_TIME), so they read the
store, where both replicas' samples are kept deduplicated for LONG_TERM_RETENTION. Per system, one group
evaluated every LONG_TERM_EVAL_INTERVAL:

- per SLO whose period is longer than the local retention: its error ratio over the whole period and the
  error budget left (1 - ratio / budget), read from the replicas' shortest-window SLO record, one per env
  as that record is (avg_over_time and arithmetic with a number keep its labels);
- per documented target (one per threshold entry): `entry:target_held:bool`, 1 while the signal keeps its
  target and 0 while it is past it (model.Threshold.past_target, the backtest's meaning), and its mean
  over COMPLIANCE_WINDOW, the monthly compliance. The mean covers the time vmalert has recorded.

Every expression reads only series the replicas write (raw metrics, their records) or these rules' own
0/1 series, so each record is right at its first evaluation (no rule reads a record of the same round,
which the store may not have yet). None of the names is a replica's record, so nothing is written twice.
"""

from __future__ import annotations

from redline import storage
from redline.generate.conventions import (
    COMPLIANCE_WINDOW,
    LONG_TERM_BUDGET,
    LONG_TERM_RULES,
    TARGET_HELD,
    burn_rate_windows,
    compliance_record,
    entry_selector,
    long_range,
    long_term_group,
    long_term_slo_record,
    slo_record,
)
from redline.generate.model import Catalogue, Slo, System, Threshold, format_number
from redline.generate.render.common import header, yaml_dump

# The comparison that keeps a target, given the one that misses it (Threshold.past_target).
HOLDS = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


def slo_rules(catalogue: Catalogue, slo: Slo) -> list[dict]:
    """The store's error ratio over the SLO's period and the budget left."""
    labels = {"slo": slo.slo_label, "system": slo.system}
    shortest = slo_record(burn_rate_windows(catalogue)[0])
    ratio = f'avg_over_time({shortest}{{slo="{slo.slo_label}"}}[{slo.period}])'
    return [
        {"record": long_term_slo_record(slo.period), "expr": ratio, "labels": labels},
        {
            "record": LONG_TERM_BUDGET,
            "expr": f"1 - {ratio} / {format_number(slo.error_budget)}",
            "labels": labels,
        },
    ]


def target_rules(threshold: Threshold) -> list[dict]:
    """Whether the entry's signal keeps its documented target now (0/1), and the share of the month."""
    labels = {"entry": threshold.id, "system": threshold.system}
    signal = threshold.record or f"({threshold.signal.strip()})"
    held = f"{signal} {HOLDS[threshold.past_target]} bool {format_number(threshold.target)}"
    selector = TARGET_HELD + entry_selector(threshold.system, threshold.id)
    return [
        {"record": TARGET_HELD, "expr": held, "labels": labels},
        {
            "record": compliance_record(),
            "expr": f"avg_over_time({selector}[{COMPLIANCE_WINDOW}])",
            "labels": labels,
        },
    ]


def system_rules(catalogue: Catalogue, system: System) -> list[dict]:
    rules: list[dict] = []
    for slo in system.slos:
        if long_range(slo):
            rules += slo_rules(catalogue, slo)
    seen: set[str] = set()
    for threshold in system.thresholds:  # one target per entry, however many alert levels it has
        # a standard alert (the Watchdog) fires on purpose, always past its "target": nothing to hold
        if threshold.id not in seen and not threshold.standard_name:
            seen.add(threshold.id)
            rules += target_rules(threshold)
    return rules


def render_long_term_rules(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: one vmalert rule file, a group per system that has long-range records."""
    groups = []
    for system in catalogue.systems:
        rules = system_rules(catalogue, system)
        if rules:
            name = long_term_group(system.id)
            groups.append({"name": name, "interval": storage.LONG_TERM_EVAL_INTERVAL, "rules": rules})
    sources = [f"thresholds/{s.file}" for s in catalogue.systems]
    return {LONG_TERM_RULES: header("#", sources) + yaml_dump({"groups": groups})}
