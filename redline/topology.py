"""Where every service lives: one row per endpoint (port, scrape job, labels, probe), one row per job.

This is the only place an address of the stack is written. From it come the native stack's target files
(`redline up`), the compose target files and `prometheus/prometheus.yml` (`redline generate`), the demo's
ports, the runner's listen flags and the labels of the generated promtool tests. Adding a monitored
system means a catalogue file (`thresholds/<system>.yml`), its id in SYSTEMS, its scrape job in JOBS and
its endpoints in ENDPOINTS; nothing else (docs/architecture.md).

Natively every endpoint listens on 127.0.0.1 at its port, which REDLINE_PORT_<NAME> overrides (upper
case, '-' as '_'). Under compose an endpoint is `<service>:<compose_port or port>` on compose's network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

# The monitored systems, in the order every generated file lists them; each has thresholds/<id>.yml.
SYSTEMS: tuple[str, ...] = ("gamebook", "qerrors", "pipeline", "tmux", "host", "redline")

# OTLP resource attributes -> the labels every rule reads, applied by both OTLP gateways (vmagent natively,
# `prometheus/vmagent-relabel.yml`; the Collector under compose, its `transform/redline-labels` processor),
# both rendered from this table by `redline generate`. A label takes the last attribute present in its
# list, so `redline.system` wins over `service.namespace`. Pushed series thus carry job, instance and system
# like scraped ones, and a service that only pushes can alert (docs/instrumenting/README.md).
OTLP_LABELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("job", ("service.name",)),
    ("instance", ("service.instance.id",)),
    ("system", ("service.namespace", "redline.system")),
)
# How long a pushed series that stops arriving still counts as current: Prometheus' lookback
# (--query.lookback-delta on both stacks). Scraped series end at once (staleness markers); pushed ones have
# none, so without this a browser that closed would keep its last FPS for the default 5 minutes. OTLP
# senders must export more often than this (docs/instrumenting/README.md: every 10 s).
LOOKBACK_DELTA = "1m"

# The global scrape interval of prometheus.yml (jobs without an interval of their own).
SCRAPE_INTERVAL = "5s"

PROBE_JOB = "blackbox"  # the scrape job whose targets are the URLs blackbox_exporter probes
PROBER = "blackbox"  # the endpoint that probes them


class TopologyError(ValueError):
    """A port override that is not a port, or a name the table does not have."""


@dataclass(frozen=True)
class Job:
    """One Prometheus scrape job: its targets come from `targets/<file>*.yml` (file_sd)."""

    name: str
    comment: str
    interval: str | None = None  # None: the global scrape_interval of prometheus.yml
    file: str = ""  # target file stem; default the job name
    serves: str | None = None  # the system whose own services this job scrapes (inventory entries land here)
    auth: bool = False  # its targets need the stack's basic auth (redline/credentials.py)

    @property
    def target_file(self) -> str:
        return self.file or self.name


@dataclass(frozen=True)
class Endpoint:
    """One listening port of the stack or of the demo, and how Prometheus sees it."""

    name: str  # the key of REDLINE_PORT_<NAME>
    port: int  # native port on 127.0.0.1 (and the published port under compose)
    service: str  # the process (native) or compose service that listens on it
    job: str | None = None  # the scrape job that scrapes it (None: not scraped)
    labels: Mapping[str, str] = field(default_factory=dict)  # target labels: system, env
    probe: str | None = None  # a path the blackbox job probes, e.g. /health
    alerting: bool = False  # Prometheus sends its alerts here
    test_target: bool = False  # the generated promtool tests use its target labels for its system
    compose_port: int | None = None  # port inside compose's network when it differs from `port`
    ha_only: bool = False  # only in the three-Alertmanager cluster (redline up --ha, compose profile ha)
    scale_only: bool = False  # only with the HA pair and the long-term store (up --scale, profile scale)
    native: bool = True  # False: only under compose
    compose: bool = True  # False: only on the native stack

    @property
    def env_name(self) -> str:
        return "REDLINE_PORT_" + self.name.upper().replace("-", "_")

    @property
    def system(self) -> str | None:
        return self.labels.get("system")


JOBS: tuple[Job, ...] = (
    Job("prometheus", "The stack itself: behind basic auth, like the probes' blackbox_exporter.", auth=True),
    Job("alertmanager", "", file="alertmanager-metrics", auth=True),
    Job("vmagent", "", auth=True),
    Job("victoria-metrics", "", auth=True),
    Job("vmalert", "", auth=True),
    Job("host", "Hosts: redline's host exporter (job host) and, for comparison, node_exporter (job node)."),
    Job("node", "", serves="host"),
    Job(
        "gamebook",
        "The monitored systems (the demo simulates them locally).",
        interval="1s",
        serves="gamebook",
    ),
    Job("qerrors", "", interval="1s", serves="qerrors"),
    Job("pipeline-api", "", interval="1s", serves="pipeline"),
    Job("pipeline-jobs", "", interval="1s"),
    Job("tmux-monitor", "", interval="1s", serves="tmux"),
    Job("postgres", ""),
    Job(
        PROBE_JOB,
        "Uptime probes through blackbox_exporter: each target is a URL to probe, the label\n"
        "__blackbox_address__ names the exporter that probes it.",
        interval="1s",
        file="probes",
        auth=True,
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("prometheus", 9090, "prometheus", "prometheus", {"system": "redline"}, test_target=True),
    Endpoint(
        "prometheus-2",
        9190,
        "prometheus-2",
        "prometheus",
        {"system": "redline"},
        compose_port=9090,
        scale_only=True,
    ),
    Endpoint(
        "victoria-metrics",
        8428,
        "victoria-metrics",
        "victoria-metrics",
        {"system": "redline"},
        scale_only=True,
    ),
    # The long-range recording rules' evaluator (redline/storage.py LONG_TERM_RULER), beside the store.
    Endpoint("vmalert", 8880, "vmalert", "vmalert", {"system": "redline"}, scale_only=True),
    Endpoint("alertmanager", 9093, "alertmanager", "alertmanager", {"system": "redline"}, alerting=True),
    Endpoint(
        "alertmanager-2",
        9193,
        "alertmanager-2",
        "alertmanager",
        {"system": "redline"},
        alerting=True,
        compose_port=9093,
        ha_only=True,
    ),
    Endpoint(
        "alertmanager-3",
        9293,
        "alertmanager-3",
        "alertmanager",
        {"system": "redline"},
        alerting=True,
        compose_port=9093,
        ha_only=True,
    ),
    Endpoint("pager-sink", 9097, "pager-sink"),
    Endpoint("vmagent", 8429, "vmagent", "vmagent", {"system": "redline"}, compose=False),
    Endpoint("blackbox", 9115, "blackbox"),
    Endpoint("host-exporter", 9110, "host-exporter", "host", {"system": "host"}),
    Endpoint(
        "node-exporter", 9100, "node-exporter", "node", {"system": "host"}, test_target=True, native=False
    ),
    Endpoint("postgres", 55432, "postgres", compose_port=5432),
    Endpoint("postgres-exporter", 9187, "postgres-exporter", "postgres", {"system": "pipeline"}),
    Endpoint("job-exporter", 9111, "job-exporter", "pipeline-jobs", {"system": "pipeline"}, test_target=True),
    Endpoint("demo-control", 9200, "demo"),
    Endpoint(
        "demo-gamebook",
        9201,
        "demo",
        "gamebook",
        {"system": "gamebook"},
        probe="/health",
        test_target=True,
    ),
    Endpoint(
        "demo-qerrors",
        9202,
        "demo",
        "qerrors",
        {"system": "qerrors", "env": "production"},
        test_target=True,
    ),
    Endpoint(
        "demo-qerrors-staging",
        9203,
        "demo",
        "qerrors",
        {"system": "qerrors", "env": "staging"},
        test_target=True,
    ),
    Endpoint("demo-pipeline", 9204, "demo", "pipeline-api", {"system": "pipeline"}, probe="/health"),
    Endpoint(
        "demo-tmux", 9205, "demo", "tmux-monitor", {"system": "tmux"}, probe="/health", test_target=True
    ),
    Endpoint("grafana", 3000, "grafana"),
    Endpoint("console", 9400, "console"),
)

DEMO_PREFIX = "demo-"  # the demo's endpoints are demo-<part>; the part names its port on `redline demo`


def job_serving(system: str) -> Job:
    """The scrape job of a system's own services (where the inventory's scrape addresses go)."""
    for job in JOBS:
        if job.serves == system:
            return job
    raise TopologyError(f"no scrape job serves system {system!r} in redline/topology.py")


def endpoint(name: str) -> Endpoint:
    """The row of one endpoint; TopologyError for a name the table does not have."""
    for row in ENDPOINTS:
        if row.name == name:
            return row
    raise TopologyError(f"no endpoint {name!r} in redline/topology.py")


def port(name: str, environ: Mapping[str, str] | None = None) -> int:
    """The native port of an endpoint: REDLINE_PORT_<NAME> when set, else the table's default."""
    row = endpoint(name)
    value = (os.environ if environ is None else environ).get(row.env_name)
    if value is None:
        return row.port
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise TopologyError(f"{row.env_name}={value!r} is not a TCP port")
    return int(value)


def ports(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every endpoint's native port, overrides applied."""
    return {row.name: port(row.name, environ) for row in ENDPOINTS}


def demo_parts() -> dict[str, str]:
    """The demo's parts by their `redline demo --port` name: {'control': 'demo-control', ...}."""
    return {row.name.removeprefix(DEMO_PREFIX): row.name for row in ENDPOINTS if row.service == "demo"}


def test_targets(system: str) -> list[dict[str, str]]:
    """Target labels (job, instance, system, env) the generated promtool tests give a system's series."""
    return [
        {"job": row.job or "", "instance": f"127.0.0.1:{row.port}", **row.labels}
        for row in ENDPOINTS
        if row.test_target and row.system == system
    ]


Address = Callable[[Endpoint], str]


def compose_address(row: Endpoint) -> str:
    """HOST:PORT of an endpoint on compose's network."""
    return f"{row.service}:{row.compose_port or row.port}"


def target_files(rows: Iterable[Endpoint], address: Address) -> dict[str, list[dict]]:
    """file_sd target groups by target file stem (`targets/<stem>.yml`) for the given endpoints.

    One file per scrape job that has an endpoint, `alertmanagers` (where Prometheus sends alerts) and
    `probes` (URLs the blackbox job probes, through the PROBER endpoint when it is among `rows`).
    """
    rows = list(rows)
    files: dict[str, list[dict]] = {}
    jobs = {job.name: job for job in JOBS}
    for row in rows:
        if row.job is not None:
            group = {"targets": [address(row)], "labels": dict(row.labels)}
            files.setdefault(jobs[row.job].target_file, []).append(group)
    alerting = [address(row) for row in rows if row.alerting]
    if alerting:
        files["alertmanagers"] = [{"targets": alerting}]
    prober = next((row for row in rows if row.name == PROBER), None)
    if prober is not None:
        probes = [
            {
                "targets": [f"http://{address(row)}{row.probe}"],
                "labels": {"system": row.labels["system"], "__blackbox_address__": address(prober)},
            }
            for row in rows
            if row.probe
        ]
        if probes:
            files[jobs[PROBE_JOB].target_file] = probes
    return files
