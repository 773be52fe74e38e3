"""Compose's PostgreSQL init script (postgres/20-roles.sh, rendered from redline/pg_roles.py) run as the
postgres image runs it, against a real PostgreSQL 15 with the job table's schema: each service gets its
least-privilege role with the password from the environment, and nothing more."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest

from redline import pg_roles
from redline.generate.render.postgres_init import POSTGRES_INIT
from redline.stack.services import PG_BIN
from redline.testing.pg import PgCluster, pg_cluster
from redline.testing.processes import ROOT

pytestmark = pytest.mark.timeout(120)

SCHEMA = ROOT / "redline" / "exporters" / "jobs" / "schema.sql"
PASSWORDS = {role.env: f"test-only-{role.name}-pw" for role in pg_roles.SERVICE_ROLES}


def connect(pg: PgCluster, role: pg_roles.PgRole, password: str) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=pg.port, user=role.name, password=password, dbname="pipeline", autocommit=True
    )


def run_init(pg: PgCluster, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The script as the image's entrypoint runs it: sh, POSTGRES_USER set, psql on PATH."""
    return subprocess.run(
        ["sh", str(ROOT / POSTGRES_INIT)],
        env={
            "PATH": f"{PG_BIN}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg.port),
            "POSTGRES_USER": "postgres",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with pg_cluster() as cluster:
        cluster.execute("CREATE DATABASE pipeline")
        with psycopg.connect(
            cluster.dsn.replace("dbname=postgres", "dbname=pipeline"), autocommit=True
        ) as conn:
            conn.execute(SCHEMA.read_text().encode())
        result = run_init(cluster, PASSWORDS)
        assert result.returncode == 0, result.stderr
        # the throwaway cluster trusts loopback; the service roles must prove their passwords
        names = ",".join(role.name for role in pg_roles.SERVICE_ROLES)
        hba = cluster.data / "pg_hba.conf"
        hba.write_text(f"host pipeline {names} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        cluster.execute("SELECT pg_reload_conf()")
        yield cluster


def test_each_role_logs_in_with_its_password_only(pg: PgCluster) -> None:
    for role in pg_roles.SERVICE_ROLES:
        with connect(pg, role, PASSWORDS[role.env]) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role.name,)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(pg, role, "not-the-password")


def test_no_role_is_more_than_it_needs(pg: PgCluster) -> None:
    rows = pg.execute(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles "
        "WHERE rolname = ANY(%s) ORDER BY rolname",
        ([role.name for role in pg_roles.SERVICE_ROLES],),
    )
    assert rows == [
        (role.name, False, False, False, True)
        for role in sorted(pg_roles.SERVICE_ROLES, key=lambda role: role.name)
    ]
    members = dict(
        pg.execute(
            "SELECT m.rolname, string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_auth_members a "
            "JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
            "WHERE m.rolname LIKE 'redline%' GROUP BY m.rolname"
        )
    )
    assert members == {"redline_demo": "pg_signal_backend", "redline_monitor": "pg_monitor"}


def test_the_job_exporter_reads_the_table_and_writes_nothing(pg: PgCluster) -> None:
    with connect(pg, pg_roles.PG_DEMO, PASSWORDS[pg_roles.PG_DEMO.env]) as demo:
        demo.execute("INSERT INTO jobs (state) VALUES ('queued')")
        assert demo.execute(
            "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pipeline'"
        ).fetchone() == ("redline_demo",)
    with connect(pg, pg_roles.PG_JOB_EXPORTER, PASSWORDS[pg_roles.PG_JOB_EXPORTER.env]) as reader:
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("DELETE FROM jobs")
    with connect(pg, pg_roles.PG_MONITOR, PASSWORDS[pg_roles.PG_MONITOR.env]) as monitor:
        assert monitor.execute("SELECT count(*) > 0 FROM pg_stat_activity WHERE query <> ''").fetchone() == (
            True,
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            monitor.execute("SELECT count(*) FROM jobs")


def test_a_missing_password_stops_the_script_and_names_it(pg: PgCluster) -> None:
    result = run_init(pg, {k: v for k, v in PASSWORDS.items() if k != "POSTGRES_MONITOR_PASSWORD"})
    assert result.returncode != 0
    assert "POSTGRES_MONITOR_PASSWORD" in result.stderr
