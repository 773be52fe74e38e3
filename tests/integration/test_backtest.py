"""`redline backtest` over a fixture history with known incidents, served by a real Prometheus.

The history is written by this file: a day of 15-second samples of a few catalogue metrics (tmux cycle
time, qerrors cache hit ratio, qerrors and tmux `up`/health), following each entry's `test:` fixture so
the signal takes the values below, backfilled with `promtool tsdb create-blocks-from openmetrics` and
served by a Prometheus that requires basic auth. The backtest runs once (vmalert's replay, the
Alertmanager model, a comparison with a catalogue copy whose cycle-time alert value is 0.75 s instead
of 1 s) and the tests read its JSON report. The timeline is
then checked against Prometheus' own rule evaluation: promtool evaluates the generated rule files
(recording rules and all) over the same samples and must see exactly the same ALERTS.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import bcrypt
import pytest
import yaml

from redline import topology
from redline.generate.load import load_catalogue
from redline.generate.model import Fixture, format_duration
from redline.generate.render.promtool_series import Timeline, parse_series, series_text, series_values
from redline.paths import PROMETHEUS, ROOT
from redline.testing.catalogue import changed_catalogue, entry
from redline.testing.history import Driver, Incident, backfill, constant, write_openmetrics
from redline.testing.processes import free_port, running, tool, wait_until

pytestmark = pytest.mark.slow

HOUR, MINUTE = 3600, 60
USER, PASSWORD = "backtest", "not-a-real-secret"
SCRAPE, STEP = 15, 60
T0 = (int(time.time()) // HOUR - 48) * HOUR  # two days ago, on the hour: the history's first sample
START, END = T0 + HOUR, T0 + 24 * HOUR  # the backtest's first and last evaluation
HISTORY_END = END + 10 * MINUTE
CATALOGUE = load_catalogue()
TMUX = topology.test_targets("tmux")[0]
PRODUCTION = topology.test_targets("qerrors")[0]  # env="production"

# The incidents, as values of each entry's signal.
CYCLE_SLOW = Incident(T0 + 6 * HOUR, T0 + 8 * HOUR, 5.0)  # TmuxMonitorCycleSlow (> 1s for 5m): fires
CYCLE_BLIP = Incident(T0 + 9 * HOUR, T0 + 9 * HOUR + MINUTE, 2.0)  # one minute: the 5m mean stays < 1s
CYCLE_BETWEEN = Incident(T0 + 10 * HOUR, T0 + 11 * HOUR, 0.9)  # fires only with 0.75s (the compare copy)
CACHE_LOW = Incident(T0 + 12 * HOUR, T0 + 14 * HOUR, 0.0)  # QerrorsCacheHitRateLow (< 80% for 10m)
TMUX_DOWN = Incident(T0 + 16 * HOUR, T0 + 16 * HOUR + 30 * MINUTE, 0.0)  # TmuxMonitorDown and its SLO
QERRORS_DOWN = Incident(T0 + 19 * HOUR + 50 * MINUTE, T0 + 21 * HOUR + 30 * MINUTE, 0.0)  # QerrorsDown
CACHE_DURING_DOWN = Incident(T0 + 20 * HOUR, T0 + 21 * HOUR, 0.0)  # fires, but QerrorsDown inhibits it


def fixture(alert: str) -> Fixture:
    found = next(t for t in CATALOGUE.thresholds() if t.alert_name == alert).fixture
    assert found is not None
    return found


DRIVERS = [
    Driver(fixture("TmuxMonitorCycleSlow"), TMUX, constant(0.3), [CYCLE_SLOW, CYCLE_BLIP, CYCLE_BETWEEN]),
    Driver(fixture("TmuxMonitorDown"), TMUX, constant(1.0), [TMUX_DOWN]),
    Driver(fixture("QerrorsCacheHitRateLow"), PRODUCTION, constant(0.95), [CACHE_LOW, CACHE_DURING_DOWN]),
    Driver(fixture("QerrorsDown"), PRODUCTION, constant(1.0), [QERRORS_DOWN]),
]


@dataclass
class Run:
    report: dict
    returncode: int
    stderr: str
    folder: Path
    prometheus: str

    def alert(self, name: str, severity: str = "warning") -> dict:
        return next(a for a in self.report["alerts"] if a["alert"] == name and a["severity"] == severity)


def backtest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redline.cli", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def lower_cycle_threshold(data: dict) -> None:
    entry(data, "cycle-time")["value"] = 0.75  # a bucket bound, as the catalogue requires


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The history served by a Prometheus that wants basic auth (as the stack's may), backtested once."""
    folder = tmp_path_factory.mktemp("backtest")
    with open(folder / "history.om", "w") as out:
        write_openmetrics(DRIVERS, T0, HISTORY_END, SCRAPE, out)
    backfill(folder / "history.om", folder / "tsdb")
    (folder / "prometheus.yml").write_text("global: {}\n")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (folder / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    (folder / "credentials").write_text(f"{USER}:{PASSWORD}\n")
    copy = changed_catalogue(folder, "tmux.yml", lower_cycle_threshold)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        tool("prometheus"),
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
    ]
    command += [f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={folder / 'web.yml'}"]
    with running(command, log=folder / "prometheus.log"):
        wait_until(lambda: authorised_get(f"{url}/-/ready") == 200, timeout=30, what="Prometheus ready")
        result = backtest(
            f"--prometheus={url}", f"--from={START}", f"--to={END}", "--step=1m", "--partial-windows",
            f"--compare={copy}", f"--json={folder / 'report.json'}", f"--html={folder / 'report.html'}",
            f"--basic-auth-file={folder / 'credentials'}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        yield Run(json.loads((folder / "report.json").read_text()), 0, result.stderr, folder, url)


def authorised_get(url: str) -> int:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return int(response.status)


def seconds(iso: str | None) -> int | None:
    return None if iso is None else int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def episodes(alert: dict) -> list[tuple[int | None, int | None, int | None]]:
    return [(seconds(e["active_at"]), seconds(e["start"]), seconds(e["end"])) for e in alert["timeline"]]


def assert_near(found: int | None, expected: int, what: str) -> None:
    assert found is not None and abs(found - expected) <= STEP, f"{what}: {found} vs {expected} (+-{STEP}s)"


# ----- the incidents ----------------------------------------------------------------------------------


def test_each_incident_is_found_with_its_start_and_end(run: Run) -> None:
    """Gauge signals start and end with the incident; a 5m window ends 5m after it; `for` delays firing."""
    cases = [
        # alert, severity, incident, how long the signal lags its end (its range window), for
        ("TmuxMonitorCycleSlow", "warning", CYCLE_SLOW, 5 * MINUTE, 5 * MINUTE),
        ("QerrorsCacheHitRateLow", "warning", CACHE_LOW, 5 * MINUTE, 10 * MINUTE),
        ("QerrorsCacheHitRateLow", "warning", CACHE_DURING_DOWN, 5 * MINUTE, 10 * MINUTE),
        ("TmuxMonitorDown", "critical", TMUX_DOWN, 0, MINUTE),
        ("QerrorsDown", "critical", QERRORS_DOWN, 0, 2 * MINUTE),
    ]
    for name, severity, incident, lag, for_ in cases:
        found = [
            e for e in episodes(run.alert(name, severity)) if e[0] and abs(e[0] - incident.start) <= STEP
        ]
        assert len(found) == 1, f"{name}: no episode at {incident}: {episodes(run.alert(name, severity))}"
        active_at, start, end = found[0]
        assert_near(active_at, incident.start, f"{name} active at")
        assert_near(start, incident.start + for_, f"{name} firing from")
        assert_near(end, incident.end + lag, f"{name} resolved at")
    assert len(run.alert("TmuxMonitorCycleSlow")["timeline"]) == 1, "the blip and the 0.9s hour do not fire"
    assert len(run.alert("QerrorsCacheHitRateLow")["timeline"]) == 2
    assert all(a["model_agrees"] is not False for a in run.report["alerts"])


def test_pages_and_tickets_after_grouping_and_inhibition(run: Run) -> None:
    counts = {(a["alert"], a["severity"]): (a["pages"], a["tickets"]) for a in run.report["alerts"]}
    assert counts[("TmuxMonitorCycleSlow", "warning")] == (0, 1)
    # the second cache incident happened while qerrors was down: QerrorsDown inhibits it
    assert counts[("QerrorsCacheHitRateLow", "warning")] == (0, 1)
    assert counts[("QerrorsDown", "critical")] == (1, 0)
    assert counts[("TmuxMonitorDown", "critical")] == (1, 0)
    # the availability SLO burns during the outage, inhibited by TmuxMonitorDown; its page goes out once
    # the Down has resolved, and its ticket once its critical level has resolved too
    assert counts[("TmuxMonitorAvailabilityBudgetBurn", "critical")] == (1, 0)
    assert counts[("TmuxMonitorAvailabilityBudgetBurn", "warning")] == (0, 1)
    pages = [n for n in run.report["notifications"] if n["receiver"] == "pager" and n["opens"]]
    slo_page = next(n for n in pages if n["firing"][0]["alertname"] == "TmuxMonitorAvailabilityBudgetBurn")
    assert seconds(slo_page["time"]) == TMUX_DOWN.end
    assert {k: v["opened"] for k, v in run.report["receivers"].items()} == {"pager": 3, "ticket": 3}
    silent = [a for a in run.report["alerts"] if a["status"] == "ok" and not a["timeline"]]
    assert silent == [], "every alert with data in this history fired"


def test_compliance_with_the_documented_numbers(run: Run) -> None:
    cycle = run.alert("TmuxMonitorCycleSlow")["compliance"]
    assert cycle["target"]["phrase"] == "below 500ms" and cycle["value"]["phrase"] == "at most 1s"
    # beyond 1s from about 45 s into the 2 h incident until 4-5 min after it: about 2 h 4 min
    assert 2 * HOUR <= cycle["value"]["beyond_seconds"] <= 2 * HOUR + 6 * MINUTE
    evaluations = run.report["range"]["evaluations"]
    assert cycle["value"]["held"] == pytest.approx(1 - cycle["value"]["beyond_seconds"] / STEP / evaluations)
    down = run.alert("QerrorsDown", "critical")["compliance"]["value"]
    assert down["phrase"] == "at least 1" and down["beyond_seconds"] == QERRORS_DOWN.end - QERRORS_DOWN.start


def test_suggestions_aim_at_most_n_a_month(run: Run) -> None:
    cycle = run.alert("TmuxMonitorCycleSlow")["suggestion"]
    # a day with one ticket is 30 a month: only a value past the 5s the signal reached stays within 4
    assert cycle["status"] == "change" and cycle["value"] >= 5.0 and cycle["per_month"] == 0
    assert "never have fired" in cycle["note"]
    silent = run.alert("TmuxMonitorCpuHigh")  # no data in this history
    assert silent["status"] == "no data" and silent["suggestion"]["status"] == "n/a"


# ----- the same history under another catalogue ------------------------------------------------------


def test_compare_reports_exactly_the_changed_incident(run: Run) -> None:
    compare = run.report["compare"]
    changed = [d for d in compare["alerts"] if d["gained"] or d["lost"] or d["base"] != d["other"]]
    assert changed == [
        {
            "alert": "TmuxMonitorCycleSlow",
            "severity": "warning",
            "receiver": "ticket",
            "base": 1,
            "other": 2,
            "gained": 1,
            "lost": 0,
        }
    ]
    assert (compare["gained"], compare["lost"]) == (1, 0)


def test_a_git_ref_is_read_with_git_archive(run: Run) -> None:
    """HEAD's thresholds/ (as committed) against the working tree's: the same alerts, nothing differs."""
    result = backtest(
        f"--prometheus={run.prometheus}", f"--from={START}", f"--to={END}", "--partial-windows", "--quiet",
        "--no-suggest", "--compare=HEAD", "--json=-", f"--basic-auth-file={run.folder / 'credentials'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    compare = json.loads(result.stdout)["compare"]
    assert compare["catalogue"] == "HEAD" and (compare["gained"], compare["lost"]) == (0, 0)
    assert all(d["base"] == d["other"] for d in compare["alerts"])


# ----- the timeline is Prometheus' own evaluation ----------------------------------------------------


def promtool_series(driver: Driver, start: int, end: int) -> list[dict]:
    """The driver's series in promtool's expanding notation, sample for sample as in the history."""
    times = list(range(start, end, SCRAPE))
    phases: list[tuple[float, int]] = []
    for t in times:
        v = driver.signal(t)
        if phases and phases[-1][0] == v:
            phases[-1] = (v, phases[-1][1] + 1)
        else:
            phases.append((v, 1))
    timeline = Timeline(SCRAPE, tuple(phases))
    rows = []
    for item in driver.fixture.series:
        name, labels = parse_series(item.series)
        values = series_values(item.type, item.scale, item.offset, timeline, "fixture")
        rows.append({"series": series_text(name, {**driver.target, **labels}), "values": values})
    return rows


def test_the_timeline_equals_prometheus_own_evaluation(run: Run, tmp_path: Path) -> None:
    """promtool runs the generated rule files (recording rules, alerts with their `for`) over the same
    samples, evaluating every minute from the first sample as the backtest does: at every 5 minutes and
    around every transition, its ALERTS are exactly the backtest's firing episodes."""
    names = ["TmuxMonitorCycleSlow", "TmuxMonitorDown", "TmuxMonitorAvailabilityBudgetBurn"]
    names += ["QerrorsCacheHitRateLow", "QerrorsDown"]
    firing = [(e, a) for a in run.report["alerts"] if a["alert"] in names for e in a["timeline"]]
    checks = set(range(START, END + 1, 5 * MINUTE))
    for episode, _ in firing:
        for t in (seconds(episode["start"]), seconds(episode["end"]) or END):
            checks |= {t - STEP, t}
    tests = []
    for t in sorted(c for c in checks if START <= c <= END):
        expected = [
            series_text("ALERTS", {**e["labels"], "alertstate": "firing"})
            for e, _ in firing
            if seconds(e["start"]) <= t < (seconds(e["end"]) or END + 1)
        ]
        tests.append(
            {
                "expr": f'ALERTS{{alertstate="firing", alertname=~"{"|".join(names)}"}}',
                "eval_time": format_duration(t - T0),
                "exp_samples": [{"labels": labels, "value": 1} for labels in sorted(expected)],
            }
        )
    groups = ["tmux-records", "tmux-slo-records", "tmux-alerts", "qerrors-records", "qerrors-alerts"]
    suite = {
        "rule_files": [str(PROMETHEUS / "rules" / "tmux.yml"), str(PROMETHEUS / "rules" / "qerrors.yml")],
        "evaluation_interval": format_duration(STEP),
        "group_eval_order": groups,
        "tests": [
            {
                "interval": format_duration(SCRAPE),
                "input_series": [row for d in DRIVERS for row in promtool_series(d, T0, HISTORY_END)],
                "promql_expr_test": tests,
            }
        ],
    }
    (tmp_path / "timeline_test.yml").write_text(yaml.safe_dump(suite, sort_keys=False, width=10_000))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", str(tmp_path / "timeline_test.yml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert len(tests) > 270 and sum(len(t["exp_samples"]) > 0 for t in tests) > 50


# ----- outputs and bad input -------------------------------------------------------------------------


def test_html_report_is_one_self_contained_file_with_a_plot_per_alert(run: Run) -> None:
    page = (run.folder / "report.html").read_text()
    assert page.count("<svg") == len([a for a in run.report["alerts"] if a["status"] == "ok"])
    for external in ("<script", "<link", "src=", "url(", "@import"):
        assert external not in page, f"{external} in the report: it must need no other file"
    assert "would have fired" in page and "target 500ms" in page and "alert &gt; 1s" in page


def test_the_table_and_the_progress(run: Run) -> None:
    assert "vmalert replay: rule" in run.stderr and "done in" in run.stderr


def test_too_short_history_is_one_line_naming_the_rule_and_its_window(run: Run) -> None:
    result = backtest(
        f"--prometheus={run.prometheus}", f"--from={T0 + 2 * HOUR}", f"--to={END}", "--quiet",
        f"--basic-auth-file={run.folder / 'credentials'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "redline backtest: history too short for TmuxMonitorAvailabilityBudgetBurn: it reads 3d before "
        "each evaluation and the history starts at "
    )
    assert "--partial-windows" in result.stderr


def test_a_datasource_that_refuses_is_a_backend_failure(run: Run) -> None:
    result = backtest(f"--prometheus={run.prometheus}", "--since=1h", "--quiet")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"redline backtest: {run.prometheus}/api/v1/query_range: HTTP 401")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--since=1d", "--from=2026-01-01T00:00:00Z"], 2, "give --since or --from, not both"),
        (["--catalogue=no-such-ref-xyz"], 2, "no-such-ref-xyz: entry '(git ref)': field 'thresholds/'"),
        (["--prometheus=http://127.0.0.1:9", "--since=1h"], 1, "http://127.0.0.1:9/api/v1/query_range"),
        (["--step=0s"], 2, "redline backtest: argument --step: must be longer than 0s"),
        (["--basic-auth-file=/nonexistent"], 2, "--basic-auth-file /nonexistent: cannot read it"),
    ],
)
def test_bad_input_and_backend_failures_are_one_line(args: list[str], code: int, message: str) -> None:
    result = backtest(*args, "--quiet", timeout=60)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
