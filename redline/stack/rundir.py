"""The run folder of the native stack (`.run/` by default): config links, target files, secrets, data.

Everything a run writes lives here and is kept across restarts, except what is derived from the
checkout: the target files (redline/topology.py and the inventory) and the Alertmanager profile, written
anew by every `redline up` and `redline reload`, and stack.yml, how `up` started the stack.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from redline import atomic, credentials, inventory, pg_roles, storage, topology
from redline.demo.pipeline import reference_schema
from redline.paths import ALERTMANAGER, PROMETHEUS, ROOT, run_dir
from redline.pg_roles import PG_ADMIN, PG_ROLES
from redline.stack.services import (
    PG_BIN,
    SCALE_CONFIG,
    SERVICES,
    Context,
    Service,
    StackError,
)

# The webhook receivers of alertmanager/alertmanager.yml that deliver to the pager-sink on this machine.
SINK_RECEIVERS = ("pager", "ticket", "watchdog")
# The basic-auth user name in the sink's webhook URLs (the sink checks only the password, its token).
SINK_URL_USER = "alertmanager"
# Generated at the first start and kept: the stack's password, the sink's and the demo's tokens, Grafana's.
GENERATED_SECRETS = (
    credentials.WEB_PASSWORD_FILE,
    credentials.PAGER_SINK_TOKEN_FILE,
    credentials.DEMO_TOKEN_FILE,
    "grafana-admin-password",
)


def _write_private(path: Path, text: str, owner: str | None = None) -> None:
    credentials.write_private(path, text)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)


def prepare_secrets(ctx: Context) -> list[Path]:
    """Create what the run folder's services authenticate with (redline/credentials.py), once; the web
    config is written anew from the password each time. Returns the files created now."""
    ctx.path("secrets").mkdir(parents=True, exist_ok=True)
    ctx.path("secrets").chmod(0o700)
    created = []
    for name in GENERATED_SECRETS:
        if not ctx.secret(name).exists():
            created.append(ctx.secret(name))
        credentials.ensure_secret(ctx.secret(name))
    password = credentials.read_secret(ctx.secret(credentials.WEB_PASSWORD_FILE))
    _write_private(ctx.secret(credentials.WEB_CONFIG), credentials.web_config(password))
    client = credentials.http_client_config(ctx.secret(credentials.WEB_PASSWORD_FILE))
    _write_private(ctx.secret(credentials.HTTP_CLIENT), client)
    return created


def native_targets(ctx: Context, services: list[Service]) -> dict[str, list[dict]]:
    """file_sd target groups of the native stack: the endpoints of the services that run, and the real
    services of the inventory (probed through the stack's blackbox_exporter when it runs)."""
    rows = [row for service in services for row in service.endpoints(ctx)]
    stack = topology.target_files(rows, lambda row: f"127.0.0.1:{ctx.port(row.name)}")
    prober = (
        f"127.0.0.1:{ctx.port(topology.PROBER)}" if any(s.name == topology.PROBER for s in services) else None
    )
    return inventory.merge(stack, inventory.target_files(ctx.inventory, prober))


def write_targets(ctx: Context, services: list[Service]) -> list[str]:
    """Write the run folder's target files anew (Prometheus reads them within seconds); their names."""
    folder = ctx.path("prometheus", "targets")
    files = native_targets(ctx, services)
    for stale in folder.glob("*.yml"):
        if stale.stem not in files:
            stale.unlink()
    for name, groups in files.items():
        text = "# Written by redline from redline/topology.py and the inventory.\n" + yaml.safe_dump(groups)
        atomic.write_text(folder / f"{name}.yml", text)  # file_sd never reads half a file
    return sorted(files)


def write_scale_config(ctx: Context) -> None:
    """With --scale: the HA replicas' prometheus-scale.yml beside the link to the checkout's prometheus.yml
    (so rules/, targets/ and ../secrets/ resolve alike), from it and the long-term store's native address
    (redline/storage.py scale_config; compose's copy is rendered by `redline generate`)."""
    path = ctx.path("prometheus", SCALE_CONFIG)
    if not ctx.scale:
        path.unlink(missing_ok=True)
        return
    base = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config = storage.scale_config(base, f"127.0.0.1:{ctx.port(storage.LONG_TERM)}")
    header = (
        "# Written by redline up --scale from prometheus/prometheus.yml and redline/storage.py: the HA\n"
        "# replicas' configuration (docs/scale.md); redline reload writes it anew.\n"
    )
    atomic.write_text(path, header + yaml.safe_dump(config, sort_keys=False))


def write_alertmanager_profile(ctx: Context) -> list[str]:
    """The run folder's alertmanager.yml: the configuration to run without the integrations that cannot
    deliver here (their secret file is missing: no PagerDuty key, Slack URL or SMTP password yet), so a
    first `make up` does not page about receivers nobody configured. Returns what was left out."""
    config = yaml.safe_load(ctx.alertmanager_config.read_text())
    base = ctx.path("alertmanager")
    left_out = []
    smtp_ready = _secret_there(base, (config.get("global") or {}).get("smtp_auth_password_file"))
    for receiver in config.get("receivers") or []:
        for kind in [k for k in receiver if k.endswith("_configs")]:
            kept = [
                integration
                for integration in receiver[kind]
                if (smtp_ready if kind == "email_configs" else True)
                and all(_secret_there(base, v) for k, v in integration.items() if k.endswith("_file"))
            ]
            if len(kept) < len(receiver[kind]):
                left_out.append(f"{receiver['name']}: {kind.removesuffix('_configs')}")
            if kept:
                receiver[kind] = kept
            else:
                del receiver[kind]
    header = (
        f"# Written by redline up from {ctx.alertmanager_config}, without the integrations whose secret\n"
        f"# files are missing here: {', '.join(left_out) or 'none'}. Put them in alertmanager/secrets/.\n"
    )
    (base / "alertmanager.yml").unlink(missing_ok=True)
    (base / "alertmanager.yml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    return left_out


def link_operator_secrets(ctx: Context) -> Path:
    """Link the operator's secret files (alertmanager/secrets/ of the checkout: a PagerDuty key, Slack
    URLs...) into the run folder, where Alertmanager reads them; returns that folder of the checkout."""
    operator_secrets = ALERTMANAGER / "secrets"
    secrets_dir = ctx.path("alertmanager", "secrets")
    for secret in sorted(operator_secrets.glob("*")) if operator_secrets.is_dir() else []:
        link = secrets_dir / secret.name
        link.unlink(missing_ok=True)
        link.symlink_to(secret)
    return operator_secrets


def _secret_there(base: Path, relative: str | None) -> bool:
    return relative is None or (base / relative).is_file()


STATE_FILE = "stack.yml"
# How long supervisord waits for a program to stop before it kills the program's process group.
STOP_WAIT_S = 15


def save_context(ctx: Context, services: list[Service]) -> None:
    """Record how the stack was started, for status, restart and reload."""
    state = {
        "services": [s.name for s in services],
        "ha": ctx.ha,
        "scale": ctx.scale,
        "rules_dir": str(ctx.rules_dir),
        "alertmanager_config": str(ctx.alertmanager_config),
        "demo_args": list(ctx.demo_args),
        "inventory_file": str(ctx.inventory_file) if ctx.inventory_file else None,
        "inventory": ctx.inventory.model_dump(mode="json"),
    }
    text = "# Written by redline up: how this stack was started.\n" + yaml.safe_dump(state, sort_keys=False)
    ctx.path(STATE_FILE).write_text(text)


def load_context(folder: Path) -> tuple[Context, list[Service]]:
    """The context and services `up` recorded in a run folder (the defaults when it recorded none)."""
    path = folder / STATE_FILE
    if not path.is_file():
        return Context(run_dir=folder), []
    state = yaml.safe_load(path.read_text()) or {}
    ctx = Context(
        run_dir=folder,
        ha=bool(state.get("ha")),
        scale=bool(state.get("scale")),
        rules_dir=Path(state.get("rules_dir", PROMETHEUS / "rules")),
        alertmanager_config=Path(state.get("alertmanager_config", ALERTMANAGER / "alertmanager.yml")),
        demo_args=tuple(state.get("demo_args", ())),
        inventory=inventory.Inventory.model_validate(state.get("inventory", {"demo": True}), strict=False),
        inventory_file=Path(state["inventory_file"]) if state.get("inventory_file") else None,
    )
    return ctx, [s for s in SERVICES if s.name in state.get("services", ())]


def history_url(otherwise: str | None = None) -> str:
    """Where the stack in the run folder keeps its history (its stack.yml; redline/storage.py history):
    VictoriaMetrics when it runs with --scale, which holds both replicas' samples for longer than either;
    else `otherwise` when given, or the stack's Prometheus."""
    ctx, _services = load_context(run_dir())
    return ctx.history_url if ctx.scale or otherwise is None else otherwise


def refresh(folder: Path, alertmanager_yml: Path) -> list[str]:
    """What `redline reload` changes in a native stack's run folder before the components re-read it:
    the inventory read again into the target files, and the Alertmanager profile written from
    `alertmanager_yml`. InventoryError when the inventory has become invalid (nothing is written then).
    Returns lines for the operator."""
    ctx, services = load_context(folder)
    lines = []
    if ctx.inventory_file is not None:
        fresh = inventory.load(ctx.inventory_file)
        if fresh.demo != ctx.inventory.demo or fresh.database() != ctx.inventory.database():
            lines.append(
                f"{ctx.inventory_file.name}: the demo or the pipeline database changed; "
                "'redline down' and 'redline up' start or stop the services that needs"
            )
        ctx = dataclasses.replace(ctx, inventory=fresh.model_copy(update={"demo": ctx.inventory.demo}))
    ctx = dataclasses.replace(ctx, alertmanager_config=alertmanager_yml)
    files = write_targets(ctx, services)
    write_scale_config(ctx)
    link_operator_secrets(ctx)
    left_out = write_alertmanager_profile(ctx)
    save_context(ctx, services)
    lines.append(f"run folder {folder}: target files {', '.join(files)} written anew")
    if left_out:
        lines.append(f"alertmanager.yml: left out for want of their secret files: {', '.join(left_out)}")
    return lines


def prepare_run_dir(ctx: Context, services: list[Service]) -> None:
    """Create the run folder: config links, target files, secrets, data folders."""
    for sub in ("logs", "data", "prometheus/targets", "alertmanager", "pager-sink", "pgsock"):
        ctx.path(sub).mkdir(parents=True, exist_ok=True)
    prepare_secrets(ctx)
    # The repo's own files, linked so that relative paths (rules/, targets/) resolve inside the run.
    links = {
        ctx.path("prometheus", "prometheus.yml"): PROMETHEUS / "prometheus.yml",
        ctx.path("prometheus", "rules"): ctx.rules_dir,
        ctx.path("alertmanager", "templates"): ALERTMANAGER / "templates",
    }
    for link, target in links.items():
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    write_targets(ctx, services)
    write_scale_config(ctx)
    # Where Alertmanager's webhook receivers deliver locally: the pager-sink, one path per receiver, with
    # the sink's token as the URL's basic-auth password (the URL file is itself a secret).
    secrets_dir = ctx.path("alertmanager", "secrets")
    secrets_dir.mkdir(exist_ok=True)
    operator_secrets = link_operator_secrets(ctx)
    token = credentials.read_secret(ctx.secret(credentials.PAGER_SINK_TOKEN_FILE))
    sink = f"http://{SINK_URL_USER}:{token}@127.0.0.1:{ctx.port('pager-sink')}"
    for receiver in SINK_RECEIVERS:
        if not (operator_secrets / f"{receiver}-webhook-url").exists():
            _write_private(secrets_dir / f"{receiver}-webhook-url", f"{sink}/{receiver}\n")
    write_alertmanager_profile(ctx)
    if any(s.name == "postgres" for s in services):
        _prepare_postgres(ctx)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _prepare_postgres(ctx: Context) -> None:
    """initdb on first use; a random password per role (redline/pg_roles.py) kept in the run's secrets,
    and the pgpass file the demo and the job exporter read theirs from."""
    passwords = {role.name: credentials.ensure_secret(ctx.secret(role.secret)) for role in PG_ROLES}
    pgpass = "".join(f"127.0.0.1:{ctx.port('postgres')}:*:{name}:{pw}\n" for name, pw in passwords.items())
    _write_private(ctx.secret("pgpass"), pgpass)
    password = passwords[PG_ADMIN.name]
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


def _connect_admin(ctx: Context, dbname: str) -> psycopg.Connection:
    password = credentials.read_secret(ctx.secret(PG_ADMIN.secret))
    return psycopg.connect(
        host="127.0.0.1",
        port=ctx.port("postgres"),
        user=PG_ADMIN.name,
        password=password,
        dbname=dbname,
        autocommit=True,
        connect_timeout=5,
    )


def ensure_database(ctx: Context, name: str = pg_roles.PIPELINE_DATABASE) -> None:
    """The pipeline database and the least-privilege roles (redline/pg_roles.py, as compose's init
    script), on every start (idempotent). Passwords are set from the run folder's secrets each time, so a
    changed file takes effect. Logins are allowed last: a service that connects early (they retry) finds
    its grants in place.
    """
    with _connect_admin(ctx, "postgres") as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with _connect_admin(ctx, name) as pipeline:
            pipeline.execute(reference_schema())
            pipeline.execute(pg_roles.grants_sql(name).encode())
        for role in pg_roles.SERVICE_ROLES:
            password = sql.Literal(credentials.read_secret(ctx.secret(role.secret))).as_string(conn)
            conn.execute(pg_roles.login_sql(role, password).encode())


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
            f"priority={service.priority}",
            "autorestart=true",
            "startsecs=1",
            "startretries=3",
            f"stopsignal={service.stop_signal}",
            f"stopwaitsecs={STOP_WAIT_S}",
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
