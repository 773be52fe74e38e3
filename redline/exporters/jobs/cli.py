"""`redline exporter jobs`: serve the pipeline's PostgreSQL job table as Prometheus metrics."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

import psycopg
from prometheus_client import CollectorRegistry

from redline.exporters.jobs.collector import DEFAULT_SQL_FILE, JobTableCollector, SqlFileError, load_queries
from redline.exporters.process import freeze_startup_objects, share_malloc_arena
from redline.topology import PORTS

PROG = "redline exporter jobs"
DSN_ENV = "REDLINE_JOBS_DSN"
DURATION_METRIC = "redline_jobs_duration_seconds"
_TIMEOUT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")
_URI_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]*)@")
_KV_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


class UsageError(ValueError):
    """A bad argument; printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    from redline.telemetry.otlp_bridge import add_otlp_arguments

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Read the job table (read-only, with a statement timeout) on every scrape into "
            "redline_jobs_* metrics. The DSN comes from --dsn, --dsn-file or $" + DSN_ENV + " (in that "
            "order); libpq's PG* variables and ~/.pgpass also apply, so passwords can stay out of argv."
        ),
    )
    parser.add_argument(
        "--dsn", help="libpq connection string or URI (prefer --dsn-file or $" + DSN_ENV + ")"
    )
    parser.add_argument("--dsn-file", type=Path, help="file whose first line is the DSN")
    parser.add_argument(
        "--listen",
        default=f"127.0.0.1:{PORTS['job-exporter']}",
        help="HOST:PORT to serve /metrics on (default: %(default)s)",
    )
    parser.add_argument("--web-config", help="web-config YAML for TLS and basic auth on /metrics")
    parser.add_argument(
        "--sql-file",
        type=Path,
        default=DEFAULT_SQL_FILE,
        help="SQL file with the named queries 'current' and 'finished' (default: %(default)s)",
    )
    parser.add_argument(
        "--statement-timeout",
        default="5s",
        help="PostgreSQL statement timeout per query, e.g. 500ms or 5s (default: %(default)s)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=int,
        default=5,
        help="seconds to wait for a connection (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_otlp_arguments(parser)
    return parser


def statement_timeout_ms(value: str) -> int:
    """'500ms', '5s' or '5' (seconds) -> milliseconds."""
    match = _TIMEOUT.match(value.strip())
    if not match:
        raise UsageError(f"--statement-timeout: {value!r} is not a duration like 500ms or 5s")
    number = float(match.group(1))
    ms = int(number if match.group(2) == "ms" else number * 1000)
    if ms <= 0:
        raise UsageError(f"--statement-timeout: {value!r} must be greater than zero")
    return ms


def resolve_dsn(args: argparse.Namespace) -> str:
    """The DSN from --dsn, --dsn-file or the environment, checked for syntax (not connectivity)."""
    if args.dsn is not None:
        dsn, source = args.dsn, "--dsn"
    elif args.dsn_file is not None:
        try:
            lines = args.dsn_file.read_text().splitlines()
        except OSError as err:
            raise UsageError(f"--dsn-file {args.dsn_file}: cannot read: {err.strerror}") from None
        dsn, source = (lines[0].strip() if lines else ""), f"--dsn-file {args.dsn_file}"
        if not dsn:
            raise UsageError(f"--dsn-file {args.dsn_file}: the file is empty")
    elif os.environ.get(DSN_ENV):
        dsn, source = os.environ[DSN_ENV], "$" + DSN_ENV
    else:
        raise UsageError(f"no DSN: give --dsn, --dsn-file or set {DSN_ENV}")
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unparsable"
        raise UsageError(f"{source}: invalid PostgreSQL connection string: {redact(reason, dsn)}") from None
    return dsn


def redact(message: str, dsn: str) -> str:
    """libpq quotes the connection string in its errors: hide any password it contains."""
    secrets = [m.group(1) for m in _URI_PASSWORD.finditer(dsn)] + [
        m.group(1) for m in _KV_PASSWORD.finditer(dsn)
    ]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, "****")
    return message


def duration_buckets() -> tuple[float, ...]:
    """Bucket bounds of the job duration histogram, from the thresholds catalogue."""
    from redline.telemetry.contract import HISTOGRAM_BUCKETS

    return HISTOGRAM_BUCKETS[DURATION_METRIC]


def main(argv: list[str] | None = None) -> int:
    """Run the job exporter until SIGINT/SIGTERM."""
    from redline.telemetry.otlp_bridge import bridge_from_args
    from redline.telemetry.web import WebConfigError, serve

    args = _parser().parse_args(argv)
    share_malloc_arena()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        dsn = resolve_dsn(args)
        timeout_ms = statement_timeout_ms(args.statement_timeout)
        queries = load_queries(args.sql_file)
        collector = JobTableCollector(
            dsn,
            queries,
            duration_buckets(),
            statement_timeout_ms=timeout_ms,
            connect_timeout_s=max(1, args.connect_timeout),
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        bridge = bridge_from_args(
            registry,
            "redline-jobs-exporter",
            args.otlp_endpoint,
            args.otlp_protocol,
            args.otlp_interval,
            listen=args.listen,
        )
        server = serve(registry, args.listen, web_config=args.web_config)
    except (UsageError, SqlFileError, WebConfigError, ValueError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{PROG}: --listen {args.listen}: cannot bind: {err.strerror or err}", file=sys.stderr)
        return 2
    if bridge is not None:
        bridge.start()
    logging.getLogger("redline.jobs").info("serving %s", server.metrics_url)
    freeze_startup_objects()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if bridge is not None:
            bridge.stop()
        server.shutdown()
        collector.close()
    return 0
