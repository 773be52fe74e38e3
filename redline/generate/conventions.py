"""Names every renderer agrees on: files, rule groups, recording rules, dashboard UIDs, panel ids, URLs.

The dashboards renderer builds one panel per catalogue entry with exactly `panel_id(system, entry_id)`,
so every alert's `dashboard_url` opens the panel that plots its signal. Panel ids of catalogue entries
are in 100..9999; ids 1..99 are free for a dashboard's own panels (rows, text, overview tiles).
Base URLs come from `thresholds/redline.yml` (`settings:`), never from this module.
"""

from __future__ import annotations

import zlib

from redline import durations, paths, storage
from redline.generate.model import BurnRate, Catalogue, Settings, Slo, System, parse_duration

FIRST_ENTRY_PANEL_ID = 100
LAST_ENTRY_PANEL_ID = 9999
OVERVIEW_UID = "redline-overview"


def dashboard_uid(system_id: str) -> str:
    """The Grafana dashboard UID of a system ('tmux' -> 'redline-tmux'); 'overview' for the on-call board."""
    return OVERVIEW_UID if system_id == "overview" else f"redline-{system_id}"


def panel_id(system_id: str, entry_id: str) -> int:
    """The panel id that shows one catalogue entry (threshold or SLO id) on its system's dashboard.

    Derived from the names only (crc32), so it does not change when entries are added or reordered;
    the catalogue loader rejects the rare collision within one system.
    """
    span = LAST_ENTRY_PANEL_ID - FIRST_ENTRY_PANEL_ID + 1
    return FIRST_ENTRY_PANEL_ID + zlib.crc32(f"{system_id}/{entry_id}".encode()) % span


def dashboard_url(settings: Settings, system_id: str, entry_id: str | None = None) -> str:
    """Link to a system's dashboard, opened on the entry's panel when entry_id is given."""
    url = f"{settings.grafana_url}/d/{dashboard_uid(system_id)}"
    if entry_id is not None:
        url += f"?viewPanel={panel_id(system_id, entry_id)}"
    return url


def runbook_anchor(alert_name: str) -> str:
    """The Markdown heading anchor of an alert's runbook section (headings are the bare alert name)."""
    return alert_name.lower()


def runbook_url(settings: Settings, system_id: str, alert_name: str) -> str:
    """Link to the alert's section in docs/runbooks/<system>.md."""
    return f"{settings.runbook_base_url}/{system_id}.md#{runbook_anchor(alert_name)}"


def rule_path(system_id: str) -> str:
    """prometheus/rules/<system>.yml."""
    return f"prometheus/rules/{system_id}.yml"


def test_path(system_id: str, baseline: bool = False) -> str:
    """prometheus/tests/<system>_test.yml (the week-long baseline tests: <system>_baseline_test.yml)."""
    return f"prometheus/tests/{system_id}{'_baseline' if baseline else ''}_test.yml"


def runbook_path(system_id: str) -> str:
    """docs/runbooks/<system>.md."""
    return f"docs/runbooks/{system_id}.md"


def rule_groups(system: System) -> list[str]:
    """Names of the rule groups rendered for a system, in evaluation order (only groups with rules)."""
    present = {
        "records": any(t.record for t in system.thresholds),
        "slo-records": bool(system.slos),
        "alerts": bool(system.thresholds or system.slos),
    }
    return [f"{system.id}-{kind}" for kind, has_rules in present.items() if has_rules]


# Per SLO (label slo) and, like the error ratios they come from, per system and env.
SLO_BUDGET = "slo:error_budget_remaining:ratio"  # 1 - the period's error ratio / the error budget
# Per SLO only: the objective is the same in every env (a constant, never matched against a ratio).
SLO_OBJECTIVE = "slo:objective:ratio"


def slo_record(window: str) -> str:
    """Recording rule name of an SLO's error ratio over one window."""
    return f"slo:sli_error:ratio_rate{window}"


def burn_rate_windows(catalogue: Catalogue) -> list[str]:
    """Every window the burn-rate tiers read, shortest first."""
    windows = {w for tier in catalogue.settings.burn_rates for w in (tier.long_window, tier.short_window)}
    return sorted(windows, key=parse_duration)


def tiers_by_severity(catalogue: Catalogue) -> dict[str, list[BurnRate]]:
    """The burn-rate tiers grouped by severity (one alert rule per SLO and severity)."""
    tiers: dict[str, list[BurnRate]] = {}
    for tier in catalogue.settings.burn_rates:
        tiers.setdefault(tier.severity, []).append(tier)
    return tiers


# The long-range recording rules, evaluated by vmalert against the long-term store (docs/scale.md). Their
# names differ from the replicas' records, which the replicas also write into the store.
LONG_TERM_RULES = paths.LONG_TERM_RULES.relative_to(paths.ROOT).as_posix()
COMPLIANCE_WINDOW = "30d"  # monthly compliance with each documented target
TARGET_HELD = "entry:target_held:bool"  # 1 while the entry's signal keeps its documented target, else 0


def long_term_group(system_id: str) -> str:
    """The vmalert rule group of a system's long-range records."""
    return f"{system_id}-long-term"


def long_term_slo_record(period: str) -> str:
    """The store's SLO error ratio over the SLO's whole period (the replicas hold only part of it)."""
    return f"slo:sli_error_long_term:ratio_rate{period}"


LONG_TERM_BUDGET = "slo:error_budget_remaining_long_term:ratio"


def long_range(slo: Slo) -> bool:
    """Whether an SLO's period is longer than a replica keeps: only the store can evaluate it (it has
    LONG_TERM_BUDGET records; the replicas' SLO_BUDGET covers the part of the period they hold)."""
    return parse_duration(slo.period) > durations.seconds(storage.PROMETHEUS_RETENTION_TIME)


# The labels an SLO's two budget records share in the store. The replicas' record also carries their
# external labels (e.g. `stack`; `replica` is dropped on remote write) and vmalert's carries those of the
# series it averages: matching on these alone pairs the two of one env whatever else they carry.
BUDGET_MATCH = ("slo", "env")


def budget_left(slo: Slo) -> str:
    """An SLO's error budget left, one value per env, as read from the history (storage.history): the
    store's LONG_TERM_BUDGET over the whole period where vmalert has recorded it, else the Prometheus'
    own SLO_BUDGET (over what it keeps, at most its retention). Without the store, or before vmalert's
    first round, only the latter exists. `or` keeps each series' name, which tells the two apart."""
    selector = f'{{slo="{slo.slo_label}"}}'
    match = ", ".join(BUDGET_MATCH)
    return f"{LONG_TERM_BUDGET}{selector} or on ({match}) {SLO_BUDGET}{selector}"


def compliance_record() -> str:
    """The share of COMPLIANCE_WINDOW during which an entry kept its documented target (TARGET_HELD's
    mean)."""
    return f"entry:target_held:ratio_avg{COMPLIANCE_WINDOW}"


def entry_selector(system_id: str, entry_id: str) -> str:
    """The label matchers of one entry's TARGET_HELD and compliance_record() series."""
    return f'{{entry="{entry_id}",system="{system_id}"}}'


# How the monthly compliance is coloured (the console's system pages, the overview's table). A target is
# the value a system should keep, not an alert value: 99% of 30 days leaves about 7 hours off target a
# month (a few incidents' worth), the normal state of a healthy system; below 95% (more than a day and a
# half a month) missing the target is what the system does, and either it or the documented number needs
# attention (`redline backtest` suggests numbers). In between: a month worth looking at.
COMPLIANCE_GOOD = 0.99
COMPLIANCE_POOR = 0.95
