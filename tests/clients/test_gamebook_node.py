"""GameBook's server as a team runs it: a Node 20 process with prom-client and docs/instrumenting/node.md's
gamebook-metrics.js, scraped by the suite's stack. "Response time < 100ms" read as a current value:
requests at 200 ms fire GamebookLatencyHigh (more than 5% slower than 0.1 s) at the ticket receiver, fast
requests resolve it; a saturated worker pool and an open circuit breaker fire and resolve their warnings;
"Memory usage < 80%" of the limit the guide exports (GAMEBOOK_MEMORY_LIMIT_BYTES here) and "CPU usage <
70%" (a worker thread spinning) fire GamebookMemoryHigh and GamebookCpuHigh and resolve; a server that
exits fails its /health probe and pages GamebookDown until it is back; `redline verify-target` passes the
server against GameBook's contract."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.paths import ROOT
from redline.testing.processes import free_port, running, wait_until
from redline.testing.snippets import write_snippets

from .conftest import NODE_DIR, ClientStack, node_modules, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MEMORY_LIMIT = 320 * 2**20  # GAMEBOOK_MEMORY_LIMIT_BYTES: an idle Node 20 is resident in about 60 MB


@pytest.fixture(scope="module")
def metrics_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node_modules()
    folder = tmp_path_factory.mktemp("gamebook")
    return write_snippets(ROOT / "docs" / "instrumenting" / "node.md", folder)["gamebook-metrics.js"]


def start(
    metrics_js: Path, log: Path, port: int | None = None, limit: int | None = MEMORY_LIMIT
) -> tuple[int, contextlib.AbstractContextManager[subprocess.Popen]]:
    """tests/clients/node/gamebook-app.js on `port` (else a free one), GAMEBOOK_MEMORY_LIMIT_BYTES=`limit`
    (none: unset); --expose-gc for /release."""
    port = port or free_port()
    env = {
        "PORT": str(port),
        "REDLINE_METRICS_JS": str(metrics_js),
        "NODE_PATH": str(NODE_DIR / "node_modules"),
        "GAMEBOOK_MEMORY_LIMIT_BYTES": "" if limit is None else str(limit),
    }
    cmd = ["node", "--expose-gc", str(NODE_DIR / "gamebook-app.js")]
    return port, running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", env=env, log=log)


@pytest.fixture(scope="module")
def server(metrics_js: Path) -> Iterator[str]:
    port, context = start(metrics_js, metrics_js.parent / "node.log")
    with context:
        yield f"http://127.0.0.1:{port}"


def control(server: str, path: str) -> bytes:
    """POST to the app's control routes (tests/clients/node/gamebook-app.js); the answer."""
    request = urllib.request.Request(f"{server}{path}", method="POST")
    return urllib.request.urlopen(request, timeout=30).read()


def sample(server: str, name: str) -> float:
    """The value of the unlabelled series `name` on the server's /metrics."""
    text = urllib.request.urlopen(f"{server}/metrics", timeout=5).read().decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def scraped(stack: ClientStack, name: str, server: str) -> str:
    """The server in scrape job gamebook (target file `name`), once Prometheus has scraped it."""
    instance = server.removeprefix("http://")
    stack.add_targets(name, "gamebook", [instance], {"system": "gamebook"})
    wait_until(lambda: stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
    return instance


def described_value(alert: dict) -> float:
    """The percentage the alert's description quotes ("... is 87.5%: warning when above ...")."""
    match = re.search(r" is ([0-9.]+)%: ", alert["annotations"]["description"])
    assert match, alert["annotations"]["description"]
    return float(match.group(1))


def traffic(server: str, rate: int, seconds: float) -> None:
    control(server, f"/traffic?rate={rate}&seconds={seconds}")


def test_the_server_meets_the_gamebook_contract(server: str) -> None:
    traffic(server, 10, 0.02)
    wait_until(
        lambda: b"http_request_duration_seconds_count" in urllib.request.urlopen(f"{server}/metrics").read(),
        what="a request observed",
    )
    result = subprocess.run(
        [sys.executable, "-m", "redline.cli", "verify-target", f"{server}/metrics", "--system", "gamebook"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        "meets the gamebook contract: 8 metrics checked, 0 problems, 0 notes"
    )


def test_p95_above_100ms_fires_and_resolves(client_stack: ClientStack, server: str) -> None:
    instance = scraped(client_stack, "latency", server)
    since = len(client_stack.sandbox.notifications())
    traffic(server, 50, 0.2)
    record, alert = wait_alert(client_stack, "GamebookLatencyHigh", "firing", since, instance=instance)
    assert record["path"] == "/ticket" and alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == "GameBook p95 response time is above 100 ms"
    traffic(server, 3000, 0.02)
    wait_alert(client_stack, "GamebookLatencyHigh", "resolved", since, timeout=120, instance=instance)


def test_a_saturated_pool_and_an_open_breaker_fire_and_resolve(
    client_stack: ClientStack, server: str
) -> None:
    """The guide's setPool and setBreaker: 15 of 16 workers busy (94% > 90%) and the storage breaker open
    fire their warnings at the ticket receiver with the pool and breaker labels; back to 2 busy and a
    closed breaker resolve them."""
    instance = scraped(client_stack, "pool", server)
    since = len(client_stack.sandbox.notifications())
    control(server, "/pool?busy=15")
    control(server, "/breaker?open=1")
    pool = wait_alert(client_stack, "GamebookWorkerPoolSaturated", "firing", since, instance=instance)[1]
    breaker = wait_alert(client_stack, "GamebookCircuitBreakerOpen", "firing", since, instance=instance)[1]
    assert (pool["labels"]["pool"], pool["labels"]["severity"]) == ("render", "warning")
    assert (breaker["labels"]["breaker"], breaker["labels"]["severity"]) == ("storage", "warning")
    control(server, "/pool?busy=2")
    control(server, "/breaker?open=0")
    wait_alert(client_stack, "GamebookWorkerPoolSaturated", "resolved", since, timeout=120, instance=instance)
    wait_alert(client_stack, "GamebookCircuitBreakerOpen", "resolved", since, timeout=120, instance=instance)


def machine_limit() -> int:
    """The guide's fallback without GAMEBOOK_MEMORY_LIMIT_BYTES: a cgroup limit below the machine's memory
    (v2 memory.max, else v1 memory.limit_in_bytes), else the machine's memory (MemTotal, as os.totalmem)."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal:"))) * 1024
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limit = int(Path(name).read_text())  # "max" (v2 unlimited) is a ValueError
            if 0 < limit < total:
                return limit
    return total


def test_without_the_variable_the_limit_is_the_cgroups_else_the_machines(
    metrics_js: Path, tmp_path: Path
) -> None:
    """Unset, the guide reads the cgroup; an unlimited one (v1's 2^63 rounded to pages, v2's "max") is
    not a limit: the gauge is then the machine's memory, never the 2^64 of Node 20's constrainedMemory()."""
    port, context = start(metrics_js, tmp_path / "node.log", limit=None)
    with context:
        limit = sample(f"http://127.0.0.1:{port}", "gamebook_memory_limit_bytes")
    assert limit == machine_limit()
    assert 0 < limit < 2**62


def test_memory_above_80_percent_of_the_limit_fires_and_resolves(
    client_stack: ClientStack, server: str
) -> None:
    """Touched buffers make the server resident above 90% of GAMEBOOK_MEMORY_LIMIT_BYTES (320 MB):
    GamebookMemoryHigh reaches the ticket receiver with the target's labels and the ratio; released and
    collected, the resident memory falls below half the limit and the alert resolves."""
    assert sample(server, "gamebook_memory_limit_bytes") == MEMORY_LIMIT
    instance = scraped(client_stack, "memory", server)
    rss = sample(server, "process_resident_memory_bytes")
    assert rss < 0.5 * MEMORY_LIMIT
    since = len(client_stack.sandbox.notifications())
    for _ in range(40):
        if rss > 0.9 * MEMORY_LIMIT:
            break
        rss = json.loads(control(server, "/hold?mb=16"))["rss"]
    assert rss > 0.9 * MEMORY_LIMIT
    record, alert = wait_alert(client_stack, "GamebookMemoryHigh", "firing", since, instance=instance)
    assert record["path"] == "/ticket"
    labels = alert["labels"]
    assert (labels["severity"], labels["system"], labels["job"]) == ("warning", "gamebook", "gamebook")
    assert alert["annotations"]["summary"] == "GameBook server memory is above its production limit"
    assert 80 < described_value(alert) < 120
    control(server, "/release")
    wait_until(
        lambda: sample(server, "process_resident_memory_bytes") < 0.5 * MEMORY_LIMIT,
        what="the buffers' memory returned",
    )
    wait_alert(client_stack, "GamebookMemoryHigh", "resolved", since, instance=instance)


def cpu_rate(stack: ClientStack, instance: str, window: str) -> float:
    """rate(process_cpu_seconds_total[window]) of the instance as Prometheus has it (0 before data)."""
    result = stack.sandbox.query(f'rate(process_cpu_seconds_total{{instance="{instance}"}}[{window}])')
    return float(result[0]["value"][1]) if result else 0.0


def test_spinning_workers_above_70_percent_cpu_fire_and_resolve(
    client_stack: ClientStack, server: str
) -> None:
    """Worker threads spin until the process uses more than 70% of a core for the rule's minute. On a
    loaded machine one spinning thread gets far less than a core (the scheduler shares the cores between
    every runnable thread), so every 15 s the test adds a worker while the last 15 s' rate is under 0.9,
    up to 8: whatever the load, the process's own CPU time, as Prometheus scraped it, passes 0.7.
    GamebookCpuHigh reaches the ticket receiver quoting that rate; the workers stop and it resolves once
    the minute's rate is back under 0.7."""
    instance = scraped(client_stack, "cpu", server)
    since = len(client_stack.sandbox.notifications())
    workers, started = 1, time.monotonic()
    control(server, f"/cpu?workers={workers}")
    try:
        while (
            found := next(
                client_stack.sandbox.matching_alerts("GamebookCpuHigh", "firing", since, instance=instance),
                None,
            )
        ) is None:
            elapsed = time.monotonic() - started
            assert elapsed < 300, f"GamebookCpuHigh not firing after 300 s, {workers} workers spinning"
            if elapsed > 15 * workers and workers < 8 and cpu_rate(client_stack, instance, "15s") < 0.9:
                workers += 1
                control(server, f"/cpu?workers={workers}")
            time.sleep(0.5)
    finally:
        control(server, "/cpu?workers=0")
    fired = time.monotonic() - started
    record, alert = found
    assert record["path"] == "/ticket"
    labels = alert["labels"]
    assert (labels["instance"], labels["severity"], labels["system"]) == (instance, "warning", "gamebook")
    assert labels["job"] == "gamebook"
    assert alert["annotations"]["summary"] == "GameBook server CPU usage is above its production limit"
    assert 70 < described_value(alert) <= 100 * (workers + 1)  # the workers and the main thread
    assert fired > 10, fired  # a 1m rate does not pass 70% on the first seconds of work
    print(f"GamebookCpuHigh fired after {fired:.0f} s with {workers} spinning workers")
    wait_alert(client_stack, "GamebookCpuHigh", "resolved", since, timeout=180, instance=instance)
    assert cpu_rate(client_stack, instance, "1m") < 0.7


def test_a_server_that_exits_pages_down_and_resolves(
    client_stack: ClientStack, metrics_js: Path, tmp_path: Path
) -> None:
    """Last in this module: a critical *Down alert holds back GameBook's other alerts while it fires.
    The stack's blackbox_exporter probes the server's /health; the process exits, the probe fails and
    GamebookDown pages (/pager); the server back on its port resolves it."""
    port, context = start(metrics_js, tmp_path / "down-1.log")
    url = f"http://127.0.0.1:{port}/health"
    client_stack.add_probe("gamebook-down", url, "gamebook")
    try:
        with context:
            wait_until(
                lambda: client_stack.sandbox.query(f'probe_success{{instance="{url}"}} == 1'),
                timeout=60,
                what="the /health probe succeeding",
            )
            since = len(client_stack.sandbox.notifications())
        record, alert = wait_alert(client_stack, "GamebookDown", "firing", since, instance=url)
        assert record["path"] == "/pager"
        labels = alert["labels"]
        assert (labels["severity"], labels["system"], labels["job"]) == ("critical", "gamebook", "blackbox")
        assert alert["annotations"]["summary"] == "GameBook health endpoint is failing"
        _port, again = start(metrics_js, tmp_path / "down-2.log", port=port)
        with again:
            wait_alert(client_stack, "GamebookDown", "resolved", since, instance=url)
    finally:
        client_stack.remove_targets("gamebook-down", "probes")
