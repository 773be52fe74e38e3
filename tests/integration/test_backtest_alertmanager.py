"""The backtest's Alertmanager model against a real Alertmanager, on a time-compressed replay.

One timeline of firing and resolved alerts (pages that group and update, a flap inside a group
interval, a critical *Down silencing its system's symptoms, a critical level silencing its warning,
warnings batched by group_wait, an info alert) goes through redline's model with the real
alertmanager/alertmanager.yml, and, 60 times faster, through a real Alertmanager whose configuration
is that file with every route timer divided by 60 and each receiver's integrations replaced by one
webhook to `redline pager-sink` (in production every integration succeeds; here the vendor ones would
fail, and a failed flush keeps its resolved alerts and so its group alive). The alerts are pushed as
Prometheus pushes them: POST /api/v2/alerts with startsAt = activeAt, firing ones re-sent, resolved
ones re-sent every (model) minute for 15 minutes. Both must deliver the same notifications: the same
pages, the same tickets, the same updates and resolved messages with the same alerts in each.

Every event of the timeline sits at least 10 model seconds (166 ms here) away from the flush ticks of
its group, so the order of an arrival and a flush never depends on scheduling jitter.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from redline.backtest.notifications import (
    Episode,
    Notification,
    labels_of,
    load_config,
    parse_duration,
    simulate,
)
from redline.paths import ALERTMANAGER
from redline.testing.processes import free_port, http_get, running, tool

pytestmark = pytest.mark.slow

FACTOR = 60  # model seconds per wall second
RESEND = 0.5  # wall seconds between two pushes of the firing alerts (harmless at any time)


def alert(
    name: str, severity: str, system: str, active: float, start: float, end: float, **labels: str
) -> Episode:
    return Episode(
        labels_of({"alertname": name, "severity": severity, "system": system, **labels}), active, start, end
    )


TIMELINE = [
    # Pages, group ticks at 60 + 30k: a second target is an update, each resolution too.
    alert("GamebookDown", "critical", "gamebook", 0, 60, 200, instance="a"),
    alert("GamebookDown", "critical", "gamebook", 15, 75, 320, instance="b"),
    # c fires after a's resolution was notified (240: new alerts, a not in it); a's resend at 260 puts it
    # back as resolved: 270 is a "new resolved" notification that only Prometheus' resends explain.
    alert("GamebookDown", "critical", "gamebook", 165, 225, 320, instance="c"),
    # After the group was destroyed (and the resends of a, b and c are over, 15 minutes after each
    # resolved): a new incident, a new group (ticks 1250 + 30k), with a flap: resolved at 1295, firing
    # again at 1300, before the 1310 flush: no notification for it.
    alert("GamebookDown", "critical", "gamebook", 1190, 1250, 1295, instance="a"),
    alert("GamebookDown", "critical", "gamebook", 1296, 1300, 1390, instance="a"),
    # QerrorsDown (ticks 120 + 30k) silences the latency warning of its system and env (ticks 360 + 300k)
    # until it resolves: the ticket goes out at the 960 tick.
    alert("QerrorsDown", "critical", "qerrors", 0, 120, 800, env="production", instance="q"),
    alert("QerrorsLatencyHigh", "warning", "qerrors", 60, 360, 1100, env="production"),
    # The warning level is ticketed (ticks 300 + 300k) before the critical level fires and silences it.
    alert("TmuxMonitorMemoryHigh", "warning", "tmux", 0, 300, 1300, instance="m"),
    alert("TmuxMonitorMemoryHigh", "critical", "tmux", 100, 400, 990, instance="m"),
    # for 0: the group waits group_wait (30s) and sends both targets in one ticket.
    alert("PipelineJobsSlow", "warning", "pipeline", 700, 700, 900, instance="p"),
    alert("PipelineJobsSlow", "warning", "pipeline", 715, 715, 900, instance="q"),
    # severity info goes to the null receiver: nobody.
    alert("HostInfo", "info", "host", 100, 100, 400),
]
UNTIL = 1600.0  # model seconds: after the last flush of the last group (1300 -> the 1500 tick)


def scaled_config(sink: str, token: str) -> dict:
    """alertmanager.yml with route timers divided by FACTOR and one webhook per receiver (the
    pager-sink's token as the URL's password, as the stack's webhook URL files carry it)."""
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    config.pop("templates", None)

    def scale(route: dict) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = f"{round(parse_duration(route[key], key) * 1000 / FACTOR)}ms"
        for child in route.get("routes", []):
            scale(child)

    scale(config["route"])
    receivers = []
    for receiver in config["receivers"]:
        webhooks = receiver.get("webhook_configs") or []
        if not webhooks:
            receivers.append({"name": receiver["name"]})
            continue
        resolved = webhooks[0].get("send_resolved", True)
        receivers.append(
            {
                "name": receiver["name"],
                "webhook_configs": [
                    {
                        "url": sink.replace("://", f"://alertmanager:{token}@") + f"/{receiver['name']}",
                        "send_resolved": resolved,
                    }
                ],
            }
        )
    config["receivers"] = receivers
    return config


def stamp(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Pusher:
    """Pushes the timeline to Alertmanager as Prometheus does, model time t at wall time t0 + t / FACTOR:
    each change at once, firing alerts again every RESEND wall seconds, a resolved alert again every
    model minute for 15 model minutes (or until it fires again)."""

    def __init__(self, url: str, t0: float) -> None:
        self.url, self.t0 = url, t0
        self.errors: list[str] = []

    def wall(self, t: float) -> float:
        return self.t0 + t / FACTOR

    def body(self, episode: Episode, resolved: bool, now: float) -> dict:
        ends = self.wall(episode.end) if resolved and episode.end is not None else now + 10
        starts = stamp(self.wall(episode.active_at))
        return {"labels": dict(episode.labels), "startsAt": starts, "endsAt": stamp(ends)}

    def post(self, batch: list[dict]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts", json.dumps(batch).encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except OSError as err:
            self.errors.append(str(err))

    def run(self, timeline: list[Episode], until: float) -> None:
        events: list[tuple[float, int, Episode]] = []  # (model time, 0 fires | 1 resolved, episode)
        for episode in timeline:
            events.append((episode.start, 0, episode))
            if episode.end is None:
                continue
            refires = min(
                (e.start for e in timeline if e.labels == episode.labels and e.start > episode.start),
                default=until,
            )
            events += [
                (t, 1, episode)
                for t in range(int(episode.end), int(min(episode.end + 900, refires, until - 1)) + 1, 60)
            ]
        events.sort(key=lambda item: (item[0], item[1]))
        firing: dict[tuple, Episode] = {}
        next_resend = self.t0
        while events:
            due = self.wall(events[0][0])
            if next_resend < due:
                time.sleep(max(0.0, next_resend - time.time()))
                if firing:
                    self.post([self.body(e, False, time.time()) for e in firing.values()])
                next_resend += RESEND
                continue
            time.sleep(max(0.0, due - time.time()))
            t, batch = events[0][0], []
            while events and events[0][0] == t:
                _, resolved, episode = events.pop(0)
                if resolved:
                    firing.pop(episode.labels, None)
                else:
                    firing[episode.labels] = episode
                batch.append(self.body(episode, bool(resolved), time.time()))
            self.post(batch)
        time.sleep(max(0.0, self.wall(until) - time.time()))


def describe(receiver: str, firing: list[dict], resolved: list[dict]) -> tuple:
    """A notification without its time: receiver, label sets of its firing and its resolved alerts."""
    key = lambda labels: tuple(sorted(labels.items()))  # noqa: E731
    return (receiver, tuple(sorted(map(key, firing))), tuple(sorted(map(key, resolved))))


def from_model(notifications: list[Notification]) -> list[tuple]:
    return [
        describe(n.receiver, [dict(f) for f in n.firing], [dict(r) for r in n.resolved])
        for n in notifications
    ]


def opened(sequence: list[tuple[str, str, bool]]) -> Counter:
    """Per receiver, notifications that open an incident: a group's first with a firing alert, or its
    first after one without (all resolved)."""
    last: dict[tuple[str, str], bool] = {}
    counts: Counter = Counter()
    for receiver, group, has_firing in sequence:
        if has_firing and not last.get((receiver, group), False):
            counts[receiver] += 1
        last[(receiver, group)] = has_firing
    return counts


def test_the_model_sends_what_a_real_alertmanager_sends(tmp_path: Path) -> None:
    model = simulate(load_config(ALERTMANAGER / "alertmanager.yml"), TIMELINE, UNTIL)
    sink_port, am_port = free_port(), free_port()
    sink = f"http://127.0.0.1:{sink_port}"
    out = tmp_path / "notifications.jsonl"
    token = secrets.token_urlsafe(16)
    token_file = tmp_path / "pager-sink-token"
    token_file.write_text(token + "\n")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(scaled_config(sink, token), sort_keys=False))
    sink_cmd = [
        sys.executable,
        "-m",
        "redline.cli",
        "pager-sink",
        f"--listen=127.0.0.1:{sink_port}",
        f"--out={out}",
        f"--token-file={token_file}",
    ]
    am_url = f"http://127.0.0.1:{am_port}"
    am_cmd = [
        tool("alertmanager"),
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    with (
        running(sink_cmd, ready_url=f"{sink}/-/healthy", log=tmp_path / "sink.log"),
        running(am_cmd, ready_url=f"{am_url}/-/ready", log=tmp_path / "am.log"),
    ):
        started = time.monotonic()
        pusher = Pusher(am_url, time.time() + 0.5)
        worker = threading.Thread(target=pusher.run, args=(TIMELINE, UNTIL))
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive() and not pusher.errors, pusher.errors
        time.sleep(0.5)  # deliveries of the last flush
        wall = time.monotonic() - started
        status, body = http_get(f"{sink}/notifications", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
    records = [json.loads(line) for line in body.splitlines()]
    real = []
    sequence = []
    for record in records:
        payload = record["payload"]
        firing = [a["labels"] for a in payload["alerts"] if a["status"] == "firing"]
        resolved = [a["labels"] for a in payload["alerts"] if a["status"] == "resolved"]
        real.append(describe(payload["receiver"], firing, resolved))
        sequence.append((payload["receiver"], payload["groupKey"], bool(firing)))
    model_sequence = [(n.receiver, n.group_key, bool(n.firing)) for n in model]
    assert opened(sequence) == opened(model_sequence) == Counter({"pager": 4, "ticket": 3})
    assert (
        Counter(r for r, *_ in real)
        == Counter(n.receiver for n in model)
        == Counter({"pager": 12, "ticket": 6})
    )
    assert Counter(real) == Counter(from_model(model))
    assert wall < 45


def test_the_scaled_configuration_keeps_routes_and_inhibitions() -> None:
    config = scaled_config("http://127.0.0.1:1", "token")
    original = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    assert config["inhibit_rules"] == original["inhibit_rules"]
    assert config["route"]["routes"][1]["group_interval"] == "500ms"  # the pager route's 30s
    assert [r["name"] for r in config["receivers"]] == [r["name"] for r in original["receivers"]]
