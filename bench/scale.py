"""Scale: the shipped rules over hundreds of monitored instances and hosts, and /metrics at 10k series.

    .venv/bin/python bench/scale.py [--instances 1,250] [--agents 200] [--seconds 90]

For each size N in --instances, in one run: N simulated tmux-orchestrator monitors (the demo's
TmuxMonitor, each covering --agents agents, each its own scrape target with the tmux metric contract)
and N hosts (each target serves one real redline host-exporter scrape of this machine, collected again
every 5 s: the exporters of real hosts run on those hosts, and N of them collecting here would measure
this 2-core machine's saturation, not Prometheus), served by worker processes, scraped by a real
Prometheus that runs the repository's prometheus.yml (1 s scrape of the monitors, 5 s of hosts, 1 s
evaluation) and every rule in prometheus/rules/. After --seconds:
- rule evaluation time per group (prometheus_rule_group_last_duration_seconds, mean and max over the
  last minute) and missed iterations;
- scrape time per target as Prometheus measures it (scrape_duration_seconds, p50 and p99 over targets);
- Prometheus memory (process_resident_memory_bytes, Go heap in use) and its head series.
Then, in this process: GET /metrics of one instrumented service (redline.telemetry.instrument over the
repository's HTTP layer) holding about 10,000 series, p50 and p99 over 100 scrapes, beside the text
exposition alone (prometheus_client.generate_latest) of the same registry.
Not a test: prints Markdown tables for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml
from common import (  # bench/common.py; puts the repository on sys.path
    ROOT,
    free_port,
    percentile,
    run,
    tool,
    wait,
)
from prometheus_client import CollectorRegistry, generate_latest

from redline.telemetry.instrument import Instrumentation, catalogue_buckets
from redline.telemetry.web import serve
from redline.testing.components import stack_password

WORKERS = 4
TICK_SECONDS = 0.5
HOST_SCRAPE_SECONDS = 5.0  # the host job's scrape interval (prometheus.yml's global 5 s)


class HostSnapshot:
    """The families of one real host-exporter collection, shared by every host target of a worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._families: list[Any] = []
        self._taken = 0.0
        self.refresh_if_older_than(0)

    def refresh_if_older_than(self, seconds: float) -> None:
        if time.monotonic() - self._taken >= seconds:
            self._families = list(self._registry.collect())
            self._taken = time.monotonic()

    def collect(self) -> list[Any]:
        return self._families


def serve_targets(monitors: int, hosts: int, agents: int, seed: int, conn: Connection) -> None:
    """Worker process: serve `monitors` simulated monitors and `hosts` host-exporter targets; send the
    ports back, then simulate until the parent closes the pipe."""
    from redline.demo.system import Traffic
    from redline.demo.tmux import TmuxMonitor
    from redline.exporters.host.collectors import build_registry
    from redline.exporters.host.config import load_config

    buckets = catalogue_buckets(("redline_cycle_duration_seconds", "redline_request_duration_seconds"))
    sims = [TmuxMonitor(agents=agents, buckets=buckets) for _ in range(monitors)]
    for index, sim in enumerate(sims):
        sim.set_traffic(Traffic(seed=seed + index))
    servers = [serve(sim.registry, "127.0.0.1:0") for sim in sims]
    host = HostSnapshot(build_registry(load_config(None)))
    host_registry = CollectorRegistry(auto_describe=False)
    host_registry.register(host)
    host_servers = [serve(host_registry, "127.0.0.1:0") for _ in range(hosts)]
    conn.send(([s.port for s in servers], [s.port for s in host_servers]))
    last = time.monotonic()
    while not conn.poll(TICK_SECONDS):
        host.refresh_if_older_than(HOST_SCRAPE_SECONDS)
        now = time.monotonic()
        for sim in sims:
            sim.tick(now - last)
        last = now


def start_workers(n: int, agents: int) -> tuple[list[Any], list[int], list[int]]:
    """WORKERS processes sharing n monitors and n hosts; returns (processes and pipes, ports, ports)."""
    context = multiprocessing.get_context("spawn")
    workers, monitor_ports, host_ports = [], [], []
    for index in range(WORKERS):
        share = n // WORKERS + (1 if index < n % WORKERS else 0)
        if share == 0:
            continue
        parent, child = context.Pipe()
        proc = context.Process(target=serve_targets, args=(share, share, agents, 1000 * index, child))
        proc.start()
        workers.append((proc, parent))
    for _proc, parent in workers:
        monitors, hosts = parent.recv()
        monitor_ports += monitors
        host_ports += hosts
    return workers, monitor_ports, host_ports


def stop_workers(workers: list[Any]) -> None:
    for proc, parent in workers:
        parent.send("stop")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def prometheus_config(folder: Path, prom_port: int, monitor_ports: list[int], host_ports: list[int]) -> Path:
    """The repository's prometheus.yml and rules with target files for this run."""
    (folder / "targets").mkdir(parents=True)
    shutil.copy(ROOT / "prometheus" / "prometheus.yml", folder / "prometheus.yml")
    stack_password(folder / "prometheus.yml")
    (folder / "rules").symlink_to(ROOT / "prometheus" / "rules")
    targets = {
        "prometheus": [{"targets": [f"127.0.0.1:{prom_port}"], "labels": {"system": "redline"}}],
        "tmux-monitor": [
            {"targets": [f"127.0.0.1:{p}" for p in monitor_ports], "labels": {"system": "tmux"}}
        ],
        "host": [{"targets": [f"127.0.0.1:{p}" for p in host_ports], "labels": {"system": "host"}}],
    }
    for name, groups in targets.items():
        (folder / "targets" / f"{name}.yml").write_text(yaml.safe_dump(groups))
    return folder / "prometheus.yml"


def query(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=30
    ) as r:
        return list(json.load(r)["data"]["result"])


def scalar(url: str, expr: str) -> float:
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else float("nan")


def measure_size(n: int, agents: int, seconds: float) -> dict[str, Any]:
    """Run Prometheus over n monitors and n hosts for `seconds`; return the figures."""
    workers, monitor_ports, host_ports = start_workers(n, agents)
    try:
        with tempfile.TemporaryDirectory(prefix="redline-scale-") as tmp:
            port = free_port()
            config = prometheus_config(Path(tmp) / "prometheus", port, monitor_ports, host_ports)
            url = f"http://127.0.0.1:{port}"
            log = open(Path(tmp) / "prometheus.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={Path(tmp) / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                targets = 2 * n + 1
                wait(lambda: len(query(url, "up == 1")) == targets, 120, f"{targets} targets up")
                print(f"    N={n}: {targets} targets up; measuring for {seconds:.0f}s", flush=True)
                time.sleep(seconds)
                return collect(url, n)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
                log.close()
    finally:
        stop_workers(workers)


def collect(url: str, n: int) -> dict[str, Any]:
    window = "1m"
    groups = {}
    for series in query(url, f"avg_over_time(prometheus_rule_group_last_duration_seconds[{window}])"):
        name = series["metric"]["rule_group"].rsplit(";", 1)[-1]
        groups[name] = {"mean": float(series["value"][1])}
    for series in query(url, f"max_over_time(prometheus_rule_group_last_duration_seconds[{window}])"):
        groups[series["metric"]["rule_group"].rsplit(";", 1)[-1]]["max"] = float(series["value"][1])
    scrape = {}
    for job in ("tmux-monitor", "host"):
        values = sorted(float(s["value"][1]) for s in query(url, f'scrape_duration_seconds{{job="{job}"}}'))
        samples = sorted(float(s["value"][1]) for s in query(url, f'scrape_samples_scraped{{job="{job}"}}'))
        scrape[job] = {
            "p50": statistics.median(values),
            "p99": percentile(values, 0.99),
            "samples": statistics.median(samples),
        }
    prom = 'job="prometheus"'
    return {
        "n": n,
        "groups": groups,
        "missed": scalar(url, "sum(prometheus_rule_group_iterations_missed_total)"),
        "eval_total": scalar(
            url, f"sum(avg_over_time(prometheus_rule_group_last_duration_seconds[{window}]))"
        ),
        "scrape": scrape,
        "rss": scalar(url, f"process_resident_memory_bytes{{{prom}}}"),
        "heap": scalar(url, f"go_memstats_heap_inuse_bytes{{{prom}}}"),
        "series": scalar(url, f"prometheus_tsdb_head_series{{{prom}}}"),
    }


def big_registry(target_series: int) -> tuple[CollectorRegistry, int]:
    """An instrumented service (RED metrics per handler, as redline.telemetry.instrument records them)
    with about `target_series` series; returns it and its exact series count."""
    registry = CollectorRegistry(auto_describe=False)
    inst = Instrumentation(registry)
    handler = 0
    while True:
        request = inst.request(f"/api/v1/resource{handler}", "GET")
        for code in (200, 404, 500):
            request.observe(0.02 + (handler % 7) * 0.03, code)
        handler += 1
        count = sum(len(metric.samples) for metric in registry.collect())
        if count >= target_series:
            return registry, count


def measure_metrics_endpoint(target_series: int, scrapes: int) -> dict[str, float]:
    registry, series = big_registry(target_series)
    server = serve(registry, "127.0.0.1:0")
    try:
        http, expose = [], []
        for _ in range(10):
            with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
                resp.read()
        for _ in range(scrapes):
            started = time.perf_counter()
            with urllib.request.urlopen(server.metrics_url, timeout=10) as resp:
                size = len(resp.read())
            http.append(time.perf_counter() - started)
            started = time.perf_counter()
            generate_latest(registry)
            expose.append(time.perf_counter() - started)
    finally:
        server.shutdown()
    return {
        "series": series,
        "bytes": size,
        "http_p50": statistics.median(http),
        "http_p99": percentile(http, 0.99),
        "expose_p50": statistics.median(expose),
        "expose_p99": percentile(expose, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", default="1,250", help="sizes N to run, comma-separated (1,250)")
    parser.add_argument("--agents", type=int, default=200, help="agents per simulated monitor (200)")
    parser.add_argument("--seconds", type=float, default=90, help="measurement time per size (90)")
    parser.add_argument("--series", type=int, default=10_000, help="series of the /metrics case (10000)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.instances.split(",")]
    results = []
    for n in sizes:
        print(f"==> N={n}: {n} monitors x {args.agents} agents and {n} hosts", flush=True)
        results.append(measure_size(n, args.agents, args.seconds))
    print("==> /metrics of one service with ~10k series", flush=True)
    endpoint = measure_metrics_endpoint(args.series, 100)

    names = [f"N={r['n']}" for r in results]
    print("\nRule evaluation per group (mean / max over the last minute, evaluation every 1 s):\n")
    print("| rule group | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(results))
    for group in sorted(results[-1]["groups"]):
        cells = []
        for r in results:
            g = r["groups"].get(group, {})
            cells.append(f"{g.get('mean', 0) * 1000:.2f} / {g.get('max', 0) * 1000:.2f} ms")
        print(f"| {group} | " + " | ".join(cells) + " |")
    print("\n| figure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(results))
    rows = [
        ("all groups, sum of mean evaluation time", lambda r: f"{r['eval_total'] * 1000:.1f} ms"),
        ("missed rule-group iterations", lambda r: f"{r['missed']:.0f}"),
        ("monitor scrape p50 / p99", lambda r: _pair(r["scrape"]["tmux-monitor"])),
        ("series per monitor", lambda r: f"{r['scrape']['tmux-monitor']['samples']:.0f}"),
        ("host scrape p50 / p99", lambda r: _pair(r["scrape"]["host"])),
        ("series per host", lambda r: f"{r['scrape']['host']['samples']:.0f}"),
        ("Prometheus head series", lambda r: f"{r['series']:.0f}"),
        ("Prometheus RSS", lambda r: f"{r['rss'] / 2**20:.0f} MiB"),
        ("Prometheus Go heap in use", lambda r: f"{r['heap'] / 2**20:.0f} MiB"),
    ]
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    print(
        f"\n/metrics with {endpoint['series']:.0f} series ({endpoint['bytes'] / 1024:.0f} KiB): GET p50 "
        f"{endpoint['http_p50'] * 1000:.1f} ms, p99 {endpoint['http_p99'] * 1000:.1f} ms; exposition alone "
        f"p50 {endpoint['expose_p50'] * 1000:.1f} ms, p99 {endpoint['expose_p99'] * 1000:.1f} ms"
    )
    return 0


def _pair(figures: dict[str, float]) -> str:
    return f"{figures['p50'] * 1000:.1f} / {figures['p99'] * 1000:.1f} ms"


if __name__ == "__main__":
    sys.exit(run(main))
