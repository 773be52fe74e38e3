"""OTLP bridge: registry snapshot -> OTLP, checked against a real vmagent remote-writing into a real
Prometheus that also scrapes the same registry, plus a real gRPC receiver."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.sdk.metrics.export import AggregationTemporality, Gauge, Histogram, Sum
from prometheus_client import CollectorRegistry, Counter, Info, Summary
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from redline.telemetry import otlp_bridge
from redline.telemetry.otlp_bridge import (
    OtlpBridge,
    add_otlp_arguments,
    bridge_from_args,
    stable_instance_id,
)
from redline.telemetry.web import serve
from redline.testing.processes import free_port, http_get, prom_query, running, tool, wait_until

SERVICE = "bridge-test"


def _test_registry() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    requests = Counter("demo_requests_total", "Requests.", ["code"], registry=registry)
    requests.labels("200").inc(41)
    requests.labels("500").inc(2)
    PromGauge("demo_memory_bytes", "Memory.", registry=registry).set(123456789012)
    latency = PromHistogram(
        "demo_duration_seconds", "Latency.", ["route"], buckets=[0.05, 0.1, 0.5, 1.0], registry=registry
    )
    for value in (0.01, 0.07, 0.07, 0.3, 0.9, 4.0):
        latency.labels("/a").observe(value)
    latency.labels("/b").observe(0.2)
    Summary("demo_cycle_seconds", "Cycle.", registry=registry).observe(2.5)
    Info("demo_build", "Build.", registry=registry).info({"version": "1.2.3"})
    return registry, requests


def _metric(data, name: str):
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    return m
    raise AssertionError(f"{name} not in {otlp_bridge.metric_names(data)}")


def test_conversion_types_names_and_buckets() -> None:
    registry, _ = _test_registry()
    bridge = OtlpBridge(registry, service_name=SERVICE, endpoint="http://127.0.0.1:9/v1/metrics")
    data = bridge.snapshot()
    assert sorted(otlp_bridge.metric_names(data)) == [
        "demo_build_info", "demo_cycle_seconds_count", "demo_cycle_seconds_sum", "demo_duration_seconds",
        "demo_memory_bytes", "demo_requests_total",
    ]  # fmt: skip
    counter = _metric(data, "demo_requests_total")
    assert isinstance(counter.data, Sum) and counter.data.is_monotonic
    assert counter.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    points = {p.attributes["code"]: p for p in counter.data.data_points}
    assert points["200"].value == 41 and points["500"].value == 2
    # start time: the counter's own _created time, which is before the snapshot
    assert 0 < points["200"].start_time_unix_nano <= points["200"].time_unix_nano
    gauge = _metric(data, "demo_memory_bytes")
    assert isinstance(gauge.data, Gauge) and gauge.data.data_points[0].value == 123456789012
    hist = _metric(data, "demo_duration_seconds")
    assert isinstance(hist.data, Histogram)
    by_route = {p.attributes["route"]: p for p in hist.data.data_points}
    a = by_route["/a"]
    assert "le" not in a.attributes
    assert list(a.explicit_bounds) == [0.05, 0.1, 0.5, 1.0]
    assert list(a.bucket_counts) == [1, 2, 1, 1, 1]  # per bucket, last one is (1.0, +Inf)
    assert a.count == 6 and a.sum == pytest.approx(5.35)
    assert list(by_route["/b"].bucket_counts) == [0, 0, 1, 0, 0]
    assert _metric(data, "demo_build_info").data.data_points[0].attributes == {"version": "1.2.3"}
    assert _metric(data, "demo_cycle_seconds_sum").data.data_points[0].value == 2.5


def test_resource_is_stable_and_honours_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=sre")
    first = OtlpBridge(registry, service_name=SERVICE, endpoint="http://127.0.0.1:9", listen="127.0.0.1:9110")
    second = OtlpBridge(
        registry, service_name=SERVICE, endpoint="http://127.0.0.1:9", listen="127.0.0.1:9110"
    )
    attrs = dict(first.resource.attributes)
    assert attrs["service.name"] == SERVICE
    assert attrs["service.instance.id"] == second.resource.attributes["service.instance.id"]
    assert attrs["service.instance.id"] == stable_instance_id(SERVICE, "127.0.0.1:9110")
    assert attrs["service.instance.id"].endswith(f"/{SERVICE}/127.0.0.1:9110")
    assert attrs["host.name"] and attrs["deployment.environment"] == "staging" and attrs["team"] == "sre"
    other = OtlpBridge(registry, service_name=SERVICE, endpoint="http://127.0.0.1:9", listen="127.0.0.1:9111")
    assert other.resource.attributes["service.instance.id"] != attrs["service.instance.id"]
    monkeypatch.setenv("OTEL_SERVICE_NAME", "renamed")
    renamed = OtlpBridge(registry, service_name=SERVICE, endpoint="http://127.0.0.1:9")
    assert renamed.resource.attributes["service.name"] == "renamed"


def test_enabled_by_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(var, raising=False)
    registry = CollectorRegistry()
    assert bridge_from_args(registry, SERVICE, None, None, 15.0) is None
    bridge = bridge_from_args(registry, SERVICE, "http://127.0.0.1:4318", None, 5.0)
    assert bridge is not None and bridge.protocol == "http/protobuf" and bridge.interval_seconds == 5.0
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    bridge = bridge_from_args(registry, SERVICE, None, None, 15.0)
    assert bridge is not None and bridge.protocol == "grpc"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    with pytest.raises(ValueError, match="unsupported OTLP protocol 'http/json'"):
        bridge_from_args(registry, SERVICE, None, None, 15.0)
    with pytest.raises(ValueError, match="invalid OTLP endpoint"):
        bridge_from_args(registry, SERVICE, "127.0.0.1:4318", "http/protobuf", 15.0)

    parser = argparse.ArgumentParser()
    add_otlp_arguments(parser)
    args = parser.parse_args(
        ["--otlp-endpoint", "http://x:4318", "--otlp-protocol", "grpc", "--otlp-interval", "2"]
    )
    assert (args.otlp_endpoint, args.otlp_protocol, args.otlp_interval) == ("http://x:4318", "grpc", 2.0)
    assert parser.parse_args([]).otlp_interval == 15.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--otlp-interval", "0"])


# ---- real vmagent -> real Prometheus ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The test registry served on HTTP, a Prometheus scraping it and accepting remote write, a vmagent."""
    tmp = tmp_path_factory.mktemp("otlp")
    registry, requests = _test_registry()
    server = serve(registry, "127.0.0.1:0")
    prom_port, vm_port = free_port(), free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n  - job_name: scrape\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    prom = f"http://127.0.0.1:{prom_port}"
    prom_cmd = [
        tool("prometheus"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{prom_port}",
        f"--storage.tsdb.path={tmp / 'data'}", "--web.enable-remote-write-receiver",
    ]  # fmt: skip
    try:
        with (
            running(prom_cmd, ready_url=f"{prom}/-/ready", log=tmp / "prometheus.log"),
            running(_vmagent_cmd(vm_port, prom, tmp / "vm1"), ready_url=f"http://127.0.0.1:{vm_port}/health",
                    log=tmp / "vmagent.log"),
        ):  # fmt: skip
            yield {"registry": registry, "requests": requests, "prom": prom, "vm_port": vm_port, "tmp": tmp}
    finally:
        server.shutdown()


def _vmagent_cmd(port: int, prom: str, data: Path) -> list[str]:
    return [
        tool("vmagent"), f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.url={prom}/api/v1/write",
        f"-remoteWrite.tmpDataPath={data}", "-remoteWrite.flushInterval=100ms", "-loggerLevel=WARN",
    ]  # fmt: skip


def _series(prom: str, selector: str) -> dict[tuple, float]:
    """name + the application's own labels (le as a number) -> value; target/resource labels dropped."""
    out: dict[tuple, float] = {}
    for r in prom_query(prom, selector):
        labels = {k: v for k, v in r["metric"].items() if k not in ("job", "instance") and "." not in k}
        name = labels.pop("__name__")
        if name.endswith("_created"):
            continue
        key = tuple(sorted((k, float(v) if k == "le" else v) for k, v in labels.items()))
        out[(name, key)] = float(r["value"][1])
    return out


def test_vmagent_delivers_the_same_series_and_values_as_the_scrape(stack: dict) -> None:
    prom, service = stack["prom"], "bridge-same-values"
    bridge = OtlpBridge(
        stack["registry"], service_name=service,
        endpoint=f"http://127.0.0.1:{stack['vm_port']}/opentelemetry/v1/metrics",
    )  # fmt: skip
    assert bridge.export_once() is True
    otlp_selector = f'{{__name__=~"demo_.*","service.name"="{service}"}}'
    # 2 counter series, 1 gauge, 2 x (5 buckets + sum + count), summary sum + count, 1 info = 20
    scraped = wait_until(
        lambda: len(s := _series(prom, '{__name__=~"demo_.*",job="scrape"}')) == 20 and s, what="the scrape"
    )
    pushed = wait_until(lambda: len(s := _series(prom, otlp_selector)) == 20 and s, what="OTLP via vmagent")
    assert pushed == scraped
    assert pushed[("demo_requests_total", (("code", "200"),))] == 41
    assert pushed[("demo_duration_seconds_bucket", (("le", 0.1), ("route", "/a")))] == 3
    # resource attributes arrive as labels on every series
    one = prom_query(prom, f'demo_memory_bytes{{"service.name"="{service}"}}')[0]["metric"]
    assert one["service.instance.id"] == bridge.resource.attributes["service.instance.id"]
    assert one["host.name"] == bridge.resource.attributes["host.name"]


def test_backend_down_then_up_carries_the_totals(
    stack: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prom, service = stack["prom"], "bridge-down-up"
    registry = CollectorRegistry()
    jobs = Counter("demo_jobs_total", "Jobs.", registry=registry)
    server = serve(registry, "127.0.0.1:0")
    port = free_port()  # nothing listens here yet
    bridge = OtlpBridge(
        registry, service_name=service, interval_seconds=0.5,
        endpoint=f"http://127.0.0.1:{port}/opentelemetry/v1/metrics",
    )  # fmt: skip
    try:
        caplog.set_level(logging.INFO)
        for _ in range(3):
            jobs.inc(5)
            assert bridge.export_once() is False
            assert http_get(server.metrics_url)[0] == 200  # still serving /metrics
        warnings = [r for r in caplog.records if r.name == "redline.telemetry.otlp_bridge"]
        assert len(warnings) == 1, "failures are logged once per minute, with a count"
        assert f"127.0.0.1:{port}" in warnings[0].getMessage()
        assert not [r for r in caplog.records if r.name.startswith("opentelemetry")], "library noise leaked"
        assert bridge.exports_failed == 3
        with running(
            _vmagent_cmd(port, prom, tmp_path / "vm"), ready_url=f"http://127.0.0.1:{port}/health",
            log=tmp_path / "vmagent.log",
        ):  # fmt: skip
            assert bridge.export_once() is True
            value = wait_until(
                lambda: prom_query(prom, f'demo_jobs_total{{"service.name"="{service}"}}'), what="totals"
            )
            assert float(value[0]["value"][1]) == 15.0  # everything counted while the backend was down
        assert "works again after 3 failed attempts" in caplog.records[-1].getMessage()
    finally:
        server.shutdown()


# ---- gRPC ----------------------------------------------------------------------------------------------


class _Receiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.received = threading.Event()

    def Export(self, request, context):
        self.requests.append(request)
        self.received.set()
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[_Receiver, int]]:
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(grace=None)


def _values(request: metrics_service_pb2.ExportMetricsServiceRequest) -> dict[str, float]:
    out = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.HasField("sum"):
                    out[m.name] = sum(p.as_double for p in m.sum.data_points)
                elif m.HasField("gauge"):
                    out[m.name] = sum(p.as_double for p in m.gauge.data_points)
                elif m.HasField("histogram"):
                    out[m.name] = sum(p.count for p in m.histogram.data_points)
    return out


def test_grpc_start_exports_periodically_and_stop_sends_the_last_snapshot(grpc_receiver) -> None:
    receiver, port = grpc_receiver
    registry, requests = _test_registry()
    bridge = OtlpBridge(
        registry,
        service_name=SERVICE,
        protocol="grpc",
        endpoint=f"http://127.0.0.1:{port}",
        interval_seconds=0.2,
    )
    bridge.start()
    wait_until(lambda: len(receiver.requests) >= 2, timeout=10, what="two periodic exports")
    requests.labels("200").inc(100)
    bridge.stop()
    last = receiver.requests[-1]
    values = _values(last)
    assert values["demo_requests_total"] == 143  # 41 + 2 + 100: stop() exported the final state
    assert values["demo_memory_bytes"] == 123456789012 and values["demo_duration_seconds"] == 7
    resource = {kv.key: kv.value.string_value for kv in last.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == SERVICE and resource["service.instance.id"]
    sum_metric = next(
        m for m in last.resource_metrics[0].scope_metrics[0].metrics if m.name == "demo_requests_total"
    )
    assert sum_metric.sum.is_monotonic and sum_metric.sum.aggregation_temporality == 2  # cumulative
    starts = {
        p.start_time_unix_nano
        for r in receiver.requests
        for m in r.resource_metrics[0].scope_metrics[0].metrics
        if m.name == "demo_requests_total"
        for p in m.sum.data_points
    }
    assert len(starts) == 2, "each series keeps one fixed start time across exports"
