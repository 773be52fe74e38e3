"""The console's parts that need no upstream: charts, runbooks, CSRF, authentication, where links land,
and the history page over a real SQLite ledger. Pages that ask Prometheus or Alertmanager are tested
against the real ones (tests/e2e/test_console_browser.py, bench/console.py)."""

from __future__ import annotations

import base64
import dataclasses
import re
import time
from pathlib import Path

import bcrypt
import pytest
from starlette.testclient import TestClient

from redline.console.app import build_app
from redline.console.charts import Line, Series, intervals, signal_chart, visible_span
from redline.console.runbooks import RUNBOOKS, Runbooks, render
from redline.console.security import Authenticator, Csrf
from redline.console.upstream import Alertmanagers, Prometheus
from redline.console.views import Console
from redline.generate.conventions import LONG_TERM_BUDGET, SLO_BUDGET, panel_id
from redline.generate.load import load_catalogue
from redline.paths import ROOT
from redline.receivers.ledger import Ledger
from redline.stack import rundir
from redline.stack.services import Context
from redline.testing.notifications import notification

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: pages under test must not need it


def test_chart_draws_series_reference_lines_and_firing_intervals() -> None:
    series = [Series('{instance="a"}', [(1000.0 + 60 * i, 0.5 + 0.1 * i) for i in range(10)])]
    lines = [Line(0.5, "target 500ms", "#2ca02c"), Line(1.0, "warning 1s", "#ff7f0e")]
    svg = signal_chart(series, 1000.0, 1540.0, "seconds", lines, firing=[(1300.0, 1540.0)])
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    polyline = re.search(r'points="([^"]+)"', svg)
    assert polyline is not None and len(polyline.group(1).split()) == 10
    assert ">target 500ms</text>" in svg and ">warning 1s</text>" in svg
    firing = re.findall(r'<rect class="firing" x="([\d.]+)" y="\d+" width="([\d.]+)"', svg)
    assert len(firing) == 1
    x, width = map(float, firing[0])
    assert x == pytest.approx(64 + (1300 - 1000) / 540 * 684, abs=0.2) and x + width == pytest.approx(
        748, abs=0.2
    )
    assert "no data" in signal_chart([], 0, 60, "ratio")
    same = signal_chart(
        series, 1000.0, 1540.0, "seconds", [Line(0.5, "target 500ms", "g"), Line(0.5, "warning", "o")]
    )
    assert re.findall(r'<text x="(\d+)" y="[\d.]+" font-size="10" fill="\w"', same) == [
        "68",
        "144",
    ]  # side by side


def test_intervals_and_the_visible_span() -> None:
    points = [(t, 1.0) for t in (0, 15, 30, 90, 105)]
    assert intervals(points, 15) == [(0, 45), (90, 120)]
    young = [Series("s", [(9000.0, 1.0), (9600.0, 2.0)])]
    assert visible_span(young, 0.0, 10000.0) == 9000.0
    assert visible_span(young, 0.0, 9200.0) == 8300.0  # at least 15 minutes
    assert visible_span([], 0.0, 10000.0) == 0.0


class YoungPrometheus(Prometheus):
    """A Prometheus whose series began `age` seconds before `now`: query_range answers the samples of
    the steps since then (the alert's memory series and its ALERTS series), and records what was asked."""

    def __init__(self, now: float, age: float) -> None:
        super().__init__(UNREACHABLE)
        self.now, self.age = now, age
        self.asked: list[tuple[str, float, float, float]] = []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        self.asked.append((expr, start, end, step))
        steps = [start + i * step for i in range(int((end - start) / step) + 1)]
        values = [[t, "820000000"] for t in steps if t >= self.now - self.age]
        metric = {"job": "tmux-monitor", "instance": "127.0.0.1:9", "system": "tmux"}
        return [{"metric": metric, "values": values}] if values else []

    def external_labels(self) -> dict[str, str]:
        return {"stack": "redline"}


@pytest.mark.parametrize(("age", "shown"), [(20.0, 900.0), (7200.0, 7200.0), (5 * 3600.0, 3 * 3600.0)])
def test_a_young_series_is_asked_again_at_the_step_of_the_span_shown(age: float, shown: float) -> None:
    """At the 3-hour window's step (45 s) a series 20 s old is one sample: no line. It is asked again
    over the span the chart shows (at least 15 minutes), about 240 points over it."""
    now = 1_800_000_000.0
    prometheus = YoungPrometheus(now, age)
    console = Console(load_catalogue(), prometheus, Alertmanagers([UNREACHABLE]), "sqlite:///unused")
    labels = {"alertname": "TmuxMonitorMemoryHigh", "severity": "critical", "system": "tmux"}
    labels |= {"job": "tmux-monitor", "instance": "127.0.0.1:9", "stack": "redline"}  # stack: external
    svg = console.chart(labels, now=now)
    assert svg is not None
    signal = [(start, end, step) for expr, start, end, step in prometheus.asked if "resident" in expr]
    alerts = [(start, end, step) for expr, start, end, step in prometheus.asked if expr.startswith("ALERTS")]
    # the alert's labels but the external one: Prometheus' own ALERTS series does not carry it
    assert prometheus.asked[-1][0] == (
        'ALERTS{alertname="TmuxMonitorMemoryHigh",instance="127.0.0.1:9",job="tmux-monitor",'
        'severity="critical",system="tmux",alertstate="firing"}'
    )
    assert signal[0] == (now - 3 * 3600, now, 45.0)
    assert signal[-1] == (now - shown, now, shown / 240) and len(signal) == (1 if shown == 3 * 3600 else 2)
    assert alerts == [signal[-1]]  # the firing intervals at the same span and step
    polyline = re.search(r'<polyline[^>]* points="([^"]+)"', svg)
    assert polyline is not None and len(polyline.group(1).split()) >= min(age, shown) / (shown / 240)
    assert re.search(r'<circle class="latest" cx="748.0" cy="[\d.]+"', svg)


class AnsweringNothing(Prometheus):
    """A Prometheus that must not be asked for ranges (the history is elsewhere); its external labels."""

    def __init__(self) -> None:
        super().__init__(UNREACHABLE)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        raise AssertionError(f"range query {expr!r} sent to the replica, not to the history")

    def external_labels(self) -> dict[str, str]:
        return {"stack": "redline"}


def test_charts_read_the_history_and_the_replica_only_for_its_external_labels() -> None:
    """With --scale the console asks VictoriaMetrics (--history) for the signal and firing intervals,
    the replica for what is happening now."""
    now = 1_800_000_000.0
    history = YoungPrometheus(now, 7200.0)
    nowhere = Alertmanagers([UNREACHABLE])
    console = Console(load_catalogue(), AnsweringNothing(), nowhere, "sqlite:///unused", history=history)
    labels = {"alertname": "TmuxMonitorMemoryHigh", "severity": "critical", "system": "tmux"}
    labels |= {"job": "tmux-monitor", "instance": "127.0.0.1:9", "stack": "redline"}
    assert console.chart(labels, now=now) is not None
    assert [expr.split("{")[0] for expr, *_ in history.asked][-1] == "ALERTS"
    assert 'stack="redline"' not in history.asked[-1][0]  # the replica's external label left out
    assert any("resident" in expr for expr, *_ in history.asked)


def test_the_default_history_is_the_stacks_store_with_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDLINE_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("REDLINE_PORT_VICTORIA_METRICS", raising=False)
    assert rundir.history_url(otherwise="http://p:9090") == "http://p:9090"  # no stack: --prometheus
    rundir.save_context(Context(run_dir=tmp_path, ha=True, scale=True), [])
    assert rundir.history_url(otherwise="http://p:9090") == "http://127.0.0.1:8428"
    rundir.save_context(Context(run_dir=tmp_path), [])
    assert rundir.history_url(otherwise="http://p:9090") == "http://p:9090"


def test_runbooks_render_with_an_anchor_per_alert_and_escape_html() -> None:
    runbooks = Runbooks(ROOT / RUNBOOKS)
    assert {"gamebook", "qerrors", "pipeline", "tmux", "host", "redline"} <= set(runbooks.systems())
    page = runbooks.page("tmux")
    assert page is not None and '<h2 id="tmuxmonitorcycleslow">TmuxMonitorCycleSlow</h2>' in page
    section = runbooks.section("tmux", "TmuxMonitorCycleSlow")
    assert (
        section is not None
        and "<strong>First steps</strong>" in section
        and "TmuxMonitorCpuHigh" not in section
    )
    assert runbooks.section("tmux", "NoSuchAlert") is None and runbooks.page("nope") is None
    unsafe = render("<script>alert(1)</script> and [a link](javascript:alert(1))")
    assert "<script>" not in unsafe and "&lt;script&gt;" in unsafe and 'href="javascript' not in unsafe


def test_csrf_tokens_are_per_user_and_need_the_own_origin() -> None:
    csrf = Csrf(b"k" * 32)
    token = csrf.token("alice")
    own = "http://127.0.0.1:9400"
    assert csrf.valid("alice", token, None, own) and csrf.valid("alice", token, own, own)
    assert not csrf.valid("bob", token, own, own)
    assert not csrf.valid("alice", token, "http://evil.example", own)
    assert not csrf.valid("alice", None, own, own) and not csrf.valid("alice", "0" * 64, own, own)


@pytest.fixture(scope="module")
def console_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Console, str]:
    ledger_url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
    now = time.time()
    ledger = Ledger(ledger_url)
    ledger.record("pager", notification("pager", "TmuxMonitorDown", "firing", now - 900), now - 898)
    ledger.record(
        "pager", notification("pager", "TmuxMonitorDown", "resolved", now - 900, now - 300), now - 298
    )
    ledger.close()
    console = Console(load_catalogue(), Prometheus(UNREACHABLE), Alertmanagers([UNREACHABLE]), ledger_url)
    return console, ledger_url


def _client(console: Console, web_config: str | None = None) -> TestClient:
    app = build_app(console, Runbooks(ROOT / RUNBOOKS), Authenticator(web_config), Csrf(b"s" * 32))
    return TestClient(app, base_url="http://127.0.0.1:9400")


def test_links_land_on_the_runbook_anchor_and_the_system_entry(console_parts: tuple[Console, str]) -> None:
    client = _client(console_parts[0])
    page = client.get("/runbooks/pipeline.md")
    assert page.status_code == 200 and 'id="pipelinejobsslow"' in page.text
    entry = panel_id("tmux", "cycle-time")
    landed = client.get(f"/d/redline-tmux?viewPanel={entry}", follow_redirects=False)
    assert landed.status_code == 302 and landed.headers["location"] == "/systems/tmux#entry-cycle-time"
    assert client.get("/d/redline-overview", follow_redirects=False).headers["location"] == "/"
    assert client.get("/runbooks/nope.md").status_code == 404


def test_history_shows_the_ledger(console_parts: tuple[Console, str]) -> None:
    page = _client(console_parts[0]).get("/history?days=1")
    assert page.status_code == 200
    row = re.search(
        r"<td>TmuxMonitorDown</td><td>tmux</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", page.text
    )
    assert row is not None and row.groups() == ("1", "0", "1")
    assert '<td class="duration">10m 0s</td>' in page.text


def test_posts_need_the_form_token(console_parts: tuple[Console, str]) -> None:
    client = _client(console_parts[0])
    refused = client.post("/ack", data={"fingerprint": "fp-x", "csrf": "forged"})
    assert refused.status_code == 400 and "stale or did not come from the console" in refused.text
    token = Csrf(b"s" * 32).token("anonymous")
    foreign = client.post(
        "/ack", data={"fingerprint": "fp-x", "csrf": token}, headers={"Origin": "http://evil"}
    )
    assert foreign.status_code == 400
    acked = client.post(
        "/ack", data={"fingerprint": "fp-x", "csrf": token, "back": "a=b"}, follow_redirects=False
    )
    assert acked.status_code == 303 and acked.headers["location"] == "/alert?a=b"
    bad = client.post(
        "/silences", data={"csrf": token, "matchers": "not a matcher", "hours": "2", "comment": "c"}
    )
    assert bad.status_code == 400 and "not a matcher like name=" in bad.text


def test_every_page_needs_credentials_when_the_stack_has_them(
    console_parts: tuple[Console, str], tmp_path: Path
) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  oncall: '{hashed}'\n")
    client = _client(console_parts[0], str(web))
    assert client.get("/history").status_code == 401
    assert client.get("/history").headers["www-authenticate"] == 'Basic realm="redline console"'
    assert client.get("/-/healthy").status_code == 200
    good = {"Authorization": "Basic " + base64.b64encode(b"oncall:s3cret").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"oncall:guess").decode()}
    assert client.get("/history", headers=wrong).status_code == 401
    page = client.get("/history", headers=good)
    assert page.status_code == 200 and '<span class="user">oncall</span>' in page.text


class StoreOfBudgets(Prometheus):
    """The long-term store as it answers conventions.budget_left for GameBook's errors SLO: vmalert's
    record for production, the replicas' own for staging (no long-term record there yet), both with the
    replicas' external label `stack`. Records every instant query."""

    def __init__(self) -> None:
        super().__init__(UNREACHABLE)
        self.asked: list[str] = []

    def query(self, expr: str) -> list[dict]:
        self.asked.append(expr)
        if "gamebook-errors" not in expr:
            return []
        labels = {"slo": "gamebook-errors", "system": "gamebook", "stack": "redline"}
        return [
            {"metric": {"__name__": LONG_TERM_BUDGET, "env": "production", **labels}, "value": [0, "0.25"]},
            {"metric": {"__name__": SLO_BUDGET, "env": "staging", **labels}, "value": [0, "-0.5"]},
        ]


class ReplicaOfBudgets(Prometheus):
    """A replica that knows only its own budget (over at most 15 days): must not be what the page shows."""

    def __init__(self) -> None:
        super().__init__(UNREACHABLE)

    def query(self, expr: str) -> list[dict]:
        metric = {"__name__": SLO_BUDGET, "slo": "gamebook-errors", "env": "production"}
        return [{"metric": metric, "value": [0, "0.99"]}] if "gamebook-errors" in expr else []


def test_the_system_page_reads_the_budget_from_the_history_preferring_the_long_term_record() -> None:
    """With --scale the budget row shows the store's 30-day record where vmalert wrote it, the replicas'
    own elsewhere, per env, each saying which it is; the replica is not asked."""
    store = StoreOfBudgets()
    nowhere = Alertmanagers([UNREACHABLE])
    console = Console(load_catalogue(), ReplicaOfBudgets(), nowhere, "sqlite:///unused", history=store)
    [row] = [r for r in console.system_rows("gamebook") if r["id"] == "errors"]
    assert (
        'slo:error_budget_remaining_long_term:ratio{slo="gamebook-errors"} '
        'or on (slo, env) slo:error_budget_remaining:ratio{slo="gamebook-errors"}'
    ) in store.asked
    assert row["values"] == [
        ('{env="production", slo="gamebook-errors"}', "25% budget left over 30d (long-term store)", "amber"),
        (
            '{env="staging", slo="gamebook-errors"}',
            "-50% budget left over at most 15d of 30d (Prometheus' own)",
            "red",
        ),
    ]
    page = _client(console).get("/systems/gamebook")
    assert page.status_code == 200
    assert "25% budget left over 30d (long-term store)" in page.text and "99% budget left" not in page.text


def test_a_budget_within_the_retention_is_the_whole_period() -> None:
    """An SLO whose period a replica keeps has no long-term record: its own budget covers all of it."""
    catalogue = load_catalogue()
    gamebook = catalogue.system("gamebook")
    short = [dataclasses.replace(slo, period="7d") for slo in gamebook.slos]
    systems = [dataclasses.replace(s, slos=short) if s is gamebook else s for s in catalogue.systems]
    week = dataclasses.replace(catalogue, systems=systems)
    console = Console(week, ReplicaOfBudgets(), Alertmanagers([UNREACHABLE]), "sqlite:///unused")
    [row] = [r for r in console.system_rows("gamebook") if r["id"] == "errors"]
    assert row["values"] == [
        ('{env="production", slo="gamebook-errors"}', "99% budget left over 7d", "green")
    ]


class StoreOfCompliance(Prometheus):
    """The long-term store as it answers GameBook memory's monthly compliance: vmalert's record per
    series of the signal, with the replicas' external label `stack` and the rule's `entry`. Records every
    instant query."""

    def __init__(self) -> None:
        super().__init__("http://store:8428")
        self.asked: list[str] = []

    def query(self, expr: str) -> list[dict]:
        self.asked.append(expr)
        if expr != 'entry:target_held:ratio_avg30d{entry="memory",system="gamebook"}':
            return []
        labels = {"__name__": "entry:target_held:ratio_avg30d", "entry": "memory", "system": "gamebook"}
        labels |= {"job": "gamebook", "stack": "redline"}
        return [
            {"metric": {**labels, "env": "staging", "instance": "b:1"}, "value": [0, "0.9"]},
            {"metric": {**labels, "env": "production", "instance": "a:1"}, "value": [0, "0.992"]},
        ]


class ReplicaOfMemory(Prometheus):
    """A replica answering GameBook's memory ratio now, per series, without its external labels."""

    def __init__(self) -> None:
        super().__init__("http://replica:9090")

    def query(self, expr: str) -> list[dict]:
        if not expr.startswith("process_resident_memory_bytes"):
            return []
        series = {"job": "gamebook", "system": "gamebook"}
        return [
            {"metric": {**series, "env": "production", "instance": "a:1"}, "value": [0, "0.5"]},
            {"metric": {**series, "env": "staging", "instance": "b:1"}, "value": [0, "0.6"]},
        ]

    def external_labels(self) -> dict[str, str]:
        return {"stack": "redline", "replica": "a"}


def test_a_threshold_row_shows_its_monthly_compliance_from_the_store() -> None:
    """With --scale each threshold row shows vmalert's 30-day compliance per series, named as the current
    value of that series is (the store's `stack` and the rule's `entry` left out), coloured green from
    99% and red below 95%."""
    store = StoreOfCompliance()
    console = Console(load_catalogue(), ReplicaOfMemory(), Alertmanagers([UNREACHABLE]), "", history=store)
    [row] = [r for r in console.system_rows("gamebook") if r["id"] == "memory"]
    assert 'entry:target_held:ratio_avg30d{entry="memory",system="gamebook"}' in store.asked  # the history
    production, staging = (
        '{env="production", instance="a:1", job="gamebook"}',
        ('{env="staging", instance="b:1", job="gamebook"}'),
    )
    assert [name for name, *_ in row["values"]] == [production, staging]
    assert row["held"] == [
        (production, "target held 99.2% of 30d (long-term store)", "green"),
        (staging, "target held 90% of 30d (long-term store)", "red"),
    ]
    page = _client(console).get("/systems/gamebook")
    assert page.status_code == 200
    assert "target held 99.2% of 30d (long-term store)" in page.text and "needs --scale" not in page.text
    # the store has no record for the other entries yet: said so, not taken for a missing --scale
    assert "no 30d record in the long-term store yet" in page.text


def test_without_the_store_a_threshold_row_says_the_compliance_needs_scale() -> None:
    """Without --scale the history is the Prometheus, which holds no 30-day record: nothing shown but
    that; the Watchdog, which has no target to hold, not even that."""
    console = Console(load_catalogue(), ReplicaOfMemory(), Alertmanagers([UNREACHABLE]), "sqlite:///unused")
    [row] = [r for r in console.system_rows("gamebook") if r["id"] == "memory"]
    assert row["held"] == [] and len(row["values"]) == 2
    [watchdog] = [r for r in console.system_rows("redline") if r["alert"] == "Watchdog"]
    assert "held" not in watchdog
    page = _client(console).get("/systems/gamebook")
    assert page.status_code == 200
    assert "no 30d record: needs --scale" in page.text and "target held" not in page.text
