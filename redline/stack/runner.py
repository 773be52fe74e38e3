"""The native stack: `redline up`, `redline down`, `redline status`.

Starts the stack's processes (redline/stack/services.py) on 127.0.0.1 under supervisord (a separate
daemon, so the stack outlives the shell that started it), with the repository's own config files.
Everything a run writes (data, logs, target files, secrets) lives in one run folder, `.run/` by
default (redline/stack/rundir.py), kept across restarts. Ports come from redline/topology.py and can be
changed with REDLINE_PORT_<NAME>.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from redline import credentials, inventory
from redline.argtypes import add_run_dir
from redline.paths import ALERTMANAGER, PROMETHEUS
from redline.stack.rundir import (
    STOP_WAIT_S,
    ensure_database,
    load_context,
    prepare_run_dir,
    prepare_secrets,
    save_context,
    supervisor_conf,
)
from redline.stack.services import (
    DEMO_SERVICES,
    JOB_TABLE_SERVICES,
    SERVICE_NAMES,
    SERVICES,
    Context,
    Service,
    StackError,
    pg_dsn,
)

READY_TIMEOUT_S = 60.0
SHUTDOWN_MARGIN_S = 10.0  # supervisord's own work after its last tier has stopped

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
    """(endpoint name, port) of every port the service binds (Alertmanager gossips on web port + 1)."""
    ports = [(row.name, ctx.port(row.name)) for row in service.endpoints(ctx)]
    if service.name.startswith("alertmanager") and ctx.ha:
        ports.append((service.name + " gossip", ctx.port(service.name) + 1))
    return ports


def _is_ready(ctx: Context, service: Service) -> bool:
    port = ctx.port(service.endpoints(ctx)[0].name)
    if service.ready_path is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False
    headers = credentials.Credentials(ctx.run_dir).web_headers() if service.auth else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{service.ready_path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def select_services(ctx: Context, only: list[str] | None) -> tuple[list[Service], dict[str, str]]:
    """The services to run, and those skipped with the reason."""
    chosen, skipped = [], {}
    for service in SERVICES:
        if only is not None and service.name not in only:
            continue
        if (service.ha_only and not ctx.ha) or (service.scale_only and not ctx.scale):
            continue
        if service.name in DEMO_SERVICES and not ctx.inventory.demo:
            skipped[service.name] = "no demo: the inventory names the real services"
            continue
        if service.name in JOB_TABLE_SERVICES and not (ctx.inventory.demo or ctx.inventory.database()):
            skipped[service.name] = "no job table: the inventory names no pipeline database"
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
    save_context(ctx, services)
    conf = ctx.path("supervisord.conf")
    credentials.write_private(conf, supervisor_conf(ctx, services))  # Grafana's environment has a secret
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
            ensure_database(ctx)
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
        urls = [ctx.url(row.name) for row in service.endpoints(ctx)]
        if service.name == "postgres":
            urls = [pg_dsn(ctx)]
        rows.append((service.name, state.lower(), str(info.get("pid") or "-"), urls[0]))
        rows += [("", "", "", url) for url in urls[1:]]
    rows += [(name, "skipped", "-", reason) for name, reason in skipped.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    print(f"logs: {ctx.path('logs')}   stop: redline down (or make down)")


def status(ctx: Context) -> int:
    """The status table; exit 3 (as LSB's status) when the stack or any of its services is not running
    and ready, with the log to read for each one that is not."""
    if not _supervisord_pid(ctx):
        print(f"redline: the stack is not running (run folder {ctx.run_dir}); 'make up' starts it")
        return 3
    infos = _process_infos(ctx)
    services = [s for s in SERVICES if s.name in infos]
    _print_table(ctx, services, {})
    # STARTING only means supervisord's startsecs have not passed; readiness is what counts then.
    broken = [
        s.name
        for s in services
        if infos[s.name]["statename"] not in {"RUNNING", "STARTING"} or not _is_ready(ctx, s)
    ]
    for name in broken:
        print(
            f"{name}: not ready ({infos[name]['statename'].lower()}); see {ctx.path('logs', name + '.log')}"
        )
    return 3 if broken else 0


def restart(ctx: Context, name: str) -> int:
    """Stop and start one service of a running stack, and wait until it is ready again."""
    if not _supervisord_pid(ctx):
        raise StackError(f"the stack is not running (run folder {ctx.run_dir}); 'redline up' starts it")
    infos = _process_infos(ctx)
    if name not in infos:
        raise StackError(f"{name} is not a service of this stack; it runs {', '.join(sorted(infos))}")
    supervisor = _rpc(ctx).supervisor
    if infos[name]["statename"] in {"RUNNING", "STARTING", "BACKOFF"}:
        supervisor.stopProcess(name, True)
    started = time.monotonic()
    try:
        supervisor.startProcess(name, False)
    except xmlrpc.client.Fault as err:
        log = ctx.path("logs", f"{name}.log")
        raise StackError(
            f"{name} did not start ({err.faultString}); last lines of {log}:\n{_tail(log)}"
        ) from None
    _wait_ready(ctx, [s for s in SERVICES if s.name == name], started)
    return 0


def _shutdown(ctx: Context) -> bool:
    """Stop supervisord and its programs. supervisord stops one priority tier after the other, each
    program within STOP_WAIT_S before it kills the program's group; should supervisord itself not be
    gone after all tiers, it is killed and so is every program group it had started (each program
    leads its own process group), so that no service outlives `redline down`."""
    pid = _supervisord_pid(ctx)
    if pid is None:
        return False
    try:
        programs = {name: info["pid"] for name, info in _process_infos(ctx).items() if info.get("pid")}
    except (OSError, xmlrpc.client.Fault):
        programs = {}
    try:
        _rpc(ctx).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault):
        os.kill(pid, signal.SIGTERM)
    tiers = len({service.priority for service in SERVICES})
    deadline = time.monotonic() + STOP_WAIT_S * tiers + SHUTDOWN_MARGIN_S
    while time.monotonic() < deadline and _supervisord_pid(ctx):
        time.sleep(0.1)
    if _supervisord_pid(ctx):
        os.kill(pid, signal.SIGKILL)
        killed = [name for name, group in programs.items() if _kill_group(group)]
        if killed:
            print(f"redline: supervisord did not stop in time; killed {', '.join(killed)}", file=sys.stderr)
    return True


def _kill_group(pgid: int) -> bool:
    """SIGKILL a process group; False when no process of it is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def make_secrets(ctx: Context) -> int:
    """`redline secrets`: the run folder's credentials without starting anything (docker compose)."""
    created = prepare_secrets(ctx)
    for path in created:
        print(f"redline secrets: created {path}")
    print(f"redline secrets: credentials in {ctx.path('secrets')} (docker compose reads them from there)")
    return 0


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


def _parser(action: str) -> argparse.ArgumentParser:
    descriptions = {
        "up": "Start redline's native stack on 127.0.0.1 with the repository's configs under supervisord "
        "and print a status table. Without an inventory.yml the demo stands in for the monitored systems; "
        "with one, its real services are scraped and probed (redline/inventory.py, docs/adopting.md). "
        "Ports: redline/topology.py, each overridable with REDLINE_PORT_<NAME>.",
        "down": "Stop the native stack; data, logs and credentials stay in the run folder.",
        "status": "Show the native stack's services, their state and URLs. Exit status 0 when every service "
        "runs and is ready, 3 when the stack or a service is not (each such service with its log).",
        "restart": "Stop and start one service of the running stack and wait until it is ready again.",
        "secrets": "Create the run folder's credentials (as 'up' does on its first start) for compose.",
    }
    parser = argparse.ArgumentParser(prog=f"redline {action}", description=descriptions[action])
    add_run_dir(parser, "data, logs, credentials and generated files")
    if action == "restart":
        parser.add_argument("service", help=f"one of {', '.join(SERVICE_NAMES)}")
    if action != "up":
        return parser
    parser.add_argument("--only", help="comma-separated services to start (default: all available)")
    parser.add_argument("--ha", action="store_true", help="run three clustered Alertmanagers instead of one")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="an HA pair of Prometheus replicas remote-writing into VictoriaMetrics (the long-term store), "
        "with the three clustered Alertmanagers of --ha (docs/scale.md)",
    )
    parser.add_argument(
        "--inventory", type=Path, help="the real services to watch (default: inventory.yml, else the demo)"
    )
    parser.add_argument(
        "--no-demo", action="store_true", help="do not run the demo even if the inventory asks"
    )
    parser.add_argument(
        "--rules-dir",
        type=Path,
        default=PROMETHEUS / "rules",
        help="alert and recording rules to load (default prometheus/rules; tests pass rules rendered with "
        "'redline generate --for-override')",
    )
    parser.add_argument(
        "--alertmanager-config",
        type=Path,
        default=ALERTMANAGER / "alertmanager.yml",
        help="Alertmanager configuration to run (default alertmanager/alertmanager.yml; integrations whose "
        "secret files are missing are left out of the run folder's copy)",
    )
    parser.add_argument(
        "--demo-args",
        default="",
        help="extra options for 'redline demo', e.g. \"--time-scale=30 --otlp-interval=1\"",
    )
    parser.add_argument(
        "--foreground", action="store_true", help="stay attached; Ctrl-C or SIGTERM stops the stack"
    )
    return parser


def _context(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Context:
    """The run's context: from the arguments of `up`, else from what `up` recorded in the run folder."""
    folder = args.run_dir.resolve()
    if args.action != "up":
        return load_context(folder)[0]
    source = args.inventory or (inventory.DEFAULT_PATH if inventory.DEFAULT_PATH.exists() else None)
    try:
        services = inventory.load(source) if source else inventory.DEMO
    except inventory.InventoryError as err:
        parser.error(str(err))
    if args.no_demo:
        services = services.model_copy(update={"demo": False})
    ctx = Context(
        run_dir=folder,
        ha=args.ha or args.scale,
        scale=args.scale,
        rules_dir=args.rules_dir.resolve(),
        alertmanager_config=args.alertmanager_config.resolve(),
        demo_args=tuple(shlex.split(args.demo_args)),
        inventory=services,
        inventory_file=source.resolve() if source else None,
    )
    if not ctx.rules_dir.is_dir() or not any(ctx.rules_dir.glob("*.yml")):
        parser.error(f"--rules-dir {args.rules_dir}: no rule files (*.yml) in it")
    if not ctx.alertmanager_config.is_file():
        parser.error(f"--alertmanager-config {args.alertmanager_config}: no such file")
    return ctx


def main(argv: list[str]) -> int:
    """`redline up|down|status|restart|secrets ...` (argv[0] names the action)."""
    action = argv[0] if argv and argv[0] in ("up", "down", "status", "restart", "secrets") else "up"
    parser = _parser(action)
    args = parser.parse_args(argv[1:] if argv and argv[0] == action else argv)
    args.action = action
    only = [name.strip() for name in args.only.split(",")] if getattr(args, "only", None) else None
    unknown = [
        name
        for name in [*(only or []), getattr(args, "service", None) or ""]
        if name and name not in SERVICE_NAMES
    ]
    if unknown:
        parser.error(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICE_NAMES)}")
    ctx = _context(args, parser)
    try:
        if action == "up":
            if args.foreground:
                _stop_on_signals()
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            code = up(ctx, only)
            if code == 0 and args.foreground:
                print("==> attached; Ctrl-C stops the stack", flush=True)
                while _supervisord_pid(ctx):
                    time.sleep(1)
            return code
        if action == "status":
            return status(ctx)
        if action == "restart":
            return restart(ctx, args.service)
        if action == "secrets":
            return make_secrets(ctx)
        return down(ctx)
    except KeyboardInterrupt:
        print("\n==> interrupted; stopping the stack", flush=True)
        _shutdown(ctx)
        return 130
    except StackError as err:
        print(f"redline {action}: {err}", file=sys.stderr)
        return 1
