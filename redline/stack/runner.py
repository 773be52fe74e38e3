"""The native stack: `redline up`, `redline down`, `redline status`.

Starts the stack's processes on 127.0.0.1 under supervisord (a separate daemon, so the stack outlives
the shell that started it), with the repository's own config files. Everything a run writes (data,
logs, generated target files, secrets) lives in one run folder, `.run/` by default, kept across
restarts. Ports come from redline/topology.py and can be changed with REDLINE_PORT_<NAME>.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from redline import tools
from redline.paths import ROOT
from redline.topology import PORTS

PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT_S = 60.0


class StackError(Exception):
    """A reason the stack cannot start or stop, worded for the person at the terminal."""


def port_of(name: str) -> int:
    """The port of a service: REDLINE_PORT_<NAME> if set, else the default from redline/topology.py."""
    env = "REDLINE_PORT_" + name.upper().replace("-", "_")
    value = os.environ.get(env)
    if value is None:
        return PORTS[name]
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise StackError(f"{env}={value!r} is not a TCP port")
    return int(value)


@dataclass
class Context:
    """Where a run lives and how its services reach each other."""

    run_dir: Path
    ha: bool = False
    rules_dir: Path = ROOT / "prometheus" / "rules"
    alertmanager_config: Path = ROOT / "alertmanager" / "alertmanager.yml"
    demo_args: tuple[str, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, name: str) -> int:
        if name not in self.ports:
            self.ports[name] = port_of(name)
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


def _binary(name: str) -> str:
    return tools.binary(name) or name


# HA (redline up --ha): the cluster peer name of each Alertmanager service, and the cluster timings.
AM_PEER_NAMES = {"alertmanager": "am-1", "alertmanager-2": "am-2", "alertmanager-3": "am-3"}
AM_PEER_TIMEOUT = "2s"
AM_SETTLE_TIMEOUT = "5s"


def _alertmanager(name: str, peers: tuple[str, ...] = ()) -> Service:
    """One Alertmanager; with --ha one of three peers gossiping on loopback (web port + 1).

    Cluster flags (the command lines are in alertmanager/README.md, which tests/test_alertmanager_config.py
    compares with this; tests/test_alertmanager_live.py runs the cluster):
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


def _pg_dsn(ctx: Context, database: str = "pipeline") -> str:
    return f"postgresql://redline@127.0.0.1:{ctx.port('postgres')}/{database}?sslmode=disable"


# The demo serves one port per simulated system, plus its control port.
DEMO_PORTS = ["control", "gamebook", "qerrors", "qerrors-staging", "pipeline", "tmux"]
EXTRA_URLS = {"demo": [f"demo-{name}" for name in DEMO_PORTS]}

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
            "-loggerLevel=WARN",
        ],
        ready_path="/health",
        binaries=("vmagent",),
    ),
    Service(
        "blackbox",
        lambda ctx: [
            _binary("blackbox_exporter"),
            f"--config.file={ROOT / 'prometheus' / 'blackbox.yml'}",
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
            f"--config={ROOT / 'redline' / 'exporters' / 'host' / 'redline-host.yml'}",
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
            f"--dsn={_pg_dsn(ctx)}",
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
            *[f"--port={system}={ctx.port('demo-' + system)}" for system in DEMO_PORTS],
            f"--pipeline-dsn={_pg_dsn(ctx)}",
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
            "GF_PATHS_PROVISIONING": str(ROOT / "grafana" / "provisioning"),
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_SECURITY_ADMIN_PASSWORD__FILE": str(ctx.path("secrets", "grafana-admin-password")),
            "REDLINE_DASHBOARDS_DIR": str(ROOT / "grafana" / "dashboards"),
            "PROMETHEUS_URL": ctx.url("prometheus"),
            "ALERTMANAGER_URL": ctx.url("alertmanager"),
        },
    ),
]

SERVICE_NAMES = [service.name for service in SERVICES]


# ----- run folder --------------------------------------------------------------------------------


def _write_private(path: Path, text: str, owner: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)


def _targets(ctx: Context, services: list[Service]) -> dict[str, list[dict]]:
    """file_sd target groups for the native stack (compose has its own in prometheus/targets/compose)."""
    names = {s.name for s in services}

    def group(port_name: str, **labels: str) -> dict:
        return {"targets": [f"127.0.0.1:{ctx.port(port_name)}"], "labels": labels}

    am_names = [n for n in ("alertmanager", "alertmanager-2", "alertmanager-3") if n in names]
    files: dict[str, list[dict]] = {
        "prometheus": [group("prometheus", system="redline")],
        "alertmanagers": [{"targets": [f"127.0.0.1:{ctx.port(n)}" for n in am_names]}],
        "alertmanager-metrics": [group(n, system="redline") for n in am_names],
    }
    if "vmagent" in names:
        files["vmagent"] = [group("vmagent", system="redline")]
    if "host-exporter" in names:
        files["host"] = [group("host-exporter", system="host")]
    if "postgres-exporter" in names:
        files["postgres"] = [group("postgres-exporter", system="pipeline")]
    if "job-exporter" in names:
        files["pipeline-jobs"] = [group("job-exporter", system="pipeline")]
    if "demo" in names:
        files["gamebook"] = [group("demo-gamebook", system="gamebook")]
        files["qerrors"] = [
            group("demo-qerrors", system="qerrors", env="production"),
            group("demo-qerrors-staging", system="qerrors", env="staging"),
        ]
        files["pipeline-api"] = [group("demo-pipeline", system="pipeline")]
        files["tmux-monitor"] = [group("demo-tmux", system="tmux")]
        if "blackbox" in names:
            blackbox = f"127.0.0.1:{ctx.port('blackbox')}"
            files["probes"] = [
                {
                    "targets": [f"{ctx.url('demo-' + system)}/health"],
                    "labels": {"system": label, "__blackbox_address__": blackbox},
                }
                for system, label in (("gamebook", "gamebook"), ("pipeline", "pipeline"), ("tmux", "tmux"))
            ]
    return files


def prepare_run_dir(ctx: Context, services: list[Service]) -> None:
    """Create the run folder: config links, target files, secrets, data folders."""
    for sub in ("logs", "data", "secrets", "prometheus/targets", "alertmanager", "pager-sink", "pgsock"):
        ctx.path(sub).mkdir(parents=True, exist_ok=True)
    ctx.path("secrets").chmod(0o700)
    # The repo's own files, linked so that relative paths (rules/, targets/) resolve inside the run.
    links = {
        ctx.path("prometheus", "prometheus.yml"): ROOT / "prometheus" / "prometheus.yml",
        ctx.path("prometheus", "rules"): ctx.rules_dir,
        ctx.path("alertmanager", "alertmanager.yml"): ctx.alertmanager_config,
        ctx.path("alertmanager", "templates"): ROOT / "alertmanager" / "templates",
    }
    for link, target in links.items():
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    for stale in ctx.path("prometheus", "targets").glob("*.yml"):
        stale.unlink()
    for name, groups in _targets(ctx, services).items():
        text = "# Written by redline up for the native stack.\n" + yaml.safe_dump(groups, sort_keys=True)
        ctx.path("prometheus", "targets", f"{name}.yml").write_text(text)
    # Where Alertmanager's webhook receivers deliver locally: the pager-sink, one path per receiver.
    secrets_dir = ctx.path("alertmanager", "secrets")
    secrets_dir.mkdir(exist_ok=True)
    operator_secrets = ROOT / "alertmanager" / "secrets"
    for secret in sorted(operator_secrets.glob("*")) if operator_secrets.is_dir() else []:
        link = secrets_dir / secret.name
        link.unlink(missing_ok=True)
        link.symlink_to(secret)
    for receiver in ("pager", "ticket", "watchdog"):
        if not (operator_secrets / f"{receiver}-webhook-url").exists():
            _write_private(secrets_dir / f"{receiver}-webhook-url", f"{ctx.url('pager-sink')}/{receiver}\n")
    if not ctx.path("secrets", "grafana-admin-password").exists():
        _write_private(ctx.path("secrets", "grafana-admin-password"), secrets.token_urlsafe(18))
    if any(s.name == "postgres" for s in services):
        _prepare_postgres(ctx)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _prepare_postgres(ctx: Context) -> None:
    """initdb on first use, with a random password for the 'redline' role kept in the run's secrets."""
    password_file = ctx.path("secrets", "postgres-password")
    if not password_file.exists():
        _write_private(password_file, secrets.token_urlsafe(18))
    password = password_file.read_text().strip()
    _write_private(ctx.path("secrets", "pgpass"), f"127.0.0.1:{ctx.port('postgres')}:*:redline:{password}\n")
    data = ctx.path("data", "postgres")
    if os.geteuid() == 0:
        # The server runs as the unprivileged 'postgres' user: it needs its socket folder and a way in.
        shutil.chown(ctx.path("pgsock"), "postgres", "postgres")
        ctx.run_dir.chmod(0o755)
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    pwfile = ctx.path("pgsock", ".initdb-password")
    _write_private(pwfile, password + "\n", owner="postgres")
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    print("==> initialising PostgreSQL data folder (first run)", flush=True)
    result = subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "--username=redline",
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
            ]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise StackError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")


def _ensure_database(ctx: Context, name: str = "pipeline") -> None:
    import psycopg

    password = ctx.path("secrets", "postgres-password").read_text().strip()
    dsn = f"host=127.0.0.1 port={ctx.port('postgres')} user=redline password={password} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def _supervisor_conf(ctx: Context, services: list[Service]) -> str:
    """supervisord configuration for the selected services."""
    sock = ctx.path("supervisor.sock")
    lines = [
        "; Written by redline up.",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "[supervisord]",
        f"logfile={ctx.path('logs', 'supervisord.log')}",
        f"pidfile={ctx.path('supervisord.pid')}",
        f"directory={ROOT}",
        "logfile_maxbytes=10MB",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
    ]
    for service in services:
        env = {"PYTHONUNBUFFERED": "1", **service.env(ctx)}
        environment = ",".join(f'{k}="{v}"' for k, v in sorted(env.items()))
        lines += [
            f"[program:{service.name}]",
            "command=" + shlex.join(service.command(ctx)).replace("%", "%%"),
            "environment=" + environment.replace("%", "%%"),
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=3",
            "stopsignal=TERM",
            "stopwaitsecs=15",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={ctx.path('logs', service.name + '.log')}",
            f"directory={service.workdir(ctx)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
        ]
        if service.run_as_postgres and os.geteuid() == 0:
            lines.append("user=postgres")
    return "\n".join(lines) + "\n"


# ----- supervision -------------------------------------------------------------------------------


def _rpc(ctx: Context) -> Any:
    """supervisord's XML-RPC interface over the run's unix socket."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{ctx.path('supervisor.sock')}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def _process_infos(ctx: Context) -> dict[str, dict[str, Any]]:
    """supervisord's view of every program: name -> info (statename, pid, ...)."""
    return {info["name"]: info for info in _rpc(ctx).supervisor.getAllProcessInfo()}


def _supervisord_pid(ctx: Context) -> int | None:
    try:
        pid = int(ctx.path("supervisord.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _service_ports(ctx: Context, service: Service) -> list[tuple[str, int]]:
    if service.name == "demo":
        return [(name, ctx.port(name)) for name in EXTRA_URLS["demo"]]
    ports = [(service.name, ctx.port(service.name))]
    if service.name.startswith("alertmanager") and ctx.ha:
        ports.append((service.name + " gossip", ctx.port(service.name) + 1))
    return ports


def _is_ready(ctx: Context, service: Service) -> bool:
    port = ctx.port("demo-control") if service.name == "demo" else ctx.port(service.name)
    if service.ready_path is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{service.ready_path}", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def select_services(ctx: Context, only: list[str] | None) -> tuple[list[Service], dict[str, str]]:
    """The services to run, and those skipped with the reason."""
    chosen, skipped = [], {}
    for service in SERVICES:
        if only is not None and service.name not in only:
            continue
        if service.ha_only and not ctx.ha:
            continue
        reason = service.missing()
        if reason:
            if not service.optional_reason:
                raise StackError(f"cannot start {service.name}: {reason}")
            skipped[service.name] = service.optional_reason
            continue
        chosen.append(service)
    return chosen, skipped


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def up(ctx: Context, only: list[str] | None) -> int:
    if _supervisord_pid(ctx):
        print(f"redline: the stack is already running from {ctx.run_dir}; 'redline down' stops it")
        return status(ctx)
    services, skipped = select_services(ctx, only)
    if not services:
        raise StackError("no service to start")
    for service in services:
        for label, port in _service_ports(ctx, service):
            if not _port_free(port):
                env = "REDLINE_PORT_" + label.split()[0].upper().replace("-", "_")
                raise StackError(
                    f"port {port} ({label}) is already in use on 127.0.0.1; stop what holds it or set {env}"
                )
    prepare_run_dir(ctx, services)
    conf = ctx.path("supervisord.conf")
    conf.write_text(_supervisor_conf(ctx, services))
    print(f"==> starting {len(services)} services (run folder {ctx.run_dir})", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StackError(f"supervisord did not start: {result.stderr.strip() or result.stdout.strip()}")
    try:
        _wait_ready(ctx, services, started)
        if any(s.name == "postgres" for s in services):
            _ensure_database(ctx)
    except BaseException:
        _shutdown(ctx)
        raise
    _print_table(ctx, services, skipped)
    return 0


def _wait_ready(ctx: Context, services: list[Service], started: float) -> None:
    pending = {s.name: s for s in services}
    while pending:
        with ThreadPoolExecutor(max_workers=8) as pool:
            ready = dict(zip(pending, pool.map(lambda s: _is_ready(ctx, s), pending.values()), strict=True))
        for name, ok in ready.items():
            if ok:
                print(f"    {name:<18} ready after {time.monotonic() - started:4.1f}s", flush=True)
                del pending[name]
        infos = _process_infos(ctx) if pending else {}
        for name in list(pending):
            if infos.get(name, {}).get("statename") in {"FATAL", "EXITED"}:
                log = ctx.path("logs", f"{name}.log")
                raise StackError(f"{name} exited during start-up; last lines of {log}:\n{_tail(log)}")
        if pending and time.monotonic() - started > READY_TIMEOUT_S:
            names = ", ".join(pending)
            raise StackError(f"not ready after {READY_TIMEOUT_S:.0f}s: {names}; see {ctx.path('logs')}")
        if pending:
            time.sleep(0.25)


def _print_table(ctx: Context, services: list[Service], skipped: dict[str, str]) -> None:
    try:
        infos = _process_infos(ctx)
    except OSError:
        infos = {}
    rows = [("SERVICE", "STATE", "PID", "URL")]
    for service in services:
        info = infos.get(service.name, {})
        state = info.get("statename", "STOPPED")
        if state in {"RUNNING", "STARTING"}:
            state = "ready" if _is_ready(ctx, service) else "starting"
        urls = [ctx.url(n) for n in EXTRA_URLS.get(service.name, [service.name])]
        if service.name == "postgres":
            urls = [_pg_dsn(ctx)]
        rows.append((service.name, state.lower(), str(info.get("pid") or "-"), urls[0]))
        rows += [("", "", "", url) for url in urls[1:]]
    rows += [(name, "skipped", "-", reason) for name, reason in skipped.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    print(f"logs: {ctx.path('logs')}   stop: redline down (or make down)")


def status(ctx: Context) -> int:
    if not _supervisord_pid(ctx):
        print(f"redline: the stack is not running (run folder {ctx.run_dir}); 'make up' starts it")
        return 3
    names = set(_process_infos(ctx))
    _print_table(ctx, [s for s in SERVICES if s.name in names], {})
    return 0


def _shutdown(ctx: Context, timeout: float = 30.0) -> bool:
    pid = _supervisord_pid(ctx)
    if pid is None:
        return False
    try:
        _rpc(ctx).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _supervisord_pid(ctx):
        time.sleep(0.1)
    if _supervisord_pid(ctx):
        os.kill(pid, signal.SIGKILL)
    return True


def down(ctx: Context) -> int:
    if not _shutdown(ctx):
        print(f"redline: the stack is not running (run folder {ctx.run_dir})")
        return 0
    print("==> stopped; data kept in " + str(ctx.path("data")))
    return 0


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop a foreground stack, also when it was started with SIGINT ignored
    (a shell without job control ignores it for `cmd &` and nohup, and Python keeps that)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"redline {argv[0] if argv else 'up'}",
        description="Run redline's native stack on 127.0.0.1 with the repository's configs. "
        "'up' starts it and prints a status table, 'status' shows it, 'down' stops it. "
        "Ports: redline/topology.py, overridable with REDLINE_PORT_<NAME> "
        "(e.g. REDLINE_PORT_PROMETHEUS=19090).",
    )
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("REDLINE_RUN_DIR", ROOT / ".run")),
        help="folder for data, logs and generated files (default .run/, or REDLINE_RUN_DIR)",
    )
    parser.add_argument("--only", help="comma-separated services to start (default: all available)")
    parser.add_argument("--ha", action="store_true", help="run three clustered Alertmanagers instead of one")
    parser.add_argument(
        "--rules-dir",
        type=Path,
        default=ROOT / "prometheus" / "rules",
        help="alert and recording rules to load (default prometheus/rules; tests pass rules rendered with "
        "'redline generate --for-override')",
    )
    parser.add_argument(
        "--alertmanager-config",
        type=Path,
        default=ROOT / "alertmanager" / "alertmanager.yml",
        help="Alertmanager configuration to run (default alertmanager/alertmanager.yml; its relative "
        "template and secret paths resolve inside the run folder)",
    )
    parser.add_argument(
        "--demo-args",
        default="",
        help="extra options for 'redline demo', e.g. \"--time-scale=30 --otlp-interval=1\"",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C or SIGTERM stops the stack"
    )
    args = parser.parse_args(argv)
    ctx = Context(
        run_dir=args.run_dir.resolve(),
        ha=args.ha,
        rules_dir=args.rules_dir.resolve(),
        alertmanager_config=args.alertmanager_config.resolve(),
        demo_args=tuple(shlex.split(args.demo_args)),
    )
    if args.action == "up":
        if not ctx.rules_dir.is_dir():
            parser.error(f"--rules-dir {args.rules_dir}: no such folder")
        if not any(ctx.rules_dir.glob("*.yml")):
            parser.error(f"--rules-dir {args.rules_dir}: no rule files (*.yml) in it")
        if not ctx.alertmanager_config.is_file():
            parser.error(f"--alertmanager-config {args.alertmanager_config}: no such file")
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    if only:
        unknown = [name for name in only if name not in SERVICE_NAMES]
        if unknown:
            parser.error(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICE_NAMES)}")
    try:
        if args.action == "up":
            if args.foreground:
                _stop_on_signals()
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            code = up(ctx, only)
            if code == 0 and args.foreground:
                print("==> attached; Ctrl-C stops the stack", flush=True)
                while _supervisord_pid(ctx):
                    time.sleep(1)
            return code
        if args.action == "status":
            return status(ctx)
        return down(ctx)
    except KeyboardInterrupt:
        print("\n==> interrupted; stopping the stack", flush=True)
        _shutdown(ctx)
        return 130
    except StackError as err:
        print(f"redline {args.action}: {err}", file=sys.stderr)
        return 1
