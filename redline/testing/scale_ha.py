"""The HA pair and the long-term store under faults: shared by tests/e2e/test_scale.py and bench/scale_ha.py.

The stack is the runner's (`redline up --scale`, a redline.testing.sandbox.Sandbox): two Prometheus
replicas (A, B) that remote-write into VictoriaMetrics and alert into the three-peer Alertmanager cluster.

- kill_round(): an incident (the demo's qerrors `down` fault: QerrorsDown pages per env group) during
  which one replica is SIGKILLed at a chosen moment; counts the pages of each group at the pager-sink
  (exactly one expected) and the longest gap of the incident's series in the long-term store.
- store_samples() / scraped_samples(): what the store holds for a selector over a window, and what the
  two replicas scraped over the same window, for the outage test (no sample lost).
"""

from __future__ import annotations

import itertools
import json
import math
import time
import urllib.parse
import urllib.request
from typing import Any

from redline import durations, storage
from redline.testing.processes import http_get, wait_until
from redline.testing.sandbox import Sandbox

REPLICAS = list(storage.REPLICAS)  # prometheus (A), prometheus-2 (B)
INCIDENT = ("qerrors", "down")  # the demo fault of the incident
ALERT = "QerrorsDown"  # what it pages, one group per env (alertmanager.yml groups by alertname, system, env)
INCIDENT_SERIES = 'up{job="qerrors"}'  # the incident's series in the long-term store
DEDUP_S = durations.seconds(storage.dedup_interval())


def vm_get(sandbox: Sandbox, path: str, **params: Any) -> str:
    """GET from the long-term store with the stack's basic auth."""
    url = f"{sandbox.url(storage.LONG_TERM)}{path}?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(urllib.request.Request(url, headers=sandbox.auth), timeout=30) as resp:
        return str(resp.read().decode())


def series_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A series' identity without the labels only the store has (the external labels)."""
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("stack", storage.REPLICA_LABEL)))


def store_series(sandbox: Sandbox, selector: str) -> list[dict[str, str]]:
    """The series the long-term store holds for a selector (the series API: no query latency offset)."""
    return list(json.loads(vm_get(sandbox, "/api/v1/series", **{"match[]": selector}))["data"])


def store_samples(sandbox: Sandbox, selector: str, start: float, end: float) -> dict[Any, list[float]]:
    """Sample timestamps (s) per series in the store between start and end (inclusive), deduplicated as
    the store serves them (/api/v1/export applies -dedup.minScrapeInterval)."""
    out: dict[Any, list[float]] = {}
    text = vm_get(sandbox, "/api/v1/export", **{"match[]": selector, "start": start, "end": end})
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            out.setdefault(series_key(row["metric"]), []).extend(t / 1000 for t in row["timestamps"])
    return {k: sorted(v) for k, v in out.items()}


def scraped_samples(
    sandbox: Sandbox, replica: str, selector: str, start: float, end: float
) -> dict[Any, list[float]]:
    """Sample timestamps (s) per series that one replica holds in (start, end] (a range selector: raw
    samples, what it scraped)."""
    seconds = max(1, math.ceil(end - start))
    query = urllib.parse.urlencode({"query": f"{selector}[{seconds}s]", "time": end})
    result = sandbox.get_json(f"{sandbox.url(replica)}/api/v1/query?{query}")["data"]["result"]
    return {
        series_key(series["metric"]): [float(t) for t, _ in series["values"] if float(t) >= start]
        for series in result
    }


# How long the store may take to hold the survivor's last samples: its remote-write batches go at least
# every second, but a loaded machine delays them by seconds.
STORE_CATCH_UP_S = 30.0


def dedup_bucket(timestamp: float) -> int:
    """The -dedup.minScrapeInterval interval k a sample falls in. VictoriaMetrics' intervals end on a
    multiple of it and include their end, ((k-1)*d, k*d] in milliseconds: a sample at exactly k*d shares
    its interval with the samples just before it, not after."""
    interval_ms = round(DEDUP_S * 1000)
    return -(-round(timestamp * 1000) // interval_ms)


def dedup_buckets(timestamps: list[float]) -> set[int]:
    """The -dedup.minScrapeInterval intervals these samples fall in (the store keeps one per interval)."""
    return {dedup_bucket(t) for t in timestamps}


def longest_gap(timestamps: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(timestamps)), default=math.inf)


def group_pages(sandbox: Sandbox, since: int) -> dict[str, int]:
    """Firing notifications of ALERT at /pager since the `since`-th notification, per env group."""
    counts: dict[str, int] = {}
    for record in sandbox.notifications()[since:]:
        if record["path"] != "/pager":
            continue
        envs = {
            a["labels"].get("env", "")
            for a in record["payload"].get("alerts", [])
            if a["labels"].get("alertname") == ALERT and a["status"] == "firing"
        }
        for env in envs:
            counts[env] = counts.get(env, 0) + 1
    return counts


def restart(sandbox: Sandbox, replica: str) -> None:
    """Start a crashed replica again (as supervisord would) and wait until it is ready."""
    sandbox.start(replica)
    wait_until(
        lambda: http_get(f"{sandbox.url(replica)}/-/ready", 2, sandbox.auth)[0] == 200,
        timeout=60,
        what=f"{replica} ready again",
    )


def kill_round(
    sandbox: Sandbox,
    victim: str,
    kill_after: float,
    dup_window: float,
    page_timeout: float = 60.0,
    restart_before_resolve: bool = True,
) -> dict[str, Any]:
    """One incident: fault on, SIGKILL `victim` `kill_after` s later, wait for the page and `dup_window`
    s more for a duplicate; then the victim started again (as supervisord restarts a crashed process)
    and, once it has scraped afresh, the fault off and the page resolved, `dup_window` s more for a page
    after the resolve. With `restart_before_resolve` False the fault ends first and the victim starts
    after: it evaluates its pre-crash samples (up == 0, within the lookback) and fires again, which
    Alertmanager, having just resolved the group, pages anew (docs/scale.md). Returns the pages per
    group, the pages after the resolve, the incident series' longest gap in the store, and timings."""
    since = len(sandbox.notifications())
    started = time.time()
    sandbox.fault(*INCIDENT)
    time.sleep(max(0.0, started + kill_after - time.time()))
    killed_at = sandbox.crash(victim)
    first_page = None
    deadline = time.monotonic() + page_timeout
    while time.monotonic() < deadline and first_page is None:
        if group_pages(sandbox, since):
            first_page = time.time()
        time.sleep(0.1)
    time.sleep(dup_window)
    pages = group_pages(sandbox, since)
    if restart_before_resolve:
        restart(sandbox, victim)
        time.sleep(3)  # its first scrapes and evaluations: it fires too, the group is already paged
    sandbox.fault(*INCIDENT, active=False)
    if not restart_before_resolve:
        restart(sandbox, victim)
    ended = time.time()
    # what the replica that stayed up scraped meanwhile: the store must hold every interval of it, once
    # remote write has delivered its last seconds (bounded: a sample still absent then is lost)
    survivor = next(name for name in REPLICAS if name != victim)
    scraped = scraped_samples(sandbox, survivor, INCIDENT_SERIES, started, ended)
    survivor_gaps = {dict(key).get("env", ""): longest_gap(ts) for key, ts in scraped.items()}
    inner = set(range(dedup_bucket(started) + 1, dedup_bucket(ended)))  # whole intervals
    deadline = time.monotonic() + STORE_CATCH_UP_S
    while True:
        samples = store_samples(sandbox, INCIDENT_SERIES, started, ended)
        missing = {
            dict(key).get("env", ""): len((dedup_buckets(ts) - dedup_buckets(samples.get(key, []))) & inner)
            for key, ts in scraped.items()
        }
        if not any(missing.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    gaps = {dict(key).get("env", ""): longest_gap(ts) for key, ts in samples.items()}
    resolved_at = _wait_resolved(sandbox, since)
    refired = None
    if resolved_at is not None:  # a replica that still fires after the other resolved would page again
        time.sleep(dup_window)
        refired = sum(group_pages(sandbox, resolved_at + 1).values())
    return {
        "victim": victim,
        "restart_before_resolve": restart_before_resolve,
        "kill_after": killed_at - started,
        "page_after": first_page - started if first_page else None,
        "pages": pages,
        "gaps": gaps,
        "survivor_gaps": survivor_gaps,
        "missing_in_store": missing,
        "resolved": resolved_at is not None,
        "refired": refired,
    }


def _wait_resolved(sandbox: Sandbox, since: int, timeout: float = 60) -> int | None:
    """The index of the first notification after `since` that resolves ALERT at /pager, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, record in enumerate(sandbox.notifications()[since:], start=since):
            if record["path"] == "/pager" and any(
                a["labels"].get("alertname") == ALERT and a["status"] == "resolved"
                for a in record["payload"].get("alerts", [])
            ):
                return index
        time.sleep(0.2)
    return None
