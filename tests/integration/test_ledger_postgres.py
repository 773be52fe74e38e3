"""The alert ledger on a real PostgreSQL (`--ledger postgresql://...`): the scripted sequence gives the same
figures as on SQLite, also after the store is closed and opened again, and the CLI reads it."""

from __future__ import annotations

import time

import pytest

from redline.testing.ledger_script import T0, check_script_survives_reopening, ledger_cli_figures
from redline.testing.pg import pg_cluster

pytestmark = pytest.mark.timeout(120)


def test_figures_on_postgresql_also_after_reopening() -> None:
    with pg_cluster() as pg:
        pg.execute("CREATE DATABASE ledger")
        url = f"postgresql://postgres@127.0.0.1:{pg.port}/ledger"
        check_script_survives_reopening(url)
        rows = ledger_cli_figures(url, f"{int((time.time() - T0) // 86400) + 2}d")
        assert (rows["TmuxMonitorDown"]["pages"], rows["TmuxMonitorCacheHitRateLow"]["tickets"]) == (2, 3)
