"""`redline demo` end to end: every fault trips its catalogue alert expressions, and they clear.

One stack: the demo (all systems), a throwaway PostgreSQL with the job table, the job exporter,
blackbox_exporter probing /health, vmagent receiving the browsers' OTLP FPS and remote-writing into a
real Prometheus that runs the repo's prometheus.yml and the rules generated from the catalogue (1 s
scrape and evaluation). For each fault the test checks, for every (alert, severity) the demo declares in
FAULT_ALERTS, the alert's own expression from the catalogue: false before, true while the fault is on,
false again after it is cleared. Faults on independent signals run in parallel.

Windows like [5m] are not shortened: each Prometheus starts fresh, so a window holds only the seconds
of data the test produced, and a fault that just crossed its threshold is diluted again within
seconds after it is cleared. Faults that would disturb each other's signal run in a second wave
against a fresh Prometheus. qerrors' error-rate rule compares with yesterday's rate, so the test
backfills one day of 1%-error history ending an hour ago (promtool tsdb create-blocks-from).
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from pg import pg_cluster
from support import ROOT, free_port, http_get, prom_query, running, tool, wait_until

from exporters.demo.faults import FAULT_ALERTS, FAULTS
from generator.catalogue import load_catalogue
from generator.rules import render_rules

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
    [("pipeline", "concurrency")],
    [("pipeline", "down")],
    [("tmux", "memory"), ("tmux", "memory-critical")],
    *[[("tmux", f)] for f in ("slow-cycles", "cpu", "errors", "pool-exhaustion", "cache-misses")],
]
# Against a fresh Prometheus: the mean job duration again, and faults that stop a whole instance.
WAVE_2: list[list[tuple[str, str]]] = [
    [("pipeline", "very-slow-jobs"), ("pipeline", "workers-down")],
    [("qerrors", "down")],
    [("qerrors-staging", "down")],
    [("tmux", "unhealthy"), ("tmux", "down")],
]
# rate(counter[5m]) divides by the whole 5 minutes, so on a fresh Prometheus a pure rate stays far below
# its threshold, and once over it stays over until the window has slid past (5 min): too slow for a
# test. The catalogue offers no shortened windows for thresholds, so for these two alerts the test
# checks the same counter against the catalogue's threshold value over a 10 s window instead.
PURE_RATE_ALERTS = {
    "GamebookCpuHigh": 'rate(process_cpu_seconds_total{{system="gamebook"}}[10s]) > {value}',
    "TmuxMonitorCpuHigh": 'rate(process_cpu_seconds_total{{system="tmux"}}[10s]) > {value}',
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
            if name in PURE_RATE_ALERTS:
                return PURE_RATE_ALERTS[name].format(value=threshold.value)
            return threshold.expr
    for alert in catalogue.alerts():
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


class Stack:
    """Everything the faults run against; `prometheus(wave)` starts a fresh Prometheus."""

    def __init__(self, tmp: Path, ports: dict[str, int], blackbox: int) -> None:
        self.tmp = tmp
        self.ports = ports
        self.control = f"http://127.0.0.1:{ports['control']}"
        self.blackbox = blackbox
        self.catalogue = load_catalogue(check_promql=False)
        self.config_dir = tmp / "prometheus"
        self._write_config()

    def _write_config(self) -> None:
        config = self.config_dir
        (config / "targets").mkdir(parents=True)
        (config / "rules").mkdir()
        shutil.copy(ROOT / "prometheus" / "prometheus.yml", config / "prometheus.yml")
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

    def prometheus(self, wave: str, *, baseline: bool):
        port = free_port()
        tsdb = self.tmp / f"tsdb-{wave}"
        if baseline:
            backfill_qerrors_baseline(
                tsdb,
                {
                    "production": f"127.0.0.1:{self.ports['qerrors']}",
                    "staging": f"127.0.0.1:{self.ports['qerrors-staging']}",
                },
            )
        cmd = [
            tool("prometheus"),
            f"--config.file={self.config_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
        ]
        self.prom_url = f"http://127.0.0.1:{port}"
        return running(cmd, ready_url=f"{self.prom_url}/-/ready", log=self.tmp / f"prometheus-{wave}.log")

    def set_fault(self, system: str, fault: str, active: bool) -> None:
        query = urllib.parse.urlencode({"system": system, "fault": fault})
        request = urllib.request.Request(
            f"{self.control}/fault?{query}", method="POST" if active else "DELETE"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

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
        lambda: len(prom_query(stack.prom_url, "up == 1")) == 9,
        timeout=30,
        what="all 9 targets up (6 demo/exporter jobs, 3 probes)",
    )
    wait_until(lambda: prom_query(stack.prom_url, "gamebook_client_fps"), timeout=30, what="FPS via OTLP")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    ports = {part: free_port() for part in DEMO_PARTS}
    ports["jobs"] = free_port()
    blackbox, vmagent = free_port(), free_port()
    with pg_cluster() as pg:
        demo = [
            *REDLINE,
            "demo",
            *[f"--port={part}={ports[part]}" for part in DEMO_PARTS],
            f"--pipeline-dsn={pg.dsn}",
            f"--otlp-endpoint=http://127.0.0.1:{vmagent}/opentelemetry/v1/metrics",
            "--otlp-interval=1",
            "--time-scale=30",
            "--traffic-scale=20",
            "--seed=7",
        ]
        jobs = [*REDLINE, "exporter", "jobs", f"--dsn={pg.dsn}", f"--listen=127.0.0.1:{ports['jobs']}"]
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
            running(demo, ready_url=f"http://127.0.0.1:{ports['control']}/health", log=tmp / "demo.log"),
            running(jobs, ready_url=f"http://127.0.0.1:{ports['jobs']}/metrics", log=tmp / "jobs.log"),
        ):
            results: dict[tuple[str, str], Outcome] = {}
            for wave, tasks, baseline in (("1", WAVE_1, True), ("2", WAVE_2, False)):
                with stack.prometheus(wave, baseline=baseline):
                    vm_cmd = [
                        tool("vmagent"),
                        f"-httpListenAddr=127.0.0.1:{vmagent}",
                        f"-remoteWrite.url={stack.prom_url}/api/v1/write",
                        f"-remoteWrite.tmpDataPath={tmp / ('vmagent-' + wave)}",
                        "-remoteWrite.flushInterval=200ms",
                        "-loggerLevel=WARN",
                    ]
                    ready = f"http://127.0.0.1:{vmagent}/health"
                    with running(vm_cmd, ready_url=ready, log=tmp / "vmagent.log"):
                        wait_stack_ready(stack)
                        results.update(run_wave(stack, tasks))
            for (system, fault), outcome in sorted(results.items()):
                print(
                    f"{system:<16} {fault:<16} on {outcome.seconds_on:5.1f}s  off {outcome.seconds_off:5.1f}s"
                )
            yield results


def test_every_fault_is_tested():
    planned = {fault for wave in (WAVE_1, WAVE_2) for task in wave for fault in task}
    declared = {(system, fault) for system, faults in FAULTS.items() for fault in faults}
    assert planned == declared == set(FAULT_ALERTS)


@pytest.mark.slow
@pytest.mark.parametrize(("system", "fault"), sorted(FAULT_ALERTS))
def test_fault_trips_and_clears_its_alerts(outcomes, system, fault):
    outcome = outcomes[(system, fault)]
    assert outcome.error is None, f"{system} {fault}: {outcome.error}"
    assert outcome.seconds_on > 0 and outcome.seconds_off >= 0


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
    nobody = run_cli("fault", "tmux", "cpu", "--control", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1 and "cannot reach the demo control" in nobody.stderr


def test_cli_fault_and_faults_against_a_running_demo(tmp_path):
    ports = {part: free_port() for part in DEMO_PARTS}
    control = f"http://127.0.0.1:{ports['control']}"
    demo = [*REDLINE, "demo", *[f"--port={p}={ports[p]}" for p in DEMO_PARTS], "--seed=1"]
    with running(demo, ready_url=f"{control}/health", log=tmp_path / "demo.log"):
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
