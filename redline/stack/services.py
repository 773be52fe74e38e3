"""The services of the native stack: what each runs, where it listens and when it is ready.

Every address comes from redline/topology.py (REDLINE_PORT_<NAME> overrides a port); the commands use
the repository's own config files, linked into the run folder by redline/stack/rundir.py.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redline import tools, topology
from redline.paths import ALERTMANAGER, GRAFANA, PROMETHEUS, ROOT

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST_CONFIG = ROOT / "redline" / "exporters" / "host" / "redline-host.yml"
VMAGENT_RELABEL = PROMETHEUS / "vmagent-relabel.yml"  # rendered from topology.OTLP_LABELS


class StackError(Exception):
    """A reason the stack cannot start or stop, worded for the person at the terminal."""


@dataclass
class Context:
    """Where a run lives and how its services reach each other."""

    run_dir: Path
    ha: bool = False
    rules_dir: Path = PROMETHEUS / "rules"
    alertmanager_config: Path = ALERTMANAGER / "alertmanager.yml"
    demo_args: tuple[str, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, name: str) -> int:
        """The endpoint's port (redline/topology.py, or REDLINE_PORT_<NAME>)."""
        if name not in self.ports:
            try:
                self.ports[name] = topology.port(name)
            except topology.TopologyError as err:
                raise StackError(str(err)) from None
        return self.ports[name]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    @property
    def redline(self) -> list[str]:
        return [sys.executable, "-m", "redline.cli"]

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)


@dataclass
class Service:
    """One supervised process of the stack."""

    name: str
    command: Callable[[Context], list[str]]
    ready_path: str | None = "/-/ready"  # None: ready when the TCP port accepts connections
    binaries: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    env: Callable[[Context], dict[str, str]] = lambda ctx: {}
    run_as_postgres: bool = False
    workdir: Callable[[Context], Path] = lambda ctx: ROOT
    ha_only: bool = False
    optional_reason: str = ""  # non-empty: skipped unless this is available

    def missing(self) -> str | None:
        """Why this service cannot run here, or None."""
        for binary in self.binaries:
            if tools.binary(binary) is None:
                return f"{binary} not found in {tools.BIN_DIR} or on PATH (run 'make setup')"
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"module {module} not installed"
        return None

    def endpoints(self, ctx: Context) -> list[topology.Endpoint]:
        """The topology rows this service listens on (its first one answers the readiness check)."""
        return [
            row
            for row in topology.ENDPOINTS
            if row.service == self.name and row.native and (ctx.ha or not row.ha_only)
        ]


def _binary(name: str) -> str:
    return tools.binary(name) or name


# HA (redline up --ha): the cluster peer name of each Alertmanager service, and the cluster timings.
AM_PEER_NAMES = {"alertmanager": "am-1", "alertmanager-2": "am-2", "alertmanager-3": "am-3"}
AM_PEER_TIMEOUT = "2s"
AM_SETTLE_TIMEOUT = "5s"


def _alertmanager(name: str, peers: tuple[str, ...] = ()) -> Service:
    """One Alertmanager; with --ha one of three peers gossiping on loopback (web port + 1).

    Cluster flags (the command lines are in alertmanager/README.md, which
    tests/integration/test_alertmanager_config.py compares with this;
    tests/integration/test_alertmanager_live.py runs the cluster):
    a stable --cluster.peer-name am-1/am-2/am-3 (the peer that sorts first notifies, so am-1 is the one
    that pages, on every start); --cluster.peer-timeout=2s (each later peer waits its position times
    this before it notifies; loopback gossip takes milliseconds, the default 15s would only delay pages
    whose first peer is down); --cluster.settle-timeout=5s (after start a peer sends nothing until the
    membership has held still for three 2 s polls, about 10 s, or until this timeout; on loopback the
    joining peer receives the cluster's state at once, so 5 s is enough and pages go out sooner).
    """

    def command(ctx: Context) -> list[str]:
        gossip = ctx.port(name) + 1
        cmd = [
            _binary("alertmanager"),
            f"--config.file={ctx.path('alertmanager', 'alertmanager.yml')}",
            f"--storage.path={ctx.path('data', name)}",
            f"--web.listen-address=127.0.0.1:{ctx.port(name)}",
            f"--web.external-url={ctx.url(name)}",
        ]
        if ctx.ha:
            cmd.append(f"--cluster.listen-address=127.0.0.1:{gossip}")
            cmd.append(f"--cluster.peer-name={AM_PEER_NAMES[name]}")
            cmd += [f"--cluster.peer=127.0.0.1:{ctx.port(peer) + 1}" for peer in peers]
            cmd.append(f"--cluster.peer-timeout={AM_PEER_TIMEOUT}")
            cmd.append(f"--cluster.settle-timeout={AM_SETTLE_TIMEOUT}")
        else:
            cmd.append("--cluster.listen-address=")
        return cmd

    # Relative *_file paths in alertmanager.yml (secrets/...) resolve against the working directory.
    return Service(
        name,
        command,
        binaries=("alertmanager",),
        workdir=lambda ctx: ctx.path("alertmanager"),
        ha_only=name != "alertmanager",
    )


def _pg_env(ctx: Context) -> dict[str, str]:
    return {"PGPASSFILE": str(ctx.path("secrets", "pgpass"))}


def pg_dsn(ctx: Context, database: str = "pipeline") -> str:
    return f"postgresql://redline@127.0.0.1:{ctx.port('postgres')}/{database}?sslmode=disable"


# The demo serves one port per simulated system, plus its control port.

SERVICES: list[Service] = [
    Service(
        "prometheus",
        lambda ctx: [
            _binary("prometheus"),
            f"--config.file={ctx.path('prometheus', 'prometheus.yml')}",
            f"--storage.tsdb.path={ctx.path('data', 'prometheus')}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=127.0.0.1:{ctx.port('prometheus')}",
            f"--web.external-url={ctx.url('prometheus')}",
            "--web.enable-lifecycle",
            "--web.enable-remote-write-receiver",
            # pushed (OTLP) series have no staleness markers: they end this long after their last sample
            f"--query.lookback-delta={topology.LOOKBACK_DELTA}",
        ],
        binaries=("prometheus",),
    ),
    _alertmanager("alertmanager", ("alertmanager-2", "alertmanager-3")),
    _alertmanager("alertmanager-2", ("alertmanager", "alertmanager-3")),
    _alertmanager("alertmanager-3", ("alertmanager", "alertmanager-2")),
    Service(
        "pager-sink",
        lambda ctx: [
            *ctx.redline,
            "pager-sink",
            f"--listen=127.0.0.1:{ctx.port('pager-sink')}",
            f"--out={ctx.path('pager-sink', 'notifications.jsonl')}",
        ],
        ready_path="/-/healthy",
        modules=("redline.receivers.pager_sink",),
    ),
    Service(
        "vmagent",
        lambda ctx: [
            _binary("vmagent"),
            f"-httpListenAddr=127.0.0.1:{ctx.port('vmagent')}",
            f"-remoteWrite.url={ctx.url('prometheus')}/api/v1/write",
            f"-remoteWrite.tmpDataPath={ctx.path('data', 'vmagent')}",
            # OTLP resource attributes -> job, instance, system
            f"-remoteWrite.relabelConfig={VMAGENT_RELABEL}",
            "-loggerLevel=WARN",
        ],
        ready_path="/health",
        binaries=("vmagent",),
    ),
    Service(
        "blackbox",
        lambda ctx: [
            _binary("blackbox_exporter"),
            f"--config.file={PROMETHEUS / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ctx.port('blackbox')}",
        ],
        ready_path="/-/healthy",
        binaries=("blackbox_exporter",),
    ),
    Service(
        "postgres",
        lambda ctx: [
            str(PG_BIN / "postgres"),
            "-D",
            str(ctx.path("data", "postgres")),
            "-p",
            str(ctx.port("postgres")),
            "-k",
            str(ctx.path("pgsock")),
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        ready_path=None,
        run_as_postgres=True,
    ),
    Service(
        "postgres-exporter",
        lambda ctx: [
            _binary("postgres_exporter"),
            f"--web.listen-address=127.0.0.1:{ctx.port('postgres-exporter')}",
        ],
        ready_path="/metrics",
        binaries=("postgres_exporter",),
        env=lambda ctx: {
            "DATA_SOURCE_URI": f"127.0.0.1:{ctx.port('postgres')}/pipeline?sslmode=disable",
            "DATA_SOURCE_USER": "redline",
            "DATA_SOURCE_PASS_FILE": str(ctx.path("secrets", "postgres-password")),
        },
    ),
    Service(
        "host-exporter",
        lambda ctx: [
            *ctx.redline,
            "exporter",
            "host",
            f"--listen=127.0.0.1:{ctx.port('host-exporter')}",
            f"--config={HOST_CONFIG}",
        ],
        ready_path="/metrics",
        modules=("redline.exporters.host",),
    ),
    Service(
        "job-exporter",
        lambda ctx: [
            *ctx.redline,
            "exporter",
            "jobs",
            f"--dsn={pg_dsn(ctx)}",
            f"--listen=127.0.0.1:{ctx.port('job-exporter')}",
            "--statement-timeout=800ms",  # below the 1 s scrape timeout of job pipeline-jobs
        ],
        ready_path="/metrics",
        modules=("redline.exporters.jobs",),
        env=_pg_env,
    ),
    Service(
        "demo",
        lambda ctx: [
            *ctx.redline,
            "demo",
            *[f"--port={part}={ctx.port(name)}" for part, name in topology.demo_parts().items()],
            f"--pipeline-dsn={pg_dsn(ctx)}",
            f"--otlp-endpoint={ctx.url('vmagent')}/opentelemetry/v1/metrics",
            *ctx.demo_args,
        ],
        ready_path=None,
        modules=("redline.demo",),
        env=_pg_env,
    ),
    Service(
        "grafana",
        lambda ctx: [
            _binary("grafana"),
            "server",
            f"--homepath={os.environ.get('GRAFANA_HOME', '/usr/share/grafana')}",
        ],
        ready_path="/api/health",
        binaries=("grafana",),
        optional_reason="no grafana binary on PATH (docker compose runs Grafana)",
        env=lambda ctx: {
            "GF_SERVER_HTTP_ADDR": "127.0.0.1",
            "GF_SERVER_HTTP_PORT": str(ctx.port("grafana")),
            "GF_PATHS_DATA": str(ctx.path("data", "grafana")),
            "GF_PATHS_LOGS": str(ctx.path("logs")),
            "GF_PATHS_PROVISIONING": str(GRAFANA / "provisioning"),
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_SECURITY_ADMIN_PASSWORD__FILE": str(ctx.path("secrets", "grafana-admin-password")),
            "REDLINE_DASHBOARDS_DIR": str(GRAFANA / "dashboards"),
            "PROMETHEUS_URL": ctx.url("prometheus"),
            "ALERTMANAGER_URL": ctx.url("alertmanager"),
        },
    ),
]

SERVICE_NAMES = [service.name for service in SERVICES]
