"""`redline verify-target`: a live exposition (a real prometheus_client registry served over HTTP on
127.0.0.1) against a system's metric contract: exact problem lines and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from redline import verify_target
from redline.cli import COMMANDS
from redline.telemetry.web import serve

QERRORS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def qerrors_registry(
    *, heap_limit: bool = True, buckets: tuple[float, ...] = QERRORS_BUCKETS, requests_type: str = "counter"
) -> CollectorRegistry:
    """What docs/instrumenting/node.md's metrics.js exposes, optionally broken in one way."""
    reg = CollectorRegistry()
    Gauge("nodejs_heap_size_used_bytes", "used", registry=reg).set(6e6)
    Gauge("nodejs_heap_size_total_bytes", "total", registry=reg).set(9e6)
    if heap_limit:
        Gauge("nodejs_heap_size_limit_bytes", "limit", registry=reg).set(4e9)
    Counter("qerrors_cache_hits", "hits", ["cache"], registry=reg)  # no series yet, as prom-client
    Counter("qerrors_cache_misses", "misses", ["cache"], registry=reg).labels("advice").inc()
    Histogram("qerrors_request_duration_seconds", "latency", buckets=buckets, registry=reg).observe(0.02)
    if requests_type == "counter":
        Counter("qerrors_requests", "requests", registry=reg).inc()
    else:
        Gauge("qerrors_requests_total", "requests", registry=reg).set(1)
    Counter("qerrors_errors", "errors", ["type"], registry=reg).labels("timeout").inc()
    return reg


@pytest.fixture
def served() -> Iterator[Callable[[CollectorRegistry], str]]:
    servers = []

    def start(registry: CollectorRegistry) -> str:
        server = serve(registry, "127.0.0.1:0")
        servers.append(server)
        return str(server.metrics_url)

    yield start
    for server in servers:
        server.shutdown()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = verify_target.main(list(args))
    out = capsys.readouterr()
    return code, (out.out + out.err).splitlines()


def test_the_documented_instrumentation_meets_the_contract(served, capsys) -> None:
    code, lines = run(capsys, served(qerrors_registry()), "--system", "qerrors")
    assert code == 0, lines
    assert lines[0].startswith("note no series yet: qerrors_cache_hits_total is declared but has no samples")
    assert lines[-1].endswith("meets the qerrors contract: 8 metrics checked, 0 problems, 1 notes")


def test_a_missing_heap_limit_fails(served, capsys) -> None:
    code, lines = run(capsys, served(qerrors_registry(heap_limit=False)), "--system", "qerrors")
    assert code == 1
    assert "FAIL missing: nodejs_heap_size_limit_bytes (gauge) is not exposed" in lines


def test_a_wrong_type_fails(served, capsys) -> None:
    code, lines = run(capsys, served(qerrors_registry(requests_type="gauge")), "--system", "qerrors")
    assert code == 1
    assert "FAIL wrong type: qerrors_requests_total is gauge, the contract says counter" in lines


def test_buckets_without_the_threshold_fail(served, capsys) -> None:
    url = served(qerrors_registry(buckets=(0.01, 0.1, 1)))
    code, lines = run(capsys, url, "--system", "qerrors")
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL buckets")] == [
        "FAIL buckets: qerrors_request_duration_seconds has no bucket bound at 0.05, which the alerts "
        "compare with (it has 0.01, 0.1, 1; the catalogue's are "
        "0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)"
    ]


def test_missing_labels_and_le_selectors(served, capsys) -> None:
    """GameBook's histogram: its route label missing, and no 0.1 bound (GamebookLatencyHigh's le="0.1")."""
    reg = CollectorRegistry()
    Histogram(
        "http_request_duration_seconds",
        "latency",
        ["method", "status_code"],
        buckets=(0.05, 0.25),
        registry=reg,
    ).labels("GET", "200").observe(0.03)
    code, lines = run(capsys, served(reg), "--system", "gamebook")
    assert code == 1
    assert "FAIL missing labels: http_request_duration_seconds has no label route" in lines
    assert any(
        line.startswith("FAIL buckets: http_request_duration_seconds has no bucket bound at 0.1,")
        for line in lines
    )
    # pushed (gamebook_client_fps) and other exporters' (probe_success) metrics are not the target's job
    assert not any("gamebook_client_fps" in line or "probe_success" in line for line in lines)


def test_bad_input_exits_2_with_one_line(served, capsys) -> None:
    code, lines = run(capsys, "http://127.0.0.1:1/metrics", "--system", "qerrors")
    assert code == 2 and len(lines) == 1 and lines[0].startswith("redline verify-target: cannot scrape")
    code, lines = run(capsys, served(qerrors_registry()), "--system", "nope")
    assert code == 2 and lines == [
        "redline verify-target: unknown system 'nope'; "
        "one of gamebook, qerrors, pipeline, tmux, host, redline"
    ]


def test_the_command_is_registered() -> None:
    assert COMMANDS["verify-target"][0] == "redline.verify_target"
    assert sys.modules["redline.verify_target"] is verify_target
