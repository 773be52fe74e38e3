"""The on-call overview: what fires now, how close each system is to alerting, each SLO's budget, and how
much of the last 30 days each documented target was held (the long-term store's records).

"Worst signal" of a system: every threshold entry's signal divided by its first alert value (inverted
for lower bounds), so 100% means "at the alert threshold"; the panel shows the entry with the highest
share, named, and links to the system's dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import alertgroups, dashboard, table
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import BigValueTextMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from redline.generate.conventions import (
    COMPLIANCE_GOOD,
    COMPLIANCE_POOR,
    COMPLIANCE_WINDOW,
    OVERVIEW_UID,
    compliance_record,
    dashboard_uid,
)
from redline.generate.humanize import humanize_duration
from redline.generate.model import (
    SEVERITIES,
    Catalogue,
    Slo,
    System,
    Threshold,
    format_number,
    parse_duration,
)
from redline.generate.render.dashboards import common
from redline.generate.render.dashboards.system import (
    ENV_LEGEND,
    budget_left_query,
    budget_source,
    burn_rate_query,
    burn_rate_steps,
    entry_query,
    per_env,
    thresholds_by_entry,
)

ROW_ALERTS = 1
PANEL_ALERT_GROUPS = 2
PANEL_FIRING = 3
ROW_WORST = 4
ROW_SLOS = 5
ROW_COMPLIANCE = 6
PANEL_COMPLIANCE = 7
FIRST_WORST_PANEL = 10  # one per system
FIRST_SLO_PANEL = 30  # two per SLO: budget left, burn rate


def first_level(levels: Sequence[Threshold]) -> Threshold:
    """The level that fires first (the least severe one)."""
    return max(levels, key=lambda t: SEVERITIES.index(t.severity))


def proximity_query(levels: Sequence[Threshold]) -> str:
    """The entry's worst series as a share of its first alert value (1 = at the threshold).

    Boolean signals (up, health, breaker open) have no "distance": they count 1 while the alert
    condition holds and 0 otherwise.
    """
    level = first_level(levels)
    signal = entry_query(level)
    value = format_number(level.value)
    if level.unit == "boolean" or level.value == 0:
        return f"max(({signal}) {level.operator} bool {value})"
    if level.operator in (">", ">="):
        return f"max({signal}) / {value}"
    return f"{value} / min({signal})"


def is_heartbeat(threshold: Threshold) -> bool:
    """A constant signal (the Watchdog) fires by design and is never a system's worst signal."""
    return threshold.signal.replace(" ", "").startswith("vector(")


def worst_signal_query(system: System) -> str:
    """topk(1) over every threshold entry's proximity, labelled with the entry id."""
    parts = [
        f'label_replace({proximity_query(levels)}, "signal", "{entry_id}", "", "")'
        for entry_id, levels in thresholds_by_entry(system).items()
        if not is_heartbeat(levels[0])
    ]
    return "topk(1,\n  " + "\n  or\n  ".join(parts) + "\n)"


def worst_signal_panel(system: System, panel_number: int, width: int) -> Builder[model.Panel]:
    return common.panel(
        "stat",
        panel_number,
        system.name,
        f"The {system.name} signal closest to (or furthest past) its alert threshold, as a share of the "
        "alert value: 100% = at the threshold. Click through for the system's dashboard.",
        "percentunit",
        [common.query(worst_signal_query(system), legend="{{signal}}", instant=True)],
        width=width,
        steps=[
            model.Threshold(value=None, color=common.TARGET_COLOR),
            model.Threshold(value=1, color=common.ALERT_COLOR),
        ],
        text_mode=BigValueTextMode.VALUE_AND_NAME,
    ).links(
        [
            dashboard.DashboardLink(f"{system.name} dashboard")
            .type(model.DashboardLinkType.LINK)
            .url(f"/d/{dashboard_uid(system.id)}")
            .target_blank(False)
        ]
    )


def firing_alerts_panels() -> list[Builder[model.Panel]]:
    """Alertmanager's view (grouped, with silences) and Prometheus' ALERTS series side by side."""
    groups = (
        alertgroups.Panel()
        .id(PANEL_ALERT_GROUPS)
        .title("Alertmanager: alert groups")
        .description(
            "Active alerts as Alertmanager groups and routes them (silenced and inhibited excluded)."
        )
        .datasource(common.ALERTMANAGER)
        .alertmanager(common.ALERTMANAGER_NAME)
        .labels("")
        .expand_all(False)
        .span(12)
        .height(10)
    )
    firing = (
        table.Panel()
        .id(PANEL_FIRING)
        .title("Prometheus: firing alerts")
        .description('ALERTS{alertstate="firing"}: every alert Prometheus is firing now, with its labels.')
        .datasource(common.PROMETHEUS)
        .show_header(True)
        .targets([common.query('ALERTS{alertstate="firing"}', instant=True).format(PromQueryFormat.TABLE)])
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True}
                },
            )
        )
        .span(12)
        .height(10)
    )
    return [groups, firing]


def slo_panels(catalogue: Catalogue, slo: Slo, panel_number: int) -> list[Builder[model.Panel]]:
    """Error budget left and the burn rate over the fastest paging window, for one SLO."""
    fastest = max(catalogue.settings.burn_rates, key=lambda tier: tier.factor)
    budget = common.panel(
        "stat",
        panel_number,
        f"{slo.name}: budget left",
        f"Error budget left over {slo.period} (objective {format_number(slo.objective * 100)}%). "
        + budget_source(slo),
        "percentunit",
        [budget_left_query(slo, legend=f"{slo.name} {ENV_LEGEND}")],
        steps=[
            model.Threshold(value=None, color=common.ALERT_COLOR),
            model.Threshold(value=0, color="green"),
        ],
        datasource=common.HISTORY,
    )
    burn = common.panel(
        "stat",
        panel_number + 1,
        f"{slo.name}: burn rate {fastest.long_window}",
        f"Error ratio over {fastest.long_window} divided by the error budget; the page fires above "
        f"{format_number(fastest.factor)}x (with {fastest.short_window} confirming).",
        "suffix:x",
        [
            common.query(
                burn_rate_query(slo, fastest.long_window), legend=f"{slo.name} {ENV_LEGEND}", instant=True
            )
        ],
        steps=burn_rate_steps(catalogue),
    ).links(
        [
            dashboard.DashboardLink(f"{slo.name} on the {slo.system} dashboard")
            .type(model.DashboardLinkType.LINK)
            .url(f"/d/{dashboard_uid(slo.system)}")
            .target_blank(False)
        ]
    )
    return [budget, burn]


# The compliance table's columns, in order: one row per entry and series (the worst of a group).
COMPLIANCE_COLUMNS = ("system", "entry", "env", "instance")
COMPLIANCE_VALUE = f"target held ({COMPLIANCE_WINDOW})"


def compliance_query() -> str:
    """Each entry's monthly compliance per system, env and instance (the least-held series where a
    signal has several, e.g. per pool or queue), read from the History datasource."""
    by = ", ".join(COMPLIANCE_COLUMNS)
    return per_env(f"min by ({by}) ({compliance_record()})")


def compliance_panel() -> Builder[model.Panel]:
    """A table of vmalert's monthly compliance records, least held first, coloured by COMPLIANCE_*."""
    window = parse_duration(COMPLIANCE_WINDOW)
    good, poor = format_number(COMPLIANCE_GOOD * 100), format_number(COMPLIANCE_POOR * 100)
    description = (
        f"The share of the last {COMPLIANCE_WINDOW} during which each threshold entry's signal kept its "
        f"documented target (`{compliance_record()}`, recorded by vmalert in the long-term store with "
        "`redline up --scale`; as far as vmalert has recorded, so a young store covers less). Read from the "
        "History datasource: without --scale the table is empty, the Prometheus has no such record. "
        f"Green from {good}%: at most {humanize_duration((1 - COMPLIANCE_GOOD) * window)} off target in "
        f"{COMPLIANCE_WINDOW}, a few incidents' worth. Red below {poor}%: more than "
        f"{humanize_duration((1 - COMPLIANCE_POOR) * window)} off target, so missing it is what the "
        "system does, and the system or the documented number needs attention (`redline backtest` "
        "suggests numbers). Orange between. A target is what a system should keep, not an alert value: "
        "its alert may never have fired."
    )
    return (
        table.Panel()
        .id(PANEL_COMPLIANCE)
        .title(f"Documented targets held over {format_number(window / 86400)} days")
        .description(description)
        .datasource(common.HISTORY)
        .show_header(True)
        .targets(
            [
                common.query(compliance_query(), instant=True, datasource=common.HISTORY).format(
                    PromQueryFormat.TABLE
                )
            ]
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {name: i for i, name in enumerate((*COMPLIANCE_COLUMNS, "Value"))},
                    "renameByName": {"Value": COMPLIANCE_VALUE},
                },
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name(COMPLIANCE_VALUE).desc(False)])
        .unit("percentunit")
        .decimals(1)
        .min(0)
        .max(1)
        .thresholds(
            common.thresholds_config(
                [
                    model.Threshold(value=None, color=common.ALERT_COLOR),
                    model.Threshold(value=COMPLIANCE_POOR, color=common.LOWER_ALERT_COLOR),
                    model.Threshold(value=COMPLIANCE_GOOD, color=common.TARGET_COLOR),
                ]
            )
        )
        .override_by_name(
            COMPLIANCE_VALUE,
            [model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"})],
        )
        .span(common.GRID_WIDTH)
        .height(12)
    )


def overview_dashboard(catalogue: Catalogue) -> dashboard.Dashboard:
    builder = common.base_dashboard(
        "On-call overview",
        OVERVIEW_UID,
        ["overview", "generated"],
        "What fires now, the worst signal of every system and each SLO's error budget.",
        link_overview=False,
    )
    for system in catalogue.systems:
        if system.thresholds or system.slos:
            builder = builder.link(common.dashboard_link(system.name, dashboard_uid(system.id)))
    builder = builder.with_row(common.row(ROW_ALERTS, "Firing alerts"))
    for panel in firing_alerts_panels():
        builder = builder.with_panel(panel)
    with_thresholds = [s for s in catalogue.systems if s.thresholds]
    if with_thresholds:
        builder = builder.with_row(
            common.row(ROW_WORST, "Worst signal per system (100% = at its alert value)")
        )
        width = max(4, common.GRID_WIDTH // len(with_thresholds))
        for index, system in enumerate(with_thresholds):
            builder = builder.with_panel(worst_signal_panel(system, FIRST_WORST_PANEL + index, width))
    slos = list(catalogue.slos())
    if slos:
        builder = builder.with_row(common.row(ROW_SLOS, "Service level objectives"))
        for index, slo in enumerate(slos):
            for panel in slo_panels(catalogue, slo, FIRST_SLO_PANEL + 2 * index):
                builder = builder.with_panel(panel)
    if any(not t.standard_name for t in catalogue.thresholds()):  # the entries with a target to hold
        builder = builder.with_row(common.row(ROW_COMPLIANCE, "Documented targets (long-term store)"))
        builder = builder.with_panel(compliance_panel())
    return builder
