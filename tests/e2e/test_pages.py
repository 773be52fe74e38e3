"""End to end on the native stack: a fault in a simulated system pages (or tickets) the right receiver.

One `redline up` on free ports runs every service of `make up` (Prometheus, Alertmanager, vmagent,
blackbox_exporter, PostgreSQL and postgres_exporter, the host and job exporters, the demo, the
pager-sink). Two things differ from the shipped stack, both test-only and both about waiting, not about
what is decided:
- the rules are rendered by `redline generate --for-override 3s`, so no test sleeps for a real `for`;
- Alertmanager runs the shipped routes, receivers, inhibitions and templates with group timers capped
  (first notification after at most 5 s, updates every 5 s), so that warnings and resolved notifications
  arrive in seconds instead of minutes. Pages keep their shipped 1 s group_wait.
The demo runs its jobs 30x faster and pushes FPS every second, so the pipeline finishes jobs in time.

For each monitored system its representative faults run one after the other (the systems in parallel):
fault on, the expected alert arrives at the pager-sink path of its receiver (/pager for critical,
/ticket for warning) with the annotations of the generated rule, its runbook link naming an existing
runbook section and its dashboard link an existing panel, and at no other receiver; fault off, the
same receiver gets "resolved". Faults that stop a service run last in their system, because a *Down
alert silences the other alerts of its system.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from redline.stack.services import SERVICES
from redline.testing.links import assert_links_resolve, links_of
from redline.testing.processes import wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FOR_OVERRIDE = "3s"
DEMO_ARGS = "--time-scale=30 --traffic-scale=20 --otlp-interval=1 --seed=11"
RECEIVER_PATH = {"critical": "/pager", "warning": "/ticket"}
FIRING_TIMEOUT = 75.0
RESOLVED_TIMEOUT = 90.0


@dataclass(frozen=True)
class Expect:
    """An alert a fault must deliver: its name, severity and labels that pick the faulty target."""

    alert: str
    severity: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Step:
    system: str  # the demo's system name
    fault: str
    expect: Expect
    inhibited: tuple[Expect, ...] = ()  # alerts the fault also raises that Alertmanager must hold back


PROD = (("env", "production"),)
# Per monitored system, in order: symptoms first, the fault that stops the service last.
SCENARIOS: dict[str, list[Step]] = {
    "gamebook": [
        Step("gamebook", "errors", Expect("GamebookErrorBudgetBurn", "critical")),
        Step("gamebook", "low-fps", Expect("GamebookClientFpsLow", "warning")),
        Step("gamebook", "down", Expect("GamebookDown", "critical")),
    ],
    "qerrors": [
        Step("qerrors", "heap", Expect("QerrorsHeapUsageHigh", "warning", PROD)),
        Step("qerrors", "down", Expect("QerrorsDown", "critical", PROD)),
    ],
    "pipeline": [
        Step("pipeline", "concurrency", Expect("PipelineConcurrencyHigh", "warning")),
        Step("pipeline", "job-failures", Expect("PipelineJobSuccessBudgetBurn", "critical")),
        Step("pipeline", "down", Expect("PipelineApiDown", "critical")),
    ],
    "tmux": [
        Step("tmux", "pool-exhaustion", Expect("TmuxMonitorPoolSaturated", "warning")),
        Step(
            "tmux",
            "memory-critical",
            Expect("TmuxMonitorMemoryHigh", "critical"),
            inhibited=(Expect("TmuxMonitorMemoryHigh", "warning"),),
        ),
        Step("tmux", "unhealthy", Expect("TmuxMonitorDown", "critical")),
    ],
}
STEPS = [step for steps in SCENARIOS.values() for step in steps]


@dataclass
class Outcome:
    """What one step saw."""

    error: str | None = None
    fired: dict[str, Any] = field(default_factory=dict)  # the webhook record of the firing notification
    alert: dict[str, Any] = field(default_factory=dict)  # the alert inside it
    resolved: dict[str, Any] = field(default_factory=dict)
    seconds_to_page: float = 0.0
    seconds_to_resolve: float = 0.0
    elsewhere: list[str] = field(default_factory=list)  # deliveries of the alert at another receiver
    inhibited_state: dict[str, Any] = field(default_factory=dict)  # Alertmanager's status of each held alert
    inhibited_delivered: list[str] = field(default_factory=list)
    links: dict[str, Any] = field(default_factory=dict)  # the alert's links followed on the console


@dataclass
class E2E:
    """What the module's stack run produced: the rendered rules, each step's outcome, the tables."""

    rules: dict[tuple[str, str], dict[str, Any]]
    outcomes: dict[tuple[str, str], Outcome]
    up_table: str
    status_code: int
    status_table: str


def generated_rules(rules_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(alert, severity) -> the generated alert rule."""
    rules = {}
    for path in sorted(rules_dir.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[(rule["alert"], rule["labels"]["severity"])] = rule
    return rules


def firing_in_prometheus(stack: Sandbox, expect: Expect) -> bool:
    return stack.alert_firing(expect.alert, severity=expect.severity, **dict(expect.labels))


def deliveries(stack: Sandbox, expect: Expect, since: int) -> list[str]:
    """Paths at which a firing `expect` alert arrived after notification number `since`."""
    labels = {"severity": expect.severity, **dict(expect.labels)}
    return [record["path"] for record, _ in stack.matching_alerts(expect.alert, since=since, **labels)]


def run_step(stack: Sandbox, step: Step) -> Outcome:
    outcome = Outcome()
    expect = step.expect
    path = RECEIVER_PATH[expect.severity]
    labels = {"severity": expect.severity, **dict(expect.labels)}
    try:
        wait_until(
            lambda: not firing_in_prometheus(stack, expect),
            timeout=RESOLVED_TIMEOUT,
            what=f"{expect.alert} not firing before {step.fault}",
        )
        since = len(stack.notifications())
        started = time.monotonic()
        stack.fault(step.system, step.fault)
        try:
            outcome.fired, outcome.alert = stack.wait_for_notification(
                path, expect.alert, timeout=FIRING_TIMEOUT, since=since, **labels
            )
            outcome.seconds_to_page = time.monotonic() - started
            outcome.links = links_of(stack, outcome.alert["annotations"])
            for held in step.inhibited:
                wait_until(
                    lambda held=held: firing_in_prometheus(stack, held),
                    timeout=30,
                    what=f"{held.alert} ({held.severity}) firing in Prometheus",
                )
                outcome.inhibited_state[held.severity] = wait_until(
                    lambda held=held: (
                        (status := am_status(stack, held)).get("state") == "suppressed" and status
                    ),
                    timeout=30,
                    what=f"{held.alert} ({held.severity}) held back by Alertmanager",
                )
        finally:
            stack.fault(step.system, step.fault, active=False)
        cleared = time.monotonic()
        outcome.resolved, _ = stack.wait_for_notification(
            path, expect.alert, status="resolved", timeout=RESOLVED_TIMEOUT, since=since, **labels
        )
        outcome.seconds_to_resolve = time.monotonic() - cleared
        outcome.elsewhere = [p for p in deliveries(stack, expect, since) if p != path]
        # Checked after the resolve, well past the held alerts' group_wait: they never went out.
        for held in step.inhibited:
            outcome.inhibited_delivered += deliveries(stack, held, since)
    except (AssertionError, TimeoutError, OSError, RuntimeError) as err:
        outcome.error = f"{type(err).__name__}: {err}"
    return outcome


def am_status(stack: Sandbox, expect: Expect) -> dict[str, Any]:
    """Alertmanager's status of the alert (state, inhibitedBy), or {} when it does not hold it."""
    for alert in stack.alertmanager_alerts():
        labels = alert["labels"]
        if (
            labels.get("alertname") == expect.alert
            and labels.get("severity") == expect.severity
            and all(labels.get(k) == v for k, v in expect.labels)
        ):
            return dict(alert["status"])
    return {}


def wait_stack_ready(stack: Sandbox) -> None:
    """Every target scraped, FPS arriving through OTLP, finished jobs counted, Alertmanager discovered."""
    wait_until(
        lambda: (up := stack.query("up")) and len(up) >= 14 and all(s["value"][1] == "1" for s in up),
        timeout=60,
        what="every scrape target up",
    )
    wait_until(
        lambda: stack.query("gamebook_client_fps"), timeout=60, what="browser FPS via OTLP and vmagent"
    )
    wait_until(
        lambda: stack.query("redline_jobs_duration_seconds_count > 10"), timeout=60, what="finished jobs"
    )
    stack.wait_sending_to_alertmanager()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("e2e")
    rules_dir = render_rules(FOR_OVERRIDE, tmp / "generated")
    am_config = alertmanager_config_with_timers(
        tmp / "alertmanager.yml", group_wait="5s", group_interval="5s"
    )
    with Sandbox(rules_dir=rules_dir, alertmanager_config=am_config, demo_args=DEMO_ARGS) as stack:
        wait_stack_ready(stack)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
            runs = {
                system: pool.submit(lambda steps=steps: [run_step(stack, step) for step in steps])
                for system, steps in SCENARIOS.items()
            }
            outcomes = {
                (step.system, step.fault): outcome
                for system, future in runs.items()
                for step, outcome in zip(SCENARIOS[system], future.result(), strict=True)
            }
        for (system, fault), outcome in outcomes.items():
            print(
                f"{system:<10} {fault:<16} page/ticket after {outcome.seconds_to_page:5.1f}s, "
                f"resolved after {outcome.seconds_to_resolve:5.1f}s {outcome.error or ''}"
            )
        status = stack.redline("status")
        yield E2E(generated_rules(rules_dir), outcomes, stack.up_output, status.returncode, status.stdout)


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"{s.system}-{s.fault}")
def test_fault_reaches_its_receiver_with_links_and_resolves(e2e: E2E, step: Step) -> None:
    rules, outcome = e2e.rules, e2e.outcomes[(step.system, step.fault)]
    assert outcome.error is None, outcome.error
    expect = step.expect
    receiver = RECEIVER_PATH[expect.severity].strip("/")
    assert outcome.fired["payload"]["receiver"] == receiver
    assert outcome.fired["payload"]["status"] == "firing"
    rule = rules[(expect.alert, expect.severity)]
    labels = outcome.alert["labels"]
    assert labels["alertname"] == expect.alert
    assert labels["severity"] == expect.severity
    assert labels["system"] == rule["labels"]["system"]
    for key, value in expect.labels:
        assert labels[key] == value
    annotations = outcome.alert["annotations"]
    for key in ("summary", "runbook_url", "dashboard_url"):
        assert annotations[key] == rule["annotations"][key]
    static_start = rule["annotations"]["description"].split("{{", 1)[0]
    assert annotations["description"].startswith(static_start) and "{{" not in annotations["description"]
    assert_links_resolve(annotations, outcome.links)
    assert outcome.resolved["payload"]["receiver"] == receiver
    assert outcome.elsewhere == [], f"{expect.alert} also delivered at {outcome.elsewhere}"


def test_critical_level_holds_back_the_warning_of_the_same_target(e2e: E2E) -> None:
    outcome = e2e.outcomes[("tmux", "memory-critical")]
    assert outcome.error is None, outcome.error
    status = outcome.inhibited_state["warning"]
    assert status["state"] == "suppressed", status
    assert len(status["inhibitedBy"]) == 1, status
    assert outcome.inhibited_delivered == []


def test_make_up_runs_every_service_with_its_url(e2e: E2E) -> None:
    for service in SERVICES:
        name = service.name
        if service.ha_only or service.scale_only:  # the HA members, the second replica and the store
            assert not re.search(rf"^{name}\s", e2e.up_table, re.MULTILINE), e2e.up_table
        elif name == "grafana":  # where a grafana binary is on PATH
            assert re.search(r"^grafana\s+(ready|skipped)\s", e2e.up_table, re.MULTILINE), e2e.up_table
        else:
            assert re.search(rf"^{name}\s+ready\s+\d+\s+\S+", e2e.up_table, re.MULTILINE), e2e.up_table
    ready = re.compile(r"^(\S+)\s+ready\s", re.MULTILINE)
    assert e2e.status_code == 0
    assert set(ready.findall(e2e.status_table)) == set(ready.findall(e2e.up_table))


def test_every_monitored_system_pages_and_tickets() -> None:
    severities = {system: {step.expect.severity for step in steps} for system, steps in SCENARIOS.items()}
    assert severities == {
        system: {"critical", "warning"} for system in ("gamebook", "qerrors", "pipeline", "tmux")
    }
