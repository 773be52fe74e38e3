"""One OTLP label mapping for both gateways: vmagent's relabel file and the Collector's transform
processor are rendered from redline/topology.py OTLP_LABELS; both stacks' Prometheus share one lookback."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from redline import topology
from redline.paths import ROOT
from redline.stack import services

SET_RE = re.compile(
    r'^set\(attributes\["(\w+)"\], resource\.attributes\["([\w.]+)"\]\)'
    r' where resource\.attributes\["\2"\] != nil$'
)


def expected() -> dict[str, list[str]]:
    return {label: list(attributes) for label, attributes in topology.OTLP_LABELS}


def collector_config(name: str = "config.yml") -> dict:
    return yaml.safe_load((ROOT / "otel-collector" / name).read_text())


def test_the_collector_pipeline_maps_labels_before_batching() -> None:
    config = collector_config()
    pipeline = config["service"]["pipelines"]["metrics"]
    assert pipeline["processors"] == ["memory_limiter", "transform/redline-labels", "batch"]
    assert pipeline["exporters"] == ["otlphttp/prometheus"]


def test_the_scale_collector_feeds_both_replicas_through_the_same_processors() -> None:
    single, scale = collector_config(), collector_config("config-scale.yml")
    pipeline = scale["service"]["pipelines"]["metrics"]
    assert pipeline["exporters"] == ["otlphttp/prometheus", "otlphttp/prometheus-2"]
    endpoints = {name: e["metrics_endpoint"] for name, e in scale["exporters"].items()}
    assert endpoints == {
        "otlphttp/prometheus": "http://prometheus:9090/api/v1/otlp/v1/metrics",
        "otlphttp/prometheus-2": "http://prometheus-2:9090/api/v1/otlp/v1/metrics",
    }
    # the two exporters alike but for the address (auth, retry, queue), and everything else config.yml's
    first, second = (dict(e, metrics_endpoint="") for e in scale["exporters"].values())
    assert first == second == dict(single["exporters"]["otlphttp/prometheus"], metrics_endpoint="")
    assert pipeline["processors"] == single["service"]["pipelines"]["metrics"]["processors"]
    for section in ("receivers", "processors", "extensions"):
        assert scale[section] == single[section], section


def test_the_collector_and_vmagent_apply_the_topology_mapping() -> None:
    processor = collector_config()["processors"]["transform/redline-labels"]
    datapoint, resource = processor["metric_statements"]
    assert datapoint["context"] == "datapoint" and resource["context"] == "resource"
    collector: dict[str, list[str]] = {}
    for statement in datapoint["statements"]:
        match = SET_RE.match(statement)
        assert match, statement
        collector.setdefault(match.group(1), []).append(match.group(2))
    # Prometheus' OTLP receiver would prefix the job with service.namespace: removed after the copy
    assert 'delete_key(attributes, "service.namespace")' in resource["statements"]
    # ... while the attributes it derives job and instance from stay on the resource
    for kept in ("service.name", "service.instance.id"):
        assert f'delete_key(attributes, "{kept}")' not in resource["statements"]

    rules = yaml.safe_load((ROOT / "prometheus" / "vmagent-relabel.yml").read_text())
    native: dict[str, list[str]] = {}
    for rule in rules[:-1]:
        assert rule["regex"] == "(.+)" and "action" not in rule, rule
        (source,) = rule["source_labels"]
        native.setdefault(rule["target_label"], []).append(source)
    dropped = rules[-1]
    assert dropped["action"] == "labeldrop"
    assert set(dropped["regex"].replace("\\.", ".").split("|")) == {a for v in expected().values() for a in v}
    assert collector == native == expected()
    assert expected()["system"][-1] == "redline.system"  # applied last: wins over service.namespace


def test_vmagent_and_prometheus_run_with_the_mapping_and_lookback() -> None:
    ctx = services.Context(run_dir=Path("/run"))
    by_name = {service.name: service for service in services.SERVICES}
    vmagent = by_name["vmagent"].command(ctx)
    assert f"-remoteWrite.relabelConfig={ROOT / 'prometheus' / 'vmagent-relabel.yml'}" in vmagent
    prometheus = by_name["prometheus"].command(ctx)
    assert f"--query.lookback-delta={topology.LOOKBACK_DELTA}" in prometheus
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert f"--query.lookback-delta={topology.LOOKBACK_DELTA}" in compose["services"]["prometheus"]["command"]
