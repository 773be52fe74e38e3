"""Per-series costs of the two stores side by side: Prometheus (the HA replicas) and VictoriaMetrics
single-node (the long-term store), for docs/scale.md's capacity plan.

    flock /tmp/redline-heavy.lock .venv/bin/python bench/scale_store.py [--series 100000,300000]
        [--seconds 90] [--targets 500] [--step 10m]

1. Ingestion, for each size S in --series: S series spread over 100 scrape targets (served by worker
   processes from pre-rendered bodies, a value cycle of 4 per series), scraped every 10 s by a real
   Prometheus that remote-writes everything into a real VictoriaMetrics, as `redline up --scale` does.
   After --seconds of steady state: samples/s each appends, CPU seconds per million samples, RSS and
   active series of each. Per million active series: the RSS growth between the sizes, scaled.
2. The 30-day SLO budget over --targets targets: 30 days of two counters per target (requests,
   errors) at --step, backfilled into Prometheus (promtool tsdb create-blocks-from openmetrics) and
   into VictoriaMetrics (/api/v1/import/prometheus); then `1 - errors/requests` over [30d], five times
   each (VictoriaMetrics with nocache=1), median and max.
Not a test: prints Markdown for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml
from common import free_port, run, tool, wait  # bench/common.py; puts the repository on sys.path

from redline import durations, storage
from redline.testing.processes import running

TARGETS = 100
WORKERS = 2
SCRAPE = "10s"
VARIANTS = 4


def serve(first: int, count: int, per_target: int, conn: Connection) -> None:
    """Worker: `count` targets, each serving `per_target` series from VARIANTS pre-rendered bodies (one
    after the other, so that values change between scrapes); sends the ports, serves until told."""
    rng = random.Random(first)
    bodies: dict[int, list[bytes]] = {}
    turns: dict[int, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = int(self.server.server_address[1])  # type: ignore[index]
            turns[port] += 1
            body = bodies[port][turns[port] % VARIANTS]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    for target in range(first, first + count):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = server.server_address[1]
        lines = [f'bench_series{{target="{target}",id="{i}"}}' for i in range(per_target)]
        bodies[port] = [
            "\n".join(f"{line} {rng.random() * 1000:.3f}" for line in lines).encode() + b"\n"
            for _ in range(VARIANTS)
        ]
        turns[port] = 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(sorted(bodies))
    conn.recv()


def get(url: str, path: str, **params: Any) -> Any:
    with urllib.request.urlopen(f"{url}{path}?" + urllib.parse.urlencode(params), timeout=120) as resp:
        return json.load(resp)


def metric(url: str, name: str, match: str = "") -> float:
    """Sum of a metric's samples in a process's own /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {") and match in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def vm_command(port: int, data: Path) -> list[str]:
    return [
        tool("victoria-metrics"),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={data}",
        f"-retentionPeriod={storage.LONG_TERM_RETENTION}",
        f"-dedup.minScrapeInterval={storage.dedup_interval()}",
        "-loggerLevel=WARN",
    ]


def ingestion(series: int, seconds: float, tmp: Path) -> dict[str, float]:
    per_target = series // TARGETS
    context = multiprocessing.get_context("spawn")
    workers, ports = [], []
    for w in range(WORKERS):
        parent, child = context.Pipe()
        share = TARGETS // WORKERS
        proc = context.Process(target=serve, args=(w * share, share, per_target, child))
        proc.start()
        workers.append((proc, parent))
    try:
        for _proc, parent in workers:
            ports += parent.recv()
        vm_port, prom_port = free_port(), free_port()
        folder = tmp / f"ingest-{series}"
        folder.mkdir()
        config = {
            "global": {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE},
            "scrape_configs": [
                {"job_name": "bench", "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
            ],
            "remote_write": [
                {
                    "url": f"http://127.0.0.1:{vm_port}/api/v1/write",
                    "queue_config": storage.REMOTE_WRITE_QUEUE,
                }
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        vm_url, prom_url = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{prom_port}"
        with ExitStack() as stack:
            stack.enter_context(
                running(vm_command(vm_port, folder / "vm"), vm_url + "/health", folder / "vm.log")
            )
            prom = [
                tool("prometheus"),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'prom'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
            stack.enter_context(running(prom, prom_url + "/-/ready", folder / "prometheus.log", timeout=60))
            wait(
                lambda: metric(prom_url, "prometheus_tsdb_head_series") >= series,
                180,
                f"{series} head series in Prometheus",
            )
            time.sleep(30)  # a few scrapes and sends in steady state
            before = _snapshot(prom_url, vm_url)
            time.sleep(seconds)
            after = _snapshot(prom_url, vm_url)
            took = after["t"] - before["t"]
            prom_rate = (after["prom_samples"] - before["prom_samples"]) / took
            vm_rate = (after["vm_rows"] - before["vm_rows"]) / took
            return {
                "series": series,
                "prom_series": after["prom_series"],
                "vm_series": after["vm_series"],
                "prom_rate": prom_rate,
                "vm_rate": vm_rate,
                "prom_cpu_per_m": (after["prom_cpu"] - before["prom_cpu"]) / (prom_rate * took) * 1e6,
                "vm_cpu_per_m": (after["vm_cpu"] - before["vm_cpu"]) / (vm_rate * took) * 1e6,
                "prom_rss": after["prom_rss"],
                "vm_rss": after["vm_rss"],
                "prom_disk": _du(folder / "prom"),
                "vm_disk": _du(folder / "vm"),
                "pending": metric(prom_url, "prometheus_remote_storage_samples_pending"),
            }
    finally:
        for proc, parent in workers:
            parent.send("stop")
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def _snapshot(prom: str, vm: str) -> dict[str, float]:
    return {
        "t": time.monotonic(),
        "prom_samples": metric(prom, "prometheus_tsdb_head_samples_appended_total"),
        "prom_series": metric(prom, "prometheus_tsdb_head_series"),
        "prom_cpu": metric(prom, "process_cpu_seconds_total"),
        "prom_rss": metric(prom, "process_resident_memory_bytes"),
        "vm_rows": metric(vm, "vm_rows_inserted_total", 'type="promremotewrite"'),
        "vm_series": float(get(vm, "/api/v1/series/count")["data"][0]),
        "vm_cpu": metric(vm, "process_cpu_seconds_total"),
        "vm_rss": metric(vm, "process_resident_memory_bytes"),
    }


def _du(path: Path) -> float:
    return float(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()))


SLO = "1 - sum(increase(bench_errors_total[30d])) / sum(increase(bench_requests_total[30d]))"


def slo_query(targets: int, step: str, tmp: Path) -> dict[str, Any]:
    """30 days of two counters per target at `step`, in both stores; the budget query timed in each."""
    step_s = int(durations.seconds(step))
    end = int(time.time()) // step_s * step_s
    start = end - 30 * 86400
    rng = random.Random(7)
    folder = tmp / "slo"
    folder.mkdir()
    openmetrics = folder / "data.om"
    lines = 0
    with open(openmetrics, "w") as om, open(folder / "data.prom", "w") as prom_text:
        for name, rate in (("bench_requests_total", 50.0), ("bench_errors_total", 0.05)):
            om.write(f"# TYPE {name.removesuffix('_total')} counter\n")
            for target in range(targets):
                value = 0.0
                label = f'{name}{{target="t{target}",system="bench"}}'
                for ts in range(start, end + 1, step_s):
                    value += rate * step_s * (0.5 + rng.random())
                    om.write(f"{label} {value:.0f} {ts}\n")
                    prom_text.write(f"{label} {value:.0f} {ts * 1000}\n")
                    lines += 1
        om.write("# EOF\n")
    print(f"    {lines} samples generated ({openmetrics.stat().st_size / 2**20:.0f} MiB)", flush=True)
    blocks = folder / "prom"
    started = time.monotonic()
    subprocess.run(
        [
            tool("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=72h",
            str(openmetrics),
            str(blocks),
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    prom_backfill = time.monotonic() - started
    openmetrics.unlink()
    vm_port, prom_port = free_port(), free_port()
    vm_url, prom_url = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{prom_port}"
    (folder / "prometheus.yml").write_text("global: {}\n")
    result: dict[str, Any] = {"samples": lines, "prom_backfill": prom_backfill}
    with ExitStack() as stack:
        stack.enter_context(
            running(vm_command(vm_port, folder / "vm"), vm_url + "/health", folder / "vm.log")
        )
        started = time.monotonic()
        with open(folder / "data.prom", "rb") as data:
            while chunk := data.readlines(64 * 2**20):
                request = urllib.request.Request(
                    f"{vm_url}/api/v1/import/prometheus", data=b"".join(chunk), method="POST"
                )
                urllib.request.urlopen(request, timeout=600).close()
        urllib.request.urlopen(f"{vm_url}/internal/force_flush", timeout=60).close()
        result["vm_backfill"] = time.monotonic() - started
        prom = [
            tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={blocks}",
            "--storage.tsdb.retention.time=40d",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        stack.enter_context(running(prom, prom_url + "/-/ready", folder / "prometheus.log", timeout=300))
        for name, url, extra in (("prom", prom_url, {}), ("vm", vm_url, {"nocache": "1"})):
            times: list[float] = []
            budget: str | None = None
            for _ in range(5):
                began = time.perf_counter()
                answer = get(url, "/api/v1/query", query=SLO, time=end, **extra)
                times.append(time.perf_counter() - began)
                budget = answer["data"]["result"][0]["value"][1] if answer["data"]["result"] else None
            result[name] = {"median": statistics.median(times), "max": max(times), "value": budget}
        result["prom_disk"] = _du(blocks)
        result["vm_disk"] = _du(folder / "vm")
        result["prom_rss"] = metric(prom_url, "process_resident_memory_bytes")
        result["vm_rss"] = metric(vm_url, "process_resident_memory_bytes")
    shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", default="100000,300000", help="active series sizes (100000,300000)")
    parser.add_argument("--seconds", type=float, default=90, help="measurement per size (90)")
    parser.add_argument("--targets", type=int, default=500, help="targets of the 30-day query (500)")
    parser.add_argument("--step", default="10m", help="sample step of the backfilled month (10m)")
    parser.add_argument("--skip-ingestion", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.series.split(",")]
    with tempfile.TemporaryDirectory(prefix="redline-scale-store-") as name:
        tmp = Path(name)
        rows = []
        for size in [] if args.skip_ingestion else sizes:
            print(f"==> ingestion: {size} series every {SCRAPE}", flush=True)
            rows.append(ingestion(size, args.seconds, tmp))
            print(f"    {rows[-1]}", flush=True)
        print(f"==> 30-day SLO budget over {args.targets} targets, {args.step} step", flush=True)
        slo = slo_query(args.targets, args.step, tmp)
        print(f"    {slo}", flush=True)
    if rows:
        print("\n| figure | " + " | ".join(f"{r['series']:,} series" for r in rows) + " |")
        print("|---|" + "---|" * len(rows))
        table = [
            (
                "samples/s appended, Prometheus / VictoriaMetrics",
                lambda r: f"{r['prom_rate']:,.0f} / {r['vm_rate']:,.0f}",
            ),
            (
                "active series, Prometheus head / VictoriaMetrics",
                lambda r: f"{r['prom_series']:,.0f} / {r['vm_series']:,.0f}",
            ),
            (
                "CPU seconds per million samples, Prometheus / VM",
                lambda r: f"{r['prom_cpu_per_m']:.2f} / {r['vm_cpu_per_m']:.2f}",
            ),
            (
                "RSS, Prometheus / VictoriaMetrics",
                lambda r: f"{r['prom_rss'] / 2**20:,.0f} / {r['vm_rss'] / 2**20:,.0f} MiB",
            ),
            (
                "disk after the run, Prometheus / VictoriaMetrics",
                lambda r: f"{r['prom_disk'] / 2**20:,.0f} / {r['vm_disk'] / 2**20:,.0f} MiB",
            ),
            ("remote-write samples pending at the end", lambda r: f"{r['pending']:.0f}"),
        ]
        for label, cell in table:
            print(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            span = (b["series"] - a["series"]) / 1e6
            print(
                f"\nRSS per million active series (growth between the sizes): Prometheus "
                f"{(b['prom_rss'] - a['prom_rss']) / span / 2**30:.2f} GiB, VictoriaMetrics "
                f"{(b['vm_rss'] - a['vm_rss']) / span / 2**30:.2f} GiB"
            )
    print(
        f"\n30-day SLO budget over {args.targets} targets ({slo['samples']:,} samples, {args.step} step): "
        f"Prometheus median {slo['prom']['median'] * 1000:.0f} ms (max {slo['prom']['max'] * 1000:.0f}), "
        f"VictoriaMetrics median {slo['vm']['median'] * 1000:.0f} ms (max {slo['vm']['max'] * 1000:.0f}, "
        f"nocache); values {slo['prom']['value']} / {slo['vm']['value']}; "
        f"backfill {slo['prom_backfill']:.0f} s "
        f"(promtool) / {slo['vm_backfill']:.0f} s (import); disk {slo['prom_disk'] / 2**20:.0f} / "
        f"{slo['vm_disk'] / 2**20:.0f} MiB; RSS after the queries {slo['prom_rss'] / 2**20:.0f} / "
        f"{slo['vm_rss'] / 2**20:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
