"""The job exporter against a real throwaway PostgreSQL 15: values, restarts, outages, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from redline.testing.pg import PgCluster, pg_cluster
from redline.testing.processes import ROOT, free_port, http_get, running, wait_until

SCHEMA = (ROOT / "redline" / "exporters" / "jobs" / "schema.sql").read_text()
EXPORTER = [sys.executable, "-m", "redline.exporters.jobs"]

# (state, duration seconds or None) of the finished rows; 25 and 45 sit exactly on bucket bounds.
FINISHED = [
    ("succeeded", 1.0),
    ("succeeded", 4.5),
    ("succeeded", 25.0),
    ("succeeded", 25.5),
    ("succeeded", 300.0),
    ("succeeded", 301.0),
    ("failed", 45.0),
    ("failed", 0.25),
    ("failed", None),  # failed before it started: counted as completed, not timed
]


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    status, body = http_get(url)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def counters(samples: dict) -> dict:
    """The completed counters and the duration histogram of a scrape."""
    return {
        k: v
        for k, v in samples.items()
        if k[0].startswith(("redline_jobs_completed", "redline_jobs_duration"))
    }


def insert_finished(pg: PgCluster, rows: list[tuple[str, float | None]]) -> None:
    for state, seconds in rows:
        if seconds is None:
            pg.execute(
                "INSERT INTO jobs (state, enqueued_at, finished_at, error) VALUES (%s, now(), now(), 'x')",
                (state,),
            )
        else:
            pg.execute(
                "INSERT INTO jobs (state, enqueued_at, started_at, finished_at) "
                "VALUES (%s, now() - interval '1 hour', now() - make_interval(secs => %s), now())",
                (state, seconds),
            )
            # Make the duration exact (two now() calls in one statement are equal).
            pg.execute(
                "UPDATE jobs SET started_at = finished_at - make_interval(secs => %s) "
                "WHERE id = (SELECT max(id) FROM jobs)",
                (seconds,),
            )


@pytest.fixture(scope="module")
def pg():
    with pg_cluster() as cluster:
        cluster.execute(SCHEMA)
        insert_finished(cluster, FINISHED)
        for _ in range(2):
            cluster.execute("INSERT INTO jobs (state, started_at) VALUES ('running', now())")
        for age in (100, 30, 5):
            cluster.execute(
                "INSERT INTO jobs (state, enqueued_at) VALUES ('queued', now() - make_interval(secs => %s))",
                (age,),
            )
        yield cluster


def start_exporter(pg: PgCluster, tmp_path: Path, *extra: str, port: int | None = None):
    port = port or free_port()
    cmd = [*EXPORTER, "--dsn", pg.dsn, "--listen", f"127.0.0.1:{port}", *extra]
    return running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", log=tmp_path / "exporter.log"), port


def expected_histogram(rows: list[tuple[str, float | None]], outcome_state: str) -> dict[str, float]:
    bounds = [1, 5, 10, 15, 20, 25, 30, 45, 60, 90, 120, 300]
    timed = [s for state, s in rows if state == outcome_state and s is not None]
    counts = {f"{float(b)}": float(sum(1 for s in timed if s <= b)) for b in bounds}
    counts["+Inf"] = float(len(timed))
    return counts


def test_values_match_rows_and_restart_does_not_double_count(pg, tmp_path):
    ctx, port = start_exporter(pg, tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    with ctx:
        first = scrape(url)
    assert value(first, "redline_jobs_up") == 1
    assert value(first, "redline_jobs_in_progress") == 2
    assert value(first, "redline_jobs_queued") == 3
    assert 100 <= value(first, "redline_jobs_oldest_queued_age_seconds") < 130
    assert value(first, "redline_jobs_completed_total", outcome="success") == 6
    assert value(first, "redline_jobs_completed_total", outcome="failure") == 3
    for outcome, state in (("success", "succeeded"), ("failure", "failed")):
        for le, count in expected_histogram(FINISHED, state).items():
            got = value(first, "redline_jobs_duration_seconds_bucket", outcome=outcome, le=le)
            assert got == count, (outcome, le)
    # A value equal to a bound lands in that bucket: 25 s in le=25, 45 s in le=45, 300 s in le=300.
    assert value(first, "redline_jobs_duration_seconds_bucket", outcome="success", le="20.0") == 2
    assert value(first, "redline_jobs_duration_seconds_bucket", outcome="success", le="25.0") == 3
    assert value(first, "redline_jobs_duration_seconds_bucket", outcome="failure", le="30.0") == 1
    assert value(first, "redline_jobs_duration_seconds_bucket", outcome="failure", le="45.0") == 2
    assert value(first, "redline_jobs_duration_seconds_count", outcome="success") == 6
    assert value(first, "redline_jobs_duration_seconds_count", outcome="failure") == 2
    assert value(first, "redline_jobs_duration_seconds_sum", outcome="success") == pytest.approx(657.0)
    assert value(first, "redline_jobs_duration_seconds_sum", outcome="failure") == pytest.approx(45.25)

    # Restart on the same port: the same totals, and one new job counts exactly once.
    ctx, _ = start_exporter(pg, tmp_path, port=port)
    with ctx:
        again = scrape(url)
        assert counters(again) == counters(first)
        insert_finished(pg, [("succeeded", 10.0)])
        later = scrape(url)
        assert value(later, "redline_jobs_completed_total", outcome="success") == 7
        assert value(later, "redline_jobs_duration_seconds_bucket", outcome="success", le="10.0") == 3
        assert value(later, "redline_jobs_duration_seconds_bucket", outcome="success", le="5.0") == 2
        assert counters(scrape(url)) == counters(later)  # scraping again counts nothing twice
    pg.execute("DELETE FROM jobs WHERE id = (SELECT max(id) FROM jobs)")


def test_dropped_connection_and_database_outage_recover(pg, tmp_path):
    ctx, port = start_exporter(pg, tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"
    with ctx as proc:
        assert value(scrape(url), "redline_jobs_up") == 1
        killed = pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'redline-jobs-exporter'"
        )
        assert killed == [(True,)]
        broken = scrape(url)
        assert value(broken, "redline_jobs_up") == 0
        assert not any(name.startswith("redline_jobs_completed") for name, _ in broken)
        assert value(scrape(url), "redline_jobs_up") == 1  # reconnected on the next scrape

        pg.stop()
        try:
            down = scrape(url)
            assert value(down, "redline_jobs_up") == 0
            assert proc.poll() is None
        finally:
            pg.start()
        recovered = wait_until(
            lambda: (s := scrape(url)) and value(s, "redline_jobs_up") == 1 and s,
            timeout=15,
            what="reconnect",
        )
        assert value(recovered, "redline_jobs_completed_total", outcome="success") == 6
    log = (tmp_path / "exporter.log").read_text()
    assert log.count("job table unreadable") <= 3, log  # state changes only, not one line per scrape


def test_read_only_and_statement_timeout(pg, tmp_path):
    writes = tmp_path / "writes.sql"
    writes.write_text(
        "-- name: current\nSELECT nextval('jobs_id_seq'), 0, 0\n"
        "-- name: finished\nSELECT 'success' AS outcome, 1.0 AS duration_seconds\n"
    )
    slow = tmp_path / "slow.sql"
    slow.write_text(
        "-- name: current\nSELECT 1, 2, 3 FROM pg_sleep(2)\n"
        "-- name: finished\nSELECT 'success' AS outcome, 1.0 AS duration_seconds\n"
    )
    for sql_file, extra in ((writes, []), (slow, ["--statement-timeout", "200ms"])):
        ctx, port = start_exporter(pg, tmp_path, "--sql-file", str(sql_file), *extra)
        with ctx:
            started = time.monotonic()
            assert value(scrape(f"http://127.0.0.1:{port}/metrics"), "redline_jobs_up") == 0, sql_file
            assert time.monotonic() - started < 1.5
    assert "read-only transaction" in (tmp_path / "exporter.log").read_text()


def test_sql_for_another_schema(pg, tmp_path):
    pg.execute("CREATE TABLE tasks (status int, took_ms int, created timestamptz DEFAULT now())")
    pg.execute(
        "INSERT INTO tasks VALUES (1, 1000, now()), (1, 25000, now()), (2, 61000, now()), (0, NULL, now())"
    )
    sql_file = tmp_path / "tasks.sql"
    sql_file.write_text(
        "-- name: current\n"
        "SELECT 0, count(*) FILTER (WHERE status = 0), 0 FROM tasks;\n"
        "-- name: finished\n"
        "SELECT CASE status WHEN 1 THEN 'success' ELSE 'failure' END AS outcome,\n"
        "       took_ms / 1000.0 AS duration_seconds FROM tasks\n"
        "WHERE status > 0 AND took_ms::text LIKE '%000';\n"
    )
    ctx, port = start_exporter(pg, tmp_path, "--sql-file", str(sql_file))
    with ctx:
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "redline_jobs_queued") == 1
    assert value(samples, "redline_jobs_completed_total", outcome="success") == 2
    assert value(samples, "redline_jobs_completed_total", outcome="failure") == 1
    assert value(samples, "redline_jobs_duration_seconds_bucket", outcome="success", le="25.0") == 2
    assert value(samples, "redline_jobs_duration_seconds_bucket", outcome="failure", le="60.0") == 0
    assert value(samples, "redline_jobs_duration_seconds_bucket", outcome="failure", le="90.0") == 1


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*EXPORTER, *args], capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dsn", "host=127.0.0.1 password"], '--dsn: invalid PostgreSQL connection string: missing "="'),
        (["--dsn", "postgresql://u:secret@[bad"], "--dsn: invalid PostgreSQL connection string"),
        (["--dsn-file", "/nonexistent/dsn"], "--dsn-file /nonexistent/dsn: cannot read"),
        ([], "no DSN: give --dsn, --dsn-file or set REDLINE_JOBS_DSN"),
        (["--dsn", "host=x", "--statement-timeout", "soon"], "--statement-timeout: 'soon' is not a duration"),
        (["--dsn", "host=x", "--listen", "127.0.0.1"], "invalid listen address"),
        (
            ["--dsn", "host=x", "--sql-file", str(ROOT / "redline" / "exporters" / "jobs" / "schema.sql")],
            "query 'current' is missing",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    env = {k: v for k, v in os.environ.items() if k != "REDLINE_JOBS_DSN"}
    if "--listen" not in args:
        args = [*args, "--listen", f"127.0.0.1:{free_port()}"]
    result = run_cli(*args, env=env)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr


def test_dsn_from_env_and_file(pg, tmp_path):
    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(pg.dsn + "\n")
    for how in ("file", "env"):
        port = free_port()
        args = ["--listen", f"127.0.0.1:{port}"]
        env = {}
        if how == "file":
            args += ["--dsn-file", str(dsn_file)]
        else:
            env["REDLINE_JOBS_DSN"] = pg.dsn
        with running([*EXPORTER, *args], ready_url=f"http://127.0.0.1:{port}/metrics", env=env) as proc:
            assert value(scrape(f"http://127.0.0.1:{port}/metrics"), "redline_jobs_up") == 1
            assert pg.dsn not in " ".join(proc.args)
