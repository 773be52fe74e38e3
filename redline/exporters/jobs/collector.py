"""Collector that reads the job table on every scrape (prometheus_client custom collector).

Counters and the duration histogram are computed from the finished rows themselves, cumulatively over
the whole table, so every finished job is counted exactly once and a restarted exporter reports the
same totals (no state kept in the exporter). Connection or query errors give `redline_jobs_up 0`; the
next scrape reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from psycopg import sql

log = logging.getLogger("redline.jobs")

DEFAULT_SQL_FILE = Path(__file__).with_name("queries.sql")
REFERENCE_SCHEMA = Path(__file__).with_name("schema.sql")  # the table DEFAULT_SQL_FILE reads
QUERY_NAMES = ("current", "finished")
OUTCOMES = ("success", "failure")
_NAME_LINE = re.compile(r"^--\s*name:\s*(\S+)\s*$")


class SqlFileError(ValueError):
    """The SQL file is unreadable or lacks a named query."""


@dataclass(frozen=True)
class Queries:
    """The two named queries of a SQL file."""

    current: str
    finished: str


def load_queries(path: Path = DEFAULT_SQL_FILE) -> Queries:
    """Parse a SQL file made of `-- name: NAME` sections (see queries.sql)."""
    try:
        text = path.read_text()
    except OSError as err:
        raise SqlFileError(f"{path}: cannot read: {err.strerror}") from None
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            name = match.group(1)
            if name not in QUERY_NAMES:
                raise SqlFileError(f"{path}: unknown query name {name!r}; expected {', '.join(QUERY_NAMES)}")
            if name in sections:
                raise SqlFileError(f"{path}: query {name!r} appears twice")
            current = sections[name] = []
        elif current is not None:
            current.append(line)
    bodies = {}
    for name in QUERY_NAMES:
        body = "\n".join(sections.get(name, [])).strip().rstrip(";").strip()
        if not body:
            raise SqlFileError(f"{path}: query {name!r} is missing (add a '-- name: {name}' section)")
        bodies[name] = body
    return Queries(**bodies)


def finished_aggregate(finished_sql: str, buckets: Sequence[float]) -> sql.Composed:
    """Wrap the `finished` query into one aggregate row per outcome: count, timed, sum, buckets."""
    bucket_columns = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE duration_seconds <= {})").format(sql.Literal(float(bound)))
        for bound in buckets
    )
    return sql.SQL(
        "WITH finished AS ({finished}) "
        "SELECT outcome::text, count(*), count(duration_seconds), "
        "coalesce(sum(duration_seconds), 0)::float8, {buckets} "
        "FROM finished GROUP BY outcome ORDER BY outcome"
    ).format(finished=sql.SQL(finished_sql), buckets=bucket_columns)


class JobTableCollector(Collector):
    """Reads the job table through one psycopg connection, reconnecting after any error."""

    def __init__(
        self,
        dsn: str,
        queries: Queries,
        buckets: Sequence[float],
        *,
        statement_timeout_ms: int = 5000,
        connect_timeout_s: int = 5,
    ) -> None:
        self._dsn = dsn
        self._queries = queries
        self._buckets = tuple(float(b) for b in buckets)
        self._aggregate = finished_aggregate(queries.finished, self._buckets)
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()  # one query at a time on the shared connection
        self._was_up: bool | None = None

    def close(self) -> None:
        """Close the database connection (a later scrape reconnects)."""
        with self._lock:
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout_s,
                application_name="redline-jobs-exporter",
            )
            conn.read_only = True  # every transaction below is BEGIN READ ONLY
            self._conn = conn
        return self._conn

    def _read(self) -> tuple[tuple, list[tuple]]:
        conn = self._connection()
        with conn.transaction():
            conn.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(self._statement_timeout_ms))
            )
            current = conn.execute(sql.SQL(self._queries.current)).fetchone()
            finished = conn.execute(self._aggregate).fetchall()
        try:
            if current is None or len(current) < 3:
                raise ValueError("no row")
            values = tuple(float(v or 0) for v in current[:3])
            rows = [
                (str(r[0]), int(r[1]), int(r[2]), float(r[3]), *(int(c) for c in r[4:])) for r in finished
            ]
        except (TypeError, ValueError):
            raise psycopg.ProgrammingError(
                "query 'current' must return one row of numbers: in_progress, queued, "
                "oldest_queued_age_seconds; query 'finished' must return outcome, duration_seconds"
            ) from None
        return values, rows

    def collect(self) -> Iterator[Metric]:
        start = time.monotonic()
        with self._lock:
            try:
                current, finished = self._read()
                error = None
            except psycopg.Error as err:
                self._drop_connection()
                current, finished, error = None, [], err
        self._log_state(error)
        up = GaugeMetricFamily("redline_jobs_up", "1 when the job table could be read on this scrape.")
        up.add_metric([], 0 if error else 1)
        yield up
        took = GaugeMetricFamily(
            "redline_jobs_scrape_duration_seconds", "Time spent reading the job table on this scrape."
        )
        took.add_metric([], time.monotonic() - start)
        yield took
        if current is None:
            return
        yield from self._current_metrics(current)
        yield from self._finished_metrics(finished)

    def _log_state(self, error: psycopg.Error | None) -> None:
        # Log changes only, so a long outage does not flood the log.
        up = error is None
        if up != self._was_up:
            if up:
                log.info("job table readable")
            else:
                log.error(
                    "job table unreadable: %s", str(error).strip().splitlines()[0] if str(error) else error
                )
        self._was_up = up

    @staticmethod
    def _current_metrics(row: tuple) -> Iterator[Metric]:
        in_progress, queued, oldest = row
        yield GaugeMetricFamily("redline_jobs_in_progress", "Jobs running now.", value=in_progress)
        yield GaugeMetricFamily("redline_jobs_queued", "Jobs waiting to run.", value=queued)
        yield GaugeMetricFamily(
            "redline_jobs_oldest_queued_age_seconds",
            "Age of the oldest waiting job (0 when none waits).",
            value=oldest,
        )

    def _finished_metrics(self, rows: list[tuple]) -> Iterator[Metric]:
        completed = CounterMetricFamily(
            "redline_jobs_completed", "Finished jobs, counted from the job table.", labels=["outcome"]
        )
        duration = HistogramMetricFamily(
            "redline_jobs_duration_seconds",
            "Duration of finished jobs (started to finished), from the job table.",
            labels=["outcome"],
        )
        by_outcome = {row[0]: row for row in rows}
        for outcome in sorted(set(OUTCOMES) | set(by_outcome)):
            row = by_outcome.get(outcome)
            if row is None:
                total, timed, seconds, counts = 0, 0, 0.0, [0] * len(self._buckets)
            else:
                total, timed, seconds, counts = row[1], row[2], row[3], list(row[4:])
            completed.add_metric([outcome], float(total))
            buckets = [(_le(bound), float(count)) for bound, count in zip(self._buckets, counts, strict=True)]
            buckets.append(("+Inf", float(timed)))
            duration.add_metric([outcome], buckets, float(seconds))
        yield completed
        yield duration


def _le(bound: float) -> str:
    """Bucket label as prometheus_client writes it (1.0, 25.0, 0.5)."""
    return floatToGoString(bound)
