"""Bad catalogue input: one clear line naming file, entry and field; exit 2; nothing written (no binary:
every check here runs before promtool parses the PromQL, tests/integration/test_catalogue_promql.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from redline.generate import cli
from redline.generate.load import CatalogueError, load_catalogue
from redline.generate.validate import ROUTING_LABELS, validate
from redline.paths import ROOT
from redline.testing.catalogue import changed_catalogue, entry


def _set(entry_id: str, key: str, value: object, section: str = "thresholds") -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        entry(data, entry_id, section)[key] = value

    return mutate


def _delete(entry_id: str, key: str) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        del entry(data, entry_id)[key]

    return mutate


def _duplicate_alert(data: dict) -> None:
    entry(data, "cpu")["alert"] = "TmuxMonitorCycleSlow"


def _levels_out_of_order(data: dict) -> None:
    entry(data, "memory")["levels"][1]["value"] = 500000000


def _set_file(key: str, value: object) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        data[key] = value

    return mutate


def _level_quote(data: dict) -> None:
    entry(data, "memory")["levels"][0]["quote"] = "memory above {{ $value }}"


TMUX_UP = 'instance:tmux_monitor_up:min{system="tmux"}'
JOBS = 'redline_jobs_completed_total{system="pipeline"}'


# (file, mutation, entry, field, words in the message)
CASES = [
    ("tmux.yml", _set("cycle-time", "treshold", 1.0), "cycle-time", "treshold", "unknown field"),
    ("tmux.yml", _set("cycle-time", "value", "fast"), "cycle-time", "value", "must be a number"),
    ("tmux.yml", _delete("cycle-time", "unit"), "cycle-time", "unit", "missing"),
    ("tmux.yml", _set("cpu", "unit", "percent"), "cpu", "unit", "must be one of"),
    ("tmux.yml", _duplicate_alert, "cpu", "alert", "duplicate alert name"),
    ("tmux.yml", _set("cycle-time", "for", "5 minutes"), "cycle-time", "for", "not a duration"),
    ("tmux.yml", _set("cpu", "target", 0.5), "cpu", "target", "alerting side"),
    ("tmux.yml", _set("cycle-time", "value", 1.2), "cycle-time", "value", "not a bucket bound"),
    ("tmux.yml", _set("cycle-time", "severity", "page"), "cycle-time", "severity", "must be one of"),
    ("tmux.yml", _delete("cycle-time", "quote"), "cycle-time", "quote", "missing"),
    (
        "tmux.yml",
        _set("cycle-time", "metric", "redline_no_such_metric"),
        "cycle-time",
        "metric",
        "not in any system's metrics contract",
    ),
    (
        "tmux.yml",
        _set("cycle-time", "metric", "redline_cache_hits_total"),
        "cycle-time",
        "metric",
        "does not occur in the entry's query",
    ),
    (
        "tmux.yml",
        _set("cpu", "signal", 'rate(process_cpu_seconds_total{system="tmux"}[30s])'),
        "cpu",
        "signal",
        "fewer than two samples",
    ),
    ("tmux.yml", _set("cycle-time", "alert", "MonitorCycleSlow"), "cycle-time", "alert", "system prefix"),
    (
        "tmux.yml",
        _set("cycle-time", "record", "cycle_mean"),
        "cycle-time",
        "record",
        "level:metric:operations",
    ),
    ("tmux.yml", _levels_out_of_order, "memory", "levels", "further past the threshold"),
    (
        "tmux.yml",
        _set("availability", "objective", 99.95, "slos"),
        "availability",
        "objective",
        "between 0 and 1",
    ),
    ("gamebook.yml", _set("latency", "le", 0.2, "slos"), "latency", "le", "not a bucket bound"),
    ("tmux.yml", _set("cpu", "value", 40), "cpu", "value", "not a ratio within [0, 1]"),
    ("tmux.yml", _set("cpu", "target", 25), "cpu", "target", "not a ratio within [0, 1]"),
    (
        "redline.yml",
        _set("watchdog", "labels", {"watchdog": "{{ $labels.job }}"}),
        "watchdog",
        "labels.watchdog",
        "templates ({{ }}) are allowed only in 'description'",
    ),
    ("tmux.yml", _set("cpu", "severity", "Warning"), "cpu", "severity", "must be one of"),
    (
        "tmux.yml",
        _set("availability", "error_ratio", "1 - avg(up)", "slos"),
        "availability",
        "error_ratio",
        "{window}",
    ),
    # issue 15: a query reading a metric absent from every contract used to be accepted, and the
    # generated promtool test then failed
    (
        "tmux.yml",
        _set("cpu", "signal", 'rate(process_cpu_seconds_total{system="tmux"}[1m]) / redline_cpu_limit'),
        "cpu",
        "signal",
        "reads 'redline_cpu_limit', which is in no system's metrics contract",
    ),
    (
        "tmux.yml",
        _set("availability", "error_ratio", f"1 - avg(avg_over_time({TMUX_UP}[{{window}}])) * up2", "slos"),
        "availability",
        "error_ratio",
        "reads 'up2', which is in no system's metrics contract",
    ),
    (
        "pipeline.yml",
        _set("postgres", "signal", 'min by (system, env, instance) ({__name__=~"up|pg_.+", job="postgres"})'),
        "postgres",
        "signal",
        "is not a list of metric names",
    ),
    (
        "tmux.yml",
        _set_file("external_metrics", ["up"]),
        "(file)",
        "external_metrics",
        "is in a metrics contract",
    ),
    # templates only where the schema allows them (description): Prometheus expands labels and the rest
    (
        "tmux.yml",
        _set("cycle-time", "labels", {"team": "{{ $labels.job }}"}),
        "cycle-time",
        "labels.team",
        "allowed only in 'description'",
    ),
    ("tmux.yml", _set("cycle-time", "quote", "{{ $value }}"), "cycle-time", "quote", "allowed only in"),
    ("tmux.yml", _level_quote, "memory", "levels[0].quote", "allowed only in 'description'"),
    ("tmux.yml", _set("availability", "name", "{{ 1 }}", "slos"), "availability", "name", "allowed only in"),
    # an SLO across environments: staging's errors spent production's budget and the page had no env
    (
        "tmux.yml",
        _set("availability", "error_ratio", f"1 - avg(avg_over_time({TMUX_UP}[{{window}}]))", "slos"),
        "availability",
        "error_ratio",
        "avg(...) without by (...) aggregates away system, env",
    ),
    (
        "pipeline.yml",
        _set("job-success", "error_ratio", f"sum by (system) (rate({JOBS}[{{window}}]))", "slos"),
        "job-success",
        "error_ratio",
        "sum by (system) aggregates away env",
    ),
    (
        "pipeline.yml",
        _set(
            "job-success",
            "error_ratio",
            f"(sum by (system, env) (rate({JOBS}[{{window}}])) or vector(0))",
            "slos",
        ),
        "job-success",
        "error_ratio",
        "vector(...) has no labels",
    ),
    # the same check on threshold signals, with the label list after the argument
    (
        "tmux.yml",
        _set("cpu", "signal", 'sum(rate(process_cpu_seconds_total{system="tmux"}[1m])) without (env)'),
        "cpu",
        "signal",
        "sum without (env) aggregates away env",
    ),
    (
        "tmux.yml",
        _set("cpu", "signal", 'max(rate(process_cpu_seconds_total{system="tmux"}[1m]))'),
        "cpu",
        "signal",
        "max(...) without by (...) aggregates away system, env",
    ),
]


@pytest.mark.parametrize(
    ("file", "mutate", "entry", "field", "words"), CASES, ids=[f"{c[2]}.{c[3]}:{c[4]}" for c in CASES]
)
def test_bad_input_names_file_entry_field_and_writes_nothing(
    tmp_path, capsys, file, mutate, entry, field, words
):
    catalogue = changed_catalogue(tmp_path, file, mutate)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["generate", "--catalogue", str(catalogue), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert file in err and f"entry '{entry}'" in err and f"field '{field}'" in err, err
    assert words in err, err
    assert list(out.rglob("*")) == [], "nothing may be written on bad input"


def test_yaml_syntax_error_and_cli_exit_status(tmp_path):
    catalogue = tmp_path / "thresholds"
    shutil.copytree(ROOT / "thresholds", catalogue)
    (catalogue / "host.yml").write_text((catalogue / "host.yml").read_text() + "\n  : : bad\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "redline.cli", "generate", "--catalogue", str(catalogue), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert "host.yml" in result.stderr and "not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_an_external_metric_may_be_read(tmp_path, capsys):
    """A metric redline does not publish is readable once the file lists it in external_metrics."""

    def read_alerts(data: dict) -> None:
        data["external_metrics"] = ["ALERTS"]
        entry(data, "cpu")["signal"] += ' unless on(system) ALERTS{alertname="TmuxMonitorDown"}'

    catalogue = load_catalogue(changed_catalogue(tmp_path, "tmux.yml", read_alerts))
    validate(catalogue)
    assert catalogue.system("tmux").external_metrics == ("ALERTS",)
    # without the listing the same signal is refused
    without = changed_catalogue(tmp_path / "again", "tmux.yml", lambda data: (
        read_alerts(data), data.pop("external_metrics")
    ))  # fmt: skip
    with pytest.raises(CatalogueError, match="reads 'ALERTS', which is in no system's metrics contract"):
        validate(load_catalogue(without))


@pytest.mark.parametrize("override", ["soon", "/0", "/x", "/"])
def test_bad_for_override_is_a_usage_error(tmp_path, capsys, override):
    assert cli.main(["generate", "--out", str(tmp_path / "o"), "--for-override", override]) == 2
    assert "--for-override" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("divisor", ["0", "-1", "2.5", "x"])
def test_bad_window_divisor_is_a_usage_error(tmp_path, capsys, divisor):
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        cli.main(["generate", "--out", str(tmp_path / "o"), "--window-divisor", divisor])
    assert exited.value.code == 2
    assert "--window-divisor" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_routing_labels_are_what_alertmanager_groups_and_inhibits_by() -> None:
    """validate.ROUTING_LABELS keeps alertmanager.yml's grouping and its *Down inhibition whole."""
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    assert set(ROUTING_LABELS) <= set(config["route"]["group_by"])
    assert any(set(rule["equal"]) == set(ROUTING_LABELS) for rule in config["inhibit_rules"])
