"""Benchmark: pages lost and duplicated when the notifying Alertmanager peer crashes around its page.

    .venv/bin/python bench/alertmanager_ha.py [--rounds 50] [--before 0.15] [--after 0.45]

The real three-peer cluster of `redline up --ha` (redline.testing.sandbox.Sandbox, Alertmanagers and the
pager-sink only, the shipped alertmanager.yml). Each round posts a fresh critical alert (its own group:
`env` is the round) to all three peers at once, as Prometheus does, and SIGKILLs am-1, the peer that
notifies, at a chosen moment around its notification: the moments are spread evenly from `--before`
seconds before to `--after` seconds after the page time measured in calibration rounds, in a shuffled
order. Then it waits for every peer's turn (2 x --cluster.peer-timeout and a margin), counts the firing
pages of that group at the sink's /pager, starts am-1 again and waits until the cluster of three has
settled. A round with no page lost it, a round with two or more duplicated it. Reported per round: the
kill time relative to the first page's arrival at the sink, pages, and which peers sent them.
Not a test: prints Markdown tables for bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from collections import Counter
from typing import Any

from common import BenchError, percentile, run  # bench/common.py; puts the repository on sys.path

from redline.stack.services import AM_PEER_NAMES
from redline.testing.alertmanager_ha import NOTIFIER, PEERS, one_round, wait_settled
from redline.testing.sandbox import Sandbox


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=50, help="rounds with a kill (default 50)")
    parser.add_argument("--calibration", type=int, default=5, help="rounds without a kill first")
    parser.add_argument("--before", type=float, default=0.15, help="earliest kill: s before the page")
    parser.add_argument("--after", type=float, default=0.45, help="latest kill: s after the page")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    run_id = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    only = [*PEERS, "pager-sink"]
    with Sandbox(ha=True, only=only) as sandbox:
        wait_settled(sandbox)
        calibration = [one_round(sandbox, f"cal-{run_id}-{n}", None) for n in range(args.calibration)]
        delays = [r["page_after_post"] for r in calibration if r["page_after_post"] is not None]
        if len(delays) != args.calibration or any(r["pages"] != 1 for r in calibration):
            raise BenchError(f"calibration rounds without a kill did not page exactly once: {calibration}")
        page_delay = percentile(delays, 0.5)
        print(f"calibration: {args.calibration} rounds, no kill, page {page_delay:.3f} s after the post")
        steps = max(1, args.rounds - 1)
        offsets = [-args.before + (args.before + args.after) * i / steps for i in range(args.rounds)]
        random.Random(args.seed).shuffle(offsets)
        results = []
        for n, offset in enumerate(offsets):
            result = one_round(sandbox, f"ha-{run_id}-{n}", page_delay + offset)
            result["planned"] = offset
            results.append(result)
            print(json.dumps(result), flush=True)
    report(results, page_delay, args)
    return 0


def report(results: list[dict[str, Any]], page_delay: float, args: argparse.Namespace) -> None:
    lost = [r for r in results if r["pages"] == 0]
    duplicated = [r for r in results if r["pages"] > 1]
    span = f"{args.before:g} s before to {args.after:g} s after its page"
    print(f"\n{len(results)} rounds, am-1 killed {span}\n")
    print("| am-1 killed | rounds | lost | duplicated | pages sent by |")
    print("|---|---|---|---|---|")
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        rows.setdefault(_when(r), []).append(r)
    for name in sorted(rows, key=_order):
        group = rows[name]
        senders = Counter("+".join(r["senders"]) or "nobody" for r in group)
        print(
            f"| {name} | {len(group)} | {sum(r['pages'] == 0 for r in group)} "
            f"| {sum(r['pages'] > 1 for r in group)} "
            f"| {', '.join(f'{k} ({v})' for k, v in sorted(senders.items()))} |"
        )
    print(f"\npages lost: {len(lost)} of {len(results)}; duplicated: {len(duplicated)} of {len(results)}")
    if duplicated:
        after = [r["kill_minus_page"] * 1000 for r in duplicated]
        gaps = [r["gap"] for r in duplicated]
        print(
            f"duplicated when am-1 died {min(after):.0f}-{max(after):.0f} ms after its page arrived; "
            f"the second page came {min(gaps):.2f}-{max(gaps):.2f} s after the first"
        )
    once = [r["kill_minus_page"] * 1000 for r in results if r["pages"] == 1 and _sent_first(r)]
    if once:
        print(f"one page when am-1 died {min(once):.0f} ms or more after its page (rounds where it had sent)")
    print(f"calibrated page time: {page_delay:.3f} s after the post (pager route group_wait 1s)")


BUCKETS_MS = (5, 10, 20, 50, 100, 250)


def _sent_first(result: dict[str, Any]) -> bool:
    return bool(result["senders"]) and result["senders"][0] == AM_PEER_NAMES[NOTIFIER]


def _when(result: dict[str, Any]) -> str:
    """The row of a round: before am-1's page, or how long after it reached the sink."""
    if not _sent_first(result):
        return "before its page went out"
    after = result["kill_minus_page"] * 1000
    if after < 0:
        return "while its page was in flight"
    low = 0
    for high in BUCKETS_MS:
        if after < high:
            return f"{low}-{high} ms after its page arrived"
        low = high
    return f"{low} ms or more after its page arrived"


def _order(name: str) -> float:
    if name.startswith("before"):
        return -2
    if name.startswith("while"):
        return -1
    return float(name.split("-")[0].split()[0])


if __name__ == "__main__":
    sys.exit(run(main))
