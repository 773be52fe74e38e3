"""The tmux-orchestrator monitor as a team writes it with redline's Python API
(docs/instrumenting/python.md's monitor.py, run as its own processes), pushing OTLP only: no scrape, no `up`.

One monitor instance per threshold, all started at once in their breaching state (so the alerts fire in
parallel): cycle time, error rate, cache hit rate and pool saturation each fire at the pager-sink and
resolve when the workload recovers. Their pushed series carry job, instance and system from the gateway's
mapping. Process CPU (a spinning loop) and memory (800 MB held: the critical level) come from
prometheus_client's process collector, pushed too. Then, alone, stopping a monitor fires TmuxMonitorDown
at the pager (its pushed health gauge ends after the 1m lookback) and starting it again resolves it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redline import atomic
from redline.paths import ROOT
from redline.testing.processes import wait_until
from redline.testing.snippets import write_snippets

from .conftest import ClientStack, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# instance -> (alert, severity, breaching workload, healthy workload)
SCENARIOS = {
    "tmux-cycle": ("TmuxMonitorCycleSlow", "warning", {"cycle_seconds": 1.5}, {}),
    "tmux-errors": ("TmuxMonitorErrorRateHigh", "warning", {"failing_agents": 5}, {}),
    "tmux-cache": ("TmuxMonitorCacheHitRateLow", "warning", {"uncached_agents": 30}, {}),
    "tmux-pool": ("TmuxMonitorPoolSaturated", "warning", {"busy": 19}, {"busy": 5}),
    # ~90% of a core asked for: above 40% even when make test's workers share the two cores
    "tmux-cpu": ("TmuxMonitorCpuHigh", "warning", {"spin_seconds": 5}, {}),
    "tmux-memory": ("TmuxMonitorMemoryHigh", "critical", {"hold_mb": 800}, {}),  # 750 MB: critical
}
RECEIVER = {"warning": "/ticket", "critical": "/pager"}


@dataclass
class Monitor:
    """One monitor.py process and the workload file it reads."""

    instance: str
    state: Path
    proc: subprocess.Popen | None = None

    def set(self, workload: dict) -> None:
        atomic.write_text(self.state, json.dumps(workload))  # the loop never reads half a file


class Monitors:
    def __init__(self, stack: ClientStack, folder: Path) -> None:
        self.stack, self.folder = stack, folder
        self.script = write_snippets(ROOT / "docs" / "instrumenting" / "python.md", folder)["monitor.py"]
        self.running: dict[str, Monitor] = {}

    def start(self, instance: str, workload: dict) -> Monitor:
        monitor = self.running.get(instance) or Monitor(instance, self.folder / f"{instance}.json")
        monitor.set(workload)
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": self.stack.otlp_url,
            **self.stack.otlp_headers_env,
            "MONITOR_INSTANCE": instance,
            "MONITOR_PUSH_SECONDS": "1",
        }
        with open(self.folder / f"{instance}.log", "ab") as log:
            monitor.proc = subprocess.Popen(
                [sys.executable, str(self.script), str(monitor.state)], env=env, stdout=log, stderr=log
            )
        self.running[instance] = monitor
        return monitor

    def stop(self, instance: str) -> None:
        proc = self.running[instance].proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@dataclass
class Outcome:
    """What one scenario saw at the pager-sink: the firing and the resolved notification, or an error."""

    fired: tuple[dict, dict] | None = None
    resolved: tuple[dict, dict] | None = None
    error: str | None = None


def breach_and_recover(stack: ClientStack, monitors: Monitors, instance: str, since: int) -> Outcome:
    """Wait for the alert of a monitor started in its breaching state, then heal its workload."""
    alert_name, severity, _breaching, healthy = SCENARIOS[instance]
    outcome = Outcome()
    try:
        outcome.fired = wait_alert(
            stack, alert_name, "firing", since, timeout=150, instance=instance, severity=severity
        )
        monitors.running[instance].set(healthy)
        outcome.resolved = wait_alert(
            stack, alert_name, "resolved", since, timeout=150, instance=instance, severity=severity
        )
    except AssertionError as err:
        outcome.error = str(err)
    return outcome


def stop_and_restart(stack: ClientStack, monitors: Monitors, since: int) -> Outcome:
    """Stop the healthy 'tmux-down' monitor once its pushes arrive, then start it again after the page."""
    outcome = Outcome()
    try:
        wait_until(lambda: stack.sandbox.query('redline_health_up{instance="tmux-down"}'), what="push")
        monitors.stop("tmux-down")
        outcome.fired = wait_alert(
            stack, "TmuxMonitorDown", "firing", since, timeout=120, instance="tmux-down"
        )
        monitors.start("tmux-down", {})
        outcome.resolved = wait_alert(
            stack, "TmuxMonitorDown", "resolved", since, timeout=60, instance="tmux-down"
        )
    except AssertionError as err:
        outcome.error = str(err)
    return outcome


@pytest.fixture(scope="module")
def outcomes(
    client_stack: ClientStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """The threshold scenarios at once, each in its own thread and monitor process; then the stopped
    monitor, alone: a critical *Down alert holds back every other alert of its system (Alertmanager's
    inhibition, equal system and env), so it must not overlap them."""
    monitors = Monitors(client_stack, tmp_path_factory.mktemp("monitors"))
    since = len(client_stack.sandbox.notifications())
    for instance, (_alert, _severity, breaching, _healthy) in SCENARIOS.items():
        monitors.start(instance, breaching)
    monitors.start("tmux-down", {})
    try:
        labels = wait_until(
            lambda: client_stack.sandbox.query('redline_health_up{instance="tmux-down"}'),
            timeout=30,
            what="push",
        )[0]["metric"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(SCENARIOS) + 1) as pool:
            futures = {
                instance: pool.submit(breach_and_recover, client_stack, monitors, instance, since)
                for instance in SCENARIOS
            }
            results = {instance: future.result() for instance, future in futures.items()}
        for instance in SCENARIOS:
            monitors.stop(instance)
        results["tmux-down"] = stop_and_restart(
            client_stack, monitors, len(client_stack.sandbox.notifications())
        )
        scraped = client_stack.sandbox.query('up{instance="tmux-down"}')
        yield {**results, "_labels": labels, "_scraped": scraped}  # type: ignore[dict-item]
    finally:
        for instance in monitors.running:
            monitors.stop(instance)


def test_pushed_series_carry_job_instance_and_system(outcomes: dict) -> None:
    labels = outcomes["_labels"]
    assert (labels["job"], labels["instance"], labels["system"]) == ("tmux-monitor", "tmux-down", "tmux")
    assert "service.name" not in labels
    assert outcomes["_scraped"] == []  # nothing scrapes it: no `up`


@pytest.mark.parametrize("instance", list(SCENARIOS))
def test_each_threshold_fires_and_resolves(outcomes: dict, instance: str) -> None:
    outcome = outcomes[instance]
    assert outcome.error is None, outcome.error
    alert_name, severity, _breaching, _healthy = SCENARIOS[instance]
    record, alert = outcome.fired
    assert alert["labels"]["alertname"] == alert_name and alert["labels"]["severity"] == severity
    assert record["path"] == RECEIVER[severity]
    assert (alert["labels"]["job"], alert["labels"]["system"]) == ("tmux-monitor", "tmux")
    assert outcome.resolved[0]["path"] == RECEIVER[severity]


def test_a_monitor_that_stops_pushing_pages_down_and_resolves(outcomes: dict) -> None:
    outcome = outcomes["tmux-down"]
    assert outcome.error is None, outcome.error
    record, alert = outcome.fired
    assert record["path"] == "/pager" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == "tmux-monitor"
    assert outcome.resolved[0]["path"] == "/pager"
