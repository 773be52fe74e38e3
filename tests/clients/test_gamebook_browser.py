"""GameBook FPS from a real browser: docs/instrumenting/browser.md's code, bundled with the pinned
OpenTelemetry JS SDK and exporter (OTLP/HTTP protobuf), in Debian's headless Chromium driven by Playwright,
posting to /v1/metrics on the page's own origin, which forwards to the native gateway (vmagent) of the
suite's stack: the guide's production path. No console error is allowed (a failed export logs one).

A page at 50 FPS fires GamebookClientFpsLow at the pager-sink's ticket receiver with page and system
labels; a page at 58 FPS stays silent. Closing the 50 FPS page ends its series within about a minute
(Prometheus' 1m lookback for pushed series) and the alert resolves. A page that measures its own frames
pushes a plausible FPS. OTLP/JSON, the other exporter's encoding, is refused by vmagent.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from redline.paths import ROOT
from redline.testing.processes import wait_until

from .browser import bundle, serve_site
from .conftest import ClientStack, chromium, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GUIDE = ROOT / "docs" / "instrumenting" / "browser.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, client_stack: ClientStack) -> Iterator[str]:
    folder = bundle(GUIDE, "main.js", tmp_path_factory.mktemp("site"))
    with serve_site(folder, client_stack.otlp_url, client_stack.otlp_headers) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, site: str, stack: ClientStack, page: str, fps: float | None):
    """A page of the site pushing every second (to its origin's /v1/metrics, the guide's default URL);
    fps None: it measures its own frames."""
    measure = "on" if fps is None else "off"
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.goto(f"{site}/index.html?page={page}&interval=1000&measure={measure}")
    tab.wait_for_function("window.fpsMetrics !== undefined")
    if fps is not None:
        tab.evaluate(f"window.fpsMetrics.setFps({fps})")
    return tab, errors


def fps_value(stack: ClientStack, page: str) -> float | None:
    found = stack.sandbox.query(f'gamebook_client_fps{{page="{page}"}}')
    return float(found[0]["value"][1]) if found else None


def test_fps_50_fires_58_stays_silent_and_a_closed_page_resolves(
    client_stack: ClientStack, browser: Browser, site: str
) -> None:
    since = len(client_stack.sandbox.notifications())
    low, low_errors = open_page(browser, site, client_stack, "fps50", 50)
    fine, fine_errors = open_page(browser, site, client_stack, "fps58", 58)
    wait_until(lambda: fps_value(client_stack, "fps58") == 58, timeout=30, what="58 FPS via vmagent")
    series = client_stack.sandbox.query('gamebook_client_fps{page="fps50"}')[0]["metric"]
    assert (series["job"], series["system"]) == ("gamebook-browser", "gamebook")
    record, alert = wait_alert(client_stack, "GamebookClientFpsLow", "firing", since, page="fps50")
    assert record["path"] == "/ticket" and record["payload"]["receiver"] == "ticket"
    assert alert["labels"]["system"] == "gamebook" and alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["description"].startswith(
        "Mean frames per second reported by browsers, per page is 50 fps"
    )
    assert not client_stack.sandbox.alert_firing("GamebookClientFpsLow", page="fps58")
    low.close()
    closed = time.monotonic()
    wait_until(
        lambda: fps_value(client_stack, "fps50") is None, timeout=90, what="FPS of the closed page gone"
    )
    gone_after = time.monotonic() - closed
    assert gone_after < 75, f"a closed page's FPS stayed {gone_after:.0f}s"
    wait_alert(client_stack, "GamebookClientFpsLow", "resolved", since, page="fps50")
    assert not list(
        client_stack.sandbox.matching_alerts("GamebookClientFpsLow", "firing", since, page="fps58")
    )
    fine.close()
    assert low_errors == [] and fine_errors == []


def test_a_page_measuring_its_frames_pushes_a_plausible_fps(
    client_stack: ClientStack, browser: Browser, site: str
) -> None:
    tab, errors = open_page(browser, site, client_stack, "measured", None)
    try:
        value = wait_until(lambda: fps_value(client_stack, "measured"), timeout=30, what="measured FPS")
        assert 1 <= value <= 1000
    finally:
        tab.close()
    assert errors == []


def test_a_cross_origin_post_to_vmagent_is_blocked_by_the_browser(
    client_stack: ClientStack, browser: Browser, site: str
) -> None:
    """Why the guide forwards /v1/metrics on the page's origin: vmagent answers the CORS preflight but
    not the POST's own response, so Chromium reports every direct export as failed."""
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.goto(f"{site}/index.html?page=cors&interval=500&measure=off&otlp={client_stack.otlp_url}")
    tab.evaluate("window.fpsMetrics.setFps(60)")
    try:
        # Playwright delivers console events while one of its calls runs: wait inside the page
        for _ in range(80):
            tab.wait_for_timeout(250)
            if any("blocked by CORS policy" in e for e in errors):
                break
    finally:
        tab.close()
    assert any("has been blocked by CORS policy" in e and "Access-Control-Allow-Origin" in e for e in errors)


def test_vmagent_refuses_otlp_json(client_stack: ClientStack) -> None:
    """Why the guide names the protobuf exporter: OTLP/JSON gets 400 from the native gateway."""
    request = urllib.request.Request(
        client_stack.otlp_url,
        data=json.dumps({"resourceMetrics": []}).encode(),
        headers={**client_stack.otlp_headers, "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    assert "json encoding isn't supported" in refused.value.read().decode()


def test_the_guide_bundle_is_built_from_the_pinned_packages(site: str) -> None:
    lock = json.loads((ROOT / "tests/clients/node/package-lock.json").read_text())
    for name in ("@opentelemetry/sdk-metrics", "@opentelemetry/exporter-metrics-otlp-proto", "esbuild"):
        assert lock["packages"][f"node_modules/{name}"]["version"], name
    with urllib.request.urlopen(f"{site}/bundle.js", timeout=5) as resp:
        text = resp.read().decode()
    assert "gamebook_client_fps" in text and "application/x-protobuf" in text
    assert Path(GUIDE).read_text().count("```js file=") == 2
