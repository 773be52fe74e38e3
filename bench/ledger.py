"""The alert ledger at 10,000 notifications: time to store them, and to compute the weekly figures.

    .venv/bin/python bench/ledger.py [--notifications 10000] [--alerts 40] [--weeks 4] [--runs 5]

A synthetic month of notifications (firing and resolved, pages and tickets, some flapping alerts, some
acknowledged) is written into a fresh SQLite ledger one notification at a time, as the pager-sink does,
then `Ledger.figures` (what `redline ledger` and the console's history page show) is computed over the
whole period. Goal (issue 18): 10,000 notifications stored and the weekly figures in under 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import percentile

from redline.receivers.ledger import Action, Ledger
from redline.testing.notifications import notification

WEEK = 7 * 86400


def synthetic(count: int, alerts: int, weeks: int, seed: int = 7) -> list[tuple[str, dict, float]]:
    """(receiver, payload, received_at) of `count` notifications: each episode a firing and a resolved one."""
    rng = random.Random(seed)
    start = time.time() - weeks * WEEK
    out: list[tuple[str, dict, float]] = []
    while len(out) < count:
        index = rng.randrange(alerts)
        receiver = "pager" if index % 4 == 0 else "ticket"
        begin = start + rng.random() * weeks * WEEK
        end = begin + rng.expovariate(1 / 900)
        name = f"BenchAlert{index}"
        fingerprint = f"fp-{index}-{rng.randrange(5)}"
        labels = {"instance": f"host-{rng.randrange(5)}"}
        out.append(
            (receiver, notification(receiver, name, "firing", begin, None, fingerprint, **labels), begin + 1)
        )
        out.append(
            (receiver, notification(receiver, name, "resolved", begin, end, fingerprint, **labels), end + 1)
        )
    return out[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=40)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = synthetic(args.notifications, args.alerts, args.weeks)
    store, compute = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
            began = time.perf_counter()
            for receiver, payload, received_at in data:
                ledger.record(receiver, payload, received_at)
            store.append(time.perf_counter() - began)
            for receiver, payload, _at in data[::50]:
                alert = payload["alerts"][0]
                ledger.act(Action("ack", alert["fingerprint"], None, "bench", receiver, time.time()))
            began = time.perf_counter()
            figures = ledger.figures(0, time.time() + 1)
            compute.append(time.perf_counter() - began)
            assert ledger.count() == args.notifications
            ledger.close()
    print(f"{args.notifications} notifications, {len(figures)} alerts, {args.weeks} weeks, {args.runs} runs:")
    each = statistics.median(store) / args.notifications * 1e6
    print(f"store (one transaction per notification): median {statistics.median(store):.3f} s, ", end="")
    print(f"worst {max(store):.3f} s ({each:.0f} us each)")
    print(
        f"weekly figures over the whole period: median {statistics.median(compute) * 1000:.0f} ms, ", end=""
    )
    print(f"p95 {percentile(compute, 0.95) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
