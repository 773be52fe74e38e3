"""Every dashboard query parses (promtool) and returns data from the real stack.

The stack, all on 127.0.0.1 with free ports: `redline demo` (the four systems, its browser FPS pushed as
OTLP to vmagent, which remote-writes into Prometheus), a throwaway PostgreSQL 15 holding the pipeline's
job table, `redline exporter jobs`, postgres_exporter, `redline exporter host`, blackbox_exporter probing
the demo's /health endpoints, Alertmanager, and Prometheus with the repository's prometheus.yml (every
interval set to 1 s) and the rules generated from the catalogue.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from redline import storage
from redline.generate.conventions import SLO_BUDGET, compliance_record
from redline.generate.load import load_catalogue
from redline.generate.render.dashboards.common import HISTORY_UID
from redline.generate.render.rules import render_rules
from redline.testing.components import prometheus, stack_password, vmagent
from redline.testing.pg import pg_cluster
from redline.testing.processes import ROOT, free_port, http_get, prom_query, running, tool, wait_until

pytestmark = pytest.mark.slow

DASHBOARDS = ROOT / "grafana" / "dashboards"
# Grafana's variables, replaced by what Grafana would send with "All" selected and a 1 s scrape interval.
SUBSTITUTIONS = {
    "$__rate_interval": "10s",
    "$__interval": "5s",
    "$__range": "1h",
}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)

# Queries that may return nothing on a fresh stack without faults, each with the reason. Keep tiny.
EXEMPT_EMPTY: dict[str, str] = {
    # The baseline is the same hour a week ago or the day before the last hour: a stack younger than
    # one hour has none, and the signal is empty by design (no baseline, no alert).
    "env:qerrors_errors:ratio_rate5m_vs_baseline": "needs an hour of history",
    # An agent's own up (redline agent-config, RedlineAgentSilent): the demo has no agent on another host.
    'up{job="redline-agent"}': "no agent in the demo",
}


def long_term_only(query: Query) -> bool:
    """A query of vmalert's monthly compliance: that record exists in the long-term store only (redline up
    --scale), never in this lone Prometheus. Checked here to answer nothing (History without --scale),
    and against the real store and vmalert in tests/e2e/test_scale.py."""
    return compliance_record() in query.expr


SERVICES = ("prometheus", "alertmanager", "vmagent", "blackbox", "postgres-exporter", "jobs", "host")
DEMO_PARTS = ("control", "gamebook", "qerrors", "qerrors-staging", "pipeline", "tmux")


@dataclass
class Query:
    dashboard: str
    panel: str
    expr: str
    datasource: str = ""  # the uid a panel target names; variables use `$datasource`


def substitute(expr: str) -> str:
    for name, value in SUBSTITUTIONS.items():
        expr = expr.replace(name, value)
    return VARIABLE.sub(".*", expr)


def dashboard_queries() -> list[Query]:
    """Every panel target and every label_values variable (as the series query behind it)."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        data = json.loads(path.read_text())
        panels = [p for top in data["panels"] for p in (top, *top.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                where = f"{panel['id']} {panel['title']}"
                uid = target["datasource"]["uid"]
                queries.append(Query(data["uid"], where, substitute(target["expr"]), uid))
        for variable in data["templating"]["list"]:
            if variable["type"] != "query":
                continue
            text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = LABEL_VALUES.match(text.strip())
            assert match, f"{data['uid']} variable {variable['name']}: unexpected query {text!r}"
            series, label = match.groups()
            queries.append(
                Query(
                    data["uid"], f"variable {variable['name']}", f"group by ({label}) ({substitute(series)})"
                )
            )
    assert len(queries) > 50
    return queries


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"redline_dashboard_query_{i}", "expr": q.expr} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_substitution_leaves_no_grafana_variable() -> None:
    for query in dashboard_queries():
        assert "$" not in query.expr, query


# ----------------------------------------------------------------------------------------------------
# The live stack


@dataclass
class Stack:
    prometheus: str
    control: str
    log_dir: Path


def _prometheus_config(tmp: Path, ports: dict[str, int]) -> Path:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    for job in config["scrape_configs"]:
        job.update({"scrape_interval": "1s", "scrape_timeout": "1s"})
    config["rule_files"] = [str(tmp / "rules" / "*.yml")]

    def group(port: str, **labels: str) -> dict:
        return {"targets": [f"127.0.0.1:{ports[port]}"], "labels": labels}

    targets: dict[str, list[dict]] = {
        "prometheus": [group("prometheus", system="redline")],
        "alertmanagers": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}],
        "alertmanager-metrics": [group("alertmanager", system="redline")],
        "vmagent": [group("vmagent", system="redline")],
        "host": [group("host", system="host")],
        "postgres": [group("postgres-exporter", system="pipeline")],
        "pipeline-jobs": [group("jobs", system="pipeline")],
        "gamebook": [group("gamebook", system="gamebook")],
        "qerrors": [
            group("qerrors", system="qerrors", env="production"),
            group("qerrors-staging", system="qerrors", env="staging"),
        ],
        "pipeline-api": [group("pipeline", system="pipeline")],
        "tmux-monitor": [group("tmux", system="tmux")],
        "probes": [
            {
                "targets": [f"http://127.0.0.1:{ports[name]}/health"],
                "labels": {"system": name, "__blackbox_address__": f"127.0.0.1:{ports['blackbox']}"},
            }
            for name in ("gamebook", "pipeline", "tmux")
        ],
    }
    (tmp / "targets").mkdir()
    for name, groups in targets.items():
        (tmp / "targets" / f"{name}.yml").write_text(yaml.safe_dump(groups))
    (tmp / "rules").mkdir()
    for path, text in render_rules(load_catalogue()).items():
        (tmp / "rules" / Path(path).name).write_text(text)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    stack_password(path)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards-live")
    logs = tmp / "logs"
    logs.mkdir()
    ports = {name: free_port() for name in (*SERVICES, *DEMO_PARTS)}
    config = _prometheus_config(tmp, ports)
    (tmp / "alertmanager.yml").write_text("route: {receiver: blackhole}\nreceivers: [{name: blackhole}]\n")
    (tmp / "host.yml").write_text(
        yaml.safe_dump({"process_groups": [{"name": "redline-demo", "cmdline": r"redline\.cli demo"}]})
    )
    redline = [sys.executable, "-m", "redline.cli"]
    with pg_cluster() as pg, contextlib.ExitStack() as procs:

        def start(name: str, cmd: list[str], ready: str | None, **kw: Any) -> None:
            procs.enter_context(running(cmd, ready_url=ready, log=logs / f"{name}.log", timeout=60, **kw))

        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        procs.enter_context(prometheus(logs, config, port=ports["prometheus"]))
        start(
            "alertmanager",
            [
                tool("alertmanager"),
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
            ],
            f"{url['alertmanager']}/-/ready",
        )
        procs.enter_context(vmagent(logs, url["prometheus"], port=ports["vmagent"]))
        start(
            "blackbox",
            [
                tool("blackbox_exporter"),
                f"--config.file={ROOT / 'prometheus' / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
            ],
            f"{url['blackbox']}/-/healthy",
        )
        start(
            "postgres-exporter",
            [
                tool("postgres_exporter"),
                f"--web.listen-address=127.0.0.1:{ports['postgres-exporter']}",
            ],
            f"{url['postgres-exporter']}/metrics",
            env={"DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"},
        )
        start(
            "demo",
            [
                *redline,
                "demo",
                *[f"--port={name}={ports[name]}" for name in DEMO_PARTS],
                f"--pipeline-dsn={pg.dsn}",
                f"--otlp-endpoint={url['vmagent']}/opentelemetry/v1/metrics",
                "--otlp-interval=1",
                "--time-scale=25",
                "--seed=7",
            ],
            f"{url['tmux']}/metrics",
        )
        start(
            "jobs",
            [*redline, "exporter", "jobs", f"--dsn={pg.dsn}", f"--listen=127.0.0.1:{ports['jobs']}"],
            f"{url['jobs']}/metrics",
        )
        start(
            "host",
            [
                *redline,
                "exporter",
                "host",
                f"--listen=127.0.0.1:{ports['host']}",
                f"--config={tmp / 'host.yml'}",
            ],
            f"{url['host']}/metrics",
        )
        yield Stack(prometheus=url["prometheus"], control=url["control"], log_dir=logs)


def _empty_queries(prometheus: str, queries: list[Query]) -> list[Query]:
    return [q for q in queries if not prom_query(prometheus, q.expr)]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    exempt = [q for q in queries if any(name in q.expr for name in EXEMPT_EMPTY)]
    checked = [q for q in queries if q not in exempt and not long_term_only(q)]
    # Targets up and the FPS gauge arriving through vmagent before judging anything.
    wait_until(lambda: len(prom_query(stack.prometheus, "up == 1")) >= 12, timeout=60, what="every target up")
    wait_until(
        lambda: prom_query(stack.prometheus, "gamebook_client_fps"), timeout=60, what="FPS via vmagent"
    )
    deadline = time.monotonic() + 60
    empty = _empty_queries(stack.prometheus, checked)
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        empty = _empty_queries(stack.prometheus, empty)
    listing = "\n".join(f"  {q.dashboard} / {q.panel}: {q.expr}" for q in empty)
    assert not empty, f"{len(empty)} of {len(checked)} dashboard queries return nothing:\n{listing}"
    assert len(exempt) <= 4, [q.panel for q in exempt]


def test_history_budget_queries_fall_back_to_the_prometheus_own(stack: Stack) -> None:
    """Every query above runs against this one Prometheus, those of the History datasource too: without
    --scale History is the Prometheus (redline/storage.py history). There the budget panels' preferred
    long-term record does not exist, and each answers the Prometheus' own budget, one per env, named.
    The overview's compliance table has no fallback: it answers nothing, as its description says."""
    assert storage.history(scale=False) == "prometheus"
    history = [q for q in dashboard_queries() if q.datasource == HISTORY_UID]
    compliance = [q for q in history if long_term_only(q)]
    assert [q.dashboard for q in compliance] == ["redline-overview"], [q.panel for q in history]
    # the rules are loaded and evaluated (a budget answers below), yet the record is not there
    wait_until(lambda: prom_query(stack.prometheus, SLO_BUDGET), 60, what="the Prometheus' own budget")
    assert prom_query(stack.prometheus, compliance[0].expr) == []
    budgets = [q for q in history if q not in compliance]
    assert len(budgets) == 2 * len(list(load_catalogue().slos())), [q.panel for q in budgets]
    for query in budgets:
        result = wait_until(lambda q=query: prom_query(stack.prometheus, q.expr), 60, what=query.panel)
        envs = [r["metric"]["env"] for r in result]
        assert len(envs) == len(set(envs)), result
        assert {r["metric"]["__name__"] for r in result} == {SLO_BUDGET}, result


def test_exemptions_are_still_needed(stack: Stack) -> None:
    """An exempt query that has data on a fresh stack should not be exempt any more."""
    status, body = http_get(f"{stack.prometheus}/api/v1/rules")
    assert status == 200
    recorded = {rule["name"] for group in json.loads(body)["data"]["groups"] for rule in group["rules"]}
    for name in EXEMPT_EMPTY:
        if "{" not in name:  # a recording rule's name, not a selector
            assert name in recorded, f"{name} is no longer a recording rule; drop its exemption"
        assert not prom_query(stack.prometheus, name), f"{name} has data now; drop its exemption"


def _worst(prometheus: str, uid: str, title: str) -> tuple[str, float]:
    data = json.loads((DASHBOARDS / f"{uid}.json").read_text())
    panel = next(p for p in data["panels"] if p.get("title") == title)
    result = prom_query(prometheus, substitute(panel["targets"][0]["expr"]))
    assert len(result) == 1, result
    return result[0]["metric"]["signal"], float(result[0]["value"][1])


def test_overview_worst_signal_follows_an_injected_fault(stack: Stack) -> None:
    """tmux memory at ~820 MiB (warning 500 MB): the overview names it, above 100% of its alert value."""
    catalogue = load_catalogue()
    title = catalogue.system("tmux").name
    wait_until(
        lambda: _worst(stack.prometheus, "redline-overview", title)[1] < 1,
        timeout=30,
        what="tmux healthy before the fault",
    )
    fault = [sys.executable, "-m", "redline.cli", "demo", "fault", "--control", stack.control]
    subprocess.run([*fault, "tmux", "memory-critical"], check=True, timeout=30, capture_output=True)
    try:
        _signal, value = wait_until(
            lambda: (w := _worst(stack.prometheus, "redline-overview", title))[0] == "memory" and w,
            timeout=30,
            what="tmux memory as the worst signal",
        )
        assert 1.5 < value < 2.0, value  # ~820 MiB / 500 MB
    finally:
        subprocess.run(
            [*fault, "tmux", "memory-critical", "--clear"], check=True, timeout=30, capture_output=True
        )
