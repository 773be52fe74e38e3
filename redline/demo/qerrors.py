"""Simulated qerrors: a Node error-analysis module with prom-client metrics (production and staging).

It publishes what a real prom-client service with the documented instrumentation does
(docs/instrumenting/node.md): prom-client's heap gauges, whose total V8 keeps just above the heap in use,
plus the heap limit gauge from v8.getHeapStatistics().heap_size_limit that the heap alert divides by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from redline.demo.system import SimulatedProcess, SimulatedSystem

MIB = 1024**2
CACHES = ("analysis", "advice")
ERROR_TYPES = ("openai_timeout", "validation", "network")
REQUESTS_PER_SECOND = {"production": 30.0, "staging": 10.0}
HEAP_LIMIT_BYTES = 2048 * MIB


class QErrors(SimulatedSystem):
    """Heap, per-cache hits and misses, request latency, requests and errors of one environment.

    Faults: heap, cache-misses, latency, error-burst, down (the process stops answering).
    """

    stops_when_down = True

    def __init__(
        self,
        env: str = "production",
        *,
        buckets: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.env = env
        self.name = "qerrors" if env == "production" else f"qerrors-{env}"
        reg = self.registry
        self.heap_used = Gauge(
            "nodejs_heap_size_used_bytes", "Process heap size used from Node.js in bytes.", registry=reg
        )
        self.heap_total = Gauge(
            "nodejs_heap_size_total_bytes", "Process heap size from Node.js in bytes.", registry=reg
        )
        self.heap_limit = Gauge(
            "nodejs_heap_size_limit_bytes", "The most V8 lets the heap grow to.", registry=reg
        )
        self.process = SimulatedProcess(reg)
        self.hits = Counter("qerrors_cache_hits", "Cache hits.", ["cache"], registry=reg)
        self.misses = Counter("qerrors_cache_misses", "Cache misses.", ["cache"], registry=reg)
        histogram_args = {"buckets": tuple(buckets)} if buckets else {}
        self.latency = Histogram(
            "qerrors_request_duration_seconds",
            "Time to analyse one error.",
            registry=reg,
            **histogram_args,  # type: ignore[arg-type]
        )
        self.requests = Counter("qerrors_requests", "Handled requests.", registry=reg)
        self.errors = Counter("qerrors_errors", "Errors by type.", ["type"], registry=reg)
        for cache in CACHES:
            self.hits.labels(cache=cache)
            self.misses.labels(cache=cache)
        for kind in ERROR_TYPES:
            self.errors.labels(type=kind)
        self._rate = REQUESTS_PER_SECOND.get(env, 10.0)

    def tick(self, seconds: float) -> None:
        rng = self.rng
        # As a real Node 20 process: an idle heap of tens of MB, total 5-20% above it (V8 grows the heap
        # with its use), under a 2 GiB limit (--max-old-space-size=2048); the fault fills it to 84-90%.
        limit = HEAP_LIMIT_BYTES
        used = rng.uniform(0.84, 0.9) * limit if self.faulty("heap") else rng.uniform(60, 90) * MIB
        self.heap_limit.set(limit)
        self.heap_used.set(used)
        self.heap_total.set(min(limit, used * rng.uniform(1.05, 1.2)))
        self.process.advance(seconds, rng.uniform(0.05, 0.15), rng.uniform(230, 260) * MIB)

        count = self.events(self._rate, seconds)
        if not count:
            return
        median = 0.1 if self.faulty("latency") else 0.018
        error_ratio = 0.03 if self.faulty("error-burst") else 0.01
        hit_ratio = 0.55 if self.faulty("cache-misses") else 0.92
        self.requests.inc(count)
        for _ in range(count):
            self.latency.observe(rng.lognormvariate(math.log(median), 0.35))
            cache = rng.choice(CACHES)
            if rng.random() < hit_ratio:
                self.hits.labels(cache=cache).inc()
            else:
                self.misses.labels(cache=cache).inc()
            if rng.random() < error_ratio:
                self.errors.labels(type=rng.choice(ERROR_TYPES)).inc()
