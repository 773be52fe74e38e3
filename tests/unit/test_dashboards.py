"""Generated Grafana dashboards: SDK schema, ids, layout, datasources, catalogue thresholds, alert links.

The live half (every query parses and returns data from the real stack) is
tests/integration/test_dashboards_live.py.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from redline.generate.alerts import catalogue_alerts
from redline.generate.conventions import OVERVIEW_UID, dashboard_uid, panel_id
from redline.generate.load import load_catalogue
from redline.generate.model import Catalogue
from redline.generate.render.dashboards import DASHBOARDS_DIR, render_dashboards
from redline.generate.render.dashboards.common import (
    ALERTMANAGER_NAME,
    ALERTMANAGER_UID,
    GRAFANA_UNITS,
    HISTORY_UID,
    PROMETHEUS_UID,
)
from redline.generate.render.dashboards.system import FIRST_BUDGET_PANEL, entry_query, thresholds_by_entry
from redline.generate.render.rules import render_rules
from redline.testing.processes import ROOT

DASHBOARDS = ROOT / DASHBOARDS_DIR
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCE_VARIABLE_REF = {"type": "prometheus", "uid": "${datasource}"}
HISTORY_REF = {"type": "prometheus", "uid": "redline-history"}  # the provisioned History datasource
COMPLIANCE_TITLE = "Documented targets held over 30 days"
FIXED_RANGE = re.compile(r"\[\s*\d+[smhdwy]\s*(?::[^\]]*)?\]")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def dashboard_files() -> list[Path]:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, f"no dashboards in {DASHBOARDS}; run `make generate`"
    return files


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and panels nested in collapsed rows included."""
    panels = []
    for panel in data.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def panel_by_id(data: dict[str, Any], wanted: int) -> dict[str, Any]:
    matches = [p for p in all_panels(data) if p.get("id") == wanted]
    assert len(matches) == 1, f"{data['uid']}: expected one panel with id {wanted}, found {len(matches)}"
    return matches[0]


def by_uid() -> dict[str, dict[str, Any]]:
    return {load(path)["uid"]: load(path) for path in dashboard_files()}


def provisioned_uids() -> set[str]:
    uids = set()
    for path in (PROVISIONING / "datasources").glob("*.yml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            uids.add(source["uid"])
    return uids


def datasource_refs(node: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every value of a `datasource` key anywhere in the JSON, with where it was found."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((where, value))
            found.extend(datasource_refs(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(datasource_refs(value, f"{where}[{index}]"))
    return found


def steps_of(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return panel["fieldConfig"]["defaults"]["thresholds"]["steps"]


# ----------------------------------------------------------------------------------------------------
# Provisioning


def test_provisioned_datasources_have_fixed_uids_and_urls_from_the_environment() -> None:
    listed = yaml.safe_load((PROVISIONING / "datasources" / "redline.yml").read_text())["datasources"]
    sources = {s["type"]: s for s in listed if s["uid"] != HISTORY_UID}
    assert sources["prometheus"]["uid"] == PROMETHEUS_UID
    assert sources["prometheus"]["url"] == "${PROMETHEUS_URL}"
    assert sources["prometheus"]["isDefault"] is True
    # long-term data: VictoriaMetrics with --scale / profile scale (redline/storage.py history)
    history = next(s for s in listed if s["uid"] == HISTORY_UID == HISTORY_REF["uid"])
    assert history["type"] == "prometheus" and history["url"] == "${REDLINE_HISTORY_URL}"
    assert history["basicAuth"] is True and not history.get("isDefault")
    assert sources["alertmanager"]["uid"] == ALERTMANAGER_UID
    assert sources["alertmanager"]["name"] == ALERTMANAGER_NAME
    assert sources["alertmanager"]["url"] == "${ALERTMANAGER_URL}"
    assert sources["alertmanager"]["jsonData"]["implementation"] == "prometheus"


def test_dashboard_provider_reads_the_generated_folder_from_the_environment() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "redline.yml").read_text())["providers"]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${REDLINE_DASHBOARDS_DIR}"
    assert provider["allowUiUpdates"] is False
    assert provider["folder"] == "redline"


# ----------------------------------------------------------------------------------------------------
# Structure


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_round_trips_through_the_sdk_model(path: Path) -> None:
    """Valid for Grafana's schema as the SDK models it: decoding and re-encoding loses nothing."""
    register_default_plugins()
    data = load(path)
    model = Dashboard.from_json(data)
    again = json.loads(JSONEncoder(sort_keys=True).encode(model))
    assert again == data
    assert path.stem == data["uid"]
    assert "redline" in data["tags"] and "generated" in data["tags"]
    assert 8 <= len(data["uid"]) <= 40


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_panel_ids_are_unique_and_the_grid_has_no_overlap(path: Path) -> None:
    data = load(path)
    ids = [p["id"] for p in all_panels(data)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    boxes = [(p["id"], p["gridPos"]) for p in data["panels"]]
    for pid, pos in boxes:
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0, (pid, pos)
        assert pos["x"] + pos["w"] <= 24, f"panel {pid} is wider than the grid: {pos}"
    for index, (id_a, a) in enumerate(boxes):
        for id_b, b in boxes[index + 1 :]:
            overlap = (
                a["x"] < b["x"] + b["w"]
                and b["x"] < a["x"] + a["w"]
                and a["y"] < b["y"] + b["h"]
                and b["y"] < a["y"] + a["h"]
            )
            assert not overlap, f"panels {id_a} {a} and {id_b} {b} overlap"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_datasource_is_the_variable_or_a_provisioned_uid(path: Path) -> None:
    data = load(path)
    provisioned = provisioned_uids()
    refs = datasource_refs(data)
    assert refs
    for where, ref in refs:
        assert ref == DATASOURCE_VARIABLE_REF or (isinstance(ref, dict) and ref.get("uid") in provisioned), (
            f"{path.name} {where}: datasource {ref!r}"
        )
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in all_panels(data):
        if panel["type"] == "row":
            continue
        if panel["type"] == "alertGroups":
            assert panel["datasource"]["uid"] in provisioned
            continue
        # the SLO budgets and the targets' monthly compliance read the History datasource (the store
        # with --scale); the rest the variable
        history = panel["title"].endswith("budget left") or panel["title"] == COMPLIANCE_TITLE
        expected = HISTORY_REF if history else DATASOURCE_VARIABLE_REF
        assert panel["datasource"] == expected, f"panel {panel['id']} {panel['title']}"
        assert panel["targets"], f"panel {panel['id']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == expected


def test_own_queries_use_rate_interval_and_catalogue_queries_are_verbatim(catalogue: Catalogue) -> None:
    """A fixed range may only come from a catalogue signal (the alert's own window); the rest uses
    $__rate_interval."""
    catalogue_texts = sorted(
        {t.signal for t in catalogue.thresholds()} | {s.error_ratio for s in catalogue.slos()},
        key=len,
        reverse=True,
    )
    checked = 0
    for path in dashboard_files():
        for panel in all_panels(load(path)):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for text in catalogue_texts:
                    expr = expr.replace(text, "")
                assert not FIXED_RANGE.search(expr), f"{path.name} panel {panel['id']}: {target['expr']}"
                if "rate(" in expr:
                    assert "[$__rate_interval]" in expr, f"{path.name} panel {panel['id']}: {target['expr']}"
                    checked += 1
    assert checked >= 5


def test_units_and_variables(catalogue: Catalogue) -> None:
    dashboards = by_uid()
    host = dashboards[dashboard_uid("host")]
    variables = {v["name"]: v for v in host["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= set(variables)
    assert variables["instance"]["datasource"] == DATASOURCE_VARIABLE_REF
    titles = {p.get("title"): p for p in all_panels(host)}
    assert titles["Memory used"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert titles["Network traffic"]["fieldConfig"]["defaults"]["unit"] == "Bps"
    assert titles["Process groups: resident memory"]["fieldConfig"]["defaults"]["unit"] == "bytes"
    for name in ("CPU busy", "Memory used", "Filesystem used", "Load average", "Disk throughput"):
        for target in titles[name]["targets"]:
            assert 'job=~"$job", instance=~"$instance"' in target["expr"], (name, target["expr"])
    assert GRAFANA_UNITS["seconds"] == "s" and GRAFANA_UNITS["ratio"] == "percentunit"


def test_overview_links_to_every_system_dashboard_and_back(catalogue: Catalogue) -> None:
    dashboards = by_uid()
    overview = dashboards[OVERVIEW_UID]
    link_urls = {link["url"] for link in overview["links"]}
    for system in catalogue.systems:
        if system.thresholds or system.slos:
            uid = dashboard_uid(system.id)
            assert uid in dashboards, f"no dashboard for {system.id}"
            assert f"/d/{uid}" in link_urls
            assert f"/d/{OVERVIEW_UID}" in {link["url"] for link in dashboards[uid]["links"]}
    panels = all_panels(overview)
    types = {p["type"] for p in panels}
    assert {"alertGroups", "table", "stat"} <= types
    groups = next(p for p in panels if p["type"] == "alertGroups")
    assert groups["options"]["alertmanager"] == ALERTMANAGER_NAME
    assert groups["datasource"]["uid"] == ALERTMANAGER_UID
    firing = next(p for p in panels if p["type"] == "table")
    assert firing["targets"][0]["expr"] == 'ALERTS{alertstate="firing"}'
    worst = [p for p in panels if p["title"] in {s.name for s in catalogue.systems if s.thresholds}]
    assert len(worst) == len([s for s in catalogue.systems if s.thresholds])
    for panel in worst:
        assert panel["links"][0]["url"].startswith("/d/redline-")
        assert panel["targets"][0]["expr"].startswith("topk(1,")
    slo_titles = {p["title"] for p in panels}
    for slo in catalogue.slos():
        assert f"{slo.name}: budget left" in slo_titles
        assert any(t.startswith(f"{slo.name}: burn rate") for t in slo_titles)


# ----------------------------------------------------------------------------------------------------
# Catalogue thresholds on the panels


def expected_threshold_panels(catalogue: Catalogue) -> int:
    return sum(len(thresholds_by_entry(s)) for s in catalogue.systems)


def check_threshold_panels(catalogue: Catalogue, dashboards: dict[str, dict[str, Any]]) -> int:
    """Every threshold entry's panel shows its query, unit, target (green) and alert values (red/orange)."""
    checked = 0
    for system in catalogue.systems:
        data = dashboards[dashboard_uid(system.id)]
        for entry_id, levels in thresholds_by_entry(system).items():
            panel = panel_by_id(data, panel_id(system.id, entry_id))
            first = levels[0]
            assert panel["targets"][0]["expr"] == entry_query(first).strip()
            assert panel["fieldConfig"]["defaults"]["unit"] == GRAFANA_UNITS[first.unit]
            assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
            steps = steps_of(panel)
            greens = [s["value"] for s in steps if s["color"] == "green" and s["value"] is not None]
            alerts = sorted(
                s["value"] for s in steps if s["color"] in ("red", "orange") and s["value"] is not None
            )
            assert greens == [first.target], f"{system.id}/{entry_id}: {steps}"
            assert alerts == sorted(level.value for level in levels), f"{system.id}/{entry_id}: {steps}"
            most_severe = min(levels, key=lambda t: ("critical", "warning", "info").index(t.severity))
            assert {"value": most_severe.value, "color": "red"} in steps
            checked += 1
    return checked


def test_each_threshold_panel_shows_the_catalogue_values(catalogue: Catalogue) -> None:
    assert check_threshold_panels(catalogue, by_uid()) == expected_threshold_panels(catalogue) > 10


def test_slo_panels_show_the_burn_rate_tiers(catalogue: Catalogue) -> None:
    dashboards = by_uid()
    factors = sorted(tier.factor for tier in catalogue.settings.burn_rates)
    for slo in catalogue.slos():
        panel = panel_by_id(dashboards[dashboard_uid(slo.system)], panel_id(slo.system, slo.id))
        steps = steps_of(panel)
        assert sorted(s["value"] for s in steps if s["color"] in ("red", "orange")) == factors
        assert [s["value"] for s in steps if s["color"] == "green" and s["value"] is not None] == [1.0]
        exprs = [t["expr"] for t in panel["targets"]]
        for tier in catalogue.settings.burn_rates:
            for window in (tier.long_window, tier.short_window):
                assert any(f'slo:sli_error:ratio_rate{window}{{slo="{slo.slo_label}"}}' in e for e in exprs)
        # one line per env: the records keep env, the legend names it (or says there is none)
        assert all(t["legendFormat"].endswith(" {{env}}") for t in panel["targets"])
        assert all(e.startswith("label_replace(") and '"env", "(no env)", "env", ""' in e for e in exprs)


def budget_panels(catalogue: Catalogue) -> list[tuple[Any, dict[str, Any]]]:
    """(SLO, panel) of every budget panel: one on its system's dashboard and one on the overview."""
    dashboards = by_uid()
    found = []
    for slo in catalogue.slos():
        system = dashboards[dashboard_uid(slo.system)]
        index = [s.id for s in catalogue.system(slo.system).slos].index(slo.id)
        found.append((slo, panel_by_id(system, FIRST_BUDGET_PANEL + index)))
        [overview] = [
            p for p in all_panels(dashboards[OVERVIEW_UID]) if p["title"] == f"{slo.name}: budget left"
        ]
        found.append((slo, overview))
    return found


def test_budget_panels_prefer_the_long_term_record_from_the_history(catalogue: Catalogue) -> None:
    """Each SLO's budget stats read History: vmalert's 30-day record in the store per env, else the
    Prometheus' own (matched on slo and env only: the store's copies carry external labels too); the
    description names both records and what each covers."""
    panels = budget_panels(catalogue)
    assert len(panels) == 2 * len(list(catalogue.slos())) >= 8
    for slo, panel in panels:
        assert panel["datasource"] == HISTORY_REF
        [target] = panel["targets"]
        assert target["datasource"] == HISTORY_REF and target["instant"] is True
        assert target["legendFormat"] == f"{slo.name} {{{{env}}}}"
        assert target["expr"] == (
            f'label_replace(slo:error_budget_remaining_long_term:ratio{{slo="{slo.slo_label}"}} '
            f'or on (slo, env) slo:error_budget_remaining:ratio{{slo="{slo.slo_label}"}}, '
            '"env", "(no env)", "env", "")'
        )
        description = panel["description"]
        assert "History datasource" in description, description
        assert "`slo:error_budget_remaining_long_term:ratio`, the whole 30d" in description, description
        assert "`slo:error_budget_remaining:ratio`, Prometheus' own, over at most the 15d" in description
    gamebook = [p["targets"][0]["expr"] for slo, p in panels if slo.slo_label == "gamebook-errors"]
    assert gamebook == 2 * [
        'label_replace(slo:error_budget_remaining_long_term:ratio{slo="gamebook-errors"} or on (slo, env) '
        'slo:error_budget_remaining:ratio{slo="gamebook-errors"}, "env", "(no env)", "env", "")'
    ]


def test_the_overview_shows_each_targets_monthly_compliance_from_the_history() -> None:
    """One table of vmalert's entry:target_held:ratio_avg30d from History, a row per system, entry, env
    and instance, least held first, red below 95%, orange to 99%, green from 99%; the description says
    where the record comes from and why those colours."""
    [panel] = [p for p in all_panels(by_uid()[OVERVIEW_UID]) if p["title"] == COMPLIANCE_TITLE]
    assert panel["type"] == "table" and panel["datasource"] == HISTORY_REF
    [target] = panel["targets"]
    assert target["datasource"] == HISTORY_REF and target["instant"] is True and target["format"] == "table"
    assert target["expr"] == (
        "label_replace(min by (system, entry, env, instance) (entry:target_held:ratio_avg30d), "
        '"env", "(no env)", "env", "")'
    )
    [organize] = panel["transformations"]
    assert organize["id"] == "organize"
    columns = sorted(organize["options"]["indexByName"], key=organize["options"]["indexByName"].get)
    assert columns == ["system", "entry", "env", "instance", "Value"]
    assert organize["options"]["excludeByName"] == {"Time": True}
    assert organize["options"]["renameByName"] == {"Value": "target held (30d)"}
    assert panel["options"]["sortBy"] == [{"displayName": "target held (30d)", "desc": False}]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "percentunit" and (defaults["min"], defaults["max"]) == (0, 1)
    steps = [(step["value"], step["color"]) for step in defaults["thresholds"]["steps"]]
    assert steps == [(None, "red"), (0.95, "orange"), (0.99, "green")]
    [override] = panel["fieldConfig"]["overrides"]
    assert override["matcher"] == {"id": "byName", "options": "target held (30d)"}
    assert override["properties"] == [{"id": "custom.cellOptions", "value": {"type": "color-background"}}]
    description = panel["description"]
    assert "`entry:target_held:ratio_avg30d`, recorded by vmalert in the long-term store" in description
    assert "History datasource: without --scale the table is empty" in description
    assert "Green from 99%: at most 7h 12m 0s off target in 30d" in description
    assert "Red below 95%: more than 1d 12h 0m 0s off target" in description


def test_committed_dashboards_match_the_catalogue(catalogue: Catalogue) -> None:
    """The drift check for this renderer: `make generate` output equals the committed JSON."""
    rendered = render_dashboards(catalogue)
    committed = {str(p.relative_to(ROOT)): p.read_text() for p in dashboard_files()}
    assert set(rendered) == set(committed)
    for path, text in rendered.items():
        assert committed[path] == text, f"{path} is out of date; run `make generate`"
    assert render_dashboards(catalogue) == rendered  # deterministic


# ----------------------------------------------------------------------------------------------------
# Alert links


def test_every_alert_dashboard_url_opens_the_panel_of_its_signal(catalogue: Catalogue) -> None:
    dashboards = by_uid()
    rules = {}
    for path, text in render_rules(catalogue).items():
        committed = ROOT / path
        rules[path] = yaml.safe_load(committed.read_text() if committed.exists() else text)
    checked = 0
    for path, data in rules.items():
        for group in data["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                url = urllib.parse.urlparse(rule["annotations"]["dashboard_url"])
                assert url.path.startswith("/d/"), (path, rule["alert"], url)
                uid = url.path.removeprefix("/d/")
                assert uid in dashboards, f"{path} {rule['alert']}: no dashboard {uid}"
                view = urllib.parse.parse_qs(url.query)["viewPanel"]
                panel = panel_by_id(dashboards[uid], int(view[0]))
                exprs = " ".join(t["expr"] for t in panel["targets"])
                # the panel plots what the alert reads: its recording rule or signal, or its SLO's windows
                slo = rule["labels"].get("slo")
                if slo:
                    assert f'slo="{slo}"' in exprs, (rule["alert"], exprs)
                else:
                    left = re.split(r"\s(?:>|>=|<|<=)\s[-0-9.e]+\s*$", rule["expr"].strip())[0].strip()
                    if left.startswith("(") and left.endswith(")"):
                        left = left[1:-1].strip()
                    assert left in exprs, (rule["alert"], rule["expr"], exprs)
                checked += 1
    assert checked == len(catalogue_alerts(catalogue))
