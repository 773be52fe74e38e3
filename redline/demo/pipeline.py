"""Simulated job pipeline "TVDb001": an API server and workers processing a real PostgreSQL job table.

With a DSN, a feeder keeps a few jobs queued in the reference table (redline/exporters/jobs/schema.sql) and
workers claim them (FOR UPDATE SKIP LOCKED), "process" them and mark them succeeded or failed, so that
`redline exporter jobs` measures real rows. Durations are simulated seconds; with --time-scale K a job
of D simulated seconds takes D/K real seconds and its row records D (started_at is set back at finish).
A worker that loses its connection mid-job reconnects and finishes that job, so no row stays 'running'.
The faults on the database itself (locked table, connections, database down) live in database.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

import psycopg

from redline.demo.database import DatabaseFaults
from redline.demo.system import FaultError, SimulatedSystem
from redline.exporters.jobs.collector import REFERENCE_SCHEMA
from redline.telemetry.instrument import Instrumentation

log = logging.getLogger("redline.demo.pipeline")

WORKERS = 4  # validated concurrency is 5
WORKERS_UNDER_TEST = 8  # the 'concurrency' fault runs more jobs at once than validated
WORKERS_CRITICAL = 12  # 'concurrency-critical': more than the 10 ever load-tested
MAX_WORKERS = max(WORKERS, WORKERS_UNDER_TEST, WORKERS_CRITICAL)
# Every fault but 'down' acts on the job table or its database, so needs --pipeline-dsn.
API_FAULTS = ("down",)
CLAIM = """
UPDATE jobs SET state = 'running', started_at = now()
WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY enqueued_at, id
            FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id
"""
FINISH = """
UPDATE jobs SET state = %s, finished_at = now(), started_at = now() - make_interval(secs => %s), error = %s
WHERE id = %s
"""


def reference_schema() -> str:
    """The job table the job exporter reads by default (redline/exporters/jobs/schema.sql)."""
    return REFERENCE_SCHEMA.read_text()


class Pipeline(SimulatedSystem):
    """API server (/health, RED metrics) and, with a DSN, workers over the job table.

    Faults: slow-jobs, very-slow-jobs, job-failures, concurrency, concurrency-critical, workers-down,
    db-connections, job-table-locked, db-down (these need the DSN), down (/health 503).
    """

    name = "pipeline"

    def __init__(
        self,
        *,
        dsn: str | None = None,
        time_scale: float = 1.0,
        request_buckets: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self.time_scale = time_scale
        self.api = Instrumentation(self.registry, buckets=request_buckets)
        self._api_jobs = self.api.request("/api/jobs", "GET")
        self._api_submit = self.api.request("/api/jobs", "POST")
        self._stop = threading.Event()
        self._table_ready = threading.Event()  # workers start after the feeder has set the table up
        self._threads: list[threading.Thread] = []
        self._last_error_log = 0.0
        self.db = DatabaseFaults(dsn) if dsn else None

    def set_fault(self, fault: str, active: bool) -> None:
        """Faults on the database act on it first; without a DSN only 'down' can be injected."""
        if fault not in API_FAULTS:
            if self.db is None:
                if active:
                    raise FaultError(
                        f"fault {fault!r} needs the job table: this demo runs without a database; "
                        "start it with --pipeline-dsn (or $REDLINE_DEMO_PIPELINE_DSN)",
                        409,
                    )
            else:
                actions = {
                    "db-connections": (self.db.fill_connections, self.db.release_connections),
                    "job-table-locked": (self.db.lock_table, self.db.unlock_table),
                    "db-down": (self.db.refuse_connections, self.db.allow_connections),
                }
                if fault in actions:
                    actions[fault][0 if active else 1]()
        super().set_fault(fault, active)

    # Job durations in simulated seconds: the documented 25 s average, 45 s before optimisation.
    def job_seconds(self) -> float:
        if self.faulty("very-slow-jobs"):
            return max(1.0, self.rng.gauss(65, 5))
        if self.faulty("slow-jobs"):
            return max(1.0, self.rng.gauss(35, 3))
        return max(1.0, self.rng.gauss(18, 3))

    def job_fails(self) -> bool:
        return self.rng.random() < (0.6 if self.faulty("job-failures") else 0.01)

    def active_workers(self) -> int:
        if self.faulty("workers-down"):
            return 0
        if self.faulty("concurrency-critical"):
            return WORKERS_CRITICAL
        return WORKERS_UNDER_TEST if self.faulty("concurrency") else WORKERS

    def tick(self, seconds: float) -> None:
        for _ in range(self.events(5.0, seconds)):
            self._api_jobs.observe(self.rng.lognormvariate(-3.5, 0.4), 503 if self.faulty("down") else 200)
        self.api.set_health(self.healthy())

    def start(self) -> None:
        self.api.set_health(True)
        if not self.dsn:
            log.info("no --pipeline-dsn: only the API is simulated, no jobs")
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._feed, name="pipeline-feeder", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, args=(i,), name=f"pipeline-worker-{i}", daemon=True)
            for i in range(MAX_WORKERS)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self.db is not None:
            self.db.clear_all()  # release locks and sessions, and let the database accept connections
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.dsn or "", autocommit=True, connect_timeout=3, application_name="redline-demo"
        )
        if self.db is not None:
            self.db.learn(conn)
        return conn

    def _lost(self, conn: psycopg.Connection | None, err: psycopg.Error) -> None:
        """After a database error: log it, drop the connection and pause before the next try."""
        self._log_db_error(err)
        if conn is not None:
            conn.close()
        self._stop.wait(1.0)

    def _log_db_error(self, err: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.warning("job table: %s (retrying)", str(err).strip().splitlines()[0] if str(err) else err)

    def _feed(self) -> None:
        """Keep a few jobs queued, so that every active worker finds one."""
        conn: psycopg.Connection | None = None
        first = True
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                    conn.execute(reference_schema())
                if first:
                    # Jobs a previous demo run left running will never finish: queue them again.
                    conn.execute(
                        "UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'"
                    )
                    first = False
                    self._table_ready.set()
                row = conn.execute("SELECT count(*) FROM jobs WHERE state = 'queued'").fetchone()
                missing = max(self.active_workers(), 1) - (row[0] if row else 0)
                for _ in range(max(0, missing)):
                    conn.execute("INSERT INTO jobs (kind) VALUES ('import')")
                    self._api_submit.observe(self.rng.lognormvariate(-4.0, 0.3), 201)
            except psycopg.Error as err:
                self._lost(conn, err)
                conn = None
            self._stop.wait(0.1)
        if conn is not None:
            conn.close()

    def _work(self, index: int) -> None:
        conn: psycopg.Connection | None = None
        finish: tuple | None = None  # FINISH parameters of the claimed job, until its row is updated
        while not self._stop.is_set():
            try:
                if finish is None:
                    if index >= self.active_workers() or not self._table_ready.is_set():
                        self._stop.wait(0.1)
                        continue
                    if conn is None or conn.closed:
                        conn = self._connect()
                    row = conn.execute(CLAIM).fetchone()
                    if row is None:
                        self._stop.wait(0.1)
                        continue
                    seconds = self.job_seconds()
                    failed = self.job_fails()
                    finish = (
                        "failed" if failed else "succeeded",
                        seconds,
                        "simulated failure" if failed else None,
                        row[0],
                    )
                    self._stop.wait(seconds / self.time_scale)
                # Kept until it succeeds: after a lost connection the worker reconnects and finishes the
                # job it holds (else the row would stay 'running' and count as in progress forever).
                if conn is None or conn.closed:
                    conn = self._connect()
                conn.execute(FINISH, finish)
                finish = None
            except psycopg.Error as err:
                self._lost(conn, err)
                conn = None
        if conn is not None:
            conn.close()
