"""`redline exporter host`: host and named-process metrics on /metrics, optionally pushed over OTLP."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from redline.exporters.host.collectors import build_registry
from redline.exporters.host.config import ConfigError, load_config
from redline.exporters.host.flags import add_collector_arguments, apply_collector_arguments
from redline.exporters.process import freeze_startup_objects, share_malloc_arena
from redline.telemetry.otlp_bridge import add_otlp_arguments, bridge_from_args
from redline.telemetry.web import WebConfigError, load_web_config, parse_listen, serve

SERVICE_NAME = "redline-host-exporter"
DEFAULT_LISTEN = "127.0.0.1:9110"
log = logging.getLogger("redline.exporter.host")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redline exporter host",
        description="Host metrics with node_exporter's names plus named process groups (process-exporter "
        "names), served on /metrics and optionally pushed over OTLP.",
    )
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default: {DEFAULT_LISTEN})"
    )
    parser.add_argument("--config", help="YAML: process_groups, collector_timeout_seconds, ... (see docs)")
    parser.add_argument("--web-config", help="YAML with tls_server_config and basic_auth_users (bcrypt)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_otlp_arguments(parser)
    add_collector_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    """Run the host exporter until SIGTERM/SIGINT; 2 on config or usage errors."""
    parser = _parser()
    args = parser.parse_args(argv)
    share_malloc_arena()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        parse_listen(args.listen)
        config = apply_collector_arguments(load_config(args.config), args)
        if args.web_config:
            load_web_config(args.web_config)  # fail before binding anything
        registry = build_registry(config)
        bridge = bridge_from_args(
            registry,
            SERVICE_NAME,
            args.otlp_endpoint,
            args.otlp_protocol,
            args.otlp_interval,
            listen=args.listen,
        )
    except (ConfigError, WebConfigError, ValueError) as err:
        print(f"redline exporter host: {err}", file=sys.stderr)
        return 2
    try:
        server = serve(registry, args.listen, web_config=args.web_config)
    except OSError as err:
        print(
            f"redline exporter host: cannot listen on {args.listen}: {err.strerror or err}", file=sys.stderr
        )
        return 1
    log.info("serving host metrics on %s/metrics", server.url)
    if bridge is not None:
        bridge.start()
        log.info(
            "pushing OTLP (%s) to %s every %ss", bridge.protocol, bridge.endpoint, bridge.interval_seconds
        )

    freeze_startup_objects()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("shutting down")
    server.shutdown()
    if bridge is not None:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
