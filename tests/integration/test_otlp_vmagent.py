"""OTLP bridge: registry snapshot -> OTLP, checked against a real vmagent remote-writing into a real
Prometheus that also scrapes the same registry, plus a real gRPC receiver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Info, Summary
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from redline.telemetry.otlp_bridge import (
    OtlpBridge,
)
from redline.telemetry.web import serve
from redline.testing.components import prometheus, vmagent
from redline.testing.processes import free_port, http_get, prom_query, wait_until

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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The test registry served on HTTP, a Prometheus scraping it and accepting remote write, a vmagent."""
    tmp = tmp_path_factory.mktemp("otlp")
    registry, requests = _test_registry()
    server = serve(registry, "127.0.0.1:0")
    vm_port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n  - job_name: scrape\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    try:
        with prometheus(tmp, config) as prom, vmagent(tmp, prom, port=vm_port, name="vm1"):
            yield {"registry": registry, "requests": requests, "prom": prom, "vm_port": vm_port, "tmp": tmp}
    finally:
        server.shutdown()


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
    otlp_selector = f'{{__name__=~"demo_.*",job="{service}"}}'
    # 2 counter series, 1 gauge, 2 x (5 buckets + sum + count), summary sum + count, 1 info = 20
    scraped = wait_until(
        lambda: len(s := _series(prom, '{__name__=~"demo_.*",job="scrape"}')) == 20 and s, what="the scrape"
    )
    pushed = wait_until(lambda: len(s := _series(prom, otlp_selector)) == 20 and s, what="OTLP via vmagent")
    assert pushed == scraped
    assert pushed[("demo_requests_total", (("code", "200"),))] == 41
    assert pushed[("demo_duration_seconds_bucket", (("le", 0.1), ("route", "/a")))] == 3
    # service.name and service.instance.id arrive as job and instance (prometheus/vmagent-relabel.yml),
    # other resource attributes as labels of their own
    one = prom_query(prom, f'demo_memory_bytes{{job="{service}"}}')[0]["metric"]
    assert one["instance"] == bridge.resource.attributes["service.instance.id"]
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
        with vmagent(tmp_path, prom, port=port):
            assert bridge.export_once() is True
            value = wait_until(lambda: prom_query(prom, f'demo_jobs_total{{job="{service}"}}'), what="totals")
            assert float(value[0]["value"][1]) == 15.0  # everything counted while the backend was down
        assert "works again after 3 failed attempts" in caplog.records[-1].getMessage()
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("attributes", "system"),
    [
        ({"service.namespace": "pipeline"}, "pipeline"),
        ({"service.namespace": "x", "redline.system": "tmux"}, "tmux"),
    ],
    ids=["namespace", "redline-system-wins"],
)
def test_resource_attributes_become_job_instance_and_system(
    stack: dict, attributes: dict[str, str], system: str
) -> None:
    """prometheus/vmagent-relabel.yml: service.name -> job, service.instance.id -> instance, redline.system
    (else service.namespace) -> system; the copied attributes are not left on the series."""
    registry = CollectorRegistry()
    PromGauge("demo_mapped_value", "Mapped.", registry=registry).set(7)
    service = f"mapped-{system}"
    bridge = OtlpBridge(
        registry, service_name=service, instance_id=f"{service}-1", resource_attributes=attributes,
        endpoint=f"http://127.0.0.1:{stack['vm_port']}/opentelemetry/v1/metrics",
    )  # fmt: skip
    assert bridge.export_once() is True
    found = wait_until(
        lambda: prom_query(stack["prom"], f'demo_mapped_value{{job="{service}"}}'), what="mapped series"
    )
    labels = found[0]["metric"]
    assert (labels["job"], labels["instance"], labels["system"]) == (service, f"{service}-1", system)
    assert not {"service.name", "service.instance.id", "service.namespace", "redline.system"} & set(labels)
