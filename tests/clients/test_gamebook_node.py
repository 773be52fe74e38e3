"""GameBook's server as a team runs it: a Node 20 process with prom-client and docs/instrumenting/node.md's
gamebook-metrics.js, scraped by the suite's stack. "Response time < 100ms" read as a current value:
requests at 200 ms fire GamebookLatencyHigh (more than 5% slower than 0.1 s) at the ticket receiver, fast
requests resolve it; a saturated worker pool and an open circuit breaker fire and resolve their warnings;
`redline verify-target` passes the server against GameBook's contract."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from redline.paths import ROOT
from redline.testing.processes import free_port, running, wait_until
from redline.testing.snippets import write_snippets

from .conftest import NODE_DIR, ClientStack, node_modules, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node_modules()
    folder = tmp_path_factory.mktemp("gamebook")
    metrics_js = write_snippets(ROOT / "docs" / "instrumenting" / "node.md", folder)["gamebook-metrics.js"]
    port = free_port()
    env = {
        "PORT": str(port),
        "REDLINE_METRICS_JS": str(metrics_js),
        "NODE_PATH": str(NODE_DIR / "node_modules"),
    }
    app = NODE_DIR / "gamebook-app.js"
    with running(
        ["node", str(app)], ready_url=f"http://127.0.0.1:{port}/metrics", env=env, log=folder / "node.log"
    ):
        yield f"http://127.0.0.1:{port}"


def control(server: str, path: str) -> None:
    """POST to the app's control routes (tests/clients/node/gamebook-app.js)."""
    urllib.request.urlopen(urllib.request.Request(f"{server}{path}", method="POST"), timeout=5).read()


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
    instance = server.removeprefix("http://")
    client_stack.add_targets("latency", "gamebook", [instance], {"system": "gamebook"})
    wait_until(lambda: client_stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
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
    instance = server.removeprefix("http://")
    client_stack.add_targets("pool", "gamebook", [instance], {"system": "gamebook"})
    wait_until(lambda: client_stack.sandbox.query(f'up{{instance="{instance}"}} == 1'), what="scraped")
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
