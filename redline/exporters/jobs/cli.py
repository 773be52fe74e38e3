"""`redline exporter jobs`: serve the pipeline's PostgreSQL job table as Prometheus metrics."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from redline.exporters import server
from redline.exporters.jobs.collector import DEFAULT_SQL_FILE, JobTableCollector, load_queries
from redline.exporters.jobs.dsn import check_dsn
from redline.telemetry.contract import HISTOGRAM_BUCKETS

PROG = "redline exporter jobs"
DSN_ENV = "REDLINE_JOBS_DSN"
DURATION_METRIC = "redline_jobs_duration_seconds"
_TIMEOUT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")


class UsageError(ValueError):
    """A bad argument; printed as one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
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
    server.add_server_arguments(parser, "job-exporter")
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
    return check_dsn(dsn, source)


def duration_buckets() -> tuple[float, ...]:
    """Bucket bounds of the job duration histogram, from the thresholds catalogue."""
    return HISTOGRAM_BUCKETS[DURATION_METRIC]


def _build(args: argparse.Namespace) -> tuple[CollectorRegistry, list[Callable[[], None]]]:
    collector = JobTableCollector(
        resolve_dsn(args),
        load_queries(args.sql_file),
        duration_buckets(),
        statement_timeout_ms=statement_timeout_ms(args.statement_timeout),
        connect_timeout_s=max(1, args.connect_timeout),
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry, [collector.close]


def main(argv: list[str] | None = None) -> int:
    """Run the job exporter until SIGINT/SIGTERM (exit status: redline.exporters.server)."""
    return server.run(PROG, "redline-jobs-exporter", _parser().parse_args(argv), _build)
