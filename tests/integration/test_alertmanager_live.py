"""Real Prometheus -> real Alertmanager (the repo's alertmanager.yml, unchanged) -> `redline pager-sink`.

Two stacks. One Alertmanager (delivery, templates, inhibition, resolve, receiver outage), started by this
file with the run folder laid out as `redline up` lays it out (see alertmanager/README.md): the
receivers' URL files in RUN/alertmanager/secrets/, Alertmanager started with that folder as its working
directory; the Slack URL files point at the sink too, so the rendered templates are seen live. And a
cluster of three started by the real runner, `redline up --ha` (redline.testing.sandbox.Sandbox), so the tests
prove what the runner runs: one notification per group, also with a member killed.

Only the alert rules are test copies: the conventions of the generated rules (severity, system, the four
annotations, the Watchdog labels) with `for: 0s` on switches this file flips.
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

from redline import atomic
from redline.generate.model import parse_duration
from redline.stack.services import AM_PEER_NAMES, AM_PEER_TIMEOUT
from redline.testing.alertmanager_ha import one_round, wait_settled
from redline.testing.components import prometheus
from redline.testing.processes import ROOT, free_port, http_get, running, tool, wait_until
from redline.testing.sandbox import Sandbox

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
# --cluster.peer-timeout of `redline up --ha`: the n-th peer (0-based) waits n times this before notifying.
PEER_TIMEOUT_SECONDS = parse_duration(AM_PEER_TIMEOUT)

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
                # A critical *Down silences the symptoms of its system, of any severity.
                alert_rule("PipelineTestDown", "down", "critical", "pipeline"),
                alert_rule("PipelineTestSlow", "down", "critical", "pipeline"),
                alert_rule("PipelineTestBacklog", "down", "warning", "pipeline"),
                # A warning *Down (an exporter down) silences nothing: the page of its system and env goes
                # out, and so does a warning. (env: apart from QerrorsTestSlow, whatever the inhibitions.)
                alert_rule("QerrorsTestExporterDown", "warndown", "warning", "qerrors", env="staging"),
                alert_rule("QerrorsTestBudgetBurn", "warndown", "critical", "qerrors", env="staging"),
                alert_rule("QerrorsTestLatencyHigh", "warndown", "warning", "qerrors", env="staging"),
                # The stack's own *Down (one Alertmanager peer) silences none of the stack's alerts.
                alert_rule("RedlineTestAlertmanagerDown", "redline", "critical", "redline"),
                alert_rule("RedlineTestNotificationsFailing", "redline", "critical", "redline"),
                # A critical host *Down silences the other alerts of that host only; a warning one nothing.
                alert_rule("HostTestDown", "host", "critical", "host", instance="host-a"),
                alert_rule("HostTestAgentDown", "host", "warning", "host", instance="host-b"),
                alert_rule("HostTestCpuHigh", "host", "warning", "host", instance="host-a"),
                alert_rule("HostTestCpuHigh", "host", "warning", "host", instance="host-b"),
                alert_rule("HostTestInfo", "info", "info", "host"),
                alert_rule("GamebookTestRetry", "retry", "critical", "gamebook"),
                alert_rule("TmuxTestHaFirst", "ha1", "critical", "tmux"),
                alert_rule("TmuxTestHaSecond", "ha2", "critical", "tmux"),
            ],
        }
    ]
}


def write_run_folder(run: Path, sink_url: str, token: str) -> Path:
    """What `redline up` writes: RUN/alertmanager/secrets/<receiver>-webhook-url -> the pager-sink, with
    the sink's token as the URL's basic-auth password.

    The Slack URL files point at the sink too (test only), so the rendered templates are seen live.
    """
    secrets = run / "alertmanager" / "secrets"
    secrets.mkdir(parents=True)
    sink = sink_url.replace("http://", f"http://alertmanager:{token}@", 1)
    for receiver in ("pager", "ticket", "watchdog"):
        (secrets / f"{receiver}-webhook-url").write_text(f"{sink}/{receiver}\n")
    for receiver in ("pager", "ticket"):
        (secrets / f"slack-{receiver}-url").write_text(f"{sink}/slack-{receiver}\n")
    for path in secrets.iterdir():
        path.chmod(0o600)
    return run / "alertmanager"


@dataclass
class Notifications:
    """What a pager-sink has recorded in its JSON-lines file."""

    out: Path

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
class Sink(Notifications):
    """The pager-sink process, restartable on the same port and file."""

    port: int = 0
    log: Path = Path("sink.log")
    token_file: Path = Path("pager-sink-token")
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "redline.cli", "pager-sink", f"--listen=127.0.0.1:{self.port}"]
        cmd.append(f"--token-file={self.token_file}")  # created on the first start, kept for restarts
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*cmd, f"--out={self.out}"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: http_get(f"{self.url}/-/healthy", timeout=1)[0] == 200, timeout=20, what="sink")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


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
    # Alerts evaluated before the notifier has discovered its Alertmanagers (the Watchdog fires on the very
    # first evaluation) are only sent again after --rules.alert.resend-delay (default 1m).
    stack.enter_context(prometheus(tmp, tmp / "prometheus.yml", "--rules.alert.resend-delay=2s"))


def am_alerts(base_url: str, alertname: str, headers: dict[str, str] | None = None) -> list[dict]:
    """Alerts Alertmanager holds for a name, including inhibited and silenced ones."""
    query = urllib.parse.urlencode(
        {"filter": f'alertname="{alertname}"', "inhibited": "true", "silenced": "true"}
    )
    status, body = http_get(f"{base_url}/api/v2/alerts?{query}", headers=headers)
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
        token_file = tmp / "pager-sink-token"
        sink = Sink(
            tmp / "notifications.jsonl", port=free_port(), log=tmp / "sink.log", token_file=token_file
        )
        sink.start()
        stack.callback(sink.stop)
        workdir = write_run_folder(tmp / "run", sink.url, token_file.read_text().strip())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = alertmanager_cmd(workdir, "am", port, ["--cluster.listen-address="])
        am = stack.enter_context(running(cmd, ready_url=f"{url}/-/ready", log=tmp / "am.log", cwd=workdir))
        start_prometheus(stack, tmp, switches, [url])
        # Everything that this module checks fires at once: the slow ticket batch bounds the module's time.
        switches.set(page=1, ticket=1, pair=1, down=1, warndown=1, redline=1, host=1, info=1, retry=0)
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


def assert_active(base_url: str, alertname: str, **labels: str) -> dict:
    """The one alert of that name (and labels) Alertmanager holds: active, inhibited by nothing."""
    (alert,) = [a for a in am_alerts(base_url, alertname) if labels.items() <= a["labels"].items()]
    assert alert["status"]["state"] == "active", alert
    assert alert["status"]["inhibitedBy"] == [], alert
    return alert


def assert_inhibited_by(base_url: str, alertname: str, source: dict, **labels: str) -> None:
    """The one alert of that name (and labels) is suppressed by exactly the `source` alert."""
    (alert,) = [a for a in am_alerts(base_url, alertname) if labels.items() <= a["labels"].items()]
    assert alert["status"]["state"] == "suppressed", alert
    assert alert["status"]["inhibitedBy"] == [source["fingerprint"]], alert


def past_every_group_wait(stack: Stack) -> None:
    """Wait until the ticket route (group_wait 30s, the longest) has delivered the batch fired at start:
    an uninhibited alert of any severity would have been notified by then."""
    stack.sink.wait_for("/ticket", "QerrorsTestSlow", timeout=60)
    time.sleep(2)


def test_critical_down_alert_inhibits_the_symptoms_of_its_system(single: Stack) -> None:
    single.sink.wait_for("/pager", "PipelineTestDown", timeout=15)
    am = single.alertmanagers[0]
    down = assert_active(am, "PipelineTestDown")
    assert_inhibited_by(am, "PipelineTestSlow", down)  # a critical symptom
    assert_inhibited_by(am, "PipelineTestBacklog", down)  # a warning symptom
    past_every_group_wait(single)  # the longest group_wait: an uninhibited symptom would be out by now
    assert single.sink.mentions("PipelineTestSlow") == []
    assert single.sink.mentions("PipelineTestBacklog") == []


def test_warning_down_alert_does_not_inhibit_a_page_of_its_system(single: Stack) -> None:
    # Like PipelineJobExporterDown (warning) and PipelineJobSuccessBudgetBurn (critical): the page goes out.
    record = single.sink.wait_for("/pager", "QerrorsTestBudgetBurn", timeout=15)
    assert record["payload"]["receiver"] == "pager"
    am = single.alertmanagers[0]
    assert_active(am, "QerrorsTestExporterDown")
    assert_active(am, "QerrorsTestBudgetBurn")
    assert_active(am, "QerrorsTestLatencyHigh")
    past_every_group_wait(single)
    # The warning *Down is a ticket itself, and the other warning of its system and env is ticketed too.
    single.sink.wait_for("/ticket", "QerrorsTestExporterDown", timeout=5)
    single.sink.wait_for("/ticket", "QerrorsTestLatencyHigh", timeout=5)
    assert len(single.sink.alerts("/pager", "QerrorsTestBudgetBurn", "firing")) == 1


def test_redline_down_alert_does_not_inhibit_the_other_redline_alerts(single: Stack) -> None:
    # One Alertmanager peer down must not hide that notifications are failing.
    record = single.sink.wait_for("/pager", "RedlineTestNotificationsFailing", timeout=15)
    assert record["payload"]["receiver"] == "pager"
    single.sink.wait_for("/pager", "RedlineTestAlertmanagerDown", timeout=5)
    am = single.alertmanagers[0]
    assert_active(am, "RedlineTestAlertmanagerDown")
    assert_active(am, "RedlineTestNotificationsFailing")
    assert_active(am, "Watchdog")


def test_host_down_inhibits_only_that_host_and_only_when_critical(single: Stack) -> None:
    single.sink.wait_for("/pager", "HostTestDown", timeout=15)
    am = single.alertmanagers[0]
    down = assert_active(am, "HostTestDown", instance="host-a")
    assert_inhibited_by(am, "HostTestCpuHigh", down, instance="host-a")
    # host-b has only a warning *Down: its other alerts are not silenced.
    assert_active(am, "HostTestAgentDown", instance="host-b")
    assert_active(am, "HostTestCpuHigh", instance="host-b")
    record = single.sink.wait_for("/ticket", "HostTestCpuHigh", timeout=60)
    assert [a["labels"]["instance"] for a in record["payload"]["alerts"]] == ["host-b"]
    past_every_group_wait(single)
    delivered = [a["labels"]["instance"] for _, a in single.sink.alerts("/ticket", "HostTestCpuHigh")]
    assert delivered == ["host-b"]


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


HA_SERVICES = ["prometheus", "alertmanager", "alertmanager-2", "alertmanager-3", "pager-sink"]
PEERS = list(AM_PEER_NAMES)  # the runner's three Alertmanager services, am-1 first


@dataclass
class Cluster:
    sandbox: Sandbox  # `redline up --ha --only=...` on free ports
    switches: Switches
    sink: Notifications  # the runner's pager-sink file, RUN/pager-sink/notifications.jsonl

    def url(self, service: str) -> str:
        return self.sandbox.url(service)

    @property
    def auth(self) -> dict[str, str]:
        """The runner's basic auth, which its Prometheus and Alertmanagers require."""
        return self.sandbox.credentials.web_headers()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("am-ha")
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "alertmanager-test.yml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    with ExitStack() as stack:
        switches = Switches()
        stack.callback(switches.close)
        switches.set(ha1=0, ha2=0)
        # The real runner: its Alertmanager flags, run folder, secrets (webhooks -> its pager-sink),
        # supervisord, and Prometheus target files listing all three Alertmanagers.
        sandbox = stack.enter_context(Sandbox(ha=True, only=HA_SERVICES, rules_dir=rules))
        # The runner's Prometheus scrapes what its file_sd target files list; prometheus.yml's
        # tmux-monitor job (1 s scrapes) reads targets/tmux-monitor*.yml, which only the demo would write.
        targets = sandbox.run_dir / "prometheus" / "targets"
        switches_targets = yaml.safe_dump([{"targets": [f"127.0.0.1:{switches.port}"]}])
        atomic.write_text(targets / "tmux-monitor-test-switches.yml", switches_targets)
        wait_until(
            lambda: len(sandbox.query('redline_test_switch{job="tmux-monitor"}')) == 2,
            timeout=20,
            what="Prometheus scraping the switches",
        )
        wait_until(
            lambda: len(prometheus_alertmanagers(sandbox)) == 3,
            timeout=20,
            what="3 Alertmanagers in Prometheus",
        )
        wait_until(
            lambda: all(cluster_status(sandbox, s)["status"] == "ready" for s in PEERS),
            timeout=30,
            what="a settled cluster of 3",
        )
        yield Cluster(
            sandbox, switches, Notifications(sandbox.run_dir / "pager-sink" / "notifications.jsonl")
        )


def cluster_status(sandbox: Sandbox, service: str) -> dict:
    auth = sandbox.credentials.web_headers()
    status, body = http_get(f"{sandbox.url(service)}/api/v2/status", timeout=2, headers=auth)
    assert status == 200, body
    return dict(json.loads(body)["cluster"])


def prometheus_alertmanagers(sandbox: Sandbox) -> list[str]:
    auth = sandbox.credentials.web_headers()
    status, body = http_get(f"{sandbox.url('prometheus')}/api/v1/alertmanagers", headers=auth)
    assert status == 200, body
    return [am["url"] for am in json.loads(body)["data"]["activeAlertmanagers"]]


def test_the_runner_starts_three_named_peers_that_prometheus_all_sends_to(cluster: Cluster) -> None:
    gossip = {AM_PEER_NAMES[s]: f"127.0.0.1:{cluster.sandbox.port(s) + 1}" for s in PEERS}
    for service in PEERS:
        status = cluster_status(cluster.sandbox, service)
        assert status["name"] == AM_PEER_NAMES[service]
        assert {p["name"]: p["address"] for p in status["peers"]} == gossip
    # Prometheus sends to every member (the runner's targets/alertmanagers.yml), never to one of them.
    expected = {f"{cluster.url(s)}/api/v2/alerts" for s in PEERS}
    assert set(prometheus_alertmanagers(cluster.sandbox)) == expected


def test_cluster_sends_one_notification_per_group(cluster: Cluster) -> None:
    cluster.switches.set(ha1=1)
    record = cluster.sink.wait_for("/pager", "TmuxTestHaFirst", timeout=20)
    # am-1 sorts first: it notifies at once, the others only after waiting their position's turn.
    assert record["payload"]["externalURL"] == cluster.url("alertmanager")
    # Prometheus sent the alert to every member...
    wait_until(
        lambda: all(am_alerts(cluster.url(s), "TmuxTestHaFirst", cluster.auth) for s in PEERS),
        timeout=10,
        what="the alert on all three Alertmanagers",
    )
    # ...and the later members, after waiting their turn, saw the gossiped notification log and stayed quiet.
    time.sleep(2 * PEER_TIMEOUT_SECONDS + 2)
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaFirst")) == 1


def test_cluster_still_notifies_once_with_a_member_killed(cluster: Cluster) -> None:
    cluster.sandbox.crash("alertmanager")  # am-1 (kept down): the one that notifies first
    with pytest.raises(OSError):
        http_get(f"{cluster.url('alertmanager')}/-/healthy", timeout=2)
    survivors = ["alertmanager-2", "alertmanager-3"]
    cluster.switches.set(ha2=1)
    record = cluster.sink.wait_for("/pager", "TmuxTestHaSecond", timeout=30)
    assert record["payload"]["externalURL"] == cluster.url("alertmanager-2")  # next in line
    assert all(am_alerts(cluster.url(s), "TmuxTestHaSecond", cluster.auth) for s in survivors)
    time.sleep(2 * PEER_TIMEOUT_SECONDS + 2)
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaSecond")) == 1
    assert len(cluster.sink.alerts("/pager", "TmuxTestHaFirst")) == 1  # nothing repeated by the failover


def test_a_page_survives_the_notifying_peer_dying_around_it(cluster: Cluster) -> None:
    """At-least-once (alertmanager/README.md; bench/alertmanager_ha.py measures it over 74 kills): am-1
    killed before its page, in the gossip window just after it, and well after it. No page is lost; the
    one in the window may come twice."""
    cluster.sandbox.start("alertmanager")  # back after the test above kept it down
    wait_settled(cluster.sandbox)
    rounds = {offset: one_round(cluster.sandbox, f"ha-test-{n}", 1.0 + offset)
              for n, offset in enumerate((-0.3, 0.05, 0.6))}  # fmt: skip
    assert [r["pages"] >= 1 for r in rounds.values()] == [True, True, True], rounds
    assert rounds[-0.3]["senders"] == ["am-2"], rounds  # am-1 died first: the next in line paged once
    assert rounds[0.6]["senders"] == ["am-1"], rounds  # its log entry had reached the others
    assert 1 <= rounds[0.05]["pages"] <= 2, rounds  # in the window: am-1's page, and maybe am-2's again
