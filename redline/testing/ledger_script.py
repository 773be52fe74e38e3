"""A scripted sequence of notifications and the ledger figures it must give: the same checks for every
ledger backend (SQLite: tests/unit/test_ledger.py; PostgreSQL: tests/integration/test_ledger_postgres.py)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

from redline.paths import ROOT
from redline.receivers.ledger import Action, Ledger
from redline.testing.notifications import notification

T0 = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC).timestamp()  # a Monday, ISO week 2025-W49


def script(ledger: Ledger) -> None:
    """Monday: TmuxMonitorDown pages, is acked, resolves after 10 min. Tuesday: the cache alert
    flaps three times (tickets), never acted on. Next Monday (week 50): the Down alert pages again."""
    down = "TmuxMonitorDown"
    ledger.record("pager", notification("pager", down, "firing", T0), T0 + 2)
    ledger.act(Action("ack", f"fp-{down}", T0, "alice", "looking", T0 + 60))
    ledger.record("pager", notification("pager", down, "resolved", T0, T0 + 600), T0 + 602)
    tuesday = T0 + 86400
    for cycle in range(3):
        start = tuesday + cycle * 3600
        cache = notification("ticket", "TmuxMonitorCacheHitRateLow", "firing", start)
        ledger.record("ticket", cache, start + 30)
        resolved = notification("ticket", "TmuxMonitorCacheHitRateLow", "resolved", start, start + 1200)
        ledger.record("ticket", resolved, start + 1230)
    next_week = T0 + 7 * 86400
    ledger.record("pager", notification("pager", down, "firing", next_week), next_week + 1)


def check_figures(ledger: Ledger) -> None:
    figures = {f.alertname: f for f in ledger.figures(T0 - 1, T0 + 8 * 86400)}
    down, cache = figures["TmuxMonitorDown"], figures["TmuxMonitorCacheHitRateLow"]
    assert (down.pages, down.tickets, down.episodes, down.resolved) == (2, 0, 2, 1)
    assert down.pages_per_week == {"2025-W49": 1, "2025-W50": 1}
    assert down.resolved_without_action == 0  # acked
    assert down.median_seconds_to_resolve == 600
    assert (cache.pages, cache.tickets, cache.episodes, cache.resolved) == (0, 3, 3, 3)
    assert cache.tickets_per_week == {"2025-W49": 3}
    assert cache.most_episodes_in_a_day == 3
    assert cache.resolved_without_action == 3
    assert cache.median_seconds_to_resolve == 1200
    assert [f.alertname for f in ledger.figures(T0 - 1, T0 + 8 * 86400)] == [
        "TmuxMonitorDown",  # 2 pages outweigh 3 tickets and flapping
        "TmuxMonitorCacheHitRateLow",
    ]
    # a window that ends before next week sees one page
    assert {f.alertname: f.pages for f in ledger.figures(T0 - 1, T0 + 2 * 86400)}["TmuxMonitorDown"] == 1


def check_script_survives_reopening(url: str) -> None:
    """The script recorded into a fresh ledger at `url` gives its figures, and again once the store is
    closed and opened anew (the console or the pager-sink restarted: nothing is lost)."""
    ledger = Ledger(url)
    script(ledger)
    check_figures(ledger)
    assert ledger.count() == 9
    ledger.close()
    again = Ledger(url)
    check_figures(again)
    again.close()


def ledger_cli_figures(url: str, since: str) -> dict[str, dict[str, Any]]:
    """`redline ledger --ledger URL --since SINCE --json`, run as a user runs it: alert name -> its row,
    noisiest first."""
    result = subprocess.run(
        [sys.executable, "-m", "redline.cli", "ledger", f"--ledger={url}", f"--since={since}", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return {row["alertname"]: row for row in json.loads(result.stdout)}
