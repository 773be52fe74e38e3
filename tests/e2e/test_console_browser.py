"""The on-call console in a real browser (issue 18): a fault pages, is silenced from the alert's page, the
pages stop at the pager-sink, the silence is expired, the fault cleared, and the episode is in the history.

Debian's headless Chromium (/usr/bin/chromium, driven by Playwright; no browser is downloaded) logs in with
the stack's credentials (user `redline`, the run folder's web password) to the console of a native stack
started by `redline up` on free ports with the services the console needs (Prometheus, Alertmanager, the
pager-sink and its ledger, the console, the demo). As in tests/e2e/test_pages.py the rules are rendered
with `for` overridden to 3 s and Alertmanager's timers are shortened, here the repeat interval too: a
firing page is sent again every REPEAT_INTERVAL (+ at most one GROUP_INTERVAL) instead of every 4 hours,
so that "the pages stop while it is silenced" is observed over a bounded window in which, unsilenced, at
least two repeats would have arrived.

The scenario, one fault (the demo's tmux monitor at ~820 MiB RSS: TmuxMonitorMemoryHigh, critical, pages;
its warning level is inhibited):
1. Now: the critical alert firing in the pager's group, before the inhibited warning in the ticket group.
2. The alert's page: summary and description of the generated rule, its signal as SVG with the target and
   both alert values as lines, the current value above the critical line and the firing interval shaded,
   its runbook section. A repeat page arrives (the window below would see one).
3. The silence form, prefilled with the alert's labels, creates a silence (author `redline`); Alertmanager
   holds the alert as suppressed by it, the console shows it silenced, and no firing notification of the
   alert reaches the pager-sink for SILENCED_WINDOW seconds (more than two repeat periods).
4. The system page shows the memory entry red. The silence is expired from the silences page: the page
   resumes within one repeat period.
5. The fault is cleared: "resolved" arrives; the history page shows the alert with its pages, one episode,
   acted on, and its duration (endsAt - startsAt of the resolved notification, as humanized).

Screenshots of every view (now, alert, alert-silenced, silences, system, silences-expired, history) are
written to test-artefacts/console/ at the repository root (git-ignored), kept after the run.
"""

from __future__ import annotations

import calendar
import os
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from redline import credentials
from redline.generate.humanize import humanize_duration
from redline.paths import ROOT
from redline.receivers.ledger import parse_time
from redline.testing.processes import http_get, wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = ROOT / "test-artefacts" / "console"
SERVICES = ["prometheus", "alertmanager", "pager-sink", "console", "demo"]
FOR_OVERRIDE = "3s"
GROUP_INTERVAL = 3.0
REPEAT_INTERVAL = 5.0
# Unsilenced, a firing page comes back every REPEAT_INTERVAL, at most GROUP_INTERVAL later (a flush tick).
REPEAT_PERIOD = REPEAT_INTERVAL + GROUP_INTERVAL
SILENCED_WINDOW = 2 * REPEAT_PERIOD + 2.0
ALERT = "TmuxMonitorMemoryHigh"
SUMMARY = "tmux-orchestrator monitor memory is high"


@dataclass
class Stack:
    sandbox: Sandbox
    page: Page


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run 'make setup' as root (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("console")
    rules = render_rules(FOR_OVERRIDE, tmp / "generated")
    am = alertmanager_config_with_timers(
        tmp / "alertmanager.yml",
        group_wait="1s",
        group_interval=f"{GROUP_INTERVAL:.0f}s",
        repeat_interval=f"{REPEAT_INTERVAL:.0f}s",
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob("*.png"):
        old.unlink()
    with Sandbox(rules_dir=rules, alertmanager_config=am, only=SERVICES) as sandbox:
        wait_until(
            lambda: sandbox.query('up{job="tmux-monitor"} == 1'), timeout=60, what="tmux monitor scraped"
        )
        sandbox.wait_sending_to_alertmanager()
        with sync_playwright() as playwright:
            browser: Browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            try:
                context: BrowserContext = browser.new_context(
                    base_url=sandbox.url("console"),
                    http_credentials={
                        "username": credentials.USER,
                        "password": sandbox.credentials.web_password,
                    },
                    viewport={"width": 1280, "height": 900},
                )
                page = context.new_page()
                page.set_default_timeout(15_000)
                yield Stack(sandbox, page)
            finally:
                browser.close()


def shoot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def pages_of(sandbox: Sandbox, since: int, status: str = "firing") -> list[tuple[dict, dict]]:
    """(notification, alert) of every critical ALERT notification at /pager after notification `since`."""
    return [
        (record, alert)
        for record, alert in sandbox.matching_alerts(ALERT, status, since, severity="critical")
        if record["path"] == "/pager"
    ]


def received(record: dict[str, Any]) -> float:
    at = parse_time(record["received_at"])
    assert at is not None
    return at


def wait_for_pages(sandbox: Sandbox, since: int, count: int, timeout: float) -> list[tuple[dict, dict]]:
    return wait_until(
        lambda: (found := pages_of(sandbox, since)) and len(found) >= count and found,
        timeout=timeout,
        interval=0.1,
        what=f"{count} firing {ALERT} page(s) at /pager",
    )


def goto_until(page: Page, path: str, predicate, what: str, timeout: float = 30.0) -> None:
    """Load `path`, reloading until predicate(page) holds (what the console shows follows upstream)."""

    def loaded() -> bool:
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path}: {response and response.status}"
        return bool(predicate(page))

    wait_until(loaded, timeout=timeout, interval=0.5, what=what)


def am_status(sandbox: Sandbox, labels: dict[str, str]) -> dict[str, Any]:
    for alert in sandbox.alertmanager_alerts():
        if alert["labels"] == labels:
            return dict(alert["status"])
    return {}


def test_fault_silence_expire_clear_and_history_in_a_browser(stack: Stack) -> None:
    sandbox, page = stack.sandbox, stack.page
    since = len(sandbox.notifications())
    fault_at = time.time()
    sandbox.fault("tmux", "memory-critical")
    try:
        first_record, first_alert = wait_for_pages(sandbox, since, 1, timeout=45)[0]
        labels: dict[str, str] = first_alert["labels"]
        assert (labels["alertname"], labels["severity"], labels["system"]) == (ALERT, "critical", "tmux")
        assert first_record["payload"]["receiver"] == "pager"
        seconds_to_page = received(first_record) - fault_at
        assert seconds_to_page < 20, f"first page {seconds_to_page:.1f}s after the fault"

        # ----- 1. Now: the critical alert in the pager's group, the inhibited warning after it --------
        def now_ready(p: Page) -> bool:
            warning = p.locator("tr.warning", has_text=ALERT)
            return p.locator("tr.critical", has_text=ALERT).count() == 1 and warning.count() == 1

        goto_until(page, "/", now_ready, f"{ALERT} critical and warning on the Now page")
        critical_row = page.locator("tr.critical", has_text=ALERT)
        assert critical_row.locator("td.state").inner_text() == "firing"
        assert SUMMARY in critical_row.inner_text()
        assert critical_row.locator("td").last.inner_text() == first_alert["startsAt"][:19].replace("T", " ")
        warning_row = page.locator("tr.warning", has_text=ALERT)
        assert warning_row.locator("td.state").inner_text() == "inhibited"
        receivers = [
            h.inner_text().rsplit("→", 1)[1].strip()
            for h in page.locator("section.group h2").all()
            if ALERT in h.inner_text()
        ]
        assert receivers == ["pager", "ticket"], receivers  # most severe first
        shoot(page, "now")

        # ----- 2. The alert's page: signal, reference lines, firing interval, runbook ---------------
        with page.expect_navigation():
            critical_row.locator("a").click()
        assert page.locator("h1").inner_text().split() == [ALERT, "critical", "·", "tmux"]
        assert (
            page.locator("p.state")
            .inner_text()
            .startswith(f"firing since {first_alert['startsAt'][:19].replace('T', ' ')} UTC")
        )
        assert page.locator("p.summary").inner_text() == SUMMARY
        description = page.locator("p.summary + p").inner_text()
        assert description.startswith("Resident memory of the monitor process is ")
        assert "critical when above 750MB" in description and "(target: at most 500MB)" in description
        check_chart(page)
        runbook = page.locator("section.runbook")
        assert "The monitor's resident memory is above its 500 MB target" in runbook.inner_text()
        assert "critical when resident memory of the monitor process is above 750MB" in runbook.inner_text()
        assert (
            runbook.locator("a", has_text="The whole runbook of tmux").get_attribute("href")
            == "/runbooks/tmux.md#tmuxmonitormemoryhigh"
        )
        matchers = page.locator("form.silence textarea[name=matchers]").input_value()
        assert sorted(matchers.split()) == sorted(f'{k}="{v}"' for k, v in labels.items())
        shoot(page, "alert")

        # Unsilenced, the page repeats: the window below is long enough to see one.
        first_two = wait_for_pages(sandbox, since, 2, timeout=REPEAT_PERIOD + 10)
        gap = received(first_two[1][0]) - received(first_two[0][0])
        assert REPEAT_INTERVAL - 0.5 <= gap <= REPEAT_PERIOD + 2.0, f"repeat after {gap:.1f}s"
        assert first_two[1][1]["startsAt"] == first_alert["startsAt"]

        # ----- 3. Silence it from the form ---------------------------------------------------------
        comment = f"e2e {fault_at:.0f}: memory leak under investigation"
        page.fill("form.silence input[name=hours]", "1")
        page.fill("form.silence input[name=comment]", comment)
        with page.expect_navigation():
            page.click("form.silence button[type=submit]")
        silenced_at = time.time()
        assert re.fullmatch(r".*/silences#[0-9a-f-]{36}", page.url), page.url
        silence_id = page.url.rsplit("#", 1)[1]
        row = page.locator(f"tr[id='{silence_id}']")
        cells = row.locator("td").all_inner_texts()
        assert cells[0] == "active"
        assert sorted(cells[1].split()) == sorted(f'{k}="{v}"' for k, v in labels.items())
        assert (cells[3], cells[4]) == (credentials.USER, comment)
        ends = calendar.timegm(time.strptime(cells[2], "%Y-%m-%d %H:%M:%S"))
        assert abs(ends - (silenced_at + 3600)) < 10, f"silence ends {cells[2]}"
        shoot(page, "silences")
        status = wait_until(
            lambda: (s := am_status(sandbox, labels)).get("state") == "suppressed" and s,
            timeout=10,
            what="Alertmanager holding the alert as silenced",
        )
        assert status["silencedBy"] == [silence_id]
        observed_from = len(sandbox.notifications())
        goto_until(
            page,
            "/alert?" + urllib.parse.urlencode(sorted(labels.items())),
            lambda p: p.locator("p.state").inner_text().startswith("silenced since"),
            "the alert shown silenced",
        )
        assert page.locator(f"p.state a[href='/silences#{silence_id}']").inner_text() == silence_id[:8]
        shoot(page, "alert-silenced")

        # ----- 4. The system page meanwhile; then no page for the window ------------------------------
        page.goto("/systems/tmux")
        memory = page.locator("tr#entry-memory")
        assert memory.locator("strong").inner_text() == ALERT
        assert "target 500MB, alert warning 500MB, critical 750MB" in memory.inner_text()
        value = memory.locator("div.value").first
        assert value.get_attribute("class") == "value red"
        shown = float(value.inner_text().split("MB")[0])
        assert 750 < shown < 1000, value.inner_text()
        shoot(page, "system")
        time.sleep(max(0.0, silenced_at + SILENCED_WINDOW - time.time()))
        during = pages_of(sandbox, observed_from)
        assert during == [], f"{len(during)} page(s) while silenced"
        assert sandbox.alert_firing(ALERT, severity="critical"), "the alert stopped firing in the window"
        watched = time.time() - silenced_at
        assert watched >= SILENCED_WINDOW

        # ----- expire the silence from the silences page: the page resumes ------------------------
        before_expiry = len(sandbox.notifications())
        page.goto("/silences")
        with page.expect_navigation():
            page.locator(f"tr[id='{silence_id}'] button", has_text="Expire").click()
        expired_at = time.time()
        assert page.url.endswith("/silences")
        assert page.locator(f"tr[id='{silence_id}'] td").first.inner_text() == "expired"
        assert page.locator(f"tr[id='{silence_id}'] button").count() == 0
        shoot(page, "silences-expired")
        resumed = wait_for_pages(sandbox, before_expiry, 1, timeout=REPEAT_PERIOD + 10)[0]
        assert received(resumed[0]) - expired_at <= REPEAT_PERIOD + 2.0
        assert resumed[1]["startsAt"] == first_alert["startsAt"]  # the same episode
    finally:
        sandbox.fault("tmux", "memory-critical", active=False)
    cleared_at = time.time()

    # ----- 5. Resolved, and in the history with its duration ---------------------------------------
    resolved_record, resolved_alert = sandbox.wait_for_notification(
        "/pager", ALERT, status="resolved", timeout=45, since=since, severity="critical"
    )
    assert received(resolved_record) - cleared_at < 20
    starts, ends = parse_time(resolved_alert["startsAt"]), parse_time(resolved_alert["endsAt"])
    assert starts is not None and ends is not None
    duration = ends - starts
    # it fired from about the first page until about the clear
    assert received(first_record) - 5 <= starts <= received(first_record)
    assert cleared_at - 2 <= ends <= cleared_at + 10
    firing_pages = len(pages_of(sandbox, since))
    assert firing_pages >= 3  # the first, a repeat, the one after the silence expired

    def history_ready(p: Page) -> bool:
        return p.locator("table.episodes tr.resolved", has_text=ALERT).count() == 1

    goto_until(page, "/history?days=1", history_ready, f"{ALERT}'s episode resolved in the history")
    figures = page.locator("table.figures tr", has_text=ALERT).locator("td").all_inner_texts()
    assert figures[:8] == [ALERT, "tmux", str(firing_pages), "0", "1", "1", f"{duration:.0f}s", "0"], figures
    assert figures[8].strip().endswith(f": {firing_pages}")
    episode = page.locator("table.episodes tr.resolved", has_text=ALERT).locator("td").all_inner_texts()
    assert 'severity="critical"' in episode[1]
    assert episode[2] == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(starts))
    assert episode[3] == humanize_duration(duration)
    assert episode[4] == f"pager ×{firing_pages}"
    assert episode[5] == "yes"  # silenced from the console: acted on
    shoot(page, "history")
    for name in ("now", "alert", "alert-silenced", "silences", "system", "silences-expired", "history"):
        assert (ARTEFACTS / f"{name}.png").stat().st_size > 10_000, name


def check_chart(page: Page) -> None:
    """The alert's SVG: one series, the target and both alert values, the value above the critical
    line, and a shaded firing interval at the right edge."""
    svg = page.locator("figure svg.chart")
    assert svg.count() == 1
    labels = svg.locator("line title").all_text_contents()
    assert sorted(labels) == ["critical 750MB", "target 500MB", "warning 500MB"], labels
    lines = {
        title: float(line.get_attribute("y1") or "nan")
        for line in svg.locator("line").all()
        if (title := line.locator("title").text_content())
    }
    polylines = svg.locator("polyline").all()
    assert len(polylines) == 1, "one series: the alert's instance"
    points = [tuple(map(float, p.split(","))) for p in (polylines[0].get_attribute("points") or "").split()]
    assert len(points) >= 2
    assert points[-1][1] < lines["critical 750MB"] < lines["target 500MB"]  # SVG y grows downwards
    firing = svg.locator("rect.firing")
    assert firing.count() >= 1
    last = firing.last
    right = float(last.get_attribute("x") or 0) + float(last.get_attribute("width") or 0)
    assert right >= points[-1][0] - 1, "the firing interval reaches the latest sample"


def test_a_hung_alertmanager_holds_up_only_the_pages_that_ask_it(stack: Stack) -> None:
    """Alertmanager stopped mid-flight (SIGSTOP: it accepts connections and never answers): the Now page
    waits for it, and meanwhile the console still answers other requests (they run in its thread pool)."""
    sandbox = stack.sandbox
    headers = sandbox.auth
    pid = sandbox.send_signal("alertmanager", signal.SIGSTOP)
    slow: dict[str, Any] = {}

    def now_page() -> None:
        slow["status"], slow["body"] = http_get(f"{sandbox.url('console')}/", timeout=30, headers=headers)

    waiting = threading.Thread(target=now_page)
    try:
        waiting.start()
        time.sleep(0.5)  # the Now page's request is on its way to the stopped Alertmanager
        for path in ("/-/healthy", "/systems/tmux", "/runbooks/tmux.md"):
            status, _ = http_get(f"{sandbox.url('console')}{path}", timeout=30, headers=headers)
            assert status == 200, path
            assert waiting.is_alive(), f"{path} was answered only after the Now page gave up"
        waiting.join(timeout=60)  # the Now page gives up on the stopped Alertmanager and says so
    finally:
        os.kill(pid, signal.SIGCONT)
    assert slow["status"] == 200 and "no Alertmanager answered" in slow["body"]
