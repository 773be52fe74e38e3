"""Upstream compatibility: node_exporter's node-mixin (its alerts and recording rules, rendered from the
jsonnet in Debian's prometheus-node-exporter source package by the pinned PyPI jsonnet) loaded into a real
Prometheus that scrapes node_exporter and the redline host exporter side by side. Every rule that
node_exporter feeds on this machine must be fed by redline too; and promtool's lint of redline's full
output finds nothing it does not find in node_exporter's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import _jsonnet
import pytest
import yaml

from redline.testing.components import prometheus
from redline.testing.processes import free_port, http_get, prom_query, running, tool, wait_until
from redline.tools import source_dir

# the two jobs; the mixin is rendered once per job with its nodeExporterSelector
JOBS = {"node": "node_exporter", "redline": "redline host exporter"}
RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")  # recording rule names (level:metric:ops)


def render_mixin(mixin: Path, job: str) -> dict:
    """prometheusAlerts and prometheusRules of the mixin with the selector job="JOB"."""
    snippet = (
        "local mixin = (import 'config.libsonnet') + (import 'alerts/alerts.libsonnet')"
        " + (import 'rules/rules.libsonnet') + {_config+:: {nodeExporterSelector: SELECTOR}};"
        " {groups: mixin.prometheusAlerts.groups + mixin.prometheusRules.groups}"
    ).replace("SELECTOR", f"'job=\"{job}\"'")
    return json.loads(_jsonnet.evaluate_snippet("node-mixin", snippet, jpathdir=[str(mixin)]))


def input_metrics(expr: str) -> set[str]:
    """The node_exporter series a rule reads (recording rules it reads are fed by their own inputs)."""
    return set(re.findall(r"\bnode_[a-zA-Z0-9_]+", RECORDED.sub("", expr)))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    mixin = source_dir("node-mixin")
    assert mixin is not None, "node-mixin is not unpacked in .tools/src; run 'make setup'"
    tmp = tmp_path_factory.mktemp("mixin")
    rules = {job: render_mixin(mixin, job) for job in JOBS}
    for job, groups in rules.items():
        # group names must differ between the two files loaded into one Prometheus
        for group in groups["groups"]:
            group["name"] = f"{job}-{group['name']}"
            group["interval"] = "1s"
        (tmp / f"{job}.rules.yml").write_text(yaml.safe_dump(groups))
    textfiles = tmp / "textfile"
    textfiles.mkdir()
    (textfiles / "job.prom").write_text("backup_ok 1\n")
    ports = {job: free_port() for job in JOBS}
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{tmp / 'node.rules.yml'}, {tmp / 'redline.rules.yml'}]\n"
        "scrape_configs:\n"
        + "".join(
            f"  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            for job, port in ports.items()
        )
    )
    node_cmd = [
        tool("node_exporter"), f"--web.listen-address=127.0.0.1:{ports['node']}",
        f"--collector.textfile.directory={textfiles}",
    ]  # fmt: skip
    ours_cmd = [
        sys.executable, "-m", "redline.cli", "exporter", "host", "--listen", f"127.0.0.1:{ports['redline']}",
        "--collector.textfile.directory", str(textfiles),
    ]  # fmt: skip
    with (
        running(node_cmd, ready_url=f"http://127.0.0.1:{ports['node']}/metrics", log=tmp / "node.log"),
        running(ours_cmd, ready_url=f"http://127.0.0.1:{ports['redline']}/-/healthy", log=tmp / "host.log"),
        prometheus(tmp, tmp / "prometheus.yml") as prom,
    ):
        # two scrapes of each and the rules evaluated after them (rate() needs two samples)
        wait_until(
            lambda: len(prom_query(prom, "count_over_time(up[1m]) >= 4")) == 2, timeout=30, what="4 scrapes"
        )
        time.sleep(2)
        yield {"prom": prom, "rules": rules, "ports": ports, "tmp": tmp}


def _present(prom: str, metric: str, job: str) -> bool:
    return bool(prom_query(prom, f'count({metric}{{job="{job}"}})'))


def test_the_rendered_mixin_is_valid_for_promtool(stack: dict) -> None:
    for job in JOBS:
        result = subprocess.run(
            [tool("promtool"), "check", "rules", str(stack["tmp"] / f"{job}.rules.yml")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_node_exporter_feeds_is_fed_by_redline(stack: dict) -> None:
    prom = stack["prom"]
    fed: dict[str, list[str]] = {job: [] for job in JOBS}
    missing: list[str] = []
    alerts = 0
    for group in stack["rules"]["node"]["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            alerts += "alert" in rule
            inputs = input_metrics(rule["expr"])
            assert inputs, f"{name}: no node_* input found in {rule['expr']}"
            for job in JOBS:
                if all(_present(prom, metric, job) for metric in inputs):
                    fed[job].append(name)
            if name in fed["node"] and name not in fed["redline"]:
                absent = sorted(m for m in inputs if not _present(prom, m, "redline"))
                missing.append(f"{name}: {absent}")
    assert not missing, f"rules node_exporter feeds and redline does not: {missing}"
    distinct = {job: sorted(set(names)) for job, names in fed.items()}
    counts = {job: len(names) for job, names in distinct.items()}
    print(f"\nnode-mixin rules fed: by node_exporter {counts['node']}, by redline {counts['redline']}")
    print(f"fed by redline: {distinct['redline']}")
    # the collectors this covers (a regression guard: these alerts were the ones missing before)
    for alert in ("NodeHighNumberConntrackEntriesUsed", "NodeTextFileCollectorScrapeError",
                  "NodeClockSkewDetected", "NodeClockNotSynchronising", "NodeFileDescriptorLimit",
                  "NodeMemoryMajorPagesFaults", "NodeDiskIOSaturation"):  # fmt: skip
        assert alert in fed["redline"], alert


def test_recording_rules_give_the_same_series_for_both_exporters(stack: dict) -> None:
    """Each recording rule that yields series from node_exporter's data yields the same label sets from
    redline's (job and instance aside)."""
    prom = stack["prom"]
    compared = 0
    for group in stack["rules"]["node"]["groups"]:
        for rule in group["rules"]:
            if "record" not in rule:
                continue

            def labels(job: str, record: str = rule["record"]) -> set[tuple]:
                return {
                    tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance")))
                    for r in prom_query(prom, f'{record}{{job="{job}"}}')
                }

            theirs = wait_until(lambda: labels("node"), timeout=20, what=rule["record"])
            assert labels("redline") == theirs, rule["record"]
            compared += 1
    assert compared >= 10


def test_promtool_lint_of_the_full_output_matches_node_exporters(stack: dict) -> None:
    """promtool check metrics on everything redline serves flags only what it flags in node_exporter's
    output too (node_exporter's own camelCase and bits names), nothing of redline's making. Redline reports
    every /proc/meminfo field, node_exporter those its procfs release knows: the same camelCase remark on
    a meminfo field node_exporter leaves out is the one difference (documented)."""

    def problems(port: int) -> set[str]:
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        result = subprocess.run(
            [tool("promtool"), "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
        )
        return {line for line in (result.stdout + result.stderr).splitlines() if line.strip()}

    ours, theirs = problems(stack["ports"]["redline"]), problems(stack["ports"]["node"])
    assert ours, "promtool output format changed?"
    unexplained = {
        p for p in ours - theirs if not (p.startswith("node_memory_") and p.endswith("not 'camelCase'"))
    }
    assert not unexplained, sorted(unexplained)
    assert theirs & ours, "promtool flags node_exporter's names in both"
