"""`redline backtest` without any binary: self-contained rules, the evaluation grid and its state
machine, candidate values for suggestions, the command line's grid and the report's table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from redline import credentials
from redline.backtest import analysis, cli, report
from redline.backtest.rules import RULE_LABEL, RuleError, RuleSet, inline, lookback, records, selectors
from redline.backtest.timeline import (
    Grid,
    Series,
    episodes_from_firing,
    episodes_from_signal,
    firing_seconds,
    runs,
)
from redline.generate.alerts import catalogue_alerts
from redline.generate.load import load_catalogue
from redline.generate.model import Threshold, with_for_override
from redline.stack import rundir
from redline.stack.services import Context

CATALOGUE = load_catalogue()
GRID = Grid(start=0, end=600, step=60)


def threshold(alert: str, severity: str = "warning") -> Threshold:
    return next(t for t in CATALOGUE.thresholds() if t.alert_name == alert and t.severity == severity)


# ----- rules ------------------------------------------------------------------------------------------


def test_every_alert_reads_raw_metrics_only() -> None:
    rules = RuleSet(60)
    evaluated = rules.add_catalogue(CATALOGUE)
    assert [a.alert_name for a in evaluated.skipped] == ["Watchdog"]
    assert len(evaluated.alerts) == len(catalogue_alerts(CATALOGUE)) - 1 == len(rules.rules)
    names = set(records(CATALOGUE)) | {"slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate1h"}
    for rule in rules.rules.values():
        assert not any(name in rule.expr for name in names), rule.expr
    group = yaml.safe_load(rules.rules_yaml(2))["groups"][0]
    assert (group["interval"], group["concurrency"]) == ("60s", 2)
    assert sum("record" in r for r in group["rules"]) == len(rules.signals)
    assert all(r["labels"][RULE_LABEL].startswith("r") for r in group["rules"] if "alert" in r)


def test_a_range_over_a_recording_rule_becomes_a_subquery_at_the_step() -> None:
    slo = next(s for s in CATALOGUE.slos() if s.id == "availability" and s.system == "tmux")
    expr = inline(slo.error_ratio_for("1h"), records(CATALOGUE), 30, "tmux.yml")
    assert expr == (
        "1 - avg by (system, env) (avg_over_time((min by (system, env, job, instance) ("
        '{__name__=~"up|redline_health_up", '
        'system="tmux", job="tmux-monitor"})\nor\n0 * max by (system, env, job, instance) (\n'
        '  last_over_time(redline_health_up{system="tmux", job="tmux-monitor"}[1h])\n))[1h:30s]))'
    )
    with pytest.raises(RuleError, match=r'reads rec\{system="other"\}, a selector its expression does not'):
        inline('rec{system="other"}', {"rec": 'x{system="tmux"}'}, 60, "x.yml: entry 'e'")
    with pytest.raises(RuleError, match="in a loop"):
        inline("a", {"a": "b + 1", "b": "a + 1"}, 60, "x.yml: entry 'e'")


def test_the_same_rule_of_two_catalogues_is_evaluated_once() -> None:
    rules = RuleSet(60)
    rules.add_catalogue(CATALOGUE)
    before = len(rules.rules)
    again = rules.add_catalogue(CATALOGUE)
    assert len(rules.rules) == before and {e.rule.id for e in again.alerts} == {
        r.id for r in rules.rules.values()
    }
    rules.add_catalogue(with_for_override(CATALOGUE, "7m"))
    assert len(rules.rules) == 2 * before, "every rule changed: a `for` of 7m"


def test_lookback_and_selectors_read_the_promql() -> None:
    assert lookback("rate(x[1h] offset 1w) / rate(x[5m])") == 7 * 86400 + 3600
    assert lookback("avg_over_time((x)[3d:1m])") == 3 * 86400
    assert lookback("x offset 2h") == 7200 and lookback("up < 1") == 0
    expr = 'sum by (env, job) (rate(a_total{system="q", le="0.1"}[5m])) / on (env) b + {__name__=~"u|v"}'
    assert selectors(expr) == {'a_total{system="q", le="0.1"}', "b", '{__name__=~"u|v"}'}
    assert selectors("vector(0) or clamp_min(c, 1)") == {"c"}


# ----- the grid ---------------------------------------------------------------------------------------


def test_runs_break_at_a_missed_evaluation() -> None:
    assert list(runs([0, 60, 120, 240, 300], 60)) == [(0, 120), (240, 300)]
    assert list(runs([], 60)) == []


def test_for_is_rounded_up_to_whole_steps_and_an_open_episode_has_no_end() -> None:
    series = Series({"instance": "a"}, [0, 60, 120, 180, 240, 480, 540, 600], [2.0] * 8)
    labels = (("alertname", "A"),)
    found = episodes_from_signal(series, ">", 1.0, 90, GRID, labels)  # for 90s: 2 steps
    assert [(e.active_at, e.start, e.end) for e in found] == [(0, 120, 300), (480, 600, None)]
    assert firing_seconds(found, GRID) == 180 + 60
    assert episodes_from_signal(series, ">", 2.0, 0, GRID, labels) == []


def test_episodes_from_vmalert_firing_samples() -> None:
    firing = Series(
        {"__name__": "ALERTS", "alertstate": "firing", "alertgroup": "g", "x": "1"}, [120, 180], [1, 1]
    )
    (episode,) = episodes_from_firing(firing, 120, GRID)
    assert (episode.labels, episode.active_at, episode.start, episode.end) == ((("x", "1"),), 0, 120, 240)


# ----- suggestions ------------------------------------------------------------------------------------


def test_candidate_values_are_bucket_bounds_where_the_catalogue_wants_them() -> None:
    cycle = threshold("TmuxMonitorCycleSlow")  # > 1s on a histogram with buckets 1, 1.5, 2.5, 5, 10
    signal = [Series({}, list(range(0, 600, 60)), [0.3, 1.2, 1.4, 2.0, 3.1, 0.3, 0.3, 0.3, 0.3, 0.3])]
    bounds = (0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
    assert analysis.candidate_values(cycle, signal, bounds) == [1.0, 1.5, 2.5, 5.0]
    assert analysis.candidate_values(cycle, signal) == [1.0, 1.2, 1.4, 2.0, 3.1]
    cache = threshold("TmuxMonitorCacheHitRateLow")  # < 60%
    low = [Series({}, [0, 60, 120], [0.55, 0.3, 0.9])]
    assert analysis.candidate_values(cache, low) == [0.6, 0.55, 0.3]
    assert analysis.candidate_values(threshold("TmuxMonitorDown", "critical"), low) == [1.0]
    concurrency = threshold("PipelineConcurrencyHigh")  # > 5 jobs
    assert analysis.candidate_values(concurrency, [Series({}, [0, 60], [6.5, 9.2])]) == [5.0, 7.0, 10.0]


def test_nice_rounds_away_from_the_alerting_side() -> None:
    assert analysis.nice(1.234, up=True) == 1.3 and analysis.nice(1.234, up=False) == 1.2
    assert analysis.nice(0.0456, up=True) == 0.046 and analysis.nice(730_000_000, up=True) == 730_000_000
    assert analysis.candidate_fors(300) == [300, 600, 900, 1800, 3600]
    assert analysis.candidate_fors(7200) == [7200]


# ----- the command line and the table -----------------------------------------------------------------


def test_the_grid_is_whole_steps_between_from_and_to() -> None:
    args = argparse.Namespace(since=None, start=1000, end=10_000, step=60)
    assert cli.grid_of(args) == Grid(1020, 9960, 60)
    args = argparse.Namespace(since=3600, start=None, end=7230, step=60)
    assert cli.grid_of(args) == Grid(3660, 7200, 60)
    with pytest.raises(ValueError, match="not before --to"):
        cli.grid_of(argparse.Namespace(since=None, start=100, end=130, step=60))
    assert cli.parse_time("2026-11-01T00:00:00Z") == 1_793_491_200 == cli.parse_time("1793491200")


def test_the_table_says_what_each_alert_did() -> None:
    alert = {
        "alert": "TmuxMonitorCpuHigh", "severity": "warning", "receiver": "ticket", "status": "ok",
        "episodes": 3, "firing_share": 0.0123, "pages_per_week": 0, "tickets_per_week": 2.5,
        "compliance": {
            "target": {"phrase": "below 25%", "held": 0.992},
            "value": {"phrase": "at most 40%", "held": 0.999},
        },
        "suggestion": {"status": "change", "value": 0.45, "for": "15m", "per_month": 3.2, "note": ""},
        "operator": ">", "unit": "ratio", "model_agrees": True,
    }  # fmt: skip
    document = {
        "catalogue": "working tree", "datasource": "http://p", "max_per_month": 4,
        "range": {"from": "a", "to": "b", "days": 7.0, "step": "1m", "evaluations": 10081},
        "alerts": [alert], "receivers": {"ticket": {"opened": 3, "notifications": 6, "opened_per_week": 3.0}},
        "skipped": [{"alert": "Watchdog", "reason": "fires whatever the input"}],
    }  # fmt: skip
    text = report.table(document)
    row = next(line for line in text.splitlines() if line.startswith("TmuxMonitorCpuHigh"))
    cells = ["TmuxMonitorCpuHigh", "warn", "ticket", "3", "1.23%", "0", "2.5", "below 25%: 99.20%", "99.90%"]
    assert row.split("  ")[0] == "TmuxMonitorCpuHigh" and [c.strip() for c in row.split("  ") if c] == [
        *cells,
        "> 45% for 15m (3.2/month)",
    ]
    assert "receiver ticket: 3 tickets (3.0/week), 6 notifications in all" in text
    assert "not backtested: Watchdog" in text


def test_the_stacks_own_prometheus_is_read_with_the_run_folders_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDLINE_RUN_DIR", str(tmp_path / "run"))
    work = tmp_path / "work"
    work.mkdir()
    assert cli.stack_basic_auth(cli.parser().parse_args([]), work) is None  # no stack password yet
    credentials.ensure_secret(credentials.secret_path(tmp_path / "run", credentials.WEB_PASSWORD_FILE), True)
    password = credentials.Credentials(tmp_path / "run").web_password
    found = cli.stack_basic_auth(cli.parser().parse_args([]), work)
    assert found is not None and found.read_text() == f"redline:{password}"
    assert found.stat().st_mode & 0o777 == 0o600
    other = cli.parser().parse_args(["--prometheus", "http://elsewhere:9090"])
    assert cli.stack_basic_auth(other, work) is None  # another datasource never gets the stack's password


def test_the_default_datasource_is_where_the_stack_keeps_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDLINE_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("REDLINE_PORT_PROMETHEUS", raising=False)
    monkeypatch.delenv("REDLINE_PORT_VICTORIA_METRICS", raising=False)
    assert rundir.history_url() == "http://127.0.0.1:9090"  # no stack started here: its Prometheus
    rundir.save_context(Context(run_dir=tmp_path, ha=True, scale=True), [])
    assert rundir.history_url() == "http://127.0.0.1:8428"  # redline up --scale: VictoriaMetrics
    rundir.save_context(Context(run_dir=tmp_path), [])
    assert rundir.history_url() == "http://127.0.0.1:9090"


def test_the_measured_objective_is_the_worst_envs() -> None:
    """Each env spends its own budget: a staging at 2% errors is not averaged into production's 0.1%."""
    times = [0, 60, 120, 180]
    production = Series({"env": "production"}, times, [0.001] * 4)
    staging = Series({"env": "staging"}, times, [0.0, 0.02, 0.04, float("nan")])
    assert analysis.measured_objective([production, staging]) == pytest.approx(0.98)
    assert analysis.measured_objective([production]) == pytest.approx(0.999)
    assert analysis.measured_objective([Series({}, [0], [float("nan")])]) is None
