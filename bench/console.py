"""The console's pages with the stack idle: load time of an alert's page and of the Now page.

    .venv/bin/python bench/console.py [--loads 50] [--warmup 5] [--settle 60]

Runs the services the console needs (`redline up --only=prometheus,alertmanager,pager-sink,console,demo`
on free ports, rules rendered with `--for-override 0s`), leaves it idle for `--settle` seconds (so the
alert's signal has history before the fault), turns on one demo fault (tmux memory-critical:
TmuxMonitorMemoryHigh fires, critical, its warning inhibited), waits until Alertmanager holds the alert
and 10 s more (a firing interval to shade). Then, with nothing else going on, it GETs the alert's page
(`/alert?LABELS`: Alertmanager's groups and Prometheus' alerts to find it, its signal and firing
intervals from `query_range`, the SVG chart, the runbook section, the silence form) and the Now page
(`/`) `--loads` times each, interleaved, after `--warmup` loads of each, as a browser would: one
kept-alive connection with the stack's basic auth. Each load is timed from the request to the last byte
of the body (the whole HTML). Goal (issue 18): the page of an alert loads in under 300 ms, p95 of 50
loads.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path

from common import BenchError, percentile, run, wait  # bench/common.py; puts the repository on sys.path

from redline import credentials
from redline.testing.sandbox import Sandbox, render_rules

SERVICES = ["prometheus", "alertmanager", "pager-sink", "console", "demo"]
ALERT = "TmuxMonitorMemoryHigh"
GOAL_MS = 300.0


def load(conn: http.client.HTTPConnection, path: str, auth: str) -> tuple[float, bytes]:
    """(seconds, body) of one GET of the whole page; BenchError unless 200."""
    began = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": auth})
    response = conn.getresponse()
    body = response.read()
    took = time.perf_counter() - began
    if response.status != 200:
        raise BenchError(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
    return took, body


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--loads", type=int, default=50, help="measured loads of each page (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="loads of each page not measured (default 5)")
    parser.add_argument("--settle", type=float, default=60, help="idle seconds before the fault (default 60)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        rules = render_rules("0s", Path(tmp))
        print("==> starting prometheus, alertmanager, pager-sink, console and the demo", flush=True)
        with Sandbox(rules_dir=rules, only=SERVICES) as stack:
            wait(lambda: stack.query('up{job="tmux-monitor"} == 1'), 60, "the tmux monitor scraped")
            stack.wait_sending_to_alertmanager()
            time.sleep(args.settle)
            stack.fault("tmux", "memory-critical")
            held = wait(
                lambda: [
                    a
                    for a in stack.alertmanager_alerts()
                    if a["labels"].get("alertname") == ALERT and a["labels"].get("severity") == "critical"
                ],
                60,
                f"{ALERT} (critical) in Alertmanager",
            )
            labels = held[0]["labels"]  # type: ignore[index]
            time.sleep(10)
            alert_path = "/alert?" + urllib.parse.urlencode(sorted(labels.items()))
            password = stack.credentials.web_password
            auth = "Basic " + base64.b64encode(f"{credentials.USER}:{password}".encode()).decode()
            conn = http.client.HTTPConnection("127.0.0.1", stack.port("console"), timeout=30)
            pages = {"alert": alert_path, "now": "/"}
            timings: dict[str, list[float]] = {name: [] for name in pages}
            bodies: dict[str, bytes] = {}
            try:
                for _ in range(args.warmup):
                    for path in pages.values():
                        load(conn, path, auth)
                for _ in range(args.loads):
                    for name, path in pages.items():
                        took, bodies[name] = load(conn, path, auth)
                        timings[name].append(took)
            finally:
                conn.close()
            body = bodies["alert"].decode()
            for what in ("<svg", 'class="firing"', "above its 500 MB target", 'name="matchers"'):
                if what not in body:
                    raise BenchError(f"the alert's page lacks {what!r}")
            samples = wait(
                lambda: stack.query('count_over_time(process_resident_memory_bytes{job="tmux-monitor"}[3h])'),
                10,
                "the signal's samples",
            )
            stack.fault("tmux", "memory-critical", active=False)
    age = float(samples[0]["value"][1])  # type: ignore[index]
    print(f"\nalert page: {alert_path}")
    print(f"stack idle but for the fault; the signal was {age:.0f} s old (1 s scrape) when measured")
    print("\n| page | loads | p50 | p95 | max | mean | size |")
    print("|---|---|---|---|---|---|---|")
    for name, values in timings.items():
        ms = [v * 1000 for v in values]
        print(
            f"| {name} | {len(ms)} | {statistics.median(ms):.0f} ms | {percentile(ms, 0.95):.0f} ms | "
            f"{max(ms):.0f} ms | {statistics.mean(ms):.0f} ms | {len(bodies[name]) / 1024:.0f} KiB |"
        )
    p95 = percentile([v * 1000 for v in timings["alert"]], 0.95)
    verdict = "met" if p95 < GOAL_MS else "NOT met"
    print(f"\nGoal: an alert's page p95 < {GOAL_MS:.0f} ms: {verdict} ({p95:.0f} ms)")
    return 0 if p95 < GOAL_MS else 1


if __name__ == "__main__":
    raise SystemExit(run(main))
