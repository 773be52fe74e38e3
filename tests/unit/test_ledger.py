"""The alert ledger: a scripted sequence of notifications (fires, resolves, flaps, acks) and its figures,
the same after the store is closed and opened again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from redline.receivers.ledger import Action, Ledger, LedgerError, as_json, iter_table
from redline.testing.ledger_script import T0, check_script_survives_reopening, script
from redline.testing.notifications import notification


def test_figures_of_a_scripted_sequence_also_after_reopening(tmp_path: Path) -> None:
    check_script_survives_reopening(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert oct((tmp_path / "ledger.db").stat().st_mode & 0o777) == "0o600"


def grouped(receiver: str, alertname: str, status: str, start: float, end: float | None, *hosts: str) -> dict:
    """One notification of a group: the same alert on several instances (one fingerprint each)."""
    alerts = [
        notification(receiver, alertname, status, start, end, f"fp-{alertname}-{host}", instance=host)[
            "alerts"
        ][0]
        for host in hosts
    ]
    return notification(receiver, alertname, status, start, end) | {"alerts": alerts}


def test_repeats_groups_and_an_episode_across_a_restart(tmp_path: Path) -> None:
    """A page repeated while it fires is one episode and several pages; a notification that carries the
    alert on two instances is one ticket and two episodes; the store closed (the pager-sink restarted)
    between a firing and its resolve loses nothing and joins them into one episode; a silence (an action
    on every episode of a fingerprint) marks it acted on. Tuesday 23:50 to Wednesday 00:10: two days."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    start = T0 + 86400 + 14 * 3600 + 50 * 60  # Tuesday 23:50 UTC
    ledger = Ledger(url)
    for repeat in range(3):  # the first page and two repeats of the same episode
        ledger.record("pager", notification("pager", "QerrorsDown", "firing", start), start + 1 + 60 * repeat)
    heap = grouped("ticket", "QerrorsHeapUsageHigh", "firing", start, None, "a:1", "b:1")
    ledger.record("ticket", heap, start + 30)
    ledger.act(Action("silence", "fp-QerrorsDown", None, "bob", "silence-id: deploying", start + 200))
    ledger.close()
    ledger = Ledger(url)  # restarted while both fire
    ledger.record(
        "pager", notification("pager", "QerrorsDown", "resolved", start, start + 1200), start + 1201
    )
    later = start + 900  # Wednesday 00:05: the second heap episode of b:1 starts the next day
    ledger.record(
        "ticket",
        grouped("ticket", "QerrorsHeapUsageHigh", "resolved", start, start + 300, "a:1", "b:1"),
        start + 301,
    )
    ledger.record(
        "ticket", grouped("ticket", "QerrorsHeapUsageHigh", "firing", later, None, "b:1"), later + 30
    )
    ledger.close()
    ledger = Ledger(url)
    figures = {f.alertname: f for f in ledger.figures(start - 1, start + 3600)}
    down, heap_figures = figures["QerrorsDown"], figures["QerrorsHeapUsageHigh"]
    assert (down.pages, down.episodes, down.resolved, down.resolved_without_action) == (3, 1, 1, 0)
    assert down.pages_per_week == {"2025-W49": 3}
    assert down.median_seconds_to_resolve == 1200
    assert (heap_figures.tickets, heap_figures.episodes, heap_figures.resolved) == (2, 3, 2)
    assert heap_figures.resolved_without_action == 2
    assert heap_figures.most_episodes_in_a_day == 2  # a:1 and b:1 on Tuesday, b:1 again on Wednesday
    assert heap_figures.median_seconds_to_resolve == 300
    episodes = ledger.episodes(start - 1, start + 3600)
    assert [(e.alertname, e.labels.get("instance"), e.ends_at is not None, e.notified) for e in episodes] == [
        ("QerrorsDown", None, True, 3),
        ("QerrorsHeapUsageHigh", "a:1", True, 1),
        ("QerrorsHeapUsageHigh", "b:1", True, 1),
        ("QerrorsHeapUsageHigh", "b:1", False, 1),
    ]
    assert ledger.count() == 7
    ledger.close()


def test_table_json_and_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    script(ledger)
    figures = ledger.figures(T0 - 1, T0 + 8 * 86400)
    ledger.close()
    table = list(iter_table(figures))
    assert table[0].split() == ["ALERT", "SYSTEM", "PAGES", "TICKETS", "EPISODES", "MAX/DAY", "MEDIAN", "TTR",
                                "NO", "ACTION"]  # fmt: skip
    assert table[1].split() == ["TmuxMonitorDown", "tmux", "2", "0", "2", "1", "600s", "0"]
    assert as_json(figures)[1]["tickets_per_week"] == {"2025-W49": 3}
    # the command reads the last --since from now: the 2025 script is older than a day ago
    cli = [sys.executable, "-m", "redline.cli", "ledger", "--ledger", url]
    out = subprocess.run([*cli, "--since", "3650d", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert [row["alertname"] for row in json.loads(out.stdout)] == [
        "TmuxMonitorDown",
        "TmuxMonitorCacheHitRateLow",
    ]
    bad = subprocess.run([*cli, "--since", "soon"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'soon' is not a duration" in bad.stderr


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"receiver": "pager"}, "no 'alerts' list"),
        ({"alerts": [{"status": "firing"}]}, "an alert without labels"),
        ({"alerts": [{"labels": {"alertname": "X"}, "startsAt": ""}]}, "X has no startsAt"),
    ],
)
def test_what_is_not_a_notification_is_refused(tmp_path: Path, payload: dict, problem: str) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    with pytest.raises(LedgerError, match=problem):
        ledger.record("pager", payload, T0)
    assert ledger.count() == 0
    with pytest.raises(LedgerError, match="unknown action"):
        ledger.act(Action("snooze", "fp", None, "bob", "", T0))
    ledger.close()


def test_bad_urls_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="use sqlite:///PATH or postgresql://"):
        Ledger("mysql://x")
    with pytest.raises(LedgerError, match="no folder"):
        Ledger(f"sqlite:///{tmp_path / 'missing' / 'l.db'}")
