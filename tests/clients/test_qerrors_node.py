"""qerrors as a team runs it: a Node 20 process with prom-client and the documented instrumentation
(docs/instrumenting/node.md's metrics.js), scraped by the stack's Prometheus, driven into and out of its
thresholds; every alert must reach the pager-sink and resolve there.

The heap alert must mean pressure: an idle process stays far below 70% of V8's heap limit (sampled every
50 ms here, and a recorded 10-minute idle run replayed through the real rule with promtool), while one
holding memory near its limit fires. A cache that only misses (prom-client has no hits series for it)
fires the hit-ratio alert.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from redline.paths import ROOT
from redline.testing.processes import free_port, running, tool, wait_until
from redline.testing.snippets import write_snippets

from .conftest import NODE_DIR, ClientStack, node_modules, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

APP = NODE_DIR / "qerrors-app.js"
RECORDING = ROOT / "tests" / "clients" / "fixtures" / "node20-idle-heap.json"
TARGET = {"system": "qerrors", "env": "production"}


class NodeService:
    """One qerrors-app.js process: its port, its control routes."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.port, self.proc = port, proc
        self.url = f"http://127.0.0.1:{port}"

    def post(self, path: str) -> str:
        request = urllib.request.Request(self.url + path, method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.read().decode()

    def heap(self) -> dict:
        with urllib.request.urlopen(self.url + "/heap", timeout=5) as resp:
            return dict(json.load(resp)["v8"])

    def used_of_limit(self) -> float:
        heap = self.heap()
        return float(heap["used_heap_size"]) / float(heap["heap_size_limit"])


@pytest.fixture(scope="module")
def instrumentation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node_modules()
    files = write_snippets(ROOT / "docs" / "instrumenting" / "node.md", tmp_path_factory.mktemp("node"))
    return files["metrics.js"]


def start(metrics_js: Path, log: Path, *node_flags: str, port: int | None = None):
    port = port or free_port()
    env = {
        "PORT": str(port),
        "REDLINE_METRICS_JS": str(metrics_js),
        "NODE_PATH": str(NODE_DIR / "node_modules"),
    }
    cmd = ["node", *node_flags, str(APP)]
    return port, running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", log=log, env=env)


@pytest.fixture
def service(instrumentation: Path, tmp_path: Path) -> Iterator[NodeService]:
    # 128 MB of old space and 1 MB semi-spaces: the heap limit is about 131 MB, nearly all of it fillable
    flags = ("--expose-gc", "--max-old-space-size=128", "--max-semi-space-size=1")
    port, context = start(instrumentation, tmp_path / "node.log", *flags)
    with context as proc:
        yield NodeService(port, proc)


def test_an_idle_process_stays_far_below_the_heap_limit(instrumentation: Path, tmp_path: Path) -> None:
    """A fresh idle Node 20 process, its heap sampled every 50 ms for 15 s: used / limit stays below 5%
    (the alert is at 70%), while the seed's used / total is what prom-client's defaults would show."""
    port, context = start(instrumentation, tmp_path / "idle.log")
    with context:
        idle = NodeService(port, None)  # type: ignore[arg-type]
        ratios, totals = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            heap = idle.heap()
            ratios.append(heap["used_heap_size"] / heap["heap_size_limit"])
            totals.append(heap["used_heap_size"] / heap["total_heap_size"])
            time.sleep(0.05)
    assert len(ratios) > 100
    assert max(ratios) < 0.05, f"idle used / limit reached {max(ratios):.3f}"
    print(f"idle: used/limit max {max(ratios):.4f}; used/total mean {sum(totals) / len(totals):.2f}")


def test_a_recorded_ten_minute_idle_run_never_fires_the_heap_rule(tmp_path: Path) -> None:
    """The 10-minute recording of a real idle process (bench/node_idle_heap.py) through the generated
    rule file with promtool: QerrorsHeapUsageHigh (70% for 5m) never fires, at any minute."""
    record = json.loads(RECORDING.read_text())
    assert record["node"].startswith("v20.") and record["seconds"] >= 600
    labels = 'env="production",instance="127.0.0.1:9202",job="qerrors",system="qerrors"'
    series = []
    for column, name in enumerate(record["columns"][1:], start=1):
        values = " ".join(str(int(sample[column])) for sample in record["samples"])
        series.append({"series": f"{name}{{{labels}}}", "values": values})
    tests = {
        "rule_files": [str(ROOT / "prometheus" / "rules" / "qerrors.yml")],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": f"{minute}m", "alertname": "QerrorsHeapUsageHigh", "exp_alerts": []}
                    for minute in range(1, record["seconds"] // 60 + 1)
                ],
                "promql_expr_test": [
                    {
                        "expr": "max_over_time(instance:qerrors_heap_used_of_limit:ratio[10m]) < 0.05",
                        "eval_time": f"{record['seconds'] - 1}s",
                        "exp_samples": [{"labels": "{" + labels + "}", "value": _max_ratio(record)}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "idle_test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _max_ratio(record: dict) -> float:
    """max of used / limit over the recording (what max_over_time of the recorded rule returns)."""
    return max(int(s[1]) / int(s[3]) for s in record["samples"][:-1])


def test_heap_near_the_limit_fires_and_resolves(client_stack: ClientStack, service: NodeService) -> None:
    client_stack.add_targets("heap", "qerrors", [f"127.0.0.1:{service.port}"], TARGET)
    instance = f"127.0.0.1:{service.port}"
    wait_until(lambda: client_stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
    since = len(client_stack.sandbox.notifications())
    while service.used_of_limit() < 0.78:
        service.post("/hold?mb=5")
    held = service.used_of_limit()
    record, alert = wait_alert(client_stack, "QerrorsHeapUsageHigh", "firing", since, instance=instance)
    assert record["path"] == "/ticket" and alert["labels"]["severity"] == "warning"
    assert alert["labels"]["env"] == "production"
    assert "of V8's heap limit" in alert["annotations"]["description"]
    service.post("/release")
    assert service.used_of_limit() < 0.2 < 0.7 < held
    wait_alert(client_stack, "QerrorsHeapUsageHigh", "resolved", since, instance=instance)


def test_a_cache_with_zero_hits_fires_and_resolves(client_stack: ClientStack, service: NodeService) -> None:
    """Only misses: prom-client has no qerrors_cache_hits_total{cache} series, the ratio is 0 and alerts;
    hits then arrive and it resolves."""
    client_stack.add_targets("cache", "qerrors", [f"127.0.0.1:{service.port}"], {**TARGET, "env": "staging"})
    service.post("/traffic?misses=50&cache=cold")
    instance = f"127.0.0.1:{service.port}"
    wait_until(lambda: client_stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
    text = urllib.request.urlopen(service.url + "/metrics", timeout=5).read().decode()
    assert 'qerrors_cache_misses_total{cache="cold"}' in text
    assert 'qerrors_cache_hits_total{cache="cold"}' not in text  # prom-client's lazy series
    since = len(client_stack.sandbox.notifications())
    record, alert = wait_alert(client_stack, "QerrorsCacheHitRateLow", "firing", since, cache="cold")
    assert record["path"] == "/ticket" and alert["labels"]["env"] == "staging"
    assert "is 0%" in alert["annotations"]["description"]
    service.post("/traffic?hits=2000&cache=cold")
    wait_alert(client_stack, "QerrorsCacheHitRateLow", "resolved", since, timeout=120, cache="cold")


def test_slow_requests_fire_the_latency_alert_and_resolve(
    client_stack: ClientStack, service: NodeService
) -> None:
    client_stack.add_targets("latency", "qerrors", [f"127.0.0.1:{service.port}"], {**TARGET, "env": "canary"})
    service.post("/traffic?hits=20&seconds=0.2")
    since = len(client_stack.sandbox.notifications())
    _record, alert = wait_alert(client_stack, "QerrorsLatencyHigh", "firing", since, env="canary")
    assert alert["labels"]["severity"] == "warning"
    service.post("/traffic?hits=2000&seconds=0.002")
    wait_alert(client_stack, "QerrorsLatencyHigh", "resolved", since, timeout=120, env="canary")


def test_a_stopped_process_pages_down_and_resolves(
    client_stack: ClientStack, instrumentation: Path, tmp_path: Path
) -> None:
    port, context = start(instrumentation, tmp_path / "down-1.log")
    instance = f"127.0.0.1:{port}"
    client_stack.add_targets("down", "qerrors", [instance], TARGET)
    with context:
        wait_until(lambda: client_stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
        since = len(client_stack.sandbox.notifications())
    record, alert = wait_alert(client_stack, "QerrorsDown", "firing", since, instance=instance)
    assert record["path"] == "/pager" and alert["labels"]["severity"] == "critical"
    _port, again = start(instrumentation, tmp_path / "down-2.log", port=port)
    with again:
        wait_alert(client_stack, "QerrorsDown", "resolved", since, instance=instance)


def test_the_guides_server_serves_the_contract(instrumentation: Path, tmp_path: Path) -> None:
    """docs/instrumenting/node.md's server.js as written: /metrics has prom-client's heap gauges, the heap
    limit, and after one request the lazily created cache series; `redline verify-target` passes it (the
    misses and errors series prom-client has not created yet are notes)."""
    port = free_port()
    env = {"PORT": str(port), "NODE_PATH": str(NODE_DIR / "node_modules")}
    server = instrumentation.parent / "server.js"
    url = f"http://127.0.0.1:{port}/metrics"
    with running(["node", str(server)], ready_url=url, env=env):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/cached", timeout=5).read()
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        # the guide's own check: `redline verify-target URL --system qerrors`
        verified = subprocess.run(
            [sys.executable, "-m", "redline.cli", "verify-target", url, "--system", "qerrors"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lines = verified.stdout.splitlines()
    assert lines[-1].endswith("meets the qerrors contract: 8 metrics checked, 0 problems, 2 notes")
    notes = sorted(line.split(":")[1].split()[0] for line in lines if line.startswith("note"))
    assert notes == ["qerrors_cache_misses_total", "qerrors_errors_total"]
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"
    }
    assert 0 < values["nodejs_heap_size_used_bytes"] < values["nodejs_heap_size_limit_bytes"]
    assert values['qerrors_cache_hits_total{cache="advice"}'] == 1
    assert 'qerrors_cache_misses_total{cache="advice"}' not in values
    assert values["qerrors_requests_total"] == 1
    assert values['qerrors_request_duration_seconds_bucket{le="0.05"}'] == 1
