"""The alert ledger behind a real `redline pager-sink --ledger`: a scripted sequence of notifications
POSTed over HTTP (pages and their repeats, a flapping ticket, a notification grouping two instances), the
sink killed with SIGKILL between a firing and its resolve and started again, then the figures read by
`redline ledger --json` and shown by the console's history page. A 200 from the sink means the
notification is committed: nothing answered 200 before the crash is missing after it."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from redline.console.app import build_app
from redline.console.runbooks import RUNBOOKS, Runbooks
from redline.console.security import Authenticator, Csrf
from redline.console.upstream import Alertmanagers, Prometheus
from redline.console.views import Console
from redline.generate.load import load_catalogue
from redline.paths import ROOT
from redline.testing.ledger_script import ledger_cli_figures
from redline.testing.notifications import notification
from redline.testing.processes import free_port, running

pytestmark = pytest.mark.timeout(120)

CLI = [sys.executable, "-m", "redline.cli"]
TOKEN = secrets.token_urlsafe(16)
UNREACHABLE = "http://127.0.0.1:9"


def post(url: str, payload: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def two_hosts(status: str, start: float, end: float | None) -> dict:
    """A ticket for QerrorsHeapUsageHigh on two instances in one notification (one group)."""
    alerts = [
        notification(
            "ticket",
            "QerrorsHeapUsageHigh",
            status,
            start,
            end,
            f"fp-heap-{host}",
            instance=host,
            system="qerrors",
        )["alerts"][0]
        for host in ("a:1", "b:1")
    ]
    return notification("ticket", "QerrorsHeapUsageHigh", status, start, end) | {"alerts": alerts}


def test_figures_of_a_scripted_sequence_across_a_crash_of_the_sink(tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sink = [*CLI, "pager-sink", f"--listen=127.0.0.1:{port}", f"--out={tmp_path / 'n.jsonl'}"]
    sink += [f"--token-file={token}", f"--ledger={ledger}"]
    now = time.time()
    down = {"system": "qerrors", "env": "production"}
    before_crash = [
        ("/pager", notification("pager", "QerrorsDown", "firing", now - 600, **down)),
        ("/pager", notification("pager", "QerrorsDown", "firing", now - 600, **down)),  # a repeat
        ("/ticket", two_hosts("firing", now - 500, None)),
    ]
    for cycle in range(3):  # a flapping ticket: fired and resolved three times
        begin = now - 3000 + cycle * 600
        for status, end in (("firing", None), ("resolved", begin + 300)):
            cache = notification("ticket", "TmuxMonitorCacheHitRateLow", status, begin, end)
            before_crash.append(("/ticket", cache))
    after_crash = [
        ("/pager", notification("pager", "QerrorsDown", "resolved", now - 600, now - 60, **down)),
        ("/ticket", two_hosts("resolved", now - 500, now - 200)),
        ("/pager", notification("pager", "QerrorsDown", "firing", now - 30, **down)),  # fires again
    ]
    with running(sink, ready_url=f"{url}/-/healthy", log=tmp_path / "sink.log") as proc:
        assert [post(url + path, payload) for path, payload in before_crash] == [200] * len(before_crash)
        proc.kill()  # SIGKILL: no clean shutdown, no last commit
        proc.wait(timeout=10)
    with running(sink, ready_url=f"{url}/-/healthy", log=tmp_path / "sink.log"):
        assert [post(url + path, payload) for path, payload in after_crash] == [200] * len(after_crash)

    figures = ledger_cli_figures(ledger, "1d")
    assert list(figures) == ["QerrorsDown", "TmuxMonitorCacheHitRateLow", "QerrorsHeapUsageHigh"]  # noisiest
    week = "{}-W{:02d}".format(*dt.datetime.fromtimestamp(time.time(), dt.UTC).isocalendar()[:2])
    assert figures["QerrorsDown"] | {"pages_per_week": None} == {
        "alertname": "QerrorsDown",
        "system": "qerrors",
        "severity": "critical",
        "pages": 3,  # two of the first episode (one a repeat), one of the second
        "tickets": 0,
        "episodes": 2,
        "resolved": 1,
        "resolved_without_action": 1,
        "most_episodes_in_a_day": figures["QerrorsDown"]["most_episodes_in_a_day"],
        "median_seconds_to_resolve": pytest.approx(540, abs=0.01),
        "pages_per_week": None,
        "tickets_per_week": {},
        "noise": 32,
    }
    assert figures["QerrorsDown"]["pages_per_week"] == {week: 3}
    # episodes started 10 min and 30 s ago: the same UTC day unless the run straddles midnight
    assert figures["QerrorsDown"]["most_episodes_in_a_day"] in (1, 2)
    cache = figures["TmuxMonitorCacheHitRateLow"]
    assert (cache["tickets"], cache["episodes"], cache["resolved"], cache["resolved_without_action"]) == (
        3,
        3,
        3,
        3,
    )
    assert cache["median_seconds_to_resolve"] == pytest.approx(300, abs=0.01)
    assert cache["tickets_per_week"] == {week: 3}
    heap = figures["QerrorsHeapUsageHigh"]
    assert (heap["tickets"], heap["episodes"], heap["resolved"]) == (1, 2, 2)  # one notification, two hosts
    assert heap["median_seconds_to_resolve"] == pytest.approx(300, abs=0.01)

    # The console reads the same ledger: its history page shows the same figures.
    console = Console(load_catalogue(), Prometheus(UNREACHABLE), Alertmanagers([UNREACHABLE]), ledger)
    app = build_app(console, Runbooks(ROOT / RUNBOOKS), Authenticator(None), Csrf())
    page = TestClient(app).get("/history?days=1")
    assert page.status_code == 200
    assert "<td>QerrorsDown</td><td>qerrors</td><td>3</td><td>0</td><td>2</td>" in page.text
    assert "<td>QerrorsHeapUsageHigh</td><td>qerrors</td><td>0</td><td>1</td><td>2</td>" in page.text
    assert page.text.count('<td class="duration">5m 0s</td>') == 5  # three flaps, two hosts
    assert page.text.count('<td class="duration">9m 0s</td>') == 1
    assert page.text.count('<td class="duration">still firing</td>') == 1
