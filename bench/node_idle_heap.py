"""Record the heap of an idle Node 20 process with the documented prom-client instrumentation.

Runs docs/instrumenting/node.md's server.js (prom-client from tests/clients/node, `npm ci` by make setup)
without traffic, scrapes its /metrics every second for --seconds (default 600), and writes the heap gauges
to tests/clients/fixtures/node20-idle-heap.json. tests/clients/test_qerrors_node.py replays the recording
through the real rules with promtool (QerrorsHeapUsageHigh must stay silent) and prints how often the
seed's used / total would have crossed 70%.

    .venv/bin/python bench/node_idle_heap.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from redline.paths import ROOT
from redline.testing.processes import free_port, running
from redline.testing.snippets import write_snippets

NODE_DIR = ROOT / "tests" / "clients" / "node"
OUT = ROOT / "tests" / "clients" / "fixtures" / "node20-idle-heap.json"
NAMES = ("nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_heap_size_limit_bytes")


def heap_sample(url: str) -> dict[str, float]:
    """The three heap gauges of one scrape."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in NAMES:
            values[name] = float(value)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not (NODE_DIR / "node_modules" / "prom-client").is_dir():
        print(f"{NODE_DIR}/node_modules is missing: run 'make setup'", file=sys.stderr)
        return 1
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    prom_client = json.loads((NODE_DIR / "node_modules" / "prom-client" / "package.json").read_text())
    with tempfile.TemporaryDirectory(prefix="redline-node-idle-") as tmp:
        files = write_snippets(ROOT / "docs" / "instrumenting" / "node.md", Path(tmp))
        port = free_port()
        env = {"PORT": str(port), "NODE_PATH": str(NODE_DIR / "node_modules")}
        url = f"http://127.0.0.1:{port}/metrics"
        with running(["node", str(files["server.js"])], ready_url=url, env={**os.environ, **env}):
            samples = []
            start = time.monotonic()
            for second in range(args.seconds):
                time.sleep(max(0.0, start + second - time.monotonic()))
                values = heap_sample(url)
                samples.append([second, *(values[name] for name in NAMES)])
    over = sum(1 for _, used, total, _limit in samples if used / total > 0.7)
    worst = max(used / limit for _, used, _total, limit in samples)
    record = {
        "node": node_version.strip(),
        "prom_client": prom_client["version"],
        "seconds": args.seconds,
        "columns": ["second", *NAMES],
        "samples": samples,
    }
    args.out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"{node_version.strip()}, prom-client {prom_client['version']}, idle for {args.seconds} s:")
    print(f"  used / total above 0.7 in {over} of {len(samples)} scrapes (the seed's heapUsedPercent)")
    print(f"  used / limit at most {worst:.4f} (QerrorsHeapUsageHigh's signal; alerts above 0.7)")
    print(f"  written to {args.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
