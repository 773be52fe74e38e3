"""The alert ledger on a real PostgreSQL (`--ledger postgresql://...`): the scripted sequence gives the same
figures as on SQLite, also after the store is closed and opened again, and the CLI reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from redline.testing.ledger_script import T0, check_script_survives_reopening
from redline.testing.pg import pg_cluster

pytestmark = pytest.mark.timeout(120)


def test_figures_on_postgresql_also_after_reopening() -> None:
    with pg_cluster() as pg:
        pg.execute("CREATE DATABASE ledger")
        url = f"postgresql://postgres@127.0.0.1:{pg.port}/ledger"
        check_script_survives_reopening(url)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "redline.cli",
                "ledger",
                f"--ledger={url}",
                "--json",
                f"--since={int((time.time() - T0) // 86400) + 2}d",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        rows = {row["alertname"]: row for row in json.loads(result.stdout)}
        assert (rows["TmuxMonitorDown"]["pages"], rows["TmuxMonitorCacheHitRateLow"]["tickets"]) == (2, 3)
