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
from typing import Any

from redline import credentials, storage, tools, topology
from redline.inventory import DEMO, Inventory
from redline.paths import ALERTMANAGER, GRAFANA, LONG_TERM_RULES, PROMETHEUS, ROOT, ledger_url
from redline.pg_roles import PG_ADMIN, PG_DEMO, PG_JOB_EXPORTER, PG_MONITOR, PgRole
from redline.stack import vmagent

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
    scale: bool = False  # the HA Prometheus pair and the long-term store (implies ha)
    rules_dir: Path = PROMETHEUS / "rules"
    alertmanager_config: Path = ALERTMANAGER / "alertmanager.yml"
    demo_args: tuple[str, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)
    inventory: Inventory = DEMO  # the real services the stack watches (inventory.yml), or the demo
    inventory_file: Path | None = None  # where it was read from; `redline reload` reads it again

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
    def history_url(self) -> str:
        """Where long-term data is read (redline/storage.py history): VictoriaMetrics with --scale, the
        Prometheus otherwise. Grafana's history datasource, the console's charts, `redline backtest`."""
        return self.url(storage.history(self.scale))

    @property
    def redline(self) -> list[str]:
        return [sys.executable, "-m", "redline.cli"]

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def secret(self, name: str) -> Path:
        """A file of the run folder's secrets/ (redline/credentials.py names them)."""
        return credentials.secret_path(self.run_dir, name)

    @property
    def web_config_flag(self) -> str:
        """--web.config.file of Prometheus, Alertmanager, blackbox_exporter: user redline, bcrypt."""
        return f"--web.config.file={self.secret(credentials.WEB_CONFIG)}"


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
    auth: bool = False  # its HTTP endpoints (the readiness check's too) need the stack's basic auth
    stop_signal: str = "TERM"  # what supervisord sends to stop it
    workdir: Callable[[Context], Path] = lambda ctx: ROOT
    ha_only: bool = False
    scale_only: bool = False
    # supervisord's order: lower starts first and stops last (the store outlives the replicas writing into
    # it, whose shutdown flushes their remote-write queues instead of waiting out the stop timeout)
    priority: int = 999
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
            if row.service == self.name
            and row.native
            and (ctx.ha or not row.ha_only)
            and (ctx.scale or not row.scale_only)
        ]


def _binary(name: str) -> str:
    return tools.binary(name) or name


Args = Callable[[Context], list[str]]


def _pinned(name: str, binary: str, args: Args, ready_path: str | None = "/-/healthy", **kw: Any) -> Service:
    """A service that runs a pinned binary (tools/versions.yml) with these arguments."""
    return Service(name, lambda ctx: [_binary(binary), *args(ctx)], ready_path, binaries=(binary,), **kw)


def _redline(name: str, module: str, args: Args, ready_path: str | None, **kw: Any) -> Service:
    """A service that runs `redline SUBCOMMAND ...` (args start after `redline`; `module` must import)."""
    return Service(name, lambda ctx: [*ctx.redline, *args(ctx)], ready_path, modules=(module,), **kw)


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
            ctx.web_config_flag,
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
        auth=True,
        workdir=lambda ctx: ctx.path("alertmanager"),
        ha_only=name != "alertmanager",
    )


SCALE_CONFIG = "prometheus-scale.yml"  # written into the run folder's prometheus/ by `redline up --scale`


def _prometheus(name: str) -> Service:
    """Prometheus; with --scale one replica of the HA pair (redline/storage.py): the run folder's
    prometheus-scale.yml, the replica label from the environment. Its data folder is data/<name>."""

    def command(ctx: Context) -> list[str]:
        config = SCALE_CONFIG if ctx.scale else "prometheus.yml"
        return [
            _binary("prometheus"),
            f"--config.file={ctx.path('prometheus', config)}",
            f"--storage.tsdb.path={ctx.path('data', name)}",
            f"--storage.tsdb.retention.time={storage.PROMETHEUS_RETENTION_TIME}",
            f"--storage.tsdb.retention.size={storage.PROMETHEUS_RETENTION_SIZE}",
            f"--web.listen-address=127.0.0.1:{ctx.port(name)}",
            f"--web.external-url={ctx.url(name)}",
            "--web.enable-lifecycle",
            "--web.enable-remote-write-receiver",
            ctx.web_config_flag,
            # pushed (OTLP) series have no staleness markers: they end this long after their last sample
            f"--query.lookback-delta={topology.LOOKBACK_DELTA}",
        ]

    return Service(
        name,
        command,
        binaries=("prometheus",),
        auth=True,
        env=lambda ctx: {storage.REPLICA_ENV: storage.REPLICAS[name]} if ctx.scale else {},
        scale_only=name != "prometheus",
    )


def _victoria_metrics(ctx: Context) -> list[str]:
    """VictoriaMetrics single-node, the long-term store (redline/storage.py): retention, deduplication of
    the HA pair's samples, the free-disk floor; the stack's basic auth on every endpoint but /health."""
    password = ctx.secret(credentials.WEB_PASSWORD_FILE)
    return [
        f"-httpListenAddr=127.0.0.1:{ctx.port(storage.LONG_TERM)}",
        f"-storageDataPath={ctx.path('data', storage.LONG_TERM)}",
        f"-retentionPeriod={storage.LONG_TERM_RETENTION}",
        f"-dedup.minScrapeInterval={storage.dedup_interval()}",
        f"-storage.minFreeDiskSpaceBytes={storage.LONG_TERM_MIN_FREE_DISK}",
        "-loggerLevel=WARN",
        f"-httpAuth.username={credentials.USER}",
        f"-httpAuth.password=file://{password}",
    ]


def _vmalert(ctx: Context) -> list[str]:
    """vmalert, the long-range recording rules (prometheus/long-term/rules.yml) over the store: it reads
    from VictoriaMetrics and writes the records back into it, both with the stack's basic auth, and asks
    for the same on its own endpoints (/health stays open). It has no alerting rules, so no notifier."""
    password = ctx.secret(credentials.WEB_PASSWORD_FILE)
    store = ctx.url(storage.LONG_TERM)
    return [
        f"-httpListenAddr=127.0.0.1:{ctx.port(storage.LONG_TERM_RULER)}",
        f"-rule={LONG_TERM_RULES}",
        f"-evaluationInterval={storage.LONG_TERM_EVAL_INTERVAL}",
        f"-datasource.url={store}",
        f"-datasource.basicAuth.username={credentials.USER}",
        f"-datasource.basicAuth.passwordFile={password}",
        f"-remoteWrite.url={store}",
        f"-remoteWrite.basicAuth.username={credentials.USER}",
        f"-remoteWrite.basicAuth.passwordFile={password}",
        "-loggerLevel=WARN",
        f"-httpAuth.username={credentials.USER}",
        f"-httpAuth.password=file://{password}",
    ]


def _vmagent_remote_write(ctx: Context) -> list[str]:
    """vmagent's remote write into Prometheus, with --scale into both replicas (each gets every pushed
    sample, so both evaluate the same rules over the same data); each URL with the stack's basic auth,
    and basic auth on vmagent's own endpoints (import, OTLP, /metrics; /health stays open), all with the
    stack's password file (vmagent reads `file://` flag values)."""
    password = str(ctx.secret(credentials.WEB_PASSWORD_FILE))
    urls = [f"{ctx.url(name)}/api/v1/write" for name in storage.receivers(ctx.scale)]
    return vmagent.auth_flags(password) + vmagent.remote_write_flags(urls, password)


def _pg_env(ctx: Context) -> dict[str, str]:
    return {"PGPASSFILE": str(ctx.secret("pgpass"))}


def pg_dsn(ctx: Context, database: str = "pipeline", role: PgRole = PG_ADMIN) -> str:
    return f"postgresql://{role.name}@127.0.0.1:{ctx.port('postgres')}/{database}?sslmode=disable"


def _job_table(ctx: Context) -> list[str]:
    """The job exporter's DSN option: the inventory's pipeline database, else the demo's local one."""
    database = ctx.inventory.database()
    if database is not None:
        queries = [f"--sql-file={database.sql_file}"] if database.sql_file else []
        return [f"--dsn-file={database.dsn_file}", *queries]
    return [f"--dsn={pg_dsn(ctx, role=PG_JOB_EXPORTER)}"]


def _postgres_exporter_env(ctx: Context) -> dict[str, str]:
    """postgres_exporter's connection: the inventory's DSN (supervisord.conf, which then holds it, is
    mode 0600), else the demo's database as the pg_monitor role."""
    database = ctx.inventory.database()
    if database is not None:
        return {"DATA_SOURCE_NAME": credentials.read_secret(Path(database.dsn_file))}
    return {
        "DATA_SOURCE_URI": f"127.0.0.1:{ctx.port('postgres')}/pipeline?sslmode=disable",
        "DATA_SOURCE_USER": PG_MONITOR.name,
        "DATA_SOURCE_PASS_FILE": str(ctx.secret(PG_MONITOR.secret)),
    }


# Only with the demo: the simulator and the PostgreSQL that holds its job table.
DEMO_SERVICES = ("demo", "postgres")
# Only with a job table to read: the demo's, or the inventory's pipeline database.
JOB_TABLE_SERVICES = ("job-exporter", "postgres-exporter")

SERVICES: list[Service] = [
    _prometheus("prometheus"),
    _prometheus("prometheus-2"),
    _pinned(
        storage.LONG_TERM,
        storage.LONG_TERM,
        _victoria_metrics,
        ready_path="/health",
        auth=True,
        scale_only=True,
        priority=100,
    ),
    # after the store it reads and writes, stopped before it
    _pinned(
        storage.LONG_TERM_RULER,
        "vmalert",
        _vmalert,
        ready_path="/health",
        auth=True,
        scale_only=True,
        priority=200,
    ),
    _alertmanager("alertmanager", ("alertmanager-2", "alertmanager-3")),
    _alertmanager("alertmanager-2", ("alertmanager", "alertmanager-3")),
    _alertmanager("alertmanager-3", ("alertmanager", "alertmanager-2")),
    _redline(
        "pager-sink",
        "redline.receivers.pager_sink",
        lambda ctx: [
            "pager-sink",
            f"--listen=127.0.0.1:{ctx.port('pager-sink')}",
            f"--out={ctx.path('pager-sink', 'notifications.jsonl')}",
            f"--token-file={ctx.secret(credentials.PAGER_SINK_TOKEN_FILE)}",
            f"--ledger={ledger_url(ctx.run_dir)}",
        ],
        ready_path="/-/healthy",
    ),
    _redline(
        "console",
        "redline.console.cli",
        lambda ctx: [
            "console",
            f"--listen=127.0.0.1:{ctx.port('console')}",
            f"--prometheus={ctx.url('prometheus')}",
            f"--history={ctx.history_url}",
            *[
                f"--alertmanager={ctx.url(name)}"
                for name in AM_PEER_NAMES
                if ctx.ha or name == "alertmanager"
            ],
            f"--ledger={ledger_url(ctx.run_dir)}",
            f"--web-config={ctx.secret(credentials.WEB_CONFIG)}",
            f"--upstream-user={credentials.USER}",
            f"--upstream-password-file={ctx.secret(credentials.WEB_PASSWORD_FILE)}",
        ],
        ready_path="/-/healthy",
    ),
    _pinned(
        "vmagent",
        "vmagent",
        lambda ctx: [
            f"-httpListenAddr=127.0.0.1:{ctx.port('vmagent')}",
            f"-remoteWrite.tmpDataPath={ctx.path('data', 'vmagent')}",
            # OTLP resource attributes -> job, instance, system
            f"-remoteWrite.relabelConfig={VMAGENT_RELABEL}",
            "-loggerLevel=WARN",
            *_vmagent_remote_write(ctx),
        ],
        ready_path="/health",
        auth=True,
    ),
    _pinned(
        "blackbox",
        "blackbox_exporter",
        lambda ctx: [
            f"--config.file={PROMETHEUS / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{ctx.port('blackbox')}",
            ctx.web_config_flag,
        ],
        auth=True,
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
        # SIGINT is PostgreSQL's fast shutdown: sessions are ended, a checkpoint written, no recovery on
        # the next start. (SIGTERM, smart shutdown, waits for every client to leave on its own.)
        stop_signal="INT",
    ),
    _pinned(
        "postgres-exporter",
        "postgres_exporter",
        lambda ctx: [f"--web.listen-address=127.0.0.1:{ctx.port('postgres-exporter')}"],
        ready_path="/metrics",
        env=_postgres_exporter_env,
    ),
    _redline(
        "host-exporter",
        "redline.exporters.host.main",
        lambda ctx: [
            "exporter",
            "host",
            f"--listen=127.0.0.1:{ctx.port('host-exporter')}",
            f"--config={HOST_CONFIG}",
        ],
        ready_path="/metrics",
    ),
    _redline(
        "job-exporter",
        "redline.exporters.jobs.cli",
        lambda ctx: [
            "exporter",
            "jobs",
            *_job_table(ctx),
            f"--listen=127.0.0.1:{ctx.port('job-exporter')}",
            "--statement-timeout=800ms",  # below the 1 s scrape timeout of job pipeline-jobs
        ],
        ready_path="/metrics",
        env=_pg_env,
    ),
    _redline(
        "demo",
        "redline.demo.cli",
        lambda ctx: [
            "demo",
            *[f"--port={part}={ctx.port(name)}" for part, name in topology.demo_parts().items()],
            f"--pipeline-dsn={pg_dsn(ctx, role=PG_DEMO)}",
            f"--otlp-endpoint={ctx.url('vmagent')}/opentelemetry/v1/metrics",
            f"--otlp-password-file={ctx.secret(credentials.WEB_PASSWORD_FILE)}",
            f"--control-token-file={ctx.secret(credentials.DEMO_TOKEN_FILE)}",
            *ctx.demo_args,
        ],
        ready_path=None,
        env=_pg_env,
    ),
    _pinned(
        "grafana",
        "grafana",
        lambda ctx: ["server", f"--homepath={os.environ.get('GRAFANA_HOME', '/usr/share/grafana')}"],
        ready_path="/api/health",
        optional_reason="no grafana binary on PATH (docker compose runs Grafana)",
        env=lambda ctx: {
            "GF_SERVER_HTTP_ADDR": "127.0.0.1",
            "GF_SERVER_HTTP_PORT": str(ctx.port("grafana")),
            "GF_PATHS_DATA": str(ctx.path("data", "grafana")),
            "GF_PATHS_LOGS": str(ctx.path("logs")),
            "GF_PATHS_PROVISIONING": str(GRAFANA / "provisioning"),
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_SECURITY_ADMIN_PASSWORD__FILE": str(ctx.secret("grafana-admin-password")),
            "REDLINE_DASHBOARDS_DIR": str(GRAFANA / "dashboards"),
            "PROMETHEUS_URL": ctx.url("prometheus"),
            "REDLINE_HISTORY_URL": ctx.history_url,
            "ALERTMANAGER_URL": ctx.url("alertmanager"),
            # Grafana's provisioning reads environment variables only (not files): the datasources' basic
            # auth password. supervisord.conf, which holds it, is mode 0600.
            "REDLINE_WEB_PASSWORD": credentials.read_secret(ctx.secret(credentials.WEB_PASSWORD_FILE)),
        },
    ),
]

SERVICE_NAMES = [service.name for service in SERVICES]
