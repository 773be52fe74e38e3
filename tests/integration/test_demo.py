"""`redline demo` end to end: every fault trips its catalogue alert expressions, and they clear.

One stack: the demo (all systems), a throwaway PostgreSQL with the job table in database `pipeline`,
the job exporter, postgres_exporter on that database, blackbox_exporter probing /health, vmagent
receiving the browsers' OTLP FPS and remote-writing into a real Prometheus that runs the repo's
prometheus.yml and the rules generated from the catalogue (1 s scrape and evaluation; 5 s for the
postgres job). For each fault the test checks, for every (alert, severity) the demo declares in
FAULT_ALERTS, the alert's own expression from the catalogue: false before, true while the fault is on,
false again after it is cleared. Faults on independent signals run in parallel.

Windows like [5m] are not shortened: each Prometheus starts fresh, so a window holds only the seconds
of data the test produced, and a fault that just crossed its threshold is diluted again within
seconds after it is cleared. Faults that would disturb each other's signal run in a second wave
against a fresh Prometheus; the faults that take the whole job table or database away (job-table-locked,
db-down) run last and alone, on the second wave's Prometheus. qerrors' error-rate rule compares with
yesterday's rate, so the test backfills one day of 1%-error history ending an hour ago (promtool tsdb
create-blocks-from).

The job exporter runs with --statement-timeout=500ms (default 5 s): under the pipeline-jobs job's 1 s
scrape timeout, so that a locked job table shows as the exporter's own `redline_jobs_up 0` rather than
only as a failed scrape (either trips PipelineJobExporterDown). After all faults, the test checks that
they left nothing behind: no fault session or lock, the database accepting connections, the demo's
workers finishing jobs again with no row stuck 'running'. The database faults also run on their own,
in-process against a throwaway PostgreSQL: how they come back after db-down, and a failing db-down.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml

from redline.demo.database import CONNECTIONS_ALERT_RATIO, FAULT_APPLICATION, DatabaseFaults
from redline.demo.faults import FAULT_ALERTS, FAULTS
from redline.demo.pipeline import WORKERS, WORKERS_CRITICAL, WORKERS_UNDER_TEST, reference_schema
from redline.demo.system import FaultError
from redline.generate.alerts import catalogue_alerts
from redline.generate.load import load_catalogue
from redline.generate.render.rules import render_rules
from redline.testing.components import prometheus, stack_password, vmagent
from redline.testing.pg import PgCluster, pg_cluster
from redline.testing.processes import ROOT, free_port, http_get, prom_query, running, tool, wait_until

REDLINE = [sys.executable, "-m", "redline.cli"]
DEMO_PARTS = ("control", "gamebook", "qerrors", "qerrors-staging", "pipeline", "tmux")
# Labels that pick the series of the faulty instance out of an alert's result.
INSTANCE_LABELS = {"qerrors": {"env": "production"}, "qerrors-staging": {"env": "staging"}}

# Faults on independent signals run at the same time. Within a task, faults run one after the other.
WAVE_1: list[list[tuple[str, str]]] = [
    *[[("gamebook", f)] for f in FAULTS["gamebook"]],
    *[[(s, f)] for s in ("qerrors", "qerrors-staging") for f in FAULTS[s] if f != "down"],
    [("pipeline", "slow-jobs")],
    [("pipeline", "job-failures")],
    [("pipeline", "concurrency"), ("pipeline", "concurrency-critical")],
    [("pipeline", "down")],
    [("tmux", "memory"), ("tmux", "memory-critical")],
    *[[("tmux", f)] for f in ("slow-cycles", "cpu", "errors", "pool-exhaustion", "cache-misses")],
]
# Against a fresh Prometheus: the mean job duration again, faults that stop a whole instance, and the
# connections held (not with more workers than usual: the few free connections would not do).
WAVE_2: list[list[tuple[str, str]]] = [
    [("pipeline", "very-slow-jobs"), ("pipeline", "workers-down")],
    [("pipeline", "db-connections")],
    [("qerrors", "down")],
    [("qerrors-staging", "down")],
    [("tmux", "unhealthy"), ("tmux", "down")],
]
# After wave 2, on its Prometheus, alone: every job signal is gone while they are on.
WAVE_3: list[list[tuple[str, str]]] = [
    [("pipeline", "job-table-locked"), ("pipeline", "db-down")],
]
PHASES = (("1", (WAVE_1,), True), ("2", (WAVE_2, WAVE_3), False))
# What must hold before a database fault is injected, so that "false before" is not just missing data:
# the exporter it acts through has been scraped (postgres every 5 s: not waited for at the start of a
# phase, where each second of waiting slows the mean-duration faults down).
BEFORE = {
    ("pipeline", "db-connections"): ['pg_settings_max_connections{job="postgres"}'],
    ("pipeline", "job-table-locked"): ['redline_jobs_up{job="pipeline-jobs"} == 1'],
    ("pipeline", "db-down"): ['pg_up{job="postgres"} == 1', 'redline_jobs_up{job="pipeline-jobs"} == 1'],
}
# Besides its alerts, what a database fault must show while on: that it works the way it claims.
EVIDENCE = {
    # the job exporter answers the scrape, reporting that its read of the table failed (statement timeout)
    ("pipeline", "job-table-locked"): [
        'redline_jobs_up{job="pipeline-jobs"} == 0 and on (job, instance) up{job="pipeline-jobs"} == 1'
    ],
    # postgres_exporter answers the scrape with pg_up 0 (it cannot connect), and so does the job exporter
    ("pipeline", "db-down"): [
        'pg_up{job="postgres"} == 0 and on (job, instance) up{job="postgres"} == 1',
        'redline_jobs_up{job="pipeline-jobs"} == 0',
    ],
}
ON_TIMEOUT = 60.0
OFF_TIMEOUT = 90.0


@dataclass
class Outcome:
    """What happened to one fault."""

    error: str | None = None
    seconds_on: float = 0.0
    seconds_off: float = 0.0
    exprs: list[str] = field(default_factory=list)


def alert_expr(catalogue, name: str, severity: str) -> str:
    """The catalogue's alert condition: a threshold's self-contained expression, or an SLO alert's."""
    for threshold in catalogue.thresholds():
        if threshold.alert_name == name and threshold.severity == severity:
            return threshold.expr
    for alert in catalogue_alerts(catalogue):
        if alert.alert_name == name and alert.severity == severity:
            return alert.expr
    raise KeyError(f"{name} ({severity}) is not in the catalogue")


def backfill_qerrors_baseline(tsdb: Path, instances: dict[str, str]) -> None:
    """One day of qerrors traffic at 1% errors, ending 70 minutes ago (the rule's [1d] offset 1h)."""
    now = int(time.time())
    start, end = now - 26 * 3600, now - 70 * 60
    lines = ["# TYPE qerrors_requests counter"]
    for env, instance in instances.items():
        labels = f'env="{env}",instance="{instance}",job="qerrors",system="qerrors"'
        lines += [f"qerrors_requests_total{{{labels}}} {(t - start) * 10} {t}" for t in range(start, end, 60)]
    lines.append("# TYPE qerrors_errors counter")
    for env, instance in instances.items():
        labels = f'env="{env}",instance="{instance}",job="qerrors",system="qerrors",type="network"'
        lines += [f"qerrors_errors_total{{{labels}}} {(t - start) // 10} {t}" for t in range(start, end, 60)]
    lines.append("# EOF")
    source = tsdb.parent / "baseline.om"
    source.write_text("\n".join(lines) + "\n")
    tsdb.mkdir(parents=True)
    subprocess.run(
        [tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(tsdb)],
        check=True,
        capture_output=True,
        timeout=60,
    )


CONTROL_TOKEN = secrets.token_urlsafe(16)
CONTROL_AUTH = {"Authorization": f"Bearer {CONTROL_TOKEN}"}


def control_token(folder: Path) -> Path:
    """A token file for `redline demo --control-token-file` (and `redline demo fault --token-file`)."""
    path = folder / "demo-token"
    path.write_text(CONTROL_TOKEN + "\n")
    return path


class Stack:
    """Everything the faults run against; `prometheus(wave)` starts a fresh Prometheus."""

    def __init__(self, tmp: Path, ports: dict[str, int], blackbox: int) -> None:
        self.tmp = tmp
        self.ports = ports
        self.control = f"http://127.0.0.1:{ports['control']}"
        self.blackbox = blackbox
        self.catalogue = load_catalogue()
        self.config_dir = tmp / "prometheus"
        self._write_config()

    def _write_config(self) -> None:
        config = self.config_dir
        (config / "targets").mkdir(parents=True)
        (config / "rules").mkdir()
        shutil.copy(ROOT / "prometheus" / "prometheus.yml", config / "prometheus.yml")
        stack_password(config / "prometheus.yml")
        for path, text in render_rules(self.catalogue).items():
            (config / "rules" / Path(path).name).write_text(text)

        def group(part: str, **labels: str) -> dict:
            return {"targets": [f"127.0.0.1:{self.ports[part]}"], "labels": labels}

        targets = {
            "gamebook": [group("gamebook", system="gamebook")],
            "qerrors": [
                group("qerrors", system="qerrors", env="production"),
                group("qerrors-staging", system="qerrors", env="staging"),
            ],
            "pipeline-api": [group("pipeline", system="pipeline")],
            "pipeline-jobs": [group("jobs", system="pipeline")],
            "postgres": [group("postgres", system="pipeline")],
            "tmux-monitor": [group("tmux", system="tmux")],
            "probes": [
                {
                    "targets": [f"http://127.0.0.1:{self.ports[part]}/health"],
                    "labels": {"system": part, "__blackbox_address__": f"127.0.0.1:{self.blackbox}"},
                }
                for part in ("gamebook", "pipeline", "tmux")
            ],
        }
        for name, groups in targets.items():
            (config / "targets" / f"{name}.yml").write_text(yaml.safe_dump(groups))

    @contextlib.contextmanager
    def prometheus(self, wave: str, *, baseline: bool) -> Iterator[str]:
        tsdb = self.tmp / f"tsdb-{wave}"
        if baseline:
            backfill_qerrors_baseline(
                tsdb,
                {
                    "production": f"127.0.0.1:{self.ports['qerrors']}",
                    "staging": f"127.0.0.1:{self.ports['qerrors-staging']}",
                },
            )
        config = self.config_dir / "prometheus.yml"
        with prometheus(self.tmp, config, name=f"prometheus-{wave}", tsdb=tsdb) as self.prom_url:
            yield self.prom_url

    def set_fault(self, system: str, fault: str, active: bool) -> None:
        query = urllib.parse.urlencode({"system": system, "fault": fault})
        request = urllib.request.Request(
            f"{self.control}/fault?{query}", method="POST" if active else "DELETE", headers=CONTROL_AUTH
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                assert response.status == 200
        except urllib.error.HTTPError as err:
            action = "inject" if active else "clear"
            raise AssertionError(f"cannot {action}: {err.code} {err.read().decode().strip()}") from None

    def firing(self, expr: str, system: str) -> bool:
        """True when the expression returns a series of the system's (faulty) instance."""
        want = INSTANCE_LABELS.get(system, {})
        return any(
            all(series["metric"].get(k) == v for k, v in want.items())
            for series in prom_query(self.prom_url, expr)
        )


def run_task(stack: Stack, task: list[tuple[str, str]]) -> dict[tuple[str, str], Outcome]:
    outcomes = {}
    for system, fault in task:
        outcome = Outcome()
        outcomes[(system, fault)] = outcome
        outcome.exprs = [alert_expr(stack.catalogue, *alert) for alert in FAULT_ALERTS[(system, fault)]]
        try:
            for expr in BEFORE.get((system, fault), []):
                wait_until(lambda e=expr: prom_query(stack.prom_url, e), timeout=20, what=f"before: {expr}")
            for expr in outcome.exprs:
                wait_until(
                    lambda e=expr, s=system: not stack.firing(e, s), timeout=20, what=f"false before: {expr}"
                )
            started = time.monotonic()
            stack.set_fault(system, fault, True)
            try:
                for expr in outcome.exprs:
                    wait_until(
                        lambda e=expr, s=system: stack.firing(e, s),
                        timeout=ON_TIMEOUT,
                        what=f"true while on: {expr}",
                    )
                outcome.seconds_on = time.monotonic() - started
                for expr in EVIDENCE.get((system, fault), []):
                    wait_until(
                        lambda e=expr: prom_query(stack.prom_url, e),
                        timeout=ON_TIMEOUT,
                        what=f"while on: {expr}",
                    )
            finally:
                stack.set_fault(system, fault, False)
            cleared = time.monotonic()
            for expr in outcome.exprs:
                wait_until(
                    lambda e=expr, s=system: not stack.firing(e, s),
                    timeout=OFF_TIMEOUT,
                    what=f"false after: {expr}",
                )
            outcome.seconds_off = time.monotonic() - cleared
        except AssertionError as err:
            outcome.error = str(err)
            return outcomes
    return outcomes


def run_wave(stack: Stack, wave: list[list[tuple[str, str]]]) -> dict[tuple[str, str], Outcome]:
    results: dict[tuple[str, str], Outcome] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(wave)) as pool:
        for outcomes in pool.map(lambda task: run_task(stack, task), wave):
            results.update(outcomes)
    return results


def wait_stack_ready(stack: Stack) -> None:
    wait_until(
        lambda: len(prom_query(stack.prom_url, 'up{job!="postgres"} == 1')) == 9,
        timeout=30,
        what="all 9 targets scraped every second up (6 demo/exporter jobs, 3 probes)",
    )
    wait_until(lambda: prom_query(stack.prom_url, "gamebook_client_fps"), timeout=30, what="FPS via OTLP")


def database_dsn(pg: PgCluster, dbname: str, **params: str) -> str:
    return psycopg.conninfo.make_conninfo(pg.dsn, dbname=dbname, **params)


def leftovers(dsn: str) -> list[str]:
    """What the faults left behind once all are cleared; waits for the demo's workers to finish jobs."""
    problems = []
    with psycopg.connect(dsn, autocommit=True) as conn:

        def one(query: str, *args: object) -> int:
            row = conn.execute(query, args or None).fetchone()  # type: ignore[arg-type]
            return int(row[0]) if row else 0

        if not one("SELECT count(*) FROM pg_database WHERE datname = current_database() AND datallowconn"):
            problems.append("the pipeline database still refuses connections")
        sessions = one("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", FAULT_APPLICATION)
        if sessions:
            problems.append(f"{sessions} fault session(s) still open")
        locks = one(
            "SELECT count(*) FROM pg_locks WHERE relation = 'jobs'::regclass AND mode = 'AccessExclusiveLock'"
        )
        if locks:
            problems.append("the job table is still locked")
        finished = "SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed')"
        before = one(finished)
        try:
            wait_until(lambda: one(finished) >= before + 2 * WORKERS, timeout=15, what="jobs finishing")
        except AssertionError as err:
            problems.append(f"the demo's workers do not finish jobs again: {err}")
        # A job takes about a second at most at --time-scale 30: each row running now is finished a few
        # seconds later, unless nobody works on it any more (a worker lost it when db-down ended its session).
        running_now = [row[0] for row in conn.execute("SELECT id FROM jobs WHERE state = 'running'")]

        def still_running() -> list[int]:
            query = "SELECT id FROM jobs WHERE id = ANY(%s) AND state = 'running' ORDER BY id"
            return [row[0] for row in conn.execute(query, (running_now,))]

        try:
            wait_until(lambda: not still_running(), timeout=10, what="the jobs running to finish")
        except AssertionError:
            stuck = still_running()
            problems.append(f"{len(stuck)} row(s) stuck 'running' (ids {stuck[:10]})")
    return problems


@dataclass
class Run:
    outcomes: dict[tuple[str, str], Outcome]
    leftovers: list[str]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    ports = {part: free_port() for part in DEMO_PARTS}
    ports["jobs"] = free_port()
    ports["postgres"] = free_port()
    blackbox, vmagent_port = free_port(), free_port()
    with pg_cluster() as pg:
        pg.execute("CREATE DATABASE pipeline")
        dsn = database_dsn(pg, "pipeline")
        demo = [
            *REDLINE,
            "demo",
            *[f"--port={part}={ports[part]}" for part in DEMO_PARTS],
            f"--pipeline-dsn={dsn}",
            f"--otlp-endpoint=http://127.0.0.1:{vmagent_port}/opentelemetry/v1/metrics",
            "--otlp-interval=1",
            "--time-scale=30",
            "--traffic-scale=20",
            "--seed=7",
            f"--control-token-file={control_token(tmp)}",
        ]
        jobs = [
            *REDLINE,
            "exporter",
            "jobs",
            f"--dsn={dsn}",
            f"--listen=127.0.0.1:{ports['jobs']}",
            "--statement-timeout=500ms",
        ]
        # As redline/stack/services.py starts it (password-less here: the throwaway cluster trusts loopback).
        postgres_exporter_env = {
            "DATA_SOURCE_URI": f"127.0.0.1:{pg.port}/pipeline?sslmode=disable",
            "DATA_SOURCE_USER": "postgres",
            "DATA_SOURCE_PASS": "",
        }
        stack = Stack(tmp, ports, blackbox)
        with (
            running(
                [
                    tool("blackbox_exporter"),
                    f"--config.file={ROOT / 'prometheus' / 'blackbox.yml'}",
                    f"--web.listen-address=127.0.0.1:{blackbox}",
                ],
                ready_url=f"http://127.0.0.1:{blackbox}/-/healthy",
                log=tmp / "blackbox.log",
            ),
            running(
                [tool("postgres_exporter"), f"--web.listen-address=127.0.0.1:{ports['postgres']}"],
                ready_url=f"http://127.0.0.1:{ports['postgres']}/metrics",
                log=tmp / "postgres_exporter.log",
                env=postgres_exporter_env,
                cwd=tmp,
            ),
            running(demo, ready_url=f"http://127.0.0.1:{ports['control']}/health", log=tmp / "demo.log"),
            running(jobs, ready_url=f"http://127.0.0.1:{ports['jobs']}/metrics", log=tmp / "jobs.log"),
        ):
            results: dict[tuple[str, str], Outcome] = {}
            for phase, waves, baseline in PHASES:
                with (
                    stack.prometheus(phase, baseline=baseline) as prom_url,
                    vmagent(tmp, prom_url, port=vmagent_port, name=f"vmagent-{phase}"),
                ):
                    wait_stack_ready(stack)
                    for wave in waves:
                        results.update(run_wave(stack, wave))
            for (system, fault), outcome in sorted(results.items()):
                print(
                    f"{system:<16} {fault:<20} on {outcome.seconds_on:5.1f}s  off {outcome.seconds_off:5.1f}s"
                )
            yield Run(results, leftovers(dsn))


def test_every_fault_is_tested():
    planned = [fault for _, waves, _ in PHASES for wave in waves for task in wave for fault in task]
    declared = {(system, fault) for system, faults in FAULTS.items() for fault in faults}
    assert len(planned) == len(set(planned))
    assert set(planned) == declared == set(FAULT_ALERTS)


def test_fault_sizes_pass_the_catalogue_levels():
    """The demo's fixed fault sizes against the levels in thresholds/pipeline.yml."""
    levels = {(t.alert_name, t.severity): t.value for t in load_catalogue().thresholds()}
    warning, critical = (levels[("PipelineConcurrencyHigh", level)] for level in ("warning", "critical"))
    assert WORKERS <= warning < WORKERS_UNDER_TEST <= critical < WORKERS_CRITICAL
    assert levels[("PipelinePostgresConnectionsHigh", "warning")] == CONNECTIONS_ALERT_RATIO


@pytest.mark.slow
@pytest.mark.parametrize(("system", "fault"), sorted(FAULT_ALERTS))
def test_fault_trips_and_clears_its_alerts(run, system, fault):
    outcome = run.outcomes[(system, fault)]
    assert outcome.error is None, f"{system} {fault}: {outcome.error}"
    assert outcome.seconds_on > 0 and outcome.seconds_off >= 0


@pytest.mark.slow
def test_database_faults_leave_nothing_behind(run):
    assert run.leftovers == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*REDLINE, "demo", *args], capture_output=True, text=True, timeout=30)


def test_cli_help_lists_faults_and_bad_input_is_exit_2(tmp_path):
    helped = run_cli("--help")
    assert helped.returncode == 0
    for system, faults in FAULTS.items():
        for fault in faults:
            assert f"{system}" in helped.stdout and f" {fault} " in helped.stdout
    assert "TmuxMonitorMemoryHigh (critical)" in helped.stdout
    unknown = run_cli("fault", "gamebook", "meteor")
    assert unknown.returncode == 2 and "unknown fault 'meteor' for gamebook" in unknown.stderr
    bad_port = run_cli("--port", "gamebook=http")
    assert bad_port.returncode == 2
    assert (
        bad_port.stderr.strip() == "redline demo: --port 'gamebook=http': 'http' is not a port number 0-65535"
    )
    bad_dsn = run_cli("--pipeline-dsn", "postgresql://u:secret@[x", "--base-port", str(free_port()))
    assert bad_dsn.returncode == 2 and "secret" not in bad_dsn.stderr and "Traceback" not in bad_dsn.stderr
    token = f"--token-file={control_token(tmp_path)}"
    nobody = run_cli("fault", "tmux", "cpu", "--control", f"http://127.0.0.1:{free_port()}", token)
    assert nobody.returncode == 1 and "cannot reach the demo control" in nobody.stderr
    no_token = run_cli("fault", "tmux", "cpu", f"--token-file={tmp_path / 'none'}")
    assert no_token.returncode == 2
    assert no_token.stderr.strip() == f"redline demo fault: --token-file {tmp_path / 'none'}: no such file"


def test_cli_fault_and_faults_against_a_running_demo(tmp_path):
    ports = {part: free_port() for part in DEMO_PARTS}
    control = f"http://127.0.0.1:{ports['control']}"
    token_file = control_token(tmp_path)
    demo = [*REDLINE, "demo", *[f"--port={p}={ports[p]}" for p in DEMO_PARTS], "--seed=1"]
    demo.append(f"--control-token-file={token_file}")

    def run_cli(*args: str) -> subprocess.CompletedProcess:
        """`redline demo ARGS` with the demo's token (the faults need it; listing does not)."""
        extra = [f"--token-file={token_file}"] if args[0] == "fault" else []
        return subprocess.run([*REDLINE, "demo", *args, *extra], capture_output=True, text=True, timeout=30)

    with running(demo, ready_url=f"{control}/health", log=tmp_path / "demo.log"):
        # Without the token (or with another one) nothing changes: 401.
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-token\n")
        refused = subprocess.run(
            [*REDLINE, "demo", "fault", "tmux", "memory", "--control", control, f"--token-file={wrong}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode == 1 and "answered 401" in refused.stderr, refused.stderr
        query = "/fault?system=tmux&fault=memory"
        for method in ("POST", "DELETE"):
            request = urllib.request.Request(control + query, method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(request, timeout=5)
            assert err.value.code == 401
        assert not any(row["active"] for row in json.loads(http_get(f"{control}/faults")[1]))
        assert run_cli("fault", "tmux", "memory", "--control", control).returncode == 0
        listed = run_cli("faults", "--control", control).stdout
        assert any(line.split()[:3] == ["ON", "tmux", "memory"] for line in listed.splitlines()), listed
        tmux = http_get(f"http://127.0.0.1:{ports['tmux']}/metrics")[1]
        rss = [line for line in tmux.splitlines() if line.startswith("process_resident_memory_bytes ")]
        assert 500e6 < float(rss[0].split()[1]) < 750e6
        assert (
            'redline_demo_fault_active{fault="memory",system="tmux"} 1.0' in http_get(f"{control}/metrics")[1]
        )
        assert run_cli("fault", "tmux", "memory", "--clear", "--control", control).returncode == 0
        rows = json.loads(http_get(f"{control}/faults")[1])
        assert not any(row["active"] for row in rows)
        # 'down' stops qerrors answering at all, and it comes back on the same port.
        assert run_cli("fault", "qerrors", "down", "--control", control).returncode == 0
        with pytest.raises(OSError):
            http_get(f"http://127.0.0.1:{ports['qerrors']}/metrics", timeout=2)
        assert run_cli("fault", "qerrors", "down", "--clear", "--control", control).returncode == 0
        assert http_get(f"http://127.0.0.1:{ports['qerrors']}/metrics")[0] == 200
        # gamebook 'down' keeps /metrics but fails /health (what blackbox probes).
        assert run_cli("fault", "gamebook", "down", "--control", control).returncode == 0
        assert http_get(f"http://127.0.0.1:{ports['gamebook']}/health")[0] == 503
        assert http_get(f"http://127.0.0.1:{ports['gamebook']}/metrics")[0] == 200
        # Without --pipeline-dsn the job and database faults are refused, saying why; 'down' still works.
        for fault in ("db-down", "concurrency-critical"):
            refused = run_cli("fault", "pipeline", fault, "--control", control)
            assert refused.returncode == 1, refused
            assert "answered 409" in refused.stderr and "--pipeline-dsn" in refused.stderr, refused.stderr
        assert run_cli("fault", "pipeline", "down", "--control", control).returncode == 0
        assert run_cli("fault", "pipeline", "down", "--clear", "--control", control).returncode == 0
        rows = json.loads(http_get(f"{control}/faults")[1])
        assert not any(row["active"] for row in rows if row["system"] == "pipeline")


def job_table_locks(dsn: str) -> int:
    """Fault sessions holding ACCESS EXCLUSIVE on the job table of the database `dsn` reaches."""
    query = """
        SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = 'jobs'::regclass AND l.mode = 'AccessExclusiveLock'
          AND l.granted AND a.application_name = %s
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, (FAULT_APPLICATION,)).fetchone()
        return int(row[0]) if row else 0


def table_exists(dsn: str, table: str = "jobs") -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        return row is not None and row[0] is not None


def test_database_faults_without_the_privileges_say_so(tmp_path):
    """A role that is not superuser: db-down explains the missing privilege and changes nothing."""
    with pg_cluster() as pg:
        pg.execute("CREATE ROLE app LOGIN")
        pg.execute("CREATE DATABASE appdb")
        superuser = database_dsn(pg, "appdb")
        with psycopg.connect(superuser, autocommit=True) as conn:
            conn.execute("GRANT ALL ON SCHEMA public TO app")
        ports = {part: free_port() for part in DEMO_PARTS}
        control = f"http://127.0.0.1:{ports['control']}"
        demo = [
            *REDLINE,
            "demo",
            *[f"--port={p}={ports[p]}" for p in DEMO_PARTS],
            f"--pipeline-dsn={database_dsn(pg, 'appdb', user='app')}",
            "--time-scale=30",
            "--seed=1",
        ]

        def allowed() -> bool:
            return bool(pg.execute("SELECT datallowconn FROM pg_database WHERE datname = 'appdb'")[0][0])

        with running(demo, ready_url=f"{control}/health", log=tmp_path / "demo.log"):
            # app does not own appdb: ALTER DATABASE is refused
            denied = run_cli("fault", "pipeline", "db-down", "--control", control)
            assert denied.returncode == 1 and "answered 403" in denied.stderr, denied.stderr
            assert "role 'app' may not refuse connections to database 'appdb'" in denied.stderr
            assert "owner or a superuser" in denied.stderr
            assert allowed()
            # app owns appdb but may not end a superuser's session: the ALTER is undone
            pg.execute("ALTER DATABASE appdb OWNER TO app")
            with psycopg.connect(superuser, autocommit=True) as held:
                denied = run_cli("fault", "pipeline", "db-down", "--control", control)
                assert denied.returncode == 1 and "answered 403" in denied.stderr, denied.stderr
                assert "may not end 1 session(s) of role(s) postgres" in denied.stderr
                assert "pg_signal_backend" in denied.stderr and "allowed again" in denied.stderr
                assert allowed()
                held.execute("SELECT 1")
            rows = json.loads(http_get(f"{control}/faults")[1])
            assert not any(row["active"] for row in rows)
            # what the role may do works: the table it created can be locked
            wait_until(lambda: table_exists(superuser), timeout=10, what="the demo's job table")
            for clear, locks in (((), 1), (("--clear",), 0)):
                locked = run_cli("fault", "pipeline", "job-table-locked", *clear, "--control", control)
                assert locked.returncode == 0, locked.stderr
                assert job_table_locks(superuser) == locks, f"job-table-locked {clear}: {locks} lock(s)"


class PipelineDb:
    """Database `pipeline` with the job table, watched from a session on `postgres` that db-down leaves
    alone (and that counts the same in the connections in use all along)."""

    def __init__(self, pg: PgCluster) -> None:
        self.name = "pipeline"
        self.dsn = database_dsn(pg, self.name)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(reference_schema())
            row = conn.execute("SELECT 'jobs'::regclass::oid").fetchone()
        assert row is not None
        self.jobs = int(row[0])
        self.admin = psycopg.connect(pg.dsn, autocommit=True)

    def rows(self, query: str, *args: object) -> list[tuple]:
        return self.admin.execute(query, args or None).fetchall()  # type: ignore[arg-type]

    def locks(self) -> int:
        """Fault sessions holding ACCESS EXCLUSIVE on the job table."""
        return int(
            self.rows(
                """
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'relation' AND l.relation = %s AND l.mode = 'AccessExclusiveLock'
                  AND l.granted AND a.application_name = %s
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = %s)
                """,
                self.jobs,
                FAULT_APPLICATION,
                self.name,
            )[0][0]
        )

    def fault_sessions(self) -> set[int]:
        query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s"
        return {int(pid) for (pid,) in self.rows(query, FAULT_APPLICATION, self.name)}

    def used(self) -> int:
        """The connections in use, as db-connections counts them."""
        return int(self.rows("SELECT coalesce(sum(numbackends), 0)::int FROM pg_stat_database")[0][0])

    def allows_connections(self) -> bool:
        return bool(self.rows("SELECT datallowconn FROM pg_database WHERE datname = %s", self.name)[0][0])


@pytest.fixture(scope="module")
def pipeline_db():
    with pg_cluster() as pg:
        pg.execute("CREATE DATABASE pipeline")
        db = PipelineDb(pg)
        try:
            yield db
        finally:
            db.admin.close()


def socket_fds() -> int:
    """Sockets this process has open (a session the server ended keeps its socket until closed)."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):  # the directory's own fd, closed by now
            count += os.readlink(fds / fd).startswith("socket:")
    return count


def test_job_table_lock_is_taken_again_after_db_down(pipeline_db):
    """db-down ends the lock's session; while job-table-locked is on, clearing db-down locks it again."""
    db = pipeline_db
    faults = DatabaseFaults(db.dsn)
    try:
        faults.lock_table()
        assert db.locks() == 1
        faults.lock_table()  # idempotent
        assert db.locks() == 1
        faults.refuse_connections()
        wait_until(lambda: db.locks() == 0, timeout=5, what="db-down ending the lock's session")
        faults.allow_connections()
        assert db.locks() == 1, "job-table-locked is still on but the table is not locked after db-down"
        # injected again while db-down is on: it says it cannot lock (no lock is claimed), and locks after
        faults.refuse_connections()
        wait_until(lambda: db.locks() == 0, timeout=5, what="db-down ending the lock's session")
        with pytest.raises(FaultError) as refused:
            faults.lock_table()
        assert refused.value.status == 503 and "cannot connect" in str(refused.value)
        faults.allow_connections()
        assert db.locks() == 1
        # the lock's session ended some other way: injecting the fault again takes the lock again
        db.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            FAULT_APPLICATION,
        )
        wait_until(lambda: db.locks() == 0, timeout=5, what="the lock's session to end")
        faults.lock_table()
        assert db.locks() == 1
        faults.unlock_table()
        assert db.locks() == 0
        # db-down on and off with the fault cleared takes no lock
        faults.refuse_connections()
        faults.allow_connections()
        assert db.locks() == 0 and not db.fault_sessions()
    finally:
        faults.clear_all()
    assert db.allows_connections()


def test_connection_filler_replaces_the_sessions_db_down_ended(pipeline_db):
    """After db-down on and off, db-connections is back at its target, holding only live sessions."""
    db = pipeline_db
    faults = DatabaseFaults(db.dsn)
    sockets = socket_fds()

    def settled(target: int) -> bool:
        """At the target, each session held is one the server has, and nothing else keeps a socket."""
        filler = faults._filler
        assert filler is not None
        held = [conn.info.backend_pid for conn in filler._held if not conn.closed]
        live = db.fault_sessions()
        return (
            db.used() == target
            and len(filler._held) + 1 == len(live)  # + the filler's monitor session
            and set(held) <= live
            and socket_fds() - sockets == len(live)
        )

    try:
        faults.fill_connections()
        assert faults._filler is not None
        target = faults._filler.target
        wait_until(lambda: settled(target), timeout=15, what=f"db-connections holding {target} in use")
        faults.refuse_connections()
        wait_until(lambda: not db.fault_sessions(), timeout=5, what="db-down ending the fault's sessions")
        time.sleep(1)  # the filler tries (and fails) to reconnect while the database refuses connections
        faults.allow_connections()
        wait_until(
            lambda: settled(target),
            timeout=15,
            what=f"db-connections back at {target} in use, holding no session the server ended",
        )
    finally:
        faults.clear_all()
    wait_until(lambda: not db.fault_sessions(), timeout=5, what="the fault's sessions to close")
    assert socket_fds() == sockets


def test_db_down_undoes_the_alter_when_ending_sessions_fails(pipeline_db, monkeypatch):
    """An unexpected error while ending the sessions: 503 with the reason, connections allowed again."""
    db = pipeline_db
    faults = DatabaseFaults(db.dsn)

    def fails(admin: psycopg.Connection, dbname: str) -> list:
        admin.execute("SELECT 1 / 0")
        return []

    def breaks_its_session(admin: psycopg.Connection, dbname: str) -> list:
        admin.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return []

    for terminate, reason in ((fails, "division by zero"), (breaks_its_session, "terminating connection")):
        monkeypatch.setattr(faults, "_terminate", terminate)
        with pytest.raises(FaultError) as failed:
            faults.refuse_connections()
        assert failed.value.status == 503, failed.value
        assert reason in str(failed.value) and "'pipeline' are allowed again" in str(failed.value)
        assert db.allows_connections()
        assert faults._refused is None
