"""End to end on `redline up --scale`: the HA Prometheus pair, the Alertmanager cluster, the long-term store.

One stack on free ports (two Prometheus replicas remote-writing into VictoriaMetrics single-node, three
clustered Alertmanagers, the demo and the rest of `make up`), with the test-only shortcuts of
tests/e2e/test_pages.py: rules rendered with `for: 3s`, Alertmanager's group timers capped at 5 s.

- the replicas' two copies of each series are one series in the store, one sample per dedup interval;
- vmalert evaluates the long-range rules (prometheus/long-term/rules.yml) against the store and writes
  their records into it; the console and `redline backtest` read history from the store by default, and
  the console's system page shows vmalert's 30-day SLO budget and each target's monthly compliance, and
  the overview's compliance table answers from the store;
- a replica SIGKILLed during an incident: the page arrives exactly once per group, and the incident's
  series has no gap in the store (REDLINE_SCALE_KILL_RUNS rounds, default 2; bench/scale_ha.py runs 20);
- the store stopped under load (REDLINE_SCALE_OUTAGE_S, default 20 s; the bench runs 120 s): after it
  returns, the remote-write queues replay and the store holds every sample the replicas scraped.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline import durations, storage, topology
from redline.generate.conventions import (
    LONG_TERM_BUDGET,
    OVERVIEW_UID,
    SLO_BUDGET,
    budget_left,
    compliance_record,
    entry_selector,
)
from redline.generate.humanize import humanize_percentage
from redline.generate.load import load_catalogue
from redline.testing import scale_ha
from redline.testing.processes import ROOT, wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

KILL_RUNS = int(os.environ.get("REDLINE_SCALE_KILL_RUNS", "2"))
OUTAGE_S = float(os.environ.get("REDLINE_SCALE_OUTAGE_S", "20"))
GROUP_TIMER = "5s"
DUP_WINDOW = durations.seconds(GROUP_TIMER) + 3  # a duplicate would come at the group's next flush
FAST_JOBS = [job.name for job in topology.JOBS if job.interval == storage.dedup_interval()]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    tmp: Path = tmp_path_factory.mktemp("scale")
    rules = render_rules("3s", tmp / "rendered")
    am = alertmanager_config_with_timers(tmp / "alertmanager.yml", GROUP_TIMER, GROUP_TIMER)
    with Sandbox(rules_dir=rules, alertmanager_config=am, scale=True) as sandbox:
        # both replicas scrape, and the store has received from both, before any test measures
        wait_until(
            lambda: scale_ha.store_series(sandbox, 'up{job="qerrors"}'), 60, what="the store receiving"
        )
        yield sandbox


def test_status_lists_the_pair_and_the_store(stack: Sandbox) -> None:
    status = stack.redline("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for service in ("prometheus", "prometheus-2", storage.LONG_TERM, storage.LONG_TERM_RULER):
        assert any(line.split()[:2] == [service, "ready"] for line in status.stdout.splitlines()), (
            status.stdout
        )


def test_one_series_per_target_in_the_store(stack: Sandbox) -> None:
    time.sleep(3)
    end = float(int(time.time()) - 2)
    for job in FAST_JOBS:
        selector = f'up{{job="{job}"}}'
        query = urllib.parse.urlencode({"query": selector})
        per_replica = [stack.get_json(f"{stack.url(r)}/api/v1/query?{query}") for r in scale_ha.REPLICAS]
        targets = {scale_ha.series_key(s["metric"]) for s in per_replica[0]["data"]["result"]}
        assert targets, f"replica A scrapes no target of job {job}"
        assert targets == {scale_ha.series_key(s["metric"]) for s in per_replica[1]["data"]["result"]}
        stored = scale_ha.store_series(stack, selector)
        assert len(stored) == len(targets), f"{job}: {len(stored)} series in the store for {len(targets)}"
        assert all(storage.REPLICA_LABEL not in s for s in stored), stored
        # both replicas scraped each target in these 5 s; the store keeps one sample per dedup interval
        for key, timestamps in scale_ha.store_samples(stack, selector, end - 5, end).items():
            buckets = scale_ha.dedup_buckets(timestamps)
            assert len(buckets) == len(timestamps), f"{key}: two samples in one interval: {timestamps}"


def _stored_value(stack: Sandbox, selector: str) -> dict[tuple, float]:
    """The latest value of each series of `selector` in the store (within the last 5 minutes)."""
    query = urllib.parse.urlencode({"query": f"last_over_time({selector}[5m])"})
    answer = stack.get_json(f"{stack.url(storage.LONG_TERM)}/api/v1/query?{query}")
    return {scale_ha.series_key(r["metric"]): float(r["value"][1]) for r in answer["data"]["result"]}


def test_vmalert_records_the_long_range_views_in_the_store(stack: Sandbox) -> None:
    """vmalert evaluates prometheus/long-term/rules.yml against the store and writes the records into
    it: a healthy demo target is held (1), its monthly compliance is 1, and the 30-day budget of an SLO
    is 1 - its store-wide error ratio / the budget. The replicas hold none of these series."""
    held = 'entry:target_held:bool{system="gamebook",entry="memory"}'
    compliance = 'entry:target_held:ratio_avg30d{system="gamebook",entry="memory"}'
    # the group starts within one interval, evaluates, then again one interval later (the mean reads the
    # 0/1 series of the first round)
    timeout = 3 * durations.seconds(storage.LONG_TERM_EVAL_INTERVAL) + 30
    wait_until(lambda: _stored_value(stack, held) and _stored_value(stack, compliance), timeout, what="both")
    values = _stored_value(stack, held)
    assert values and set(values.values()) == {1.0}, values  # the demo's memory is below 80%
    for key in values:
        labels = dict(key)
        assert labels["system"] == "gamebook" and labels["entry"] == "memory", key
        assert "instance" in labels and storage.REPLICA_LABEL not in labels, key
    assert set(_stored_value(stack, compliance).values()) == {1.0}

    slo = 'slo="gamebook-errors"'
    budget_of = f"slo:error_budget_remaining_long_term:ratio{{{slo}}}"
    wait_until(lambda: _stored_value(stack, budget_of), 60, what="the budget")
    [budget] = _stored_value(stack, budget_of).values()
    [ratio] = _stored_value(stack, f"slo:sli_error_long_term:ratio_rate30d{{{slo}}}").values()
    assert 0 <= ratio <= 1 and budget <= 1
    assert budget == pytest.approx(1 - ratio / 0.001, abs=0.05)  # the errors SLO: 99.9%
    for replica in scale_ha.REPLICAS:
        query = urllib.parse.urlencode({"query": "count({__name__=~'entry:target_held:.*'})"})
        answer = stack.get_json(f"{stack.url(replica)}/api/v1/query?{query}")
        assert answer["data"]["result"] == [], f"{replica} holds a long-term record"


def test_the_console_and_backtest_read_history_from_the_store(stack: Sandbox) -> None:
    store = stack.url(storage.LONG_TERM)
    supervisord = (stack.run_dir / "supervisord.conf").read_text()
    console = next(line for line in supervisord.splitlines() if "redline.cli console" in line)
    assert f"--history={store} " in console + " " and f"--prometheus={stack.url('prometheus')} " in console
    result = stack.redline(
        "backtest", "--since=5m", "--step=1m", "--partial-windows", "--no-suggest", "--json=-", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["datasource"] == store


def _store_query(stack: Sandbox, expr: str) -> list[dict]:
    query = urllib.parse.urlencode({"query": expr})
    return list(stack.get_json(f"{stack.url(storage.LONG_TERM)}/api/v1/query?{query}")["data"]["result"])


def test_the_console_shows_the_long_term_budget_from_the_store(stack: Sandbox) -> None:
    """The console's budget expression (conventions.budget_left) against the real store, where both the
    replicas' budget (with their external labels) and vmalert's 30-day record exist: one value per env,
    vmalert's, and the system page shows each as the long-term store's."""
    slo = next(s for s in load_catalogue().slos() if s.slo_label == "gamebook-errors")
    selector = f'{{slo="{slo.slo_label}"}}'
    timeout = 3 * durations.seconds(storage.LONG_TERM_EVAL_INTERVAL) + 30
    wait_until(lambda: _stored_value(stack, LONG_TERM_BUDGET + selector), timeout, what="the 30-day budget")
    replicas_envs = {r["metric"].get("env") for r in _store_query(stack, SLO_BUDGET + selector)}
    assert replicas_envs, "the replicas' own budget is not in the store"
    request = urllib.request.Request(f"{stack.url('console')}/systems/gamebook", headers=stack.auth)

    def shown() -> bool:
        answer = _store_query(stack, budget_left(slo))
        envs = [r["metric"].get("env") for r in answer]
        assert sorted(envs, key=str) == sorted(replicas_envs, key=str), answer  # one value per env
        assert {r["metric"]["__name__"] for r in answer} == {LONG_TERM_BUDGET}, answer
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode()
        # vmalert may write a new value between the two requests: asked again then
        return all(
            f"{humanize_percentage(float(r['value'][1]))} budget left over {slo.period} (long-term store)"
            in page
            for r in answer
        )

    wait_until(shown, 3 * durations.seconds(storage.LONG_TERM_EVAL_INTERVAL), what="the page")


def _compliance_panel_query() -> str:
    """The overview's "Documented targets held" table query, as Grafana sends it to History."""
    data = json.loads((ROOT / "grafana" / "dashboards" / f"{OVERVIEW_UID}.json").read_text())
    [panel] = [p for p in data["panels"] if p["title"] == "Documented targets held over 30 days"]
    return str(panel["targets"][0]["expr"])


def _cell_names(cell: str) -> list[str]:
    return [html.unescape(name) for name in re.findall(r"<small>([^<]*)</small>", cell)]


def test_the_console_and_the_overview_show_the_monthly_compliance_from_the_store(stack: Sandbox) -> None:
    """vmalert's monthly compliance of GameBook's memory (held throughout: 1) in the real store: the
    overview's table query answers it per system, entry, env and instance, and the console's GameBook page
    shows it for every series it shows a current value of (the replica's answer), named the same."""
    selector = compliance_record() + entry_selector("gamebook", "memory")
    timeout = 3 * durations.seconds(storage.LONG_TERM_EVAL_INTERVAL) + 30
    wait_until(lambda: _stored_value(stack, selector), timeout, what="the monthly compliance")
    table = _store_query(stack, _compliance_panel_query())
    memory = [
        r for r in table if r["metric"].get("system") == "gamebook" and r["metric"]["entry"] == "memory"
    ]
    assert memory, table
    for row in memory:
        assert set(row["metric"]) == {"system", "entry", "env", "instance"}, row
        assert float(row["value"][1]) == 1.0, row
    request = urllib.request.Request(f"{stack.url('console')}/systems/gamebook", headers=stack.auth)
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    found = re.search(r'<tr id="entry-memory">(.*?)</tr>', page, re.S)
    assert found, page
    cells = re.findall(r"<td>(.*?)</td>", found.group(1), re.S)
    now, held = cells[2], cells[3]
    assert _cell_names(now), now
    assert sorted(_cell_names(held)) == sorted(_cell_names(now)), (now, held)
    assert held.count("target held 100% of 30d (long-term store)") == len(_cell_names(now)), held


def test_reload_reloads_both_replicas_and_vmalert(stack: Sandbox) -> None:
    result = stack.redline("reload", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for replica in scale_ha.REPLICAS:
        assert f"Prometheus {stack.url(replica)}: reloaded" in result.stdout, result.stdout
    assert f"vmalert {stack.url(storage.LONG_TERM_RULER)}: reloaded" in result.stdout, result.stdout
    assert "long-term rules (prometheus/long-term/rules.yml): valid" in result.stdout, result.stdout


@pytest.mark.parametrize("run", range(KILL_RUNS))
def test_replica_killed_during_an_incident_pages_once(stack: Sandbox, run: int) -> None:
    victim = scale_ha.REPLICAS[run % 2]
    kill_after = 1.0 + 4.0 * (run % 3) / 2  # before the alert fires, around it, after the page
    result = scale_ha.kill_round(stack, victim, kill_after, DUP_WINDOW)
    assert result["pages"] == {"production": 1}, result
    assert result["resolved"] and result["refired"] == 0, result
    assert result["gaps"], f"no incident series in the store: {result}"
    # no gap: every interval the surviving replica scraped is in the store (and the store's longest gap
    # is no longer than the survivor's own: a loaded machine can delay a scrape)
    assert set(result["missing_in_store"].values()) == {0}, result
    for env, gap in result["gaps"].items():
        allowed = max(2.5 * scale_ha.DEDUP_S, result["survivor_gaps"].get(env, 0))
        assert gap <= allowed, f"gap of {gap:.1f}s in {env}'s series: {result}"


def test_store_outage_replays_every_sample(stack: Sandbox) -> None:
    selector = f'{{job="{FAST_JOBS[0]}"}}'
    start = float(int(time.time()) + 1)
    time.sleep(3)
    stack.halt(storage.LONG_TERM)  # an orderly stop: a SIGKILL loses what it had not flushed yet
    time.sleep(OUTAGE_S)
    stack.start(storage.LONG_TERM)
    time.sleep(3)
    end = float(int(time.time()))

    progress: list[str] = []

    def complete() -> bool:
        stored = scale_ha.store_samples(stack, selector, start, end)
        scraped = _scraped(stack, selector, start, end)
        short = {
            key: (len(stored.get(key, [])), len(scale_ha.dedup_buckets(ts)))
            for key, ts in scraped.items()
            if len(stored.get(key, [])) != len(scale_ha.dedup_buckets(ts))
        }
        progress[:] = [f"{len(short)} of {len(scraped)} series short, e.g. {list(short.items())[:2]}"]
        return bool(stored) and not short

    try:
        wait_until(complete, 90, interval=1, what="the remote-write queues to replay into the store")
    except AssertionError as err:
        raise AssertionError(f"{err}: {progress}") from None
    stored = scale_ha.store_samples(stack, selector, start, end)
    scraped = _scraped(stack, selector, start, end)
    assert set(stored) == set(scraped)
    for key, timestamps in scraped.items():
        # one sample per dedup interval in which a replica scraped, each one of theirs: none lost
        assert scale_ha.dedup_buckets(stored[key]) == scale_ha.dedup_buckets(timestamps), key
        assert len(stored[key]) == len(scale_ha.dedup_buckets(timestamps)), key
        assert set(stored[key]) <= set(timestamps), f"{key}: the store has samples nobody scraped"


def _scraped(stack: Sandbox, selector: str, start: float, end: float) -> dict:
    """Every sample the two replicas scraped, by series."""
    merged: dict = {}
    for replica in scale_ha.REPLICAS:
        for key, timestamps in scale_ha.scraped_samples(stack, replica, selector, start, end).items():
            merged.setdefault(key, []).extend(timestamps)
    return {key: sorted(ts) for key, ts in merged.items()}
