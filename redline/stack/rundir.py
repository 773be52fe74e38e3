"""The run folder of the native stack (`.run/` by default): config links, target files, secrets, data.

Everything a run writes lives here and is kept across restarts, except the target files, which are
written anew from redline/topology.py on every `redline up`.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from redline import topology
from redline.paths import ALERTMANAGER, PROMETHEUS, ROOT
from redline.stack.services import PG_BIN, Context, Service, StackError


def _write_private(path: Path, text: str, owner: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)


def native_targets(ctx: Context, services: list[Service]) -> dict[str, list[dict]]:
    """file_sd target groups of the native stack: the endpoints of the services that run."""
    rows = [row for service in services for row in service.endpoints(ctx)]
    return topology.target_files(rows, lambda row: f"127.0.0.1:{ctx.port(row.name)}")


def prepare_run_dir(ctx: Context, services: list[Service]) -> None:
    """Create the run folder: config links, target files, secrets, data folders."""
    for sub in ("logs", "data", "secrets", "prometheus/targets", "alertmanager", "pager-sink", "pgsock"):
        ctx.path(sub).mkdir(parents=True, exist_ok=True)
    ctx.path("secrets").chmod(0o700)
    # The repo's own files, linked so that relative paths (rules/, targets/) resolve inside the run.
    links = {
        ctx.path("prometheus", "prometheus.yml"): PROMETHEUS / "prometheus.yml",
        ctx.path("prometheus", "rules"): ctx.rules_dir,
        ctx.path("alertmanager", "alertmanager.yml"): ctx.alertmanager_config,
        ctx.path("alertmanager", "templates"): ALERTMANAGER / "templates",
    }
    for link, target in links.items():
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    for stale in ctx.path("prometheus", "targets").glob("*.yml"):
        stale.unlink()
    for name, groups in native_targets(ctx, services).items():
        text = "# Written by redline up for the native stack.\n" + yaml.safe_dump(groups, sort_keys=True)
        ctx.path("prometheus", "targets", f"{name}.yml").write_text(text)
    # Where Alertmanager's webhook receivers deliver locally: the pager-sink, one path per receiver.
    secrets_dir = ctx.path("alertmanager", "secrets")
    secrets_dir.mkdir(exist_ok=True)
    operator_secrets = ALERTMANAGER / "secrets"
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


def ensure_database(ctx: Context, name: str = "pipeline") -> None:
    import psycopg

    password = ctx.path("secrets", "postgres-password").read_text().strip()
    dsn = f"host=127.0.0.1 port={ctx.port('postgres')} user=redline password={password} dbname=postgres"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def supervisor_conf(ctx: Context, services: list[Service]) -> str:
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
