"""The HA pair under faults: pages lost or duplicated when a replica dies, samples lost while the store
is away.

    flock /tmp/redline-heavy.lock .venv/bin/python bench/scale_ha.py [--runs 20] [--outage 120]

One `redline up --scale` on free ports (two Prometheus replicas remote-writing into VictoriaMetrics,
three clustered Alertmanagers, the demo; rules rendered with `for: 3s`, Alertmanager's group timers
capped at 5 s, as tests/e2e/test_scale.py). Then:
- --runs incidents (the demo's qerrors `down`, which pages QerrorsDown), each with one replica
  SIGKILLed (A and B in turn) 1, 3 or 5 s after the fault (before the alert fires, around the page,
  after it) and started again before the incident ends: pages per group at the pager-sink (1
  expected: 0 is lost, 2+ duplicated), pages again after the resolve, and the longest gap of the
  incident's series in the store;
- --late-restarts incidents in which the killed replica starts again only after the incident ended
  (a replica down for longer): the pages again after the resolve (docs/scale.md explains them);
- the store stopped for --outage seconds while everything scrapes, then started: the time until the
  replicas' remote-write queues have replayed, and the samples in the store against the samples the
  replicas scraped over the window (per series, one per dedup interval).
Not a test: prints Markdown for bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import run  # bench/common.py; puts the repository on sys.path

from redline import durations, storage
from redline.testing import scale_ha
from redline.testing.processes import wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules

GROUP_TIMER = "5s"


def outage(stack: Sandbox, seconds: float, selector: str) -> dict[str, float]:
    start = float(int(time.time()) + 1)
    time.sleep(3)
    stack.halt(storage.LONG_TERM)  # an orderly stop (a SIGKILL loses what it had not flushed)
    time.sleep(seconds)
    stack.start(storage.LONG_TERM)
    back = time.time()
    time.sleep(3)
    end = float(int(time.time()))
    scraped: dict = {}
    stored: dict = {}
    replayed = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        scraped = {}
        for replica in scale_ha.REPLICAS:
            for key, ts in scale_ha.scraped_samples(stack, replica, selector, start, end).items():
                scraped.setdefault(key, []).extend(ts)
        stored = scale_ha.store_samples(stack, selector, start, end)
        if all(len(stored.get(k, [])) == len(scale_ha.dedup_buckets(ts)) for k, ts in scraped.items()):
            replayed = time.time() - back
            break
        time.sleep(1)
    expected = sum(len(scale_ha.dedup_buckets(ts)) for ts in scraped.values())
    return {
        "series": len(scraped),
        "scraped_a_b": sum(len(ts) for ts in scraped.values()),
        "expected": expected,
        "stored": sum(len(ts) for ts in stored.values()),
        "missing_series": len(set(scraped) - set(stored)),
        "replayed_after": replayed if replayed is not None else float("nan"),
        "window": end - start,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="incidents with a replica killed (20)")
    parser.add_argument("--outage", type=float, default=120, help="seconds the store is stopped (120)")
    parser.add_argument(
        "--late-restarts",
        type=int,
        default=4,
        help="further incidents in which the killed replica starts again only after the incident ended (4)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redline-scale-ha-") as tmp:
        rules = render_rules("3s", Path(tmp) / "rendered")
        am = alertmanager_config_with_timers(Path(tmp) / "alertmanager.yml", GROUP_TIMER, GROUP_TIMER)
        with Sandbox(rules_dir=rules, alertmanager_config=am, scale=True) as stack:
            wait_until(
                lambda: scale_ha.store_series(stack, 'up{job="qerrors"}'), 60, what="the store receiving"
            )
            rounds = []
            for index in range(args.runs):
                victim = scale_ha.REPLICAS[index % 2]
                kill_after = 1.0 + 2.0 * (index % 3)
                result = scale_ha.kill_round(stack, victim, kill_after, durations.seconds(GROUP_TIMER) + 3)
                rounds.append(result)
                print(f"    run {index + 1}: {result}", flush=True)
            late = []
            for index in range(args.late_restarts):
                victim = scale_ha.REPLICAS[index % 2]
                result = scale_ha.kill_round(
                    stack, victim, 3.0, durations.seconds(GROUP_TIMER) + 3, restart_before_resolve=False
                )
                late.append(result)
                print(f"    late restart {index + 1}: {result}", flush=True)
            print(f"==> the store stopped for {args.outage:.0f}s", flush=True)
            gap = outage(stack, args.outage, '{job="gamebook"}')
    pages = [r["pages"].get("production", 0) for r in rounds]
    lost = sum(1 for p in pages if p == 0)
    duplicated = sum(p - 1 for p in pages if p > 1)
    refired = sum(r["refired"] or 0 for r in rounds)
    unresolved = sum(1 for r in rounds if not r["resolved"])
    worst_gap = max((g for r in rounds for g in r["gaps"].values()), default=float("nan"))
    delays = sorted(r["page_after"] for r in rounds if r["page_after"] is not None)
    print("\n| figure | value |\n|---|---|")
    print(
        f"| incidents with a replica SIGKILLed (A and B in turn, 1/3/5 s after the fault) | {len(rounds)} |"
    )
    print(f"| pages lost (no page for the group) | {lost} |")
    print(f"| pages duplicated (more than one firing page per group) | {duplicated} |")
    print(f"| pages again after the resolve | {refired} |")
    print(f"| incidents not resolved within 60 s | {unresolved} |")
    spread = f"{delays[0]:.1f} / {delays[len(delays) // 2]:.1f} / {delays[-1]:.1f} s" if delays else "-"
    print(f"| fault to page, min / median / max | {spread} |")
    print(f"| longest gap of the incident's series in the store | {worst_gap:.1f} s |")
    late_pages = sum(r["pages"].get("production", 0) for r in late)
    late_refired = sum(r["refired"] or 0 for r in late)
    print(
        f"| killed replica started only after the incident ended: incidents / pages / pages again "
        f"after the resolve | {len(late)} / {late_pages} / {late_refired} |"
    )
    window = f"{args.outage:.0f} s, window {gap['window']:.0f} s, {gap['series']} series of job gamebook"
    print(f"| store stopped | {window} |")
    counts = f"{gap['scraped_a_b']} / {gap['expected']} / {gap['stored']}"
    print(f"| samples scraped by A and B / expected after dedup / in the store | {counts} |")
    print(f"| series missing from the store | {gap['missing_series']} |")
    print(f"| store complete again after its restart | {gap['replayed_after']:.1f} s |")
    return 0 if lost == duplicated == gap["missing_series"] == 0 and gap["expected"] == gap["stored"] else 1


if __name__ == "__main__":
    sys.exit(run(main))
