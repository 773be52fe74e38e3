"""Render the OTLP label mapping (redline/topology.py OTLP_LABELS) for both OTLP gateways.

- `prometheus/vmagent-relabel.yml`: vmagent's `-relabelConfig` on the native stack. vmagent turns every
  resource attribute into a label of the same name (`service.name`); the rules copy them into `job`,
  `instance` and `system` and drop the copied attributes, as Prometheus' own OTLP receiver keeps them off
  the series.
- the `transform/redline-labels` processor in `otel-collector/config.yml` (between the markers below; the
  rest of the file is kept by hand): the same copies as data point attributes, which Prometheus' OTLP
  receiver turns into labels. `service.namespace` is removed from the resource afterwards, since
  Prometheus would otherwise prefix the job with it ("namespace/name") and the two stacks would differ.
- `otel-collector/config-scale.yml`: the Collector of compose's profile `scale`, config.yml exporting into
  both HA replicas (redline/storage.py receivers), as vmagent does natively; everything else, the
  mapping processors included, is config.yml's.
"""

from __future__ import annotations

import copy
import re

import yaml

from redline import storage, topology
from redline.generate.model import Catalogue
from redline.generate.render.common import TOPOLOGY, RenderError, header, replace_block, yaml_dump
from redline.paths import ROOT

RELABEL_PATH = "prometheus/vmagent-relabel.yml"
COLLECTOR_PATH = "otel-collector/config.yml"
COLLECTOR_SCALE_PATH = "otel-collector/config-scale.yml"
EXPORTER = "otlphttp/{}"  # the Collector's exporter into the Prometheus service {} (config.yml: prometheus)
PROCESSOR = "transform/redline-labels"
BEGIN = "  # BEGIN GENERATED otlp-labels"
END = "  # END GENERATED otlp-labels"
# Attributes Prometheus' OTLP receiver itself reads from the resource (job and instance): kept there.
PROMETHEUS_READS = ("service.name", "service.instance.id")


def copied_attributes() -> list[str]:
    """Every resource attribute the mapping reads, in table order."""
    return list(dict.fromkeys(a for _label, attributes in topology.OTLP_LABELS for a in attributes))


def relabel_rules() -> list[dict]:
    """vmagent relabel rules: each label from its attributes (a later one present wins), then the
    copied attributes dropped."""
    rules: list[dict] = [
        {"source_labels": [attribute], "regex": "(.+)", "target_label": label}
        for label, attributes in topology.OTLP_LABELS
        for attribute in attributes
    ]
    rules.append({"action": "labeldrop", "regex": "|".join(re.escape(a) for a in copied_attributes())})
    return rules


def render_relabel() -> str:
    return (
        header("#", [TOPOLOGY + " (OTLP_LABELS)"], change=TOPOLOGY)
        + "# vmagent -remoteWrite.relabelConfig: OTLP resource attributes -> job, instance, system (the\n"
        + f"# same mapping as the Collector's {PROCESSOR} processor in {COLLECTOR_PATH}).\n"
        + yaml_dump(relabel_rules())
    )


def transform_statements() -> list[dict]:
    """The Collector's transform processor statements (OTTL) for the same mapping."""
    datapoint = [
        f'set(attributes["{label}"], resource.attributes["{attribute}"]) '
        f'where resource.attributes["{attribute}"] != nil'
        for label, attributes in topology.OTLP_LABELS
        for attribute in attributes
    ]
    resource = [f'delete_key(attributes, "{a}")' for a in copied_attributes() if a not in PROMETHEUS_READS]
    return [
        {"context": "datapoint", "statements": datapoint},
        {"context": "resource", "statements": resource},
    ]


def collector_block() -> str:
    body = yaml_dump({PROCESSOR: {"error_mode": "ignore", "metric_statements": transform_statements()}})
    lines = [
        f"{BEGIN} (`redline generate`, from {TOPOLOGY} OTLP_LABELS; do not edit this block):",
        "  # OTLP resource attributes -> job, instance, system, as vmagent's prometheus/vmagent-relabel.yml.",
        *["  " + line if line else line for line in body.rstrip().splitlines()],
        END,
    ]
    return "\n".join(lines)


def scale_collector(config_yml: str) -> dict:
    """config.yml (its text) exporting into every replica: its exporter into `prometheus` copied once per
    receiving service with that service's compose address, every pipeline exporting to all of them."""
    config = yaml.safe_load(config_yml)
    exporters = config["exporters"]
    first = exporters.pop(EXPORTER.format("prometheus"))
    single = topology.compose_address(topology.endpoint("prometheus"))
    if f"//{single}/" not in first["metrics_endpoint"]:
        raise RenderError(f"{COLLECTOR_PATH}: {EXPORTER.format('prometheus')} does not export to {single}")
    names = []
    for service in storage.receivers(scale=True):
        exporter = copy.deepcopy(first)
        address = topology.compose_address(topology.endpoint(service))
        exporter["metrics_endpoint"] = first["metrics_endpoint"].replace(f"//{single}/", f"//{address}/")
        exporters[EXPORTER.format(service)] = exporter
        names.append(EXPORTER.format(service))
    for pipeline in config["service"]["pipelines"].values():
        pipeline["exporters"] = [
            e for e in pipeline["exporters"] if e != EXPORTER.format("prometheus")
        ] + names
    return config


def render_scale_collector(config_yml: str) -> str:
    return (
        header("#", [COLLECTOR_PATH, "redline/storage.py"], change=COLLECTOR_PATH)
        + "# The OpenTelemetry Collector of compose's profile `scale` (docs/scale.md): config.yml exporting\n"
        + "# into both HA replicas, so both evaluate every rule over the pushed series too.\n"
        + yaml_dump(scale_collector(config_yml))
    )


def render_otlp_labels(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: the vmagent relabel file, the Collector config with its mapping block replaced, and the
    scale profile's Collector config from it."""
    files = {RELABEL_PATH: render_relabel()}
    config = ROOT / COLLECTOR_PATH
    if config.is_file():
        block = collector_block()
        files[COLLECTOR_PATH] = replace_block(config, COLLECTOR_PATH, BEGIN, END, block, "otlp-labels block")
        files[COLLECTOR_SCALE_PATH] = render_scale_collector(files[COLLECTOR_PATH])
    return files
