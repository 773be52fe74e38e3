"""Benchmark: fuzz the catalogue pipeline with generated documents (redline.testing.catalogue_fuzz).

    .venv/bin/python bench/catalogue_fuzz.py [--examples 10000] [--seed N]

Each document replaces one file of a copy of thresholds/; load -> validate -> render runs in memory (no
promtool). Every outcome must be a clean render or one CatalogueError whose message is one line naming
file, entry and field, within 5 s; anything else stops the run with hypothesis's shrunk example.
Reported: documents, outcomes (by kind of document and by the field refused), time per document.
Not a test: prints Markdown for bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from common import percentile, run  # bench/common.py; puts the repository on sys.path
from hypothesis import HealthCheck, Phase, given, seed, settings

from redline.testing.catalogue_fuzz import TIME_BOUND, catalogue_copy, documents, run_pipeline

FIELD_RE = re.compile(r"field '([^']*)'")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    args = parser.parse_args()
    outcomes: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = catalogue_copy(Path(tmp) / "thresholds")

        @seed(args.seed)
        @settings(
            max_examples=args.examples,
            deadline=timedelta(seconds=TIME_BOUND),
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(documents)
        def check(document: tuple[str, bytes]) -> None:
            outcome = run_pipeline(workdir, *document)
            outcomes[outcome.kind] += 1
            seconds.append(outcome.seconds)
            if outcome.kind == "refused":
                match = FIELD_RE.search(outcome.message)
                fields[(match.group(1) if match else "?").split("[")[0].split(".")[0]] += 1

        started = time.monotonic()
        check()
        elapsed = time.monotonic() - started
    total = sum(outcomes.values())
    print(f"seed {args.seed}: {total} documents in {elapsed:.0f} s, no crash, every refusal one line")
    print("\n| outcome | documents |\n|---|---|")
    for kind, count in outcomes.most_common():
        print(f"| {kind} | {count} ({100 * count / total:.1f}%) |")
    print("\n| refused at field (first part) | documents |\n|---|---|")
    for field, count in fields.most_common(12):
        print(f"| `{field}` | {count} |")
    print(
        f"\ntime per document: p50 {percentile(seconds, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(seconds, 0.99) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms "
        f"(bound {TIME_BOUND:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
