"""One dashboard per monitored system, built from its catalogue entries.

Each threshold entry gets one time series panel with id `panel_id(system, entry)` that plots exactly
what its alert reads (the recording rule when the entry has one, else the signal) with the target and
alert values as threshold lines. Each SLO gets a burn-rate panel (same id rule) over the recording
rules the burn-rate alerts read, and an error-budget stat read from the History datasource (the
long-term store's 30-day record with --scale).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard, prometheus
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from redline import storage
from redline.generate.conventions import (
    LONG_TERM_BUDGET,
    SLO_BUDGET,
    budget_left,
    dashboard_uid,
    long_range,
    panel_id,
    runbook_url,
    slo_record,
)
from redline.generate.model import Catalogue, Slo, System, Threshold, format_number
from redline.generate.render.dashboards import common

# Own panel ids of a system dashboard (catalogue entries use 100..9999, see redline/generate/conventions.py).
ROW_TARGETS = 1
PANEL_TARGETS_UP = 2
PANEL_PROBES = 3
ROW_THRESHOLDS = 4
ROW_SLOS = 5
FIRST_BUDGET_PANEL = 10  # one error-budget stat per SLO: 10, 11, ...
FIRST_EXTRA_PANEL = 40  # dashboards that add rows (hosts) number their panels from here


def thresholds_by_entry(system: System) -> dict[str, list[Threshold]]:
    """The alert levels of each threshold entry id, in file order."""
    entries: dict[str, list[Threshold]] = {}
    for threshold in system.thresholds:
        entries.setdefault(threshold.id, []).append(threshold)
    return entries


def entry_query(threshold: Threshold) -> str:
    """What the entry's alert compares with its value: the recording rule, else the signal itself."""
    return threshold.record or threshold.signal


def threshold_panel(catalogue: Catalogue, levels: Sequence[Threshold]) -> Builder[model.Panel]:
    """The panel of one threshold entry: its signal with target and alert lines."""
    first = levels[0]
    description = (
        f"{first.measures}. {common.describe_levels(levels)} Source {first.source}: \u201c{first.quote}\u201d"
    )
    return common.panel(
        "timeseries",
        panel_id(first.system, first.id),
        first.summary,
        description,
        common.GRAFANA_UNITS[first.unit],
        [common.query(entry_query(first), legend="__auto")],
        steps=common.threshold_steps(levels),
    ).links(
        [
            dashboard.DashboardLink(f"Runbook: {alert_name}")
            .type(model.DashboardLinkType.LINK)
            .url(runbook_url(catalogue.settings, first.system, alert_name))
            .target_blank(True)
            for alert_name in dict.fromkeys(level.alert_name for level in levels)
        ]
    )


def slo_budget(slo: Slo) -> str:
    return format_number(slo.error_budget)


def burn_rate_query(slo: Slo, window: str) -> str:
    """The SLO's burn rate over one window: the recorded error ratio divided by the error budget."""
    return per_env(f'{slo_record(window)}{{slo="{slo.slo_label}"}} / {slo_budget(slo)}')


# An SLO's records are per env (its error ratio keeps env): one series, and one legend entry, per env.
# Grafana writes a label a series lacks as the label's name, so a system without env labels (one
# environment) gets NO_ENV in the legend instead of the word "env".
ENV_LEGEND = "{{env}}"
NO_ENV = "(no env)"


def per_env(expr: str) -> str:
    """The expression with NO_ENV as env on its series that have none."""
    return f'label_replace({expr}, "env", "{NO_ENV}", "env", "")'


def budget_left_query(slo: Slo, legend: str) -> prometheus.Dataquery:
    """The SLO's budget left per env, read from the History datasource (conventions.budget_left)."""
    return common.query(per_env(budget_left(slo)), legend=legend, instant=True, datasource=common.HISTORY)


def budget_source(slo: Slo) -> str:
    """Which record a budget panel shows, for its description."""
    own = f"`{SLO_BUDGET}`, Prometheus' own"
    if not long_range(slo):
        return f"Read from the History datasource: {own}."
    return (
        f"Read from the History datasource: per env `{LONG_TERM_BUDGET}`, the whole {slo.period} as vmalert "
        f"records it in the long-term store (`redline up --scale`); where that is absent (no store, or "
        f"before vmalert's first round) {own}, over at most the {storage.PROMETHEUS_RETENTION_TIME} it keeps."
    )


def burn_rate_steps(catalogue: Catalogue) -> list[model.Threshold]:
    """Target burn rate 1 (the budget lasts exactly the period, green) and each tier's factor."""
    alerts = [
        (tier.factor, common.ALERT_COLOR if tier.severity == "critical" else common.LOWER_ALERT_COLOR)
        for tier in catalogue.settings.burn_rates
    ]
    return common.bound_steps(">", 1.0, alerts)


def slo_panel(catalogue: Catalogue, slo: Slo) -> Builder[model.Panel]:
    """Burn rate over each tier's long and short window; lines at 1x (target) and each tier's factor."""
    tiers = catalogue.settings.burn_rates
    windows: list[str] = []
    for tier in tiers:
        for window in (tier.long_window, tier.short_window):
            if window not in windows:
                windows.append(window)
    rules = "; ".join(
        f"{tier.severity} when {format_number(tier.factor)}x over {tier.long_window} and {tier.short_window}"
        for tier in tiers
    )
    description = (
        f"{slo.name}: objective {format_number(slo.objective * 100)}% over {slo.period}, error budget "
        f"{format_number(slo.error_budget * 100)}%. Burn rate = error ratio / error budget (1x spends the "
        f"budget in exactly {slo.period}). {rules}. Source {slo.source}: \u201c{slo.quote}\u201d"
    )
    queries = [
        common.query(
            burn_rate_query(slo, window),
            legend=f"burn rate {window} {ENV_LEGEND}",
            ref_id=chr(ord("A") + index),
        )
        for index, window in enumerate(windows)
    ]
    return common.panel(
        "timeseries",
        panel_id(slo.system, slo.id),
        f"{slo.name}: burn rate",
        description,
        "suffix:x",
        queries,
        width=16,
        steps=burn_rate_steps(catalogue),
        min_value=0,
    ).links(
        [
            dashboard.DashboardLink(f"Runbook: {slo.alert_name}")
            .type(model.DashboardLinkType.LINK)
            .url(runbook_url(catalogue.settings, slo.system, slo.alert_name))
            .target_blank(True)
        ]
    )


def budget_panel(slo: Slo, panel_number: int, width: int = 8, height: int = 8) -> Builder[model.Panel]:
    """Error budget left over the SLO period (1 = untouched, 0 = spent, negative = overspent)."""
    return common.panel(
        "stat",
        panel_number,
        f"{slo.name}: error budget left",
        f"Share of the {slo.period} error budget ({format_number(slo.error_budget * 100)}% errors) not yet "
        f"spent; red once it is used up. {budget_source(slo)}",
        "percentunit",
        [budget_left_query(slo, legend=f"{slo.name} {ENV_LEGEND}")],
        width=width,
        height=height,
        datasource=common.HISTORY,
        steps=[
            model.Threshold(value=None, color=common.ALERT_COLOR),
            model.Threshold(value=0, color="green"),
        ],
    )


def targets_panels(system: System) -> list[Builder[model.Panel]]:
    """Scrape health of the system's targets and, when it has them, its blackbox probes."""
    up_steps = [
        model.Threshold(value=None, color=common.ALERT_COLOR),
        model.Threshold(value=1, color="green"),
    ]
    panels: list[Builder[model.Panel]] = [
        common.panel(
            "stat",
            PANEL_TARGETS_UP,
            "Targets up",
            f"Prometheus scrape health (`up`) of every {system.name} target (1 up, 0 down).",
            "none",
            [
                common.query(
                    f'up{{system="{system.id}", job=~"$job"}}', legend="{{job}} {{instance}}", instant=True
                )
            ],
            width=12,
            steps=up_steps,
        )
    ]
    if any(metric.name == "probe_success" for metric in system.metrics):
        panels.append(
            common.panel(
                "stat",
                PANEL_PROBES,
                "Health probes",
                f"blackbox_exporter probes of {system.name}'s health endpoints (1 healthy, 0 failing).",
                "none",
                [common.query(f'probe_success{{system="{system.id}"}}', legend="{{instance}}", instant=True)],
                width=12,
                steps=up_steps,
            )
        )
    return panels


def system_dashboard(
    catalogue: Catalogue,
    system: System,
    extra_variables: Sequence[dashboard.QueryVariable] = (),
    extra_rows: Sequence[tuple[dashboard.Row, Sequence[Builder[model.Panel]]]] = (),
) -> dashboard.Dashboard:
    """The dashboard of one system: targets, one panel per threshold entry, SLOs, then extra rows."""
    builder = common.base_dashboard(
        system.name,
        dashboard_uid(system.id),
        [system.id, "generated"],
        f"{system.name}: every documented threshold and SLO from thresholds/{system.file} "
        f"(source: {system.source}), with its target (green) and alert values (red).",
    ).with_variable(common.query_variable("job", "Job", f'label_values(up{{system="{system.id}"}}, job)'))
    for variable in extra_variables:
        builder = builder.with_variable(variable)
    builder = builder.with_row(common.row(ROW_TARGETS, "Targets"))
    for panel in targets_panels(system):
        builder = builder.with_panel(panel)
    entries = thresholds_by_entry(system)
    if entries:
        builder = builder.with_row(common.row(ROW_THRESHOLDS, "Documented thresholds"))
        for levels in entries.values():
            builder = builder.with_panel(threshold_panel(catalogue, levels))
    if system.slos:
        builder = builder.with_row(common.row(ROW_SLOS, "Service level objectives"))
        for index, slo in enumerate(system.slos):
            builder = builder.with_panel(slo_panel(catalogue, slo))
            builder = builder.with_panel(budget_panel(slo, FIRST_BUDGET_PANEL + index))
    for heading, panels in extra_rows:
        builder = builder.with_row(heading)
        for panel in panels:
            builder = builder.with_panel(panel)
    return builder
