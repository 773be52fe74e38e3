"""Simulated GameBook Studio: a Node web server (prom-client names) and its browsers (FPS over OTLP)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opentelemetry.metrics import CallbackOptions, Observation
from prometheus_client import Gauge, Histogram

from redline.demo.system import SimulatedProcess, SimulatedSystem

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

log = logging.getLogger("redline.demo.gamebook")

GIB = 1024**3
# (method, route, share of traffic)
ROUTES = (
    ("GET", "/api/books", 0.45),
    ("GET", "/api/chapters/:id", 0.30),
    ("POST", "/api/progress", 0.15),
    ("GET", "/", 0.10),
)
PAGES = ("reader", "editor")
REQUESTS_PER_SECOND = 40.0


class GameBook(SimulatedSystem):
    """HTTP traffic, worker pool, circuit breaker, process CPU/memory; browser FPS through OTLP.

    Faults: latency, errors, cpu, memory, low-fps, pool-exhaustion, breaker-open, down.
    """

    name = "gamebook"

    def __init__(
        self,
        *,
        buckets: Sequence[float] | None = None,
        otlp_endpoint: str | None = None,
        otlp_interval: float = 15.0,
        otlp_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        reg = self.registry
        histogram_args = {"buckets": tuple(buckets)} if buckets else {}
        self.http = Histogram(
            "http_request_duration_seconds",
            "Duration of HTTP requests in seconds.",
            ["method", "route", "status_code"],
            registry=reg,
            **histogram_args,  # type: ignore[arg-type]
        )
        self.process = SimulatedProcess(reg)
        self.memory_limit_bytes = 2 * GIB
        Gauge("gamebook_memory_limit_bytes", "Memory available to the server.", registry=reg).set(
            self.memory_limit_bytes
        )
        self.pool_busy = Gauge("gamebook_worker_pool_busy_workers", "Busy workers.", ["pool"], registry=reg)
        self.pool_max = Gauge(
            "gamebook_worker_pool_max_workers", "Workers in the pool.", ["pool"], registry=reg
        )
        self.pool_queued = Gauge(
            "gamebook_worker_pool_queued_tasks", "Tasks waiting.", ["pool"], registry=reg
        )
        self.pool_size = 16
        self.pool_max.labels(pool="render").set(self.pool_size)
        self.breaker = Gauge(
            "gamebook_circuit_breaker_open", "1 while the circuit breaker is open.", ["breaker"], registry=reg
        )
        for breaker in ("storage", "payments"):
            self.breaker.labels(breaker=breaker).set(0)
        self._fps = dict.fromkeys(PAGES, 60.0)
        self._fps_lock = threading.Lock()
        self._otlp_endpoint = otlp_endpoint
        self._otlp_interval = otlp_interval
        # None: the OTLP exporter's own default, the OTEL_EXPORTER_OTLP_(METRICS_)HEADERS variables
        self._otlp_headers = otlp_headers
        self._meter_provider: MeterProvider | None = None

    def _latency(self) -> float:
        if self.faulty("latency"):
            return self.rng.lognormvariate(math.log(0.18), 0.3)
        return self.rng.lognormvariate(math.log(0.03), 0.35)

    def _status(self) -> str:
        draw = self.rng.random()
        if draw < (0.02 if self.faulty("errors") else 0.0002):
            return self.rng.choice(("500", "502", "503"))
        if draw > 0.99:
            return "404"
        return "200"

    def tick(self, seconds: float) -> None:
        rng = self.rng
        for _ in range(self.events(REQUESTS_PER_SECOND, seconds)):
            method, route = pick_route(rng.random())
            self.http.labels(method=method, route=route, status_code=self._status()).observe(self._latency())
        # Worker threads let the server use more than one core: a runaway renders on ~1.4 cores.
        cpu = rng.uniform(1.3, 1.5) if self.faulty("cpu") else rng.uniform(0.25, 0.45)
        memory_ratio = rng.uniform(0.88, 0.92) if self.faulty("memory") else rng.uniform(0.45, 0.55)
        self.process.advance(seconds, cpu, memory_ratio * self.memory_limit_bytes)
        if self.faulty("pool-exhaustion"):
            busy, queued = self.pool_size, rng.randint(40, 60)
        else:
            busy, queued = rng.randint(4, 10), rng.randint(0, 2)
        self.pool_busy.labels(pool="render").set(busy)
        self.pool_queued.labels(pool="render").set(queued)
        self.breaker.labels(breaker="storage").set(1 if self.faulty("breaker-open") else 0)
        with self._fps_lock:
            for page in PAGES:
                self._fps[page] = rng.uniform(32, 40) if self.faulty("low-fps") else rng.uniform(58, 61)

    # The browsers: an OTel SDK gauge pushed over OTLP/HTTP, as a web page's SDK would.
    def _observe_fps(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._fps_lock:
            return [Observation(fps, {"page": page}) for page, fps in self._fps.items()]

    def start(self) -> None:
        if not self._otlp_endpoint:
            return
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(
                endpoint=otlp_metrics_url(self._otlp_endpoint), headers=self._otlp_headers, timeout=5
            ),
            export_interval_millis=self._otlp_interval * 1000,
        )
        # The attributes docs/instrumenting/browser.md asks for; the gateways map redline.system to `system`.
        resource = Resource.create({"service.name": "gamebook-browser", "redline.system": "gamebook"})
        provider = MeterProvider(resource=resource, metric_readers=[reader])
        provider.get_meter("gamebook.browser").create_observable_gauge(
            "gamebook_client_fps",
            callbacks=[self._observe_fps],
            description="Frames per second seen by clients.",
        )
        self._meter_provider = provider
        log.info("browser FPS pushed over OTLP to %s every %ss", self._otlp_endpoint, self._otlp_interval)

    def stop(self) -> None:
        if self._meter_provider is not None:
            self._meter_provider.shutdown(timeout_millis=3000)
            self._meter_provider = None


def pick_route(draw: float) -> tuple[str, str]:
    """The (method, route) that a uniform draw in [0, 1) selects by traffic share."""
    for method, route, share in ROUTES:
        draw -= share
        if draw <= 0:
            return method, route
    return ROUTES[-1][0], ROUTES[-1][1]


def otlp_metrics_url(endpoint: str) -> str:
    """A base URL (http://host:4318) gets the standard /v1/metrics path; a full path is kept."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/metrics"
    return endpoint
