"""The native stack keeps its data and secrets across `redline down` / `redline up`.

Real processes on free ports through redline/testing/sandbox.py (the real `redline up` and `redline down`).
"""

from __future__ import annotations

import json
import urllib.parse

import psycopg
import pytest

from redline.testing.processes import http_get, wait_until
from redline.testing.sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def first_sample_time(stack: Sandbox) -> float:
    """Timestamp of the oldest `up` sample of Prometheus's self-scrape in its TSDB."""
    query = urllib.parse.urlencode({"query": 'up{job="prometheus"}[1h]'})
    status, body = http_get(f"{stack.url('prometheus')}/api/v1/query?{query}")
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    return float(result[0]["values"][0][0]) if result else 0.0


def connect(stack: Sandbox) -> psycopg.Connection:
    password = (stack.run_dir / "secrets" / "postgres-password").read_text().strip()
    return psycopg.connect(
        host="127.0.0.1",
        port=stack.port("postgres"),
        user="redline",
        password=password,
        dbname="pipeline",
        connect_timeout=5,
        autocommit=True,
    )


def test_data_and_secrets_survive_a_restart() -> None:
    only = ["prometheus", "postgres"]
    with Sandbox(only=only) as stack:
        first = wait_until(lambda: first_sample_time(stack), timeout=30, what="Prometheus's first sample")
        with connect(stack) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('before the restart')")
        password = (stack.run_dir / "secrets" / "postgres-password").read_text()

        down = stack.redline("down")
        assert down.returncode == 0 and "data kept in" in down.stdout, down.stdout + down.stderr
        up = stack.redline("up", "--only=" + ",".join(only))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "initialising PostgreSQL" not in up.stdout

        assert (stack.run_dir / "secrets" / "postgres-password").read_text() == password
        assert first_sample_time(stack) == first
        with connect(stack) as conn:
            assert conn.execute("SELECT note FROM kept").fetchall() == [("before the restart",)]
