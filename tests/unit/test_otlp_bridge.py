"""OTLP bridge: registry snapshot -> OTLP, checked against a real vmagent remote-writing into a real
Prometheus that also scrapes the same registry, plus a real gRPC receiver."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from concurrent import futures

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
from redline.testing.processes import wait_until

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
