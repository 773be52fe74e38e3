"""The tmux-orchestrator monitor as a team writes it with redline's Python API
(docs/instrumenting/python.md's monitor.py, run as its own process), pushing OTLP only: no scrape, no `up`.

Its pushed series arrive with job, instance and system from the gateway's mapping; pool saturation fires and
resolves; stopping the process fires TmuxMonitorDown (the pushed health gauge ends after the 1m lookback)
at the pager, and starting it again resolves it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from redline.paths import ROOT
from redline.testing.processes import wait_until
from redline.testing.snippets import write_snippets

from .conftest import ClientStack, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

INSTANCE = "monitor-conformance"


@contextmanager
def monitor(stack: ClientStack, folder: Path, state: Path) -> Iterator[subprocess.Popen]:
    files = write_snippets(ROOT / "docs" / "instrumenting" / "python.md", folder)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": stack.otlp_url,
        "MONITOR_INSTANCE": INSTANCE,
        "MONITOR_PUSH_SECONDS": "1",
    }
    with open(folder / "monitor.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(files["monitor.py"]), str(state)], env=env, stdout=log, stderr=log
        )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def pushed(stack: ClientStack, selector: str) -> list[dict]:
    return stack.sandbox.query(selector)


def test_an_otlp_only_monitor_alerts_on_its_pool_and_when_it_stops(
    client_stack: ClientStack, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"busy": 5}))
    since = len(client_stack.sandbox.notifications())
    selector = f'redline_health_up{{instance="{INSTANCE}"}}'
    with monitor(client_stack, tmp_path, state) as proc:
        found = wait_until(lambda: pushed(client_stack, selector), timeout=30, what="pushed health")
        labels = found[0]["metric"]
        assert (labels["job"], labels["system"]) == ("tmux-monitor", "tmux")
        assert "service.name" not in labels
        assert not pushed(client_stack, f'up{{instance="{INSTANCE}"}}')  # nothing scrapes it
        state.write_text(json.dumps({"busy": 19}))  # 95% of 20: above the 90% threshold
        record, alert = wait_alert(
            client_stack, "TmuxMonitorPoolSaturated", "firing", since, instance=INSTANCE
        )
        assert record["path"] == "/ticket" and alert["labels"]["pool"] == "tmux"
        state.write_text(json.dumps({"busy": 5}))
        wait_alert(client_stack, "TmuxMonitorPoolSaturated", "resolved", since, instance=INSTANCE)
        assert proc.poll() is None
    record, alert = wait_alert(
        client_stack, "TmuxMonitorDown", "firing", since, timeout=120, instance=INSTANCE
    )
    assert record["path"] == "/pager" and alert["labels"]["severity"] == "critical"
    assert alert["labels"]["job"] == "tmux-monitor"
    with monitor(client_stack, tmp_path, state):
        wait_alert(client_stack, "TmuxMonitorDown", "resolved", since, timeout=60, instance=INSTANCE)
