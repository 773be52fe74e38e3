"""The native stack keeps its data and secrets across `redline down` / `redline up`; PostgreSQL stops with a
fast shutdown (no SIGKILL, no recovery on the next start) and its services get least-privilege roles.

Real processes on free ports through redline/testing/sandbox.py (the real `redline up` and `redline down`).
"""

from __future__ import annotations

import json
import stat
import time
import urllib.parse

import psycopg
import pytest

from redline import credentials
from redline.pg_roles import PG_ADMIN, PG_DEMO, PG_JOB_EXPORTER, PG_MONITOR, PgRole
from redline.testing.processes import http_get, wait_until
from redline.testing.sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# What PostgreSQL logs when it starts from a data folder that was not shut down cleanly (a SIGKILL).
RECOVERY = ("database system was not properly shut down", "automatic recovery in progress")
KEPT_SECRETS = (
    "postgres-password",
    credentials.WEB_PASSWORD_FILE,
    credentials.PAGER_SINK_TOKEN_FILE,
    credentials.DEMO_TOKEN_FILE,
)


def first_sample_time(stack: Sandbox) -> float:
    """Timestamp of the oldest `up` sample of Prometheus's self-scrape in its TSDB."""
    query = urllib.parse.urlencode({"query": 'up{job="prometheus"}[1h]'})
    status, body = http_get(f"{stack.url('prometheus')}/api/v1/query?{query}", headers=stack.auth)
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return float(result[0]["values"][0][0]) if result else 0.0


def connect(stack: Sandbox, role: PgRole = PG_ADMIN) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=stack.port("postgres"),
        user=role.name,
        password=credentials.read_secret(stack.run_dir / "secrets" / role.secret),
        dbname="pipeline",
        connect_timeout=5,
        autocommit=True,
    )


def test_data_and_secrets_survive_a_restart_and_postgres_stops_cleanly() -> None:
    only = ["prometheus", "postgres"]
    with Sandbox(only=only) as stack:
        first = wait_until(lambda: first_sample_time(stack), timeout=30, what="Prometheus's first sample")
        with connect(stack) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('before the restart')")
            # A client still connected when the stack stops: smart shutdown (SIGTERM) would wait for it.
            held = connect(stack)
        secrets = {name: (stack.run_dir / "secrets" / name).read_text() for name in KEPT_SECRETS}
        pg_log, supervisord_log = (
            stack.run_dir / "logs" / "postgres.log",
            stack.run_dir / "logs" / "supervisord.log",
        )

        started = time.monotonic()
        down = stack.redline("down")
        seconds_down = time.monotonic() - started
        held.close()
        assert down.returncode == 0 and "data kept in" in down.stdout, down.stdout + down.stderr
        # SIGINT, PostgreSQL's fast shutdown: it ends the sessions, writes a checkpoint and exits 0 at once.
        supervised = supervisord_log.read_text()
        assert "stopped: postgres (exit status 0)" in supervised, supervised
        assert "killed: postgres" not in supervised and "SIGKILL" not in supervised, supervised
        stopped = pg_log.read_text()
        assert "received fast shutdown request" in stopped and "database system is shut down" in stopped
        assert seconds_down < 10, f"redline down took {seconds_down:.1f}s"  # was ~27 s: 15 s wait, SIGKILL

        before_restart = len(pg_log.read_text())
        up = stack.redline("up", "--only=" + ",".join(only))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "initialising PostgreSQL" not in up.stdout
        restarted = pg_log.read_text()[before_restart:]
        assert "database system is ready to accept connections" in restarted, restarted
        assert not [line for line in restarted.splitlines() if any(word in line for word in RECOVERY)]

        for name, text in secrets.items():
            assert (stack.run_dir / "secrets" / name).read_text() == text, name
        assert first_sample_time(stack) == first
        with connect(stack) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("before the restart",)]


def test_each_service_connects_with_only_the_privileges_it_needs() -> None:
    with Sandbox(only=["postgres", "postgres-exporter", "job-exporter", "demo"]) as stack:
        secrets = stack.run_dir / "secrets"
        for role in (PG_ADMIN, PG_DEMO, PG_JOB_EXPORTER, PG_MONITOR):
            assert stat.S_IMODE((secrets / role.secret).stat().st_mode) == 0o600
        with connect(stack) as admin:
            roles = admin.execute(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, "
                "ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                "      WHERE m.member = r.oid ORDER BY 1) FROM pg_roles r WHERE rolname LIKE 'redline%' "
                "ORDER BY 1"
            ).fetchall()
            owners = admin.execute(
                "SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pipeline'), "
                "(SELECT tableowner FROM pg_tables WHERE tablename = 'jobs')"
            ).fetchone()
        assert roles == [
            ("redline", True, True, True, True, []),
            ("redline_demo", False, False, False, True, ["pg_signal_backend"]),
            ("redline_job_exporter", False, False, False, True, []),
            ("redline_monitor", False, False, False, True, ["pg_monitor"]),
        ]
        assert owners == ("redline_demo", "redline_demo")
        # The job exporter reads the job table and can do nothing else with it (docs/job-exporter.md).
        with connect(stack, PG_DEMO) as demo:
            demo.execute("INSERT INTO jobs (kind) VALUES ('role-test')")
        with connect(stack, PG_JOB_EXPORTER) as reader:
            assert reader.execute("SELECT count(*) FROM jobs WHERE kind = 'role-test'").fetchone() == (1,)
            for statement in (
                "INSERT INTO jobs (kind) VALUES ('forged')",
                "UPDATE jobs SET state = 'failed'",
                "DELETE FROM jobs",
                "CREATE TABLE mine (x int)",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    reader.execute(statement)
        # postgres_exporter's role sees the statistics (pg_monitor) but not the data.
        with connect(stack, PG_MONITOR) as monitor:
            assert monitor.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE query <> ''").fetchone()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                monitor.execute("SELECT * FROM jobs")
        # The services connect as their roles, and the demo's role can do what its database faults need:
        # lock the table, fill the connections, refuse connections and end the exporters' sessions.
        sessions = wait_until(
            lambda: (
                {r for (r,) in stack_sessions(stack)}
                >= {"redline_demo", "redline_job_exporter", "redline_monitor"}
                and stack_sessions(stack)
            ),
            timeout=30,
            what="the services' sessions",
        )
        assert {role for (role,) in sessions} <= {"redline_demo", "redline_job_exporter", "redline_monitor"}
        for fault in ("job-table-locked", "db-connections", "db-down"):
            stack.fault("pipeline", fault)
            stack.fault("pipeline", fault, active=False)


def stack_sessions(stack: Sandbox) -> list[tuple[str]]:
    """The roles of the sessions on the pipeline database other than this test's own."""
    with connect(stack) as admin:
        return admin.execute(
            "SELECT usename FROM pg_stat_activity WHERE datname = 'pipeline' AND pid <> pg_backend_pid() "
            "AND usename IS NOT NULL"
        ).fetchall()
