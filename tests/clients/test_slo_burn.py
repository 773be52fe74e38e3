"""The alerts that read history, driven live by the same real clients: the SLO burn-rate alerts of GameBook
(errors, latency, availability), the pipeline (job success) and the tmux monitor (availability), and
qerrors' error rate against its baseline.

Their windows reach back hours to days (a burn is measured over 1h and 5m up to 3d and 6h; the baseline is
a week old), so they run on slo_stack, whose rules `redline generate --window-divisor 360` renders: every
such window and offset 360 times shorter (1h is 10 s, 6h one minute, 3d twelve minutes, a week 28
minutes), never below 5 s; thresholds, objectives and burn factors are the catalogue's. Each scenario
drives its client past the burn factor that pages (14.4x or 6x the error budget) and back, and the page
must reach the pager-sink's /pager and resolve there; for GameBook's errors a slower burn (a share of
errors between 1x and 6x the budget) must reach the ticket receiver without paging. The page of a burning
SLO holds back its own warning (Alertmanager's inhibition, equal alertname, slo and env), so a warning
notification is only asserted where no page fires. Each scenario's targets are in an env of their own
(SLOs are per env), and its page must carry it. Health that fails one check in four pages the
availability SLOs and never holds long enough for the *Down alert (3 s here), which would silence them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.paths import ROOT
from redline.testing.pg import PgCluster
from redline.testing.processes import free_port, wait_until
from redline.testing.snippets import write_snippets

from .conftest import ClientStack, job_exporter, node_modules, wait_alert
from .test_gamebook_node import control
from .test_gamebook_node import start as start_gamebook
from .test_pipeline_table import finish
from .test_qerrors_node import NodeService
from .test_qerrors_node import start as start_qerrors
from .test_tmux_python import Monitors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RECEIVER = {"critical": "/pager", "warning": "/ticket"}


@pytest.fixture(scope="module")
def node_snippets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    node_modules()
    return write_snippets(ROOT / "docs" / "instrumenting" / "node.md", tmp_path_factory.mktemp("node"))


@contextlib.contextmanager
def gamebook(stack: ClientStack, snippets: dict[str, Path], name: str) -> Iterator[str]:
    """A GameBook server (tests/clients/node/gamebook-app.js) scraped by the stack in job gamebook and
    probed at /health, in env `name` (each SLO is per env: one scenario's errors are not another's);
    yields its URL. Its target files removed, then stopped, when the block ends."""
    js = snippets["gamebook-metrics.js"]
    port, context = start_gamebook(js, js.parent / f"{name}.log")
    server = f"http://127.0.0.1:{port}"
    with context:
        try:
            stack.add_targets(name, "gamebook", [f"127.0.0.1:{port}"], {"system": "gamebook", "env": name})
            stack.add_probe(name, f"{server}/health", "gamebook", env=name)
            wait_until(
                lambda: (
                    stack.sandbox.query(f'probe_success{{instance="{server}/health"}} == 1')
                    and stack.sandbox.query(f'up{{instance="127.0.0.1:{port}"}} == 1')
                ),
                timeout=60,
                what="the server scraped and probed",
            )
            yield server
        finally:  # before the server stops: a stopped server's failing probe would page GamebookDown
            stack.remove_targets(name, "gamebook")
            stack.remove_targets(name, "probes")


def burn(
    stack: ClientStack, alert: str, slo: str, severity: str, status: str, since: int, **env: str
) -> dict:
    """The pager-sink's first `status` notification of the SLO's `severity` tier (in `env`, when given)
    since notification `since`, checked to arrive at the receiver that severity routes to; the alert."""
    record, found = wait_alert(stack, alert, status, since, timeout=120, slo=slo, severity=severity, **env)
    assert record["path"] == RECEIVER[severity], record
    assert (found["labels"]["system"], found["labels"]["slo"]) == (slo.split("-")[0], slo)
    return dict(found)


def notified(stack: ClientStack, alert: str, since: int, **labels: str) -> list:
    """Every firing notification of `alert` with `labels` since notification `since`."""
    return list(stack.sandbox.matching_alerts(alert, "firing", since, **labels))


def test_gamebook_errors_a_slow_burn_tickets_and_a_fast_one_pages(
    slo_stack: ClientStack, node_snippets: dict[str, Path]
) -> None:
    """0.4% of requests failing burns the 0.1% budget 4 times too fast: above the 3x and 1x warning tiers,
    below the 6x and 14.4x pages, so a ticket and no page; healthy again, it resolves. Then 5% failing
    (50x) pages, and healthy again resolves the page."""
    alert, slo = "GamebookErrorBudgetBurn", "gamebook-errors"
    with gamebook(slo_stack, node_snippets, "slo-errors") as server:
        since = len(slo_stack.sandbox.notifications())
        control(server, "/traffic?rate=500&seconds=0.01&errors=0.004")
        fired = burn(slo_stack, alert, slo, "warning", "firing", since, env="slo-errors")
        assert "Objective 99.9%" in fired["annotations"]["description"]
        control(server, "/traffic?rate=500&seconds=0.01&errors=0")
        burn(slo_stack, alert, slo, "warning", "resolved", since, env="slo-errors")
        assert notified(slo_stack, alert, since, severity="critical", env="slo-errors") == []

        since = len(slo_stack.sandbox.notifications())
        control(server, "/traffic?rate=500&seconds=0.01&errors=0.05")
        burn(slo_stack, alert, slo, "critical", "firing", since, env="slo-errors")
        control(server, "/traffic?rate=500&seconds=0.01&errors=0")
        burn(slo_stack, alert, slo, "critical", "resolved", since, env="slo-errors")


def test_gamebook_latency_most_requests_slower_than_100ms_page(
    slo_stack: ClientStack, node_snippets: dict[str, Path]
) -> None:
    """The latency SLO allows 5% of requests slower than 0.1 s: all of them at 200 ms burn it 20 times too
    fast and page; requests at 10 ms resolve it."""
    alert, slo = "GamebookLatencyBudgetBurn", "gamebook-latency"
    with gamebook(slo_stack, node_snippets, "slo-latency") as server:
        since = len(slo_stack.sandbox.notifications())
        control(server, "/traffic?rate=200&seconds=0.2")
        burn(slo_stack, alert, slo, "critical", "firing", since, env="slo-latency")
        control(server, "/traffic?rate=200&seconds=0.01")
        burn(slo_stack, alert, slo, "critical", "resolved", since, env="slo-latency")


def test_gamebook_health_failing_one_probe_in_four_pages_availability_not_down(
    slo_stack: ClientStack, node_snippets: dict[str, Path]
) -> None:
    """Every fourth /health answers 503: a 25% failed-probe ratio against the 0.1% budget pages the
    availability SLO, while no failure lasts the 3 s GamebookDown waits for; all probes passing resolves."""
    alert, slo = "GamebookAvailabilityBudgetBurn", "gamebook-availability"
    with gamebook(slo_stack, node_snippets, "slo-availability") as server:
        since = len(slo_stack.sandbox.notifications())
        control(server, "/flap?every=4")
        burn(slo_stack, alert, slo, "critical", "firing", since, env="slo-availability")
        control(server, "/flap?every=0")
        burn(slo_stack, alert, slo, "critical", "resolved", since, env="slo-availability")
        assert notified(slo_stack, "GamebookDown", since, env="slo-availability") == []


def test_pipeline_most_jobs_failing_page_job_success(
    table: tuple[PgCluster, dict[str, Path]], slo_stack: ClientStack
) -> None:
    """The documented 95.8% success leaves a 4.2% budget: 70% of the jobs failing (16x) pages; successes
    only resolve it."""
    pg, files = table
    alert, slo = "PipelineJobSuccessBudgetBurn", "pipeline-job-success"
    log = files["schema.sql"].parent / "slo-exporter.log"
    with job_exporter(pg, files, free_port(), log) as instance:
        slo_stack.add_targets(
            "slo-tasks", "pipeline-jobs", [instance], {"system": "pipeline", "env": "slo-pipeline"}
        )
        try:
            wait_until(
                lambda: slo_stack.sandbox.query(f'redline_jobs_up{{instance="{instance}"}} == 1'),
                what="scraped",
            )
            since = len(slo_stack.sandbox.notifications())
            deadline = time.monotonic() + 120
            while not notified(slo_stack, alert, since, severity="critical", env="slo-pipeline"):
                assert time.monotonic() < deadline, f"no {alert} page after 120 s of 70% failing jobs"
                finish(pg, 3, "done", 2)
                finish(pg, 7, "error", 2)
                time.sleep(0.5)
            burn(slo_stack, alert, slo, "critical", "firing", since, env="slo-pipeline")
            deadline = time.monotonic() + 120
            while not list(
                slo_stack.sandbox.matching_alerts(
                    alert, "resolved", since, severity="critical", env="slo-pipeline"
                )
            ):
                assert time.monotonic() < deadline, f"{alert} not resolved after 120 s of successes"
                finish(pg, 10, "done", 2)
                time.sleep(0.5)
            burn(slo_stack, alert, slo, "critical", "resolved", since, env="slo-pipeline")
        finally:
            slo_stack.remove_targets("slo-tasks", "pipeline-jobs")


def test_tmux_monitor_unhealthy_now_and_then_pages_availability_not_down(
    slo_stack: ClientStack, tmp_path: Path
) -> None:
    """The monitor reports itself unhealthy for 1 s every 4 s (its pushed redline_health_up is 0 in one
    push of four, or two): against the 99.95% objective that pages, while TmuxMonitorDown (0 for 3 s here)
    never fires; healthy throughout, it resolves."""
    alert, slo = "TmuxMonitorAvailabilityBudgetBurn", "tmux-availability"
    monitors = Monitors(slo_stack, tmp_path)
    monitor = monitors.start("slo-tmux", {})
    try:
        pushed = 'redline_health_up{instance="slo-tmux"} == 1'
        wait_until(lambda: slo_stack.sandbox.query(pushed), what="the monitor's pushes")
        since = len(slo_stack.sandbox.notifications())
        deadline = time.monotonic() + 120
        firing, ratio = 'ALERTS{system="tmux"}', f'slo:sli_error:ratio_rate10s{{slo="{slo}"}}'
        while not notified(slo_stack, alert, since, severity="critical"):
            assert time.monotonic() < deadline, (
                f"no {alert} page after 120 s of an unhealthy monitor; "
                f"{slo_stack.sandbox.query(firing)}, {slo_stack.sandbox.query(ratio)}"
            )
            monitor.set({"healthy": False})
            time.sleep(1)
            monitor.set({})
            time.sleep(3)
        burn(slo_stack, alert, slo, "critical", "firing", since)
        burn(slo_stack, alert, slo, "critical", "resolved", since)
        assert notified(slo_stack, "TmuxMonitorDown", since) == []
    finally:
        monitors.stop("slo-tmux")


def test_qerrors_errors_above_1_5x_their_baseline_fire_and_resolve(
    slo_stack: ClientStack, node_snippets: dict[str, Path], tmp_path: Path
) -> None:
    """A service failing 1% of its requests has that as its baseline (the day before the last hour, here
    the 4 minutes before the last 10 s); 4% failing is 4x the baseline and fires the warning at the ticket
    receiver; back to 1% it resolves."""
    alert = "QerrorsErrorRateAboveBaseline"
    port, context = start_qerrors(node_snippets["metrics.js"], tmp_path / "node.log")
    instance = f"127.0.0.1:{port}"
    with context as proc:
        service = NodeService(port, proc)
        service.post("/traffic?hits=400&errors=0.01")
        labels = {"system": "qerrors", "env": "production"}
        slo_stack.add_targets("slo-baseline", "qerrors", [instance], labels)
        try:
            baseline = "env:qerrors_errors:ratio_rate5m_vs_baseline"
            found = wait_until(lambda: slo_stack.sandbox.query(baseline), timeout=90, what="a baseline")
            assert 0.5 < float(found[0]["value"][1]) < 1.5, found  # 1% now against 1% then
            since = len(slo_stack.sandbox.notifications())
            service.post("/traffic?hits=400&errors=0.04")
            record, fired = wait_alert(slo_stack, alert, "firing", since, timeout=120, env="production")
            assert record["path"] == "/ticket" and fired["labels"]["severity"] == "warning"
            service.post("/traffic?hits=400&errors=0.01")
            wait_alert(slo_stack, alert, "resolved", since, timeout=120, env="production")
        finally:
            slo_stack.remove_targets("slo-baseline", "qerrors")
