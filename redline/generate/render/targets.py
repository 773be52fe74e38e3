"""Render redline/topology.py into prometheus/prometheus.yml and compose's target files.

prometheus.yml is shared by compose and the native stack: every address lives in the file_sd target
files it reads (`targets/<file>*.yml`), which `redline up` writes for 127.0.0.1 from the same topology
and this renderer writes for compose (prometheus/targets/compose/, ha/ for the three-Alertmanager
profile). A scrape job per topology job, with its interval.
"""

from __future__ import annotations

import yaml

from redline import credentials, inventory, storage, topology
from redline.generate.model import Catalogue
from redline.generate.render.common import TOPOLOGY, header, yaml_dump
from redline.inventory import Inventory

PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
SCALE_CONFIG = "prometheus/prometheus-scale.yml"  # the HA replicas' config under compose (profile scale)
COMPOSE_TARGETS = "prometheus/targets/compose"

# The stack's basic auth (redline/credentials.py). A relative password_file resolves against the folder of
# the config file Prometheus is given: natively .run/prometheus/ (-> .run/secrets/), in compose
# /etc/prometheus/ (-> /etc/secrets/, where docker-compose.yml mounts the stack's secrets).
BASIC_AUTH = (
    f"basic_auth: {{ username: {credentials.USER}, password_file: ../{credentials.SECRETS}/"
    f"{credentials.WEB_PASSWORD_FILE} }}"
)
# Everything of prometheus.yml but the scrape jobs. The intervals are the ones docs/alert-latency.md
# measures: applications scraped every 1 s (their jobs in redline/topology.py) and rules evaluated every
# 1 s, so a critical condition reaches Alertmanager within about 2 s (the job pipeline asks for detection
# and notification in under 5 s).
GLOBAL = """\
global:
  scrape_interval: {scrape_interval}
  scrape_timeout: 4s
  evaluation_interval: 1s
  external_labels:
    stack: redline

rule_files:
  - rules/*.yml

alerting:
  alertmanagers:
    - api_version: v2
      timeout: 5s
      {basic_auth}
      file_sd_configs:
        - files: [targets/alertmanagers*.yml]

scrape_configs:
"""
# The probe job scrapes blackbox_exporter's /probe with the URL as its target parameter.
PROBE_SETTINGS = """\
    metrics_path: /probe
    params:
      module: [http_2xx]
"""
PROBE_RELABELLING = """\
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - source_labels: [__blackbox_address__]
        target_label: __address__
"""


def render_prometheus_config() -> str:
    """prometheus/prometheus.yml: global settings, then one scrape job per topology job."""
    lines = [
        header("#", [TOPOLOGY], change=TOPOLOGY).rstrip(),
        "# Shared by `docker compose up` and the native stack (`make up`): every address is in the target",
        "# files (targets/*.yml, file_sd), which `redline up` writes into its run folder for 127.0.0.1 and",
        f"# {COMPOSE_TARGETS}/ holds for compose. See docs/alert-latency.md for the intervals.",
        "# The stack's own endpoints need basic auth: the password is read from ../secrets/web-password,",
        "# next to the folder of the config file (the run folder's secrets/; docs/native-stack.md).",
        GLOBAL.replace("{basic_auth}", BASIC_AUTH)
        .replace("{scrape_interval}", topology.SCRAPE_INTERVAL)
        .rstrip(),
    ]
    for index, job in enumerate(topology.JOBS):
        if job.comment:
            lines += [""] if index else []
            lines += [f"  # {line}" for line in job.comment.splitlines()]
        lines.append(f"  - job_name: {job.name}")
        if job.interval:
            lines += [f"    scrape_interval: {job.interval}", f"    scrape_timeout: {job.interval}"]
        if job.name == topology.PROBE_JOB:
            lines.append(PROBE_SETTINGS.rstrip())
        if job.auth:
            lines.append(f"    {BASIC_AUTH}")
        lines.append(f"    file_sd_configs: [{{ files: [targets/{job.target_file}*.yml] }}]")
        if job.name == topology.PROBE_JOB:
            lines.append(PROBE_RELABELLING.rstrip())
    return "\n".join(lines) + "\n"


def _target_file(stem: str, groups: list[dict], profile: str) -> str:
    return (
        header("#", [TOPOLOGY], change=TOPOLOGY)
        + f"# Target file {stem}.yml of docker-compose.yml ({profile}); `redline up` writes the native one.\n"
        + yaml_dump(groups)
    )


def render_compose_targets(services: Inventory) -> dict[str, str]:
    """prometheus/targets/compose/<file>.yml, ha/<file>.yml where the ha profile differs, and scale/, the
    whole folder of the scale profile: the stack's own services, the demo's when the inventory runs it,
    and the inventory's real services."""
    rows = [row for row in topology.ENDPOINTS if row.compose and (services.demo or row.service != "demo")]
    prober = topology.compose_address(topology.endpoint(topology.PROBER))
    real = inventory.target_files(services, prober)
    single = inventory.merge(
        topology.target_files(
            [row for row in rows if not row.ha_only and not row.scale_only], topology.compose_address
        ),
        real,
    )
    ha = inventory.merge(
        topology.target_files([row for row in rows if not row.scale_only], topology.compose_address), real
    )
    scale = inventory.merge(topology.target_files(rows, topology.compose_address), real)  # ha included
    files = {
        f"{COMPOSE_TARGETS}/{stem}.yml": _target_file(stem, groups, "default")
        for stem, groups in single.items()
    }
    for stem, groups in ha.items():
        if single.get(stem) != groups:
            files[f"{COMPOSE_TARGETS}/ha/{stem}.yml"] = _target_file(stem, groups, "profile ha")
    # profile scale: the whole targets folder (REDLINE_TARGETS), the replicas and the store added to ha
    for stem, groups in scale.items():
        files[f"{COMPOSE_TARGETS}/scale/{stem}.yml"] = _target_file(stem, groups, "profile scale")
    return files


def render_scale_config(prometheus_yml: str) -> str:
    """prometheus/prometheus-scale.yml: prometheus.yml for the HA replicas of compose's profile `scale`
    (redline/storage.py scale_config; `redline up --scale` writes the native one into its run folder)."""
    long_term = topology.compose_address(topology.endpoint(storage.LONG_TERM))
    config = storage.scale_config(yaml.safe_load(prometheus_yml), long_term)
    return (
        header("#", [TOPOLOGY, "redline/storage.py"], change=TOPOLOGY).rstrip()
        + "\n# prometheus.yml for the HA replicas of compose's profile `scale` (docs/scale.md): the replica\n"
        + "# external label from REDLINE_REPLICA, dropped from alerts and from the remote write into\n"
        + "# VictoriaMetrics. `redline up --scale` writes the native one into its run folder.\n"
        + yaml_dump(config)
    )


def render_targets(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: prometheus.yml (from the topology) and the compose target files (topology, inventory)."""
    prometheus_yml = render_prometheus_config()
    return {
        PROMETHEUS_CONFIG: prometheus_yml,
        SCALE_CONFIG: render_scale_config(prometheus_yml),
        **render_compose_targets(catalogue.inventory),
    }
