"""`redline exporter host`: host and named-process metrics on /metrics, optionally pushed over OTLP."""

from __future__ import annotations

import argparse
import sys

from prometheus_client import CollectorRegistry

from redline.exporters import server
from redline.exporters.host.collectors import build_registry
from redline.exporters.host.config import load_config
from redline.exporters.host.flags import add_collector_arguments, apply_collector_arguments

PROG = "redline exporter host"
SERVICE_NAME = "redline-host-exporter"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Host metrics with node_exporter's names plus named process groups (process-exporter "
        "names), served on /metrics and optionally pushed over OTLP.",
    )
    parser.add_argument("--config", help="YAML: process_groups, collector_timeout_seconds, ... (see docs)")
    server.add_server_arguments(parser, "host-exporter")
    add_collector_arguments(parser)
    return parser


def _build(args: argparse.Namespace) -> tuple[CollectorRegistry, list]:
    return build_registry(apply_collector_arguments(load_config(args.config), args)), []


def main(argv: list[str]) -> int:
    """Run the host exporter until SIGTERM/SIGINT (exit status: redline.exporters.server)."""
    return server.run(PROG, SERVICE_NAME, _parser().parse_args(argv), _build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
