"""Cost per observation: redline instrumentation vs plain prometheus_client vs OpenTelemetry SDK.

    .venv/bin/python bench/instrumentation.py [--number 100000] [--repeat 41]

Each case records the same thing three ways in one process, best of --repeat runs of --number calls:
- prometheus_client: pre-labelled children, called directly (the cheapest correct use of the library)
- redline: redline.telemetry.instrument objects (cycle timer, cache counters, RED request), optionally
  with the OTLP bridge exporting the registry every second in the background
- OTel SDK: synchronous instruments of a MeterProvider (attributes per call, as the SDK API requires)
"""

from __future__ import annotations

import argparse
import functools
import gc
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, Counter, Histogram

from redline.telemetry.instrument import CYCLE_DURATION, Instrumentation, catalogue_buckets

SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start_sink() -> tuple[subprocess.Popen, str]:
    """An OTLP/HTTP sink in another process that accepts every export (stands in for the gateway)."""
    proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1/metrics"


def best_ns(funcs: dict[str, Callable[[], object]], number: int, repeat: int) -> dict[str, float]:
    """Best time per call in nanoseconds of each function. The runs are interleaved (a, b, c, a, b, c,
    ...), so that a burst of noise on a shared machine hits every function alike."""
    best = dict.fromkeys(funcs, float("inf"))
    gc.collect()
    for _ in range(repeat):
        for name, func in funcs.items():
            best[name] = min(best[name], timeit.timeit(func, number=number) / number * 1e9)
    return best


Cases = dict[str, dict[str, Callable[[], object]]]


def cases(buckets: dict[str, tuple]) -> tuple[Cases, Instrumentation]:
    """case -> implementation -> zero-argument callable doing one observation."""
    bounds = buckets[CYCLE_DURATION]
    plain_reg = CollectorRegistry()
    plain_cycle = Histogram(CYCLE_DURATION, "d", ["loop"], registry=plain_reg, buckets=bounds).labels(
        loop="main"
    )
    plain_hits = Counter("redline_cache_hits", "d", ["cache"], registry=plain_reg).labels(
        cache="agent_status"
    )
    plain_req_h = Histogram(
        "redline_request_duration_seconds", "d", ["handler", "method"], registry=plain_reg
    )
    plain_req_c = Counter("redline_requests", "d", ["handler", "method", "code"], registry=plain_reg)
    plain_req_hc = plain_req_h.labels(handler="/status", method="GET")
    plain_req_cc = plain_req_c.labels(handler="/status", method="GET", code="200")

    inst = Instrumentation(CollectorRegistry(), buckets=buckets)
    cycle = inst.cycle("main")
    cache = inst.cache("agent_status")
    request = inst.request("/status", "GET")

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    meter = provider.get_meter("bench")
    otel_cycle = meter.create_histogram(CYCLE_DURATION, explicit_bucket_boundaries_advisory=list(bounds))
    otel_hits = meter.create_counter("redline_cache_hits")
    otel_req_h = meter.create_histogram("redline_request_duration_seconds")
    otel_req_c = meter.create_counter("redline_requests")
    loop_attrs = {"loop": "main"}
    cache_attrs = {"cache": "agent_status"}
    req_attrs = {"handler": "/status", "method": "GET"}
    req_code_attrs = {"handler": "/status", "method": "GET", "code": "200"}

    def plain_request() -> None:
        plain_req_hc.observe(0.004)
        plain_req_cc.inc()

    def otel_request() -> None:
        otel_req_h.record(0.004, req_attrs)
        otel_req_c.add(1, req_code_attrs)

    return {
        "histogram observe (cycle 0.3 s)": {
            "prometheus_client": lambda: plain_cycle.observe(0.3),
            "redline": lambda: cycle.observe(0.3),
            "otel_sdk": lambda: otel_cycle.record(0.3, loop_attrs),
        },
        "counter inc (cache hit)": {
            "prometheus_client": plain_hits.inc,
            "redline": cache.hit,
            "otel_sdk": lambda: otel_hits.add(1, cache_attrs),
        },
        "RED request (histogram + counter{code})": {
            "prometheus_client": plain_request,
            # partial, not a lambda: one Python frame, as plain_request has (what user code pays)
            "redline": functools.partial(request.observe, 0.004, 200),
            "otel_sdk": otel_request,
        },
    }, inst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=41)
    args = parser.parse_args()
    buckets = catalogue_buckets()
    table, inst = cases(buckets)
    print(
        f"python {sys.version.split()[0]}, {args.number} calls x best of {args.repeat}; ns per observation\n"
    )
    header = f"{'case':<42} {'prom_client':>11} {'redline':>9} {'+OTLP bridge':>13} {'OTel SDK':>9}"
    print(header + f" {'redline/prom':>13} {'OTel/redline':>13}")
    sink, sink_url = start_sink()
    try:
        run_cases(table, inst, args, sink_url)
    finally:
        sink.terminate()
        sink.wait()
    return 0


def run_cases(table: Cases, inst: Instrumentation, args: argparse.Namespace, sink_url: str) -> None:
    from redline.telemetry.otlp_bridge import OtlpBridge

    for case, impls in table.items():
        times = best_ns(impls, args.number, args.repeat)
        plain, ours, otel = times["prometheus_client"], times["redline"], times["otel_sdk"]
        # The bridge exports the whole registry every 0.2 s (to a sink in another process), so the
        # recording thread competes with snapshot + encode work, as in production with OTLP on.
        bridge = OtlpBridge(inst.registry, service_name="bench", interval_seconds=0.2, endpoint=sink_url)
        bridge.start()
        try:
            bridged = best_ns({"redline": impls["redline"]}, args.number, args.repeat)["redline"]
        finally:
            bridge.stop()
        print(
            f"{case:<42} {plain:>11.0f} {ours:>9.0f} {bridged:>13.0f} {otel:>9.0f}"
            f" {ours / plain:>13.2f} {otel / ours:>13.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
