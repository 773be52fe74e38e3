"""`redline demo`: run the simulator; `redline demo fault ...` and `redline demo faults` drive it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import disable_created_metrics

from redline import credentials, topology
from redline.argtypes import positive_float
from redline.demo.control import Control, SystemServer
from redline.demo.faults import FAULTS, describe
from redline.demo.gamebook import GameBook
from redline.demo.pipeline import Pipeline
from redline.demo.qerrors import QErrors
from redline.demo.system import SimulatedSystem, Traffic
from redline.demo.tmux import TmuxMonitor
from redline.exporters.jobs.dsn import check_dsn
from redline.paths import RUN_DIR_ENV, run_dir
from redline.telemetry.contract import HISTOGRAM_BUCKETS
from redline.telemetry.web import serve

PROG = "redline demo"
PIPELINE_DSN_ENV = "REDLINE_DEMO_PIPELINE_DSN"
# part name (`--port NAME=PORT`) -> endpoint of redline/topology.py
PORT_KEYS = topology.demo_parts()
TICK_SECONDS = 0.1
log = logging.getLogger("redline.demo")


class UsageError(ValueError):
    """Bad arguments: one line on stderr, exit status 2."""


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Simulate GameBook Studio, qerrors (production and staging), the job pipeline and the\n"
            "tmux-orchestrator monitor, each on its own port with /metrics and /health, plus a control\n"
            "endpoint for fault injection.\n\n"
            "Other forms:\n"
            "  redline demo fault SYSTEM FAULT [--clear] [--control URL]   inject or clear a fault\n"
            "  redline demo faults [--control URL]                         list faults and their state\n\n"
            "Injecting and clearing faults needs the control token (--control-token-file)."
        ),
        epilog="faults (SYSTEM FAULT):\n" + describe(),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind every port on (default: %(default)s)"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        help="control port; the systems follow at +1..+5 (default: the ports of redline/topology.py)",
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="NAME=PORT",
        help=f"port of one part ({', '.join(PORT_KEYS)}); 0 picks a free port. Repeatable.",
    )
    parser.add_argument(
        "--pipeline-dsn",
        help=f"PostgreSQL DSN of the job table the simulated pipeline writes (or ${PIPELINE_DSN_ENV}); "
        "without it only the pipeline's API is simulated and its job and database faults are refused",
    )
    parser.add_argument(
        "--otlp-endpoint",
        help="OTLP/HTTP receiver for the browsers' FPS gauge, e.g. http://127.0.0.1:8429/opentelemetry/v1/metrics",
    )
    parser.add_argument(
        "--otlp-password-file",
        type=Path,
        help=f"password of user {credentials.USER} for the OTLP receiver's basic auth (the native stack's "
        "vmagent); without it the OTEL_EXPORTER_OTLP_HEADERS variables apply",
    )
    parser.add_argument(
        "--otlp-interval", type=positive_float, default=15.0, help="seconds between FPS pushes (15)"
    )
    parser.add_argument(
        "--control-token-file",
        type=Path,
        default=default_token_file(),
        help="the token POST and DELETE on the control endpoint need (default RUN/secrets/"
        f"{credentials.DEMO_TOKEN_FILE} of the run folder, ${RUN_DIR_ENV} or .run; created when "
        "missing)",
    )
    parser.add_argument(
        "--traffic-scale", type=positive_float, default=1.0, help="multiply request rates (1.0)"
    )
    parser.add_argument(
        "--time-scale", type=positive_float, default=1.0, help="simulated job seconds per real second (1.0)"
    )
    parser.add_argument(
        "--agents", type=int, default=50, help="agents the tmux monitor covers per cycle (50)"
    )
    parser.add_argument("--seed", type=int, help="random seed (default: random)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def default_token_file() -> Path:
    """RUN/secrets/demo-token of the default run folder (REDLINE_RUN_DIR, else .run)."""
    return credentials.secret_path(run_dir(), credentials.DEMO_TOKEN_FILE)


def resolve_ports(base_port: int | None, overrides: Sequence[str]) -> dict[str, int]:
    """Port of every part: redline/topology.py defaults or base+offset, then NAME=PORT overrides."""
    control = topology.endpoint(PORT_KEYS["control"]).port
    try:
        ports = {
            name: topology.port(key)
            if base_port is None
            else base_port + topology.endpoint(key).port - control
            for name, key in PORT_KEYS.items()
        }
    except topology.TopologyError as err:
        raise UsageError(str(err)) from None
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or name not in PORT_KEYS:
            raise UsageError(f"--port {item!r}: expected NAME=PORT with NAME one of {', '.join(PORT_KEYS)}")
        if not text.isdigit() or int(text) > 65535:
            raise UsageError(f"--port {item!r}: {text!r} is not a port number 0-65535")
        ports[name] = int(text)
    for name, port in ports.items():
        if not 0 <= port <= 65535:
            raise UsageError(f"--base-port: port of {name} would be {port}, outside 0-65535")
    return ports


def build_systems(
    args: argparse.Namespace, dsn: str | None, otlp_headers: dict[str, str] | None = None
) -> dict[str, SimulatedSystem]:
    """The simulated systems by control name."""
    buckets = HISTOGRAM_BUCKETS  # the catalogue's (redline/telemetry/contract.py)
    instrument_buckets = {k: v for k, v in buckets.items() if k.startswith("redline_")}
    traffic = Traffic(args.traffic_scale, args.seed)
    systems: list[SimulatedSystem] = [
        GameBook(
            buckets=buckets.get("http_request_duration_seconds"),
            otlp_endpoint=args.otlp_endpoint,
            otlp_interval=args.otlp_interval,
            otlp_headers=otlp_headers,
        ),
        QErrors("production", buckets=buckets.get("qerrors_request_duration_seconds")),
        QErrors("staging", buckets=buckets.get("qerrors_request_duration_seconds")),
        Pipeline(dsn=dsn, time_scale=args.time_scale, request_buckets=instrument_buckets),
        TmuxMonitor(agents=args.agents, buckets=instrument_buckets),
    ]
    for system in systems:
        system.set_traffic(traffic)
    return {system.name: system for system in systems}


def _tick_forever(systems: Sequence[SimulatedSystem], stop: threading.Event) -> None:
    last = time.monotonic()
    while not stop.wait(TICK_SECONDS):
        now = time.monotonic()
        for system in systems:
            try:
                system.tick(now - last)
            except Exception:  # one broken simulation must not stop the others
                log.exception("simulating %s failed", system.name)
        last = now


def run(argv: list[str]) -> int:
    """Run every simulated system until SIGINT/SIGTERM."""
    args = run_parser().parse_args(argv)
    disable_created_metrics()  # the simulated systems expose no *_created series (as prom-client)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    servers = []
    try:
        ports = resolve_ports(args.base_port, args.port)
        dsn = args.pipeline_dsn or os.environ.get(PIPELINE_DSN_ENV) or None
        if dsn:
            check_dsn(dsn, "--pipeline-dsn")
        token = _secret(args.control_token_file, "--control-token-file", create=True)
        otlp_headers = None
        if args.otlp_password_file:
            password = _secret(args.otlp_password_file, "--otlp-password-file")
            otlp_headers = {"Authorization": credentials.basic_auth(credentials.USER, password)}
        systems = build_systems(args, dsn, otlp_headers)
        for name, system in systems.items():
            server = SystemServer(system, args.host, ports[name])
            server.start()
            servers.append(server)
        control = Control({server.system.name: server for server in servers}, token)
        control_server = serve(control.registry, f"{args.host}:{ports['control']}", routes=control.routes())
    except (UsageError, ValueError, OSError) as err:
        for server in servers:
            server.stop()
        message = err.strerror if isinstance(err, OSError) and err.strerror else err
        print(f"{PROG}: {message}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for system in systems.values():
        system.start()
    ticker = threading.Thread(target=_tick_forever, args=(list(systems.values()), stop), daemon=True)
    ticker.start()
    print(f"demo-control {control_server.url}/faults", flush=True)
    for server in servers:
        print(f"demo-{server.system.name} {server.url}", flush=True)
    stop.wait()
    ticker.join(timeout=2)
    for system in systems.values():
        system.stop()
    control_server.shutdown()
    for server in servers:
        server.stop()
    return 0


def _secret(path: Path, option: str, create: bool = False) -> str:
    """A secret file's value (generated first when `create`); UsageError naming the option."""
    try:
        if create:  # the default file of the run folder, with its folder when missing
            return credentials.ensure_secret(path, make_folder=path == default_token_file())
        return credentials.read_secret(path)
    except credentials.CredentialsError as err:
        raise UsageError(f"{option} {err}") from None


def add_control_argument(parser: argparse.ArgumentParser, token: bool = False) -> None:
    """--control URL, by default the demo control endpoint of redline/topology.py on 127.0.0.1; with
    `token`, --token-file, the control token that injecting and clearing faults need."""
    endpoint = topology.endpoint(PORT_KEYS["control"])
    parser.add_argument(
        "--control",
        help=f"demo control URL (default: http://127.0.0.1:{endpoint.port}, or ${endpoint.env_name}'s port)",
    )
    if not token:
        return
    parser.add_argument(
        "--token-file",
        type=Path,
        default=default_token_file(),
        help=f"the demo's control token (default RUN/secrets/{credentials.DEMO_TOKEN_FILE} of the run "
        f"folder, ${RUN_DIR_ENV} or .run: what `redline up` gave the demo)",
    )


def control_url(args: argparse.Namespace) -> str:
    """The --control URL, or the default one (REDLINE_PORT_DEMO_CONTROL honoured)."""
    if args.control:
        return str(args.control)
    try:
        return f"http://127.0.0.1:{topology.port(PORT_KEYS['control'])}"
    except topology.TopologyError as err:
        raise UsageError(str(err)) from None


def control_request(control: str, method: str, path: str, token: str | None = None) -> tuple[int, object]:
    """One request to the demo's control endpoint (with the control token): (HTTP status, JSON body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(control.rstrip("/") + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def fault(argv: list[str]) -> int:
    """`redline demo fault SYSTEM FAULT [--clear]`."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} fault",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inject a fault into the running demo (or clear it with --clear).",
        epilog="faults (SYSTEM FAULT):\n" + describe(),
    )
    parser.add_argument("system", choices=list(FAULTS))
    parser.add_argument("fault")
    parser.add_argument("--clear", action="store_true", help="turn the fault off")
    add_control_argument(parser, token=True)
    args = parser.parse_args(argv)
    if args.fault not in FAULTS[args.system]:
        print(
            f"{PROG} fault: unknown fault {args.fault!r} for {args.system}; "
            f"choose from {', '.join(FAULTS[args.system])}",
            file=sys.stderr,
        )
        return 2
    try:
        control = control_url(args)
        token = _secret(args.token_file, "--token-file")
    except UsageError as err:
        print(f"{PROG} fault: {err}", file=sys.stderr)
        return 2
    query = urllib.parse.urlencode({"system": args.system, "fault": args.fault})
    try:
        status, body = control_request(control, "DELETE" if args.clear else "POST", f"/fault?{query}", token)
    except (OSError, ValueError) as err:
        print(f"{PROG} fault: cannot reach the demo control at {control}: {err}", file=sys.stderr)
        return 1
    if status != 200:
        error = body.get("error", body) if isinstance(body, dict) else body
        print(f"{PROG} fault: {control} answered {status}: {error}", file=sys.stderr)
        return 1
    print(f"{args.system} {args.fault}: {'cleared' if args.clear else 'injected'}")
    return 0


def faults(argv: list[str]) -> int:
    """`redline demo faults`: the fault table, with the state of a running demo when it answers."""
    parser = argparse.ArgumentParser(prog=f"{PROG} faults", description="List the demo's faults.")
    add_control_argument(parser)
    args = parser.parse_args(argv)
    try:
        control = control_url(args)
    except UsageError as err:
        print(f"{PROG} faults: {err}", file=sys.stderr)
        return 2
    try:
        _status, rows = control_request(control, "GET", "/faults")
    except (OSError, ValueError):
        print(f"(no demo answers at {control}; showing the fault table)")
        print(describe())
        return 0
    for row in rows if isinstance(rows, list) else []:
        state = "ON " if row["active"] else "off"
        alerts = ", ".join(f"{a['alert']} ({a['severity']})" for a in row["alerts"]) or "-"
        print(f"  {state} {row['system']:<16} {row['fault']:<20} {row['description']}  [trips: {alerts}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "fault":
        return fault(argv[1:])
    if argv and argv[0] == "faults":
        return faults(argv[1:])
    return run(argv)
