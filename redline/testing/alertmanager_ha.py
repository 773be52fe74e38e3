"""A round of the Alertmanager HA measurement: a fresh page, the notifying peer killed around it.

Shared by bench/alertmanager_ha.py (many rounds, figures in bench/README.md) and
tests/integration/test_alertmanager_live.py (a few). The cluster is the runner's (`redline up --ha`, a
redline.testing.sandbox.Sandbox with the three Alertmanagers and the pager-sink). A round posts a firing
alert to all three peers at once, as Prometheus does, in a group of its own (`env` is the round), freezes
and SIGKILLs am-1 (the peer that notifies) at a chosen moment, waits for every peer's turn, counts the
group's pages at the sink's /pager and which peer sent each, then starts am-1 again.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.request
from typing import Any

from redline.generate.model import parse_duration
from redline.stack.services import AM_PEER_NAMES, AM_PEER_TIMEOUT
from redline.testing.processes import wait_until
from redline.testing.sandbox import Sandbox

PEERS = list(AM_PEER_NAMES)  # alertmanager (am-1, notifies first), alertmanager-2, alertmanager-3
NOTIFIER = PEERS[0]
WAIT_FOR_TURNS = 2 * parse_duration(AM_PEER_TIMEOUT) + 3.0  # am-3 sends 4 s after am-1 would have


def post_alert(url: str, labels: dict[str, str], auth: dict[str, str]) -> None:
    """POST one firing alert to an Alertmanager's API, as Prometheus sends it (with the stack's auth)."""
    now = dt.datetime.now(dt.UTC)
    alert = {
        "labels": labels,
        "annotations": {"summary": "HA benchmark page"},
        "startsAt": now.isoformat(),
        "endsAt": (now + dt.timedelta(minutes=10)).isoformat(),
    }
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json", **auth},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url} refused the alert: HTTP {resp.status}")


def post_to_all(sandbox: Sandbox, labels: dict[str, str]) -> float:
    """Post the alert to the three peers concurrently; returns the wall-clock time of the posts."""
    threads = [
        threading.Thread(target=post_alert, args=(sandbox.url(s), labels, sandbox.auth)) for s in PEERS
    ]
    posted = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return posted


def settled(sandbox: Sandbox) -> bool:
    """Every peer answers, counts three members and reports its gossip settled ('ready')."""
    for service in PEERS:
        cluster = sandbox.get_json(f"{sandbox.url(service)}/api/v2/status")["cluster"]
        if cluster["status"] != "ready" or len(cluster["peers"]) != 3:
            return False
    return True


def pages(sandbox: Sandbox, env: str) -> list[tuple[float, str]]:
    """(arrival wall-clock time, sending peer) of every firing page of the round's group at /pager."""
    by_url = {sandbox.url(s): AM_PEER_NAMES[s] for s in PEERS}
    found = []
    for record, _alert in sandbox.matching_alerts("TmuxHaBench", "firing", env=env):
        if record["path"] == "/pager":
            received = dt.datetime.fromisoformat(record["received_at"].replace("Z", "+00:00"))
            found.append((received.timestamp(), by_url.get(record["payload"]["externalURL"], "?")))
    return sorted(found)


def one_round(sandbox: Sandbox, env: str, kill_after: float | None) -> dict[str, Any]:
    """Post a fresh page (group `env`), SIGKILL am-1 `kill_after` s after the post (None: no kill), wait
    for every peer's turn and count the group's pages; am-1 is started again and the cluster settled."""
    labels = {"alertname": "TmuxHaBench", "severity": "critical", "system": "tmux", "env": env}
    started = time.monotonic()
    posted = post_to_all(sandbox, labels)
    killed_at = None
    if kill_after is not None:
        time.sleep(max(0.0, started + kill_after - time.monotonic()))
        killed_at = sandbox.crash(NOTIFIER)
    time.sleep(max(0.0, started + WAIT_FOR_TURNS - time.monotonic()))
    found = pages(sandbox, env)
    if killed_at is not None:
        sandbox.start(NOTIFIER)
        wait_settled(sandbox)
    first = found[0][0] if found else None
    return {
        "env": env,
        "pages": len(found),
        "senders": [sender for _, sender in found],
        "page_after_post": first - posted if first is not None else None,
        "kill_after_post": killed_at - posted if killed_at is not None else None,
        "kill_minus_page": killed_at - first if killed_at is not None and first is not None else None,
        "gap": found[1][0] - found[0][0] if len(found) > 1 else None,
    }


def wait_settled(sandbox: Sandbox, timeout: float = 60) -> None:
    """Wait until every peer reports a settled cluster of three (a peer still starting is retried)."""
    wait_until(
        lambda: settled(sandbox), timeout, interval=0.1, what="a settled Alertmanager cluster of three"
    )
