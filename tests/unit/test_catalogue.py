"""The real catalogue: loads, covers every documented figure, quotes its sources, links resolve."""

from __future__ import annotations

import hashlib
import re
import zlib

import pytest

from redline import topology
from redline.generate.alerts import catalogue_alerts
from redline.generate.conventions import dashboard_uid, dashboard_url, panel_id, runbook_url
from redline.generate.load import load_catalogue
from redline.generate.model import (
    Threshold,
    divide_windows,
    parse_duration,
    window_divisor,
    with_for_override,
    with_window_divisor,
)
from redline.paths import ROOT

SOURCES = ROOT / "thresholds" / "sources"  # copies of ../shared/seeds/*.txt and ../shared/DESIGN.md
SHARED = ROOT.parent / "shared"
ALERT_NAME_IN_TICKS = re.compile(r"`([A-Z][A-Za-z0-9]+)`")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_systems_and_flat_alerts(catalogue):
    assert [s.id for s in catalogue.systems] == ["gamebook", "qerrors", "pipeline", "tmux", "host", "redline"]
    alerts = catalogue_alerts(catalogue)
    assert len(alerts) >= 40
    for alert in alerts:
        assert alert.severity in ("critical", "warning", "info")
        assert alert.labels["system"] == alert.system
        assert set(alert.annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    # (alert name, severity) is unique; two levels share one alert name
    keys = [(a.alert_name, a.severity) for a in alerts]
    assert len(keys) == len(set(keys))
    memory = [a for a in alerts if a.alert_name == "TmuxMonitorMemoryHigh"]
    assert [(a.severity, a.value) for a in memory] == [("warning", 500e6), ("critical", 750e6)]
    jobs = [a for a in alerts if a.alert_name == "PipelineJobsSlow"]
    assert [(a.severity, a.value) for a in jobs] == [("warning", 25.0), ("critical", 45.0)]


def test_threshold_fields_and_expr(catalogue):
    cycle = next(t for t in catalogue.thresholds() if t.alert_name == "TmuxMonitorCycleSlow")
    assert (cycle.system, cycle.operator, cycle.value, cycle.target, cycle.unit) == (
        "tmux",
        ">",
        1.0,
        0.5,
        "seconds",
    )
    assert cycle.for_ == "5m" and cycle.severity == "warning"
    assert cycle.quote == "| Cycle Time | <0.5s (50 agents) | >1.0s | Investigate performance |"
    assert cycle.expr.endswith(") > 1") and "redline_cycle_duration_seconds_sum" in cycle.expr
    assert cycle.rule_expr == "loop:redline_cycle_duration_seconds:mean5m > 1"
    assert cycle.runbook.actions and cycle.runbook.escalation


def test_metric_contract_buckets_hold_every_threshold(catalogue):
    assert 0.1 in catalogue.metric("http_request_duration_seconds").buckets
    assert {0.5, 1.0} <= set(catalogue.metric("redline_cycle_duration_seconds").buckets)
    assert {25.0, 45.0} <= set(catalogue.metric("redline_jobs_duration_seconds").buckets)
    assert 0.05 in catalogue.metric("qerrors_request_duration_seconds").buckets
    for threshold in catalogue.thresholds():
        metric = catalogue.metric(threshold.metric)
        if metric.type == "histogram" and threshold.unit == "seconds":
            assert threshold.value in metric.buckets and threshold.target in metric.buckets, threshold.id
    with pytest.raises(KeyError):
        catalogue.metric("no_such_metric")


def test_down_alerts_and_watchdog(catalogue):
    names = {a.alert_name: a for a in catalogue_alerts(catalogue)}
    for down in (
        "GamebookDown",
        "QerrorsDown",
        "PipelinePostgresDown",
        "PipelineApiDown",
        "TmuxMonitorDown",
        "HostDown",
    ):
        assert names[down].severity == "critical", down
    downs_by_system = {a.system for a in catalogue_alerts(catalogue) if a.alert_name.endswith("Down")}
    assert downs_by_system == {"gamebook", "qerrors", "pipeline", "tmux", "host", "redline"}
    watchdog = names["Watchdog"]
    assert watchdog.labels == {"severity": "info", "system": "redline", "watchdog": "true"}
    assert watchdog.expr == "(vector(1)) > 0" and watchdog.for_ == "0s"


def test_slos_are_the_documented_objectives(catalogue):
    objectives = {s.slo_label: s.objective for s in catalogue.slos()}
    assert objectives == {
        "gamebook-availability": 0.999,
        "gamebook-errors": 0.999,
        "gamebook-latency": 0.95,
        "pipeline-job-success": 0.958,
        "tmux-availability": 0.9995,
    }
    latency = next(s for s in catalogue.slos() if s.id == "latency")
    assert 'le="0.1"' in latency.error_ratio_for("5m") and "[5m]" in latency.error_ratio_for("5m")
    burn = [a for a in catalogue_alerts(catalogue) if a.alert_name == "TmuxMonitorAvailabilityBudgetBurn"]
    assert [a.severity for a in burn] == ["critical", "warning"]
    assert "slo:sli_error:ratio_rate1h" in burn[0].expr and "(14.4 * 0.0005)" in burn[0].expr
    assert "slo:sli_error:ratio_rate3d" in burn[1].expr and "(1 * 0.0005)" in burn[1].expr


def test_links_are_stable_and_resolve(catalogue):
    settings = catalogue.settings
    assert dashboard_uid("tmux") == "redline-tmux"
    assert panel_id("tmux", "cycle-time") == 100 + zlib.crc32(b"tmux/cycle-time") % 9900
    # without a Grafana in inventory.yml, dashboard links open the console's page of the entry
    console = f"http://127.0.0.1:{topology.endpoint('console').port}"
    assert dashboard_url(settings, "tmux", "cycle-time") == (
        f"{console}/d/redline-tmux?viewPanel={panel_id('tmux', 'cycle-time')}"
    )
    assert runbook_url(settings, "tmux", "TmuxMonitorDown") == f"{console}/runbooks/tmux.md#tmuxmonitordown"
    for system in catalogue.systems:
        ids = [panel_id(system.id, e) for e in system.entry_ids()]
        assert len(ids) == len(set(ids)) and all(100 <= i <= 9999 for i in ids)
        page = (ROOT / "docs" / "runbooks" / f"{system.id}.md").read_text()
        for alert in catalogue_alerts(catalogue):
            if alert.system == system.id:
                assert f"\n## {alert.alert_name}\n" in page
                assert alert.annotations["runbook_url"] == runbook_url(settings, system.id, alert.alert_name)
                assert alert.annotations["dashboard_url"] == dashboard_url(
                    settings, system.id, alert.entry_id
                )


def test_readme_maps_every_design_row_to_existing_alerts(catalogue):
    readme = (ROOT / "thresholds" / "README.md").read_text()
    section = readme.split("## Mapping", 1)[1].split("\n## ", 1)[0]
    mapping = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    names = {a.alert_name for a in catalogue_alerts(catalogue)}
    mentioned = set(ALERT_NAME_IN_TICKS.findall(mapping))
    assert mentioned - names == set(), "README names alerts the catalogue does not have"
    assert names - mentioned == set(), "alerts missing from the README mapping"
    design = SOURCES / "DESIGN.md"
    rows = [
        line.split("|")[2].strip()
        for line in design.read_text().splitlines()
        if line.startswith("| ") and line.count("|") >= 4 and "documented figure" not in line
    ]
    assert len(rows) == 25
    for figure in rows:
        row = next((line for line in mapping.splitlines() if f"| {figure} |" in line), None)
        assert row is not None, f"DESIGN row {figure!r} has no mapping"
        assert ALERT_NAME_IN_TICKS.search(row.split(f"| {figure} |", 1)[1]), figure


def test_quotes_are_lines_of_their_seed(catalogue):
    checked = 0
    for item in [*catalogue.thresholds(), *catalogue.slos()]:
        if not item.source.endswith(".txt"):
            continue
        lines = [line.strip() for line in (SOURCES / item.source).read_text().splitlines()]
        assert any(item.quote in line for line in lines), f"{item.file} {item.id}: {item.quote!r}"
        checked += 1
    assert checked >= 35


def test_for_override_replaces_every_for(catalogue):
    fast = with_for_override(catalogue, "5s")
    assert {a.for_ for a in catalogue_alerts(fast)} == {"5s"}
    assert {a.for_ for a in catalogue_alerts(catalogue)} != {"5s"}
    assert all(isinstance(t, Threshold) for t in fast.thresholds())


def test_for_override_divides_every_for_in_a_time_scaled_run(catalogue):
    scaled = with_for_override(catalogue, "/10")
    pairs = list(zip(catalogue_alerts(catalogue), catalogue_alerts(scaled), strict=True))
    assert {(a.for_, b.for_) for a, b in pairs} >= {("15m", "1m30s"), ("1m", "6s")}
    assert all(parse_duration(b.for_) == max(1, round(parse_duration(a.for_) / 10)) for a, b in pairs)


@pytest.mark.parametrize("override", ["/0", "/x", "/", "5x", ""])
def test_a_bad_for_override_is_refused_by_the_model_itself(catalogue, override):
    """Not only the CLI validates: a direct caller of with_for_override gets the same ValueError."""
    with pytest.raises(ValueError):
        with_for_override(catalogue, override)


def test_window_divisor_divides_the_windows_that_need_history(catalogue):
    """The burn-rate windows and SLO periods, and the qerrors baseline's windows and offsets, 360 times
    shorter (never below 5 s); other signals, thresholds and factors as they were."""
    scaled = with_window_divisor(catalogue, 360)
    tiers = [(t.long_window, t.short_window, t.factor) for t in scaled.settings.burn_rates]
    assert tiers == [("10s", "5s", 14.4), ("1m", "5s", 6), ("4m", "20s", 3), ("12m", "1m", 1)]
    assert {slo.period for slo in scaled.slos()} == {"2h"}
    pairs = zip(catalogue.thresholds(), scaled.thresholds(), strict=True)
    changed = {after.alert_name for before, after in pairs if after != before}
    assert changed == {"QerrorsErrorRateAboveBaseline"}
    baseline = next(t.signal for t in scaled.thresholds() if t.alert_name in changed)
    assert "[10s] offset 28m" in baseline and "[4m] offset 10s" in baseline and "[5s]))" in baseline
    assert "1w" not in baseline and "[1d]" not in baseline


def test_divide_windows_keeps_subquery_steps_and_names():
    half = window_divisor(2)
    query = 'max_over_time(rate(x_5m_total{a="[1h]"}[10m])[1h:30s]) / y offset 1d'
    assert (
        divide_windows(query, half)
        == 'max_over_time(rate(x_5m_total{a="[30m]"}[5m])[30m:30s]) / y offset 12h'
    )
    assert half("6s") == "5s"  # never below WINDOW_FLOOR_SECONDS


@pytest.mark.parametrize("divisor", [0, -3, 2.5, True])
def test_a_bad_window_divisor_is_refused(catalogue, divisor):
    with pytest.raises(ValueError, match="whole number above 0"):
        with_window_divisor(catalogue, divisor)


def test_source_copies_are_intact_and_match_shared():
    """The copies in thresholds/sources/ match their recorded checksums and, beside a checkout of the
    steering repository (../shared, as in CI), the originals: a changed design or seed fails here."""
    recorded = dict(line.split()[::-1] for line in (SOURCES / "SHA256SUMS").read_text().splitlines())
    copies = {p.name for p in SOURCES.iterdir() if p.name != "SHA256SUMS"}
    assert copies == set(recorded)
    for name, digest in recorded.items():
        assert hashlib.sha256((SOURCES / name).read_bytes()).hexdigest() == digest, name
    originals = {
        name: SHARED / ("DESIGN.md" if name == "DESIGN.md" else f"seeds/{name}") for name in recorded
    }
    present = {name: path for name, path in originals.items() if path.exists()}
    assert present in ({}, originals), f"../shared is incomplete: {sorted(set(originals) - set(present))}"
    for name, path in present.items():
        assert path.read_bytes() == (SOURCES / name).read_bytes(), f"{name} differs from {path}"
