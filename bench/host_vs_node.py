"""Benchmark: redline host exporter vs node_exporter on this machine, in one run; plus OTLP export cost.

    .venv/bin/python bench/host_vs_node.py [--scrapes 500] [--otlp-series 1000] [--otlp-runs 50]

Scrapes are interleaved (ours, node_exporter's, ours, ...) so both see the same machine state, the order
rotated every round. Reported: scrape wall time p50/p99, CPU seconds per scrape (the exporter process's
user+system time over the run divided by the scrapes), RSS after the run, and series per scrape. Two
passes over the same processes: plain scrapes (urllib: a new connection each, no Accept header, no gzip),
then Prometheus-style scrapes (one kept-alive connection per target, Prometheus 3's Accept header, gzip).
Then the OTLP bridge exports a registry of N series to a real vmagent; reported is the CPU time of the
exporting process per export.
Not a test: prints Markdown tables for bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping

import psutil
from common import (  # bench/common.py; puts the repository on sys.path
    ROOT,
    free_port,
    percentile,
    run,
    tool,
    wait_ready,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from redline.exporters.host.config import DEFAULT_ENABLED
from redline.exporters.process import freeze_startup_objects
from redline.telemetry.otlp_bridge import OtlpBridge, count_points

# the same collectors on both sides: redline's defaults, which are node_exporter's defaults that redline has
NODE_COLLECTORS = DEFAULT_ENABLED
# What Prometheus 3.x sends with its default scrape_protocols.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
Scrape = Callable[[], tuple[float, int]]


def count_series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def scrape(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read()
    elapsed = time.perf_counter() - started
    return elapsed, count_series(body)


def prometheus_style(url: str) -> Scrape:
    """Scrapes like Prometheus: one kept-alive connection, its Accept header, gzip."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}

    def scrape_once() -> tuple[float, int]:
        started = time.perf_counter()
        connection.request("GET", parts.path, headers=headers)
        resp = connection.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            sys.exit(f"{url}: HTTP {resp.status}")
        if resp.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return elapsed, count_series(body)

    return scrape_once


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def start_vmagent(tmp: str) -> tuple[subprocess.Popen, str]:
    """A real OTLP receiver (vmagent) that forwards nowhere; returns it and its OTLP URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            tool("vmagent"), f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.tmpDataPath={tmp}",
            "-remoteWrite.url=http://127.0.0.1:9/unused", "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/health")
    return proc, f"http://127.0.0.1:{port}/opentelemetry/v1/metrics"


def measure(targets: Mapping[str, tuple[subprocess.Popen, Scrape]], scrapes: int) -> list[dict]:
    """Warm up, then scrape the targets interleaved; per target: latency, CPU per scrape, RSS, series."""
    for _, scrape_once in targets.values():
        for _ in range(20):  # warm-up: caches, lazy imports, Go runtime
            scrape_once()
    before = {name: cpu_seconds(psutil.Process(proc.pid)) for name, (proc, _) in targets.items()}
    times: dict[str, list[float]] = {name: [] for name in targets}
    series: dict[str, int] = {}
    names = list(targets)
    for i in range(scrapes):
        # rotate the order every round: a scrape right after node_exporter's default one (the heaviest)
        # runs on colder caches, and no target should always be the one that follows it
        for name in names[i % len(names) :] + names[: i % len(names)]:
            elapsed, series[name] = targets[name][1]()
            times[name].append(elapsed)
    results = []
    for name, (proc, _) in targets.items():
        p = psutil.Process(proc.pid)
        results.append({
            "name": name,
            "p50_ms": statistics.median(times[name]) * 1000,
            "p99_ms": percentile(times[name], 0.99) * 1000,
            "cpu_ms_per_scrape": (cpu_seconds(p) - before[name]) / scrapes * 1000,
            "rss_mb": p.memory_info().rss / 2**20,
            "series": series[name],
        })  # fmt: skip
    return results


def bench_scrapes(scrapes: int, otlp_url: str, textfiles: str) -> tuple[list[dict], list[dict]]:
    # both read the same (empty) textfile directory; Debian's node_exporter defaults to a missing one
    ours = [
        sys.executable,
        "-m",
        "redline.cli",
        "exporter",
        "host",
        "--listen",
        "127.0.0.1:{port}",
        "--collector.textfile.directory",
        textfiles,
    ]
    same = len(NODE_COLLECTORS)
    targets = {
        f"redline host exporter ({same} collectors)": ours,
        "redline host exporter + OTLP push every 1 s": [
            *ours, "--otlp-endpoint", otlp_url, "--otlp-interval", "1",
        ],
        f"node_exporter (same {same} collectors)": [
            tool("node_exporter"), "--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
            *(f"--collector.{c}" for c in NODE_COLLECTORS), f"--collector.textfile.directory={textfiles}",
        ],
        "node_exporter (defaults)": [
            tool("node_exporter"), "--web.listen-address=127.0.0.1:{port}",
            f"--collector.textfile.directory={textfiles}",
        ],
    }  # fmt: skip
    running = {}
    try:
        for name, cmd in targets.items():
            port = free_port()
            proc = subprocess.Popen(
                [part.format(port=port) for part in cmd], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            running[name] = (proc, f"http://127.0.0.1:{port}/metrics")
        for _, url in running.values():
            wait_ready(url)
        plain = {name: (proc, functools.partial(scrape, url)) for name, (proc, url) in running.items()}
        prometheus = {name: (proc, prometheus_style(url)) for name, (proc, url) in running.items()}
        return measure(plain, scrapes), measure(prometheus, scrapes)
    finally:
        for proc, _ in running.values():
            proc.terminate()
            proc.wait(timeout=10)


def bench_otlp(series: int, runs: int) -> dict:
    registry = CollectorRegistry()
    # a realistic mix: counters, gauges and one labelled histogram (12 buckets + sum + count per series)
    hist_children = max(1, series // 10 // 14)
    counters = Counter("bench_requests_total", "Requests.", ["route", "code"], registry=registry)
    gauges = Gauge("bench_queue_depth", "Queue depth.", ["queue"], registry=registry)
    histogram = Histogram(
        "bench_duration_seconds", "Latency.", ["route"], registry=registry,
        buckets=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    )  # fmt: skip
    for i in range(hist_children):
        histogram.labels(f"/r{i}").observe(0.1 * i)
    remaining = series - hist_children * 14
    for i in range(remaining // 2):
        counters.labels(f"/r{i}", "200").inc(i)
    for i in range(remaining - remaining // 2):
        gauges.labels(f"q{i}").set(i)
    with tempfile.TemporaryDirectory() as tmp:
        vmagent, otlp_url = start_vmagent(tmp)
        try:
            bridge = OtlpBridge(registry, service_name="bench", endpoint=otlp_url)
            points = count_points(bridge.snapshot())
            exported_series = points + hist_children * 13  # each histogram point is 14 Prometheus series
            for _ in range(5):
                assert bridge.export_once(), "vmagent refused the export"
            freeze_startup_objects()  # as the exporters do once they serve
            cpu, convert_cpu = [], []
            for _ in range(runs):
                started = time.process_time()
                bridge.snapshot()
                convert_cpu.append(time.process_time() - started)
                started = time.process_time()
                ok = bridge.export_once()
                cpu.append(time.process_time() - started)
                assert ok
        finally:
            vmagent.terminate()
            vmagent.wait(timeout=10)
    return {
        "series": exported_series,
        "export_cpu_ms_p50": statistics.median(cpu) * 1000,
        "export_cpu_ms_max": max(cpu) * 1000,
        "convert_cpu_ms_p50": statistics.median(convert_cpu) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--otlp-series", type=int, default=1000)
    parser.add_argument("--otlp-runs", type=int, default=50)
    args = parser.parse_args()
    memory = psutil.virtual_memory().total / 2**30
    print(f"machine: {os.cpu_count()} CPUs, {memory:.1f} GiB, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        vmagent, otlp_url = start_vmagent(tmp)
        try:
            textfiles = os.path.join(tmp, "textfile")
            os.mkdir(textfiles)
            plain, prometheus = bench_scrapes(args.scrapes, otlp_url, textfiles)
        finally:
            vmagent.terminate()
            vmagent.wait(timeout=10)
    for title, results in [
        ("plain scrapes (urllib: new connection, no Accept header, no gzip)", plain),
        ("Prometheus-style scrapes (kept-alive connection, Prometheus 3 Accept header, gzip)", prometheus),
    ]:
        print(f"\n{args.scrapes} {title}, interleaved\n")
        print("| exporter | scrape p50 | scrape p99 | CPU per scrape | RSS | series |")
        print("|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['name']} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                f"| {r['cpu_ms_per_scrape']:.2f} ms | {r['rss_mb']:.1f} MB | {r['series']} |"
            )
    o = bench_otlp(args.otlp_series, args.otlp_runs)
    print(f"\nOTLP export of {o['series']} series (http/protobuf to vmagent), {args.otlp_runs} runs\n")
    print("| step | CPU time p50 | CPU time max |")
    print("|---|---|---|")
    print(f"| snapshot -> OTLP data model | {o['convert_cpu_ms_p50']:.2f} ms | |")
    p50, worst = o["export_cpu_ms_p50"], o["export_cpu_ms_max"]
    print(f"| export_once (snapshot, encode, send) | {p50:.2f} ms | {worst:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
