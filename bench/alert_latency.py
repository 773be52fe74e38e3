"""Alert latency: from a fault that makes a critical alert's condition true to the page at the pager-sink.

    .venv/bin/python bench/alert_latency.py [--runs 24]

Runs the native stack (`redline up` on free ports, every service) with the shipped prometheus.yml and
alertmanager.yml, and the catalogue's rules rendered with `--for-override 0s`: the measured time is the
pipeline's own latency, without the alert's `for` hold time (a shipped alert pages `for` later).

Each run turns one demo fault on and waits for its page at the pager-sink's /pager. The runs rotate
over six critical alerts in six different Alertmanager groups, and an alert is used again only after
its previous group has been resolved, so every page is a group's first notification (group_wait) and
not an update (group_interval); each fault is injected at a random phase of the 1 s scrape and
evaluation ticks. Per run, with the clocks of this one machine:
- detection   = the alert's startsAt (the evaluation that found the condition true) - fault injected
- notification = the pager-sink's received_at - startsAt
- total       = received_at - fault injected
Not a test: prints the settings and a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from common import ROOT, percentile, run, wait  # bench/common.py; puts the repository on sys.path

from redline.testing.sandbox import Sandbox, render_rules


@dataclass(frozen=True)
class Case:
    system: str  # demo system
    fault: str
    alert: str  # the critical alert it pages
    labels: tuple[tuple[str, str], ...] = ()
    down_alert: str = ""  # the *Down alert of the same system that would inhibit it


CASES = [
    Case("tmux", "unhealthy", "TmuxMonitorDown"),
    Case("gamebook", "down", "GamebookDown"),
    Case("qerrors", "down", "QerrorsDown", (("env", "production"),)),
    Case("pipeline", "down", "PipelineApiDown"),
    Case("qerrors-staging", "down", "QerrorsDown", (("env", "staging"),)),
    Case("tmux", "memory-critical", "TmuxMonitorMemoryHigh", (("severity", "critical"),), "TmuxMonitorDown"),
]


def parse_time(text: str) -> float:
    """RFC 3339 (Alertmanager's startsAt, the sink's received_at) -> Unix seconds."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Go prints up to nine fractional digits; Python reads six
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    return dt.datetime.fromisoformat(text).timestamp()


def settings() -> dict[str, str]:
    """The shipped timing settings that bound the latency."""
    prom = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    am = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    pager = next(r for r in am["route"]["routes"] if r.get("receiver") == "pager")
    jobs = {
        c["job_name"]: c.get("scrape_interval", prom["global"]["scrape_interval"])
        for c in prom["scrape_configs"]
    }
    return {
        "scrape_interval (demo systems, blackbox)": jobs["tmux-monitor"],
        "evaluation_interval": prom["global"]["evaluation_interval"],
        "pager group_wait": pager["group_wait"],
        "pager group_interval": pager["group_interval"],
        "alert rules 'for'": "0s (--for-override; shipped values are added on top)",
    }


def measure(stack: Sandbox, case: Case, pending_resolve: dict[Case, int]) -> tuple[float, float, float]:
    labels = dict(case.labels)
    if case in pending_resolve:  # the alert's previous group must be gone, or this would be an update
        stack.wait_for_notification(
            "/pager", case.alert, status="resolved", timeout=90, since=pending_resolve.pop(case), **labels
        )
    wait(lambda: not stack.alert_firing(case.alert, **labels), 60, f"{case.alert} inactive")
    if case.down_alert:
        wait(lambda: not stack.alert_firing(case.down_alert), 60, f"{case.down_alert} inactive")
    # A random phase against the 1 s scrape and evaluation ticks, so that the runs sample all of it.
    time.sleep(random.uniform(0.0, 1.0))
    since = len(stack.notifications())
    injected = time.time()
    stack.fault(case.system, case.fault)
    try:
        record, alert = stack.wait_for_notification("/pager", case.alert, timeout=60, since=since, **labels)
    finally:
        stack.fault(case.system, case.fault, active=False)
    pending_resolve[case] = since
    starts, received = parse_time(alert["startsAt"]), parse_time(record["received_at"])
    return starts - injected, received - starts, received - injected


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=24, help="measured pages (default 24, at least 20)")
    args = parser.parse_args()
    shipped = settings()
    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        rules = render_rules("0s", Path(tmp))
        print("==> starting the native stack (shipped prometheus.yml and alertmanager.yml)", flush=True)
        with Sandbox(rules_dir=rules) as stack:
            stack.wait_sending_to_alertmanager()
            wait(lambda: len(stack.query("up == 1")) >= 14, 60, "every target up")
            results: dict[str, list[tuple[float, float, float]]] = {}
            pending: dict[Case, int] = {}
            for run in range(args.runs):
                case = CASES[run % len(CASES)]
                detection, notification, total = measure(stack, case, pending)
                key = f"{case.alert} ({case.system} {case.fault})"
                results.setdefault(key, []).append((detection, notification, total))
                print(
                    f"    run {run + 1:>2}/{args.runs}  {key:<50} detection {detection:5.2f}s  "
                    f"notification {notification:5.2f}s  total {total:5.2f}s",
                    flush=True,
                )
    print("\nSettings:")
    for name, value in shipped.items():
        print(f"- {name}: {value}")
    every = [r for runs in results.values() for r in runs]
    print("\n| alert (fault) | runs | detection p50 | notification p50 | total p50 | total p95 | total max |")
    print("|---|---|---|---|---|---|---|")
    for key, runs in [*results.items(), ("all", every)]:
        det, notif, totals = ([r[i] for r in runs] for i in range(3))
        print(
            f"| {key} | {len(runs)} | {statistics.median(det):.2f} s | {statistics.median(notif):.2f} s | "
            f"{statistics.median(totals):.2f} s | {percentile(totals, 0.95):.2f} s | {max(totals):.2f} s |"
        )
    p95 = percentile([r[2] for r in every], 0.95)
    verdict = "met" if p95 < 5.0 else "NOT met"
    print(f"\nGoal (job pipeline: detection and notification < 5 s): {verdict}, p95 {p95:.2f} s")
    return 0 if p95 < 5.0 else 1


if __name__ == "__main__":
    sys.exit(run(main))
