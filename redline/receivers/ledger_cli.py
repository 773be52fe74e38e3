"""`redline ledger`: the alert ledger's figures as a table or JSON (the console shows the same)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from redline.generate.model import parse_duration
from redline.paths import ledger_url
from redline.receivers.ledger import Ledger, LedgerError, as_json, iter_table

PROG = "redline ledger"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Per alert, over the last --since: pages and tickets (per week), firing episodes, the "
        "most episodes in one day (flapping), the median time to resolve, and episodes that resolved "
        "without anyone acknowledging or silencing them; noisiest first. Read from the ledger the "
        "pager-sink writes (every notification Alertmanager sent it).",
    )
    parser.add_argument(
        "--ledger", metavar="URL", help="default: the run folder's (REDLINE_RUN_DIR or .run/)"
    )
    parser.add_argument(
        "--since", default="7d", help="how far back, a duration such as 24h or 30d (default 7d)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def main(argv: list[str]) -> int:
    """Print the figures; 2 for a bad argument or a ledger that cannot be opened."""
    args = _parser().parse_args(argv)
    try:
        window = parse_duration(args.since)
        ledger = Ledger(args.ledger or ledger_url())
    except (ValueError, LedgerError, OSError) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    now = time.time()
    try:
        figures = ledger.figures(now - window, now + 1)
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(as_json(figures), indent=2))
    else:
        for line in iter_table(figures):
            print(line)
    return 0
