"""Benchmark: many clients opening new connections to the host exporter at once (backlog and threads).

    .venv/bin/python bench/exporter_connections.py [--clients 50] [--seconds 30] [--tree DIR]

Starts the redline host exporter (all default collectors, as bench/host_vs_node.py does), then
`--clients` threads each scrape /metrics in a closed loop for `--seconds`, every scrape on a new
connection (`Connection: close`, as curl or a blackbox probe does). Reported: scrapes, connection errors
(refused, reset, timed out, anything but HTTP 200), latency p50/p99/max from connect to the last byte,
the exporter's peak thread count (sampled every 50 ms from /proc) and the kernel's listen-queue overflows
and drops over the run (TcpExt ListenOverflows/ListenDrops of /proc/net/netstat: machine-wide, so run it
on an otherwise quiet machine). `--tree` runs the exporter of another checkout (e.g. `git archive` of an
older commit) with this script's clients, for a before/after comparison.
Not a test: prints Markdown for bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import ROOT, free_port, percentile, run, wait_ready  # bench/common.py


def listen_drops() -> dict[str, int]:
    """TcpExt ListenOverflows and ListenDrops of this machine, from /proc/net/netstat."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
            return {key: table[key] for key in ("ListenOverflows", "ListenDrops")}
    return {"ListenOverflows": 0, "ListenDrops": 0}


def client(port: int, until: float, times: list[float], errors: list[str]) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/metrics", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status}")
                continue
            times.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as err:
            errors.append(type(err).__name__)
        finally:
            connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose exporter runs")
    args = parser.parse_args()
    tree = args.tree.resolve()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "redline.cli", "exporter", "host", "--listen", f"127.0.0.1:{port}",
             "--collector.textfile.directory", tmp],
            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_ready(f"http://127.0.0.1:{port}/metrics")
            process = psutil.Process(exporter.pid)
            times: list[float] = []
            errors: list[str] = []
            threads_seen = [process.num_threads()]
            drops_before = listen_drops()
            until = time.monotonic() + args.seconds
            clients = [
                threading.Thread(target=client, args=(port, until, times, errors))
                for _ in range(args.clients)
            ]
            for thread in clients:
                thread.start()
            while any(thread.is_alive() for thread in clients):
                threads_seen.append(process.num_threads())
                time.sleep(0.05)
            drops = {key: value - drops_before[key] for key, value in listen_drops().items()}
        finally:
            exporter.terminate()
            exporter.wait(timeout=10)
    kinds = {kind: errors.count(kind) for kind in sorted(set(errors))}
    print(f"tree: {tree}\n{args.clients} clients, new connection per scrape, {args.seconds:g} s\n")
    print("| scrapes | connection errors | p50 | p99 | max | peak threads | listen overflows, drops |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {len(times)} ({len(times) / args.seconds:.0f}/s) | {len(errors)} {kinds or ''} "
        f"| {percentile(times, 0.5) * 1000:.0f} ms | {percentile(times, 0.99) * 1000:.0f} ms "
        f"| {max(times) * 1000:.0f} ms | {max(threads_seen)} "
        f"| {drops['ListenOverflows']}, {drops['ListenDrops']} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
