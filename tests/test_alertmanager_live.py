"""Real Prometheus -> real Alertmanager (the repo's alertmanager.yml, unchanged) -> `redline pager-sink`.

The run folder is laid out exactly as `redline up` must lay it out (see alertmanager/README.md): the
receivers' URL files in RUN/alertmanager/secrets/, Alertmanager started with that folder as its working
directory. Only the alert rules are test copies: the conventions of the generated rules (severity,
system, the four annotations, the Watchdog labels) with `for: 0s` on switches this file flips.

Two stacks: one Alertmanager (delivery, templates, inhibition, resolve, receiver outage) and a cluster of
three (one notification per group, also with a member killed).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from support import ROOT, free_port, http_get, running, tool, wait_until

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
PEER_TIMEOUT_SECONDS = 2  # --cluster.peer-timeout of the HA stack (loopback gossip takes milliseconds)

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------------------------------
# Helpers: switches Prometheus scrapes, the sink, the rules, the run folder


class Switches:
    """A /metrics endpoint with one gauge per switch; the test rules fire while a switch is 1."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        switches = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = "".join(
                    f'redline_test_switch{{name="{name}"}} {value}\n'
                    for name, value in switches.values.items()
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, **values: int) -> None:
        self.values.update(values)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alert_rule(name: str, switch: str, severity: str, system: str, **extra_labels: str) -> dict:
    """A rule shaped like the generated ones: severity, system and the four annotations."""
    return {
        "alert": name,
        "expr": f'redline_test_switch{{name="{switch}"}} == 1',
        "for": "0s",
        "labels": {"severity": severity, "system": system, **extra_labels},
        "annotations": {
            "summary": f"{name} test alert ({severity})",
            "description": f"Switch {switch} is on; value {{{{ $value }}}}.",
            "runbook_url": f"https://runbooks.redline.test/{system}#{name}",
            "dashboard_url": f"http://127.0.0.1:3000/d/redline-{system}",
        },
    }


RULES = {
    "groups": [
        {
            "name": "redline-alertmanager-test",
            "interval": "1s",
            "rules": [
                {
                    "alert": "Watchdog",
                    "expr": "vector(1)",
                    "labels": {"severity": "info", "system": "redline", "watchdog": "true"},
                    "annotations": {
                        "summary": "The alerting pipeline works",
                        "description": "Always firing; the dead man's switch alarms when it stops.",
                        "runbook_url": "https://runbooks.redline.test/redline#Watchdog",
                        "dashboard_url": "http://127.0.0.1:3000/d/redline-overview",
                    },
                },
                alert_rule("GamebookTestOutage", "page", "critical", "gamebook"),
                alert_rule("QerrorsTestSlow", "ticket", "warning", "qerrors"),
                # One threshold with two levels: the critical must silence the warning.
                alert_rule("TmuxTestMemoryHigh", "pair", "critical", "tmux"),
                alert_rule("TmuxTestMemoryHigh", "pair", "warning", "tmux"),
                # A service down silences its symptoms.
                alert_rule("PipelineTestDown", "down", "critical", "pipeline"),
                alert_rule("PipelineTestSlow", "down", "critical", "pipeline"),
                alert_rule("HostTestInfo", "info", "info", "host"),
                alert_rule("GamebookTestRetry", "retry", "critical", "gamebook"),
                alert_rule("TmuxTestHaFirst", "ha1", "critical", "tmux"),
                alert_rule("TmuxTestHaSecond", "ha2", "critical", "tmux"),
            ],
        }
    ]
}


def write_run_folder(run: Path, sink_url: str) -> Path:
    """What `redline up` writes: RUN/alertmanager/secrets/<receiver>-webhook-url -> the pager-sink.

    The Slack URL files point at the sink too (test only), so the rendered templates are seen live.
    """
    secrets = run / "alertmanager" / "secrets"
    secrets.mkdir(parents=True)
    for receiver in ("pager", "ticket", "watchdog"):
        (secrets / f"{receiver}-webhook-url").write_text(f"{sink_url}/{receiver}\n")
    for receiver in ("pager", "ticket"):
        (secrets / f"slack-{receiver}-url").write_text(f"{sink_url}/slack-{receiver}\n")
    for path in secrets.iterdir():
        path.chmod(0o600)
    return run / "alertmanager"


@dataclass
class Sink:
    """The pager-sink process, restartable on the same port and file."""

    port: int
    out: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "redline.cli", "pager-sink", f"--listen=127.0.0.1:{self.port}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*cmd, f"--out={self.out}"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: http_get(f"{self.url}/-/healthy", timeout=1)[0] == 200, timeout=20, what="sink")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def alerts(self, path: str, alertname: str, status: str | None = None) -> list[tuple[dict, dict]]:
        """(notification record, alert) pairs delivered to `path` for an alert name (and status)."""
        return [
            (record, alert)
            for record in self.records()
            if record["path"] == path and isinstance(record["payload"], dict)
            for alert in record["payload"].get("alerts", [])
            if alert["labels"]["alertname"] == alertname and (status is None or alert["status"] == status)
        ]

    def wait_for(self, path: str, alertname: str, status: str = "firing", timeout: float = 20) -> dict:
        """The first notification of `path` carrying the alert in `status`; fails after timeout."""
        found = wait_until(
            lambda: self.alerts(path, alertname, status),
            timeout=timeout,
            what=f"{alertname} {status} at {path}",
        )
        return found[0][0]

    def mentions(self, alertname: str) -> list[str]:
        """Paths of every notification that mentions the alert name anywhere (also Slack payloads)."""
        return [r["path"] for r in self.records() if f'"{alertname}"' in json.dumps(r["payload"])]


@dataclass
class Stack:
    switches: Switches
    sink: Sink
    alertmanagers: list[str]  # base URLs
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: float = 0.0


def alertmanager_cmd(workdir: Path, name: str, web_port: int, cluster: list[str]) -> list[str]:
    return [
        tool("alertmanager"),
        f"--config.file={CONFIG}",
        f"--storage.path={workdir.parent / 'data' / name}",
        f"--web.listen-address=127.0.0.1:{web_port}",
        f"--web.external-url=http://127.0.0.1:{web_port}",
        *cluster,
    ]


def start_prometheus(stack: ExitStack, tmp: Path, switches: Switches, alertmanagers: list[str]) -> None:
    (tmp / "rules.yml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yml")],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [u.removeprefix("http://") for u in alertmanagers]}]}
            ]
        },
        "scrape_configs": [
            {"job_name": "switches", "static_configs": [{"targets": [f"127.0.0.1:{switches.port}"]}]}
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    cmd = [
        tool("prometheus"),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Alerts evaluated before the notifier has discovered its Alertmanagers (the Watchdog fires on
        # the very first evaluation) are only sent again after this delay (default 1m).
        "--rules.alert.resend-delay=2s",
    ]
    stack.enter_context(
        running(cmd, ready_url=f"http://127.0.0.1:{port}/-/ready", log=tmp / "prometheus.log")
    )


def am_alerts(base_url: str, alertname: str) -> list[dict]:
    """Alerts Alertmanager holds for a name, including inhibited and silenced ones."""
    query = urllib.parse.urlencode(
        {"filter": f'alertname="{alertname}"', "inhibited": "true", "silenced": "true"}
    )
    status, body = http_get(f"{base_url}/api/v2/alerts?{query}")
    assert status == 200, body
    return list(json.loads(body))


def webhook_failures(base_url: str) -> float:
    _, body = http_get(f"{base_url}/metrics")
    for line in body.splitlines():
        if line.startswith('alertmanager_notification_requests_failed_total{integration="webhook"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ----------------------------------------------------------------------------------------------------
# One Alertmanager


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("am-single")
    with ExitStack() as stack:
        switches = Switches()
        stack.callback(switches.close)
        sink = Sink(free_port(), tmp / "notifications.jsonl", tmp / "sink.log")
        sink.start()
        stack.callback(sink.stop)
        workdir = write_run_folder(tmp / "run", sink.url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = alertmanager_cmd(workdir, "am", port, ["--cluster.listen-address="])
        am = stack.enter_context(running(cmd, ready_url=f"{url}/-/ready", log=tmp / "am.log", cwd=workdir))
        start_prometheus(stack, tmp, switches, [url])
        # Everything that this module checks fires at once: the slow ticket batch bounds the module's time.
        switches.set(page=1, ticket=1, pair=1, down=1, info=1, retry=0)
        yield Stack(switches, sink, [url], {"am": am}, started=time.monotonic())


def test_watchdog_pings_the_dead_mans_switch(single: Stack) -> None:
    record = single.sink.wait_for("/watchdog", "Watchdog")
    assert record["payload"]["receiver"] == "deadmans-switch"
    (alert,) = record["payload"]["alerts"]
    assert alert["labels"] == {
        "alertname": "Watchdog",
        "severity": "info",
        "system": "redline",
        "watchdog": "true",
    }


def test_critical_alert_pages_within_seconds_with_its_labels_and_annotations(single: Stack) -> None:
    record = single.sink.wait_for("/pager", "GamebookTestOutage", timeout=15)
    payload = record["payload"]
    assert payload["receiver"] == "pager"
    assert payload["status"] == "firing"
    assert payload["groupLabels"] == {"alertname": "GamebookTestOutage", "system": "gamebook"}
    (alert,) = payload["alerts"]
    switches_target = f"127.0.0.1:{single.switches.port}"
    assert alert["labels"] == {
        "alertname": "GamebookTestOutage", "severity": "critical", "system": "gamebook",
        "instance": switches_target, "job": "switches", "name": "page",
    }  # fmt: skip
    assert alert["annotations"] == {
        "summary": "GamebookTestOutage test alert (critical)",
        "description": "Switch page is on; value 1.",
        "runbook_url": "https://runbooks.redline.test/gamebook#GamebookTestOutage",
        "dashboard_url": "http://127.0.0.1:3000/d/redline-gamebook",
    }
    assert single.sink.mentions("GamebookTestOutage").count("/ticket") == 0


def test_slack_message_renders_the_templates(single: Stack) -> None:
    def slack_record() -> dict | None:
        for record in single.sink.records():
            if record["path"] == "/slack-pager" and "GamebookTestOutage" in json.dumps(record["payload"]):
                return record["payload"]
        return None

    payload = wait_until(slack_record, timeout=15, what="Slack message for GamebookTestOutage")
    (attachment,) = payload["attachments"]
    assert payload["channel"] == "#redline-oncall"
    assert attachment["title"] == "[FIRING:1] CRITICAL gamebook: GamebookTestOutage test alert (critical)"
    am = single.alertmanagers[0]
    assert attachment["title_link"] == f"{am}/#/alerts?receiver=pager"
    lines = attachment["text"].splitlines()
    assert lines[0] == f"FIRING GamebookTestOutage on 127.0.0.1:{single.switches.port}"
    assert lines[1] == "Switch page is on; value 1."
    assert lines[2] == "Runbook: https://runbooks.redline.test/gamebook#GamebookTestOutage"
    assert lines[3] == "Dashboard: http://127.0.0.1:3000/d/redline-gamebook"
    assert lines[4].startswith(
        f"Silence: {am}/#/silences/new?filter=%7Balertname%3D%22GamebookTestOutage%22%2C"
    )
    assert "name%3D%22page%22" in lines[4]


def test_clearing_the_condition_delivers_resolved(single: Stack) -> None:
    single.sink.wait_for("/pager", "GamebookTestOutage", timeout=15)
    single.switches.set(page=0)
    # The pager route's group_interval (30s) paces updates of a group, resolved ones included.
    record = single.sink.wait_for("/pager", "GamebookTestOutage", status="resolved", timeout=60)
    (alert,) = record["payload"]["alerts"]
    assert record["payload"]["status"] == "resolved"
    assert alert["endsAt"] > alert["startsAt"]
    assert len(single.sink.alerts("/pager", "GamebookTestOutage", "firing")) == 1  # paged once, not repeated


def test_down_alert_inhibits_the_symptoms_of_its_system(single: Stack) -> None:
    single.sink.wait_for("/pager", "PipelineTestDown", timeout=15)
    am = single.alertmanagers[0]
    (down,) = am_alerts(am, "PipelineTestDown")
    (symptom,) = am_alerts(am, "PipelineTestSlow")
    assert symptom["status"]["state"] == "suppressed"
    assert symptom["status"]["inhibitedBy"] == [down["fingerprint"]]
    time.sleep(3)  # pager group_wait is 1s: an uninhibited symptom would have been paged by now
    assert single.sink.mentions("PipelineTestSlow") == []


def test_critical_inhibits_the_warning_of_the_same_alert_and_target(single: Stack) -> None:
    single.sink.wait_for("/pager", "TmuxTestMemoryHigh", timeout=15)
    am = single.alertmanagers[0]
    by_severity = {a["labels"]["severity"]: a for a in am_alerts(am, "TmuxTestMemoryHigh")}
    assert set(by_severity) == {"critical", "warning"}
    assert by_severity["warning"]["status"]["inhibitedBy"] == [by_severity["critical"]["fingerprint"]]
    assert by_severity["critical"]["status"]["inhibitedBy"] == []
    # Both groups started together; once the ticket route has delivered its batch (group_wait 30s),
    # the warning would have been in it if it were not inhibited.
    single.sink.wait_for("/ticket", "QerrorsTestSlow", timeout=60)
    time.sleep(2)
    assert [a["labels"]["severity"] for _, a in single.sink.alerts("/pager", "TmuxTestMemoryHigh")] == [
        "critical"
    ]
    assert single.sink.alerts("/ticket", "TmuxTestMemoryHigh") == []


def test_warning_is_batched_into_a_ticket(single: Stack) -> None:
    ticket = single.sink.wait_for("/ticket", "QerrorsTestSlow", timeout=60)
    assert ticket["payload"]["receiver"] == "ticket"
    page = single.sink.wait_for("/pager", "GamebookTestOutage")
    # Fired in the same evaluation: the page went out at once, the ticket after the ticket group_wait.
    assert seconds_between(page["received_at"], ticket["received_at"]) >= 20
    assert single.sink.mentions("QerrorsTestSlow").count("/pager") == 0


def test_info_alert_notifies_nobody(single: Stack) -> None:
    single.sink.wait_for("/ticket", "QerrorsTestSlow", timeout=60)  # past every group_wait
    (info,) = am_alerts(single.alertmanagers[0], "HostTestInfo")
    assert info["status"]["state"] == "active"
    assert info["receivers"] == [{"name": "null"}]
    assert single.sink.mentions("HostTestInfo") == []


def test_notification_arrives_after_the_receiver_comes_back(single: Stack) -> None:
    am = single.alertmanagers[0]
    single.sink.stop()
    failures_before = webhook_failures(am)
    single.switches.set(retry=1)
    # Alertmanager tries while the sink is down...
    wait_until(
        lambda: webhook_failures(am) >= failures_before + 2, timeout=20, what="failed webhook attempts"
    )
    assert single.sink.alerts("/pager", "GamebookTestRetry") == []
    single.sink.start()
    # ...and delivers once it is back (retry with backoff within the group's flush).
    single.sink.wait_for("/pager", "GamebookTestRetry", timeout=30)
    time.sleep(2)
    assert len(single.sink.alerts("/pager", "GamebookTestRetry", "firing")) == 1


def seconds_between(earlier: str, later: str) -> float:
    from datetime import datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds()


# ----------------------------------------------------------------------------------------------------
# A cluster of three


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("am-ha")
    with ExitStack() as stack:
        switches = Switches()
        stack.callback(switches.close)
        sink = Sink(free_port(), tmp / "notifications.jsonl", tmp / "sink.log")
        sink.start()
        stack.callback(sink.stop)
        workdir = write_run_folder(tmp / "run", sink.url)
        names = ["am-1", "am-2", "am-3"]
        web = {name: free_port() for name in names}
        gossip = {name: free_port() for name in names}
        processes = {}
        for name in names:
            flags = [
                f"--cluster.listen-address=127.0.0.1:{gossip[name]}",
                f"--cluster.peer-name={name}",
                f"--cluster.peer-timeout={PEER_TIMEOUT_SECONDS}s",
                "--cluster.settle-timeout=10s",
                *[f"--cluster.peer=127.0.0.1:{gossip[peer]}" for peer in names if peer != name],
            ]
            cmd = alertmanager_cmd(workdir, name, web[name], flags)
            url = f"http://127.0.0.1:{web[name]}/-/ready"
            processes[name] = stack.enter_context(
                running(cmd, ready_url=url, log=tmp / f"{name}.log", cwd=workdir)
            )
        urls = [f"http://127.0.0.1:{web[name]}" for name in names]
        wait_until(lambda: all(cluster_ready(u, 3) for u in urls), timeout=30, what="a settled cluster of 3")
        start_prometheus(stack, tmp, switches, urls)
        yield Stack(switches, sink, urls, processes)


def cluster_ready(base_url: str, members: int) -> bool:
    status, body = http_get(f"{base_url}/api/v2/status", timeout=2)
    cluster = json.loads(body)["cluster"] if status == 200 else {}
    return cluster.get("status") == "ready" and len(cluster.get("peers", [])) == members


def test_cluster_sends_one_notification_per_group(cluster: Stack) -> None:
    cluster.switches.set(ha1=1)
    cluster.sink.wait_for("/pager", "TmuxTestHaFirst", timeout=20)
    # Prometheus sent the alert to every member...
    wait_until(
        lambda: all(am_alerts(url, "TmuxTestHaFirst") for url in cluster.alertmanagers),
        timeout=10,
        what="the alert on all three Alertmanagers",
    )
    # ...and the later members, after waiting their turn, saw the gossiped notification log and stayed quiet.
    time.sleep(2 * PEER_TIMEOUT_SECONDS + 2)
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaFirst")) == 1


def test_cluster_still_notifies_once_with_a_member_killed(cluster: Stack) -> None:
    first = cluster.processes["am-1"]  # position 0 in the cluster: the one that notifies first
    first.kill()
    first.wait(timeout=10)
    survivors = cluster.alertmanagers[1:]
    cluster.switches.set(ha2=1)
    cluster.sink.wait_for("/pager", "TmuxTestHaSecond", timeout=30)
    assert all(am_alerts(url, "TmuxTestHaSecond") for url in survivors)
    time.sleep(2 * PEER_TIMEOUT_SECONDS + 2)
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaSecond")) == 1
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaFirst")) == 1  # nothing repeated by the failover
