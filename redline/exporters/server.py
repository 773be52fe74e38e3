"""The one startup and shutdown path of redline's exporters: the same flags, exit codes and signals.

Every exporter (`redline exporter host`, `redline exporter jobs`) takes --listen (default: its endpoint
in redline/topology.py), --web-config, --log-level and the OTLP flags; builds its registry; serves
/metrics; optionally pushes OTLP; and stops cleanly on SIGTERM or SIGINT.
Exit status: 0 after a signal, 1 when the address cannot be bound, 2 for bad arguments or config
(one line on stderr naming the option, file or field).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from redline import topology
from redline.exporters.process import freeze_startup_objects, share_malloc_arena
from redline.telemetry.otlp_bridge import add_otlp_arguments, bridge_from_args
from redline.telemetry.web import load_web_config, parse_listen, serve

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
LOG_LEVELS = ("debug", "info", "warning", "error")

# What an exporter builds from its arguments: its registry and what to close when it stops.
Build = Callable[[argparse.Namespace], tuple[CollectorRegistry, Sequence[Callable[[], None]]]]


def add_server_arguments(parser: argparse.ArgumentParser, endpoint: str) -> None:
    """--listen, --web-config, --log-level and the OTLP flags; --listen defaults to the endpoint's port."""
    default = f"127.0.0.1:{topology.endpoint(endpoint).port}"
    parser.add_argument(
        "--listen", default=default, help=f"HOST:PORT to serve /metrics on (default: {default})"
    )
    parser.add_argument("--web-config", help="YAML with tls_server_config and basic_auth_users (bcrypt)")
    parser.add_argument(
        "--log-level", type=str.lower, default="info", choices=LOG_LEVELS, help="default: info"
    )
    add_otlp_arguments(parser)


def run(prog: str, service_name: str, args: argparse.Namespace, build: Build) -> int:
    """Build the registry, serve it (and push OTLP) until SIGTERM/SIGINT; returns the exit status."""
    share_malloc_arena()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger(f"redline.{service_name}")
    try:
        parse_listen(args.listen)
        if args.web_config:
            load_web_config(args.web_config)  # fail before anything is started
        registry, closers = build(args)
        bridge = bridge_from_args(
            registry,
            service_name,
            args.otlp_endpoint,
            args.otlp_protocol,
            args.otlp_interval,
            listen=args.listen,
        )
    except ValueError as err:  # every usage and config error of the exporters is a ValueError
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        server = serve(registry, args.listen, web_config=args.web_config)
    except OSError as err:
        print(f"{prog}: cannot listen on {args.listen}: {err.strerror or err}", file=sys.stderr)
        for close in closers:
            close()
        return EXIT_RUNTIME
    log.info("serving %s", server.metrics_url)
    if bridge is not None:
        bridge.start()
        log.info(
            "pushing OTLP (%s) to %s every %ss", bridge.protocol, bridge.endpoint, bridge.interval_seconds
        )
    freeze_startup_objects()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down")
    if bridge is not None:
        bridge.stop()
    server.shutdown()
    for close in closers:
        close()
    return EXIT_OK
