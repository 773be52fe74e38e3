"""Instrumentation for Python services: RED, operations/errors, pools, caches and cycle timing.

A thin layer over one prometheus_client registry with the metric names of docs/metric-contract.md
(`redline_*`). Histogram buckets come from the thresholds catalogue (redline/telemetry/contract.py), so every
threshold an alert uses is a bucket bound. The registry is the source of truth: serve it with
redline.telemetry.web and push it to OTLP with redline.telemetry.otlp_bridge.

Hot path: call `bind()`-style methods once (`inst.cycle("main")`, `inst.cache("agents")`, ...) and keep
the returned object; its methods go straight to the pre-labelled prometheus_client child, so an
observation costs the same as plain prometheus_client.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from redline.telemetry.contract import HISTOGRAM_BUCKETS

P = ParamSpec("P")
R = TypeVar("R")

# Histograms whose buckets the catalogue owns (docs/metric-contract.md).
CYCLE_DURATION = "redline_cycle_duration_seconds"
REQUEST_DURATION = "redline_request_duration_seconds"
HISTOGRAMS = (CYCLE_DURATION, REQUEST_DURATION)


def catalogue_buckets(names: Iterable[str] = HISTOGRAMS) -> dict[str, tuple[float, ...]]:
    """Bucket bounds per histogram name, as the thresholds catalogue gives them
    (redline/telemetry/contract.py, rendered by `redline generate`). A histogram the catalogue does not
    describe is left out (Instrumentation then uses prometheus_client's default buckets for it)."""
    return {name: HISTOGRAM_BUCKETS[name] for name in names if name in HISTOGRAM_BUCKETS}


class _Stopwatch:
    """A `with` block's start time; subclasses record what the block took in __exit__."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = 0.0

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        return self


class RequestTimer(_Stopwatch):
    """Context manager for one HTTP request: duration histogram and requests_total{code}.

    Set `.code` inside the block (default 200); an exception escaping the block counts as 500.
    """

    __slots__ = ("_bound", "code")

    def __init__(self, bound: BoundRequest) -> None:
        super().__init__()
        self._bound = bound
        self.code = 200

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        code = 500 if exc_type is not None else self.code
        self._bound.observe(time.perf_counter() - self._start, code)


class BoundRequest:
    """RED metrics for one (handler, method): `observe(seconds, code)`, `time()`, or as a decorator."""

    __slots__ = ("_count_by_code", "_counter", "_handler", "_lock", "_method", "observe")

    def __init__(self, counter: Counter, duration: Histogram, handler: str, method: str) -> None:
        self._counter = counter
        self._handler = handler
        self._method = method
        self._count_by_code: dict[int | str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        observe_duration = duration.labels(handler=handler, method=method).observe
        count_ok = self._add_code(200)
        count_by_code, add_code = self._count_by_code, self._add_code

        # A closure, not a method: its names are cell lookups and calling it binds no `self` (hot path).
        def observe(seconds: float, code: int | str = 200) -> None:
            """Record one finished request."""
            observe_duration(seconds)
            if code == 200:  # the common case skips the lookup
                count_ok()
            else:
                (count_by_code.get(code) or add_code(code))()

        self.observe = observe

    def _add_code(self, code: int | str) -> Callable[[], None]:
        with self._lock:
            inc = self._counter.labels(handler=self._handler, method=self._method, code=str(code)).inc
            self._count_by_code[code] = inc
        return inc

    def time(self) -> RequestTimer:
        """`with bound.time() as request: ...; request.code = 404`."""
        return RequestTimer(self)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorator: times each call; a return counts as 200, an exception as 500."""

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with RequestTimer(self):
                return func(*args, **kwargs)

        return wrapper


class OperationTracker:
    """Operations and their errors for one operation name (error ratio = errors / operations)."""

    __slots__ = ("_errors", "_total")

    def __init__(self, total: Any, errors: Any) -> None:
        self._total = total
        self._errors = errors

    def succeeded(self, count: int = 1) -> None:
        """Count successful operations."""
        self._total.inc(count)

    def failed(self, count: int = 1) -> None:
        """Count failed operations (each is also an operation)."""
        self._total.inc(count)
        self._errors.inc(count)

    def __enter__(self) -> OperationTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._total.inc()
        if exc_type is not None:
            self._errors.inc()


class PoolGauges:
    """Connection pool: open connections (size), busy connections and the configured maximum."""

    __slots__ = ("_busy", "_max", "_size")

    def __init__(self, size: Any, busy: Any, maximum: Any) -> None:
        self._size = size
        self._busy = busy
        self._max = maximum

    def set(
        self, *, size: float | None = None, busy: float | None = None, maximum: float | None = None
    ) -> None:
        """Set any of the three values."""
        if size is not None:
            self._size.set(size)
        if busy is not None:
            self._busy.set(busy)
        if maximum is not None:
            self._max.set(maximum)

    def acquired(self) -> None:
        """One connection became busy."""
        self._busy.inc()

    def released(self) -> None:
        """One busy connection was returned."""
        self._busy.dec()


class CacheCounters:
    """Hits and misses of one cache (hit ratio = hits / (hits + misses))."""

    __slots__ = ("hit", "miss")

    def __init__(self, hits: Any, misses: Any) -> None:
        # Bound methods of the children: no wrapper frame on the hot path.
        self.hit: Callable[..., None] = hits.inc
        self.miss: Callable[..., None] = misses.inc


class CycleTimer(_Stopwatch):
    """Timing of one monitoring loop.

    `observe(seconds)` and `set_agents(n)` are the prometheus_client children's own bound methods (no
    wrapper on the hot path); `with cycle.time(agents=50): ...` times a block and sets both.
    """

    __slots__ = ("agents", "observe", "set_agents")

    def __init__(self, duration: Any, agents: Any) -> None:
        super().__init__()
        self.observe: Callable[[float], None] = duration.observe
        self.set_agents: Callable[[float], None] = agents.set
        self.agents: int | None = None

    def time(self, agents: int | None = None) -> CycleTimer:
        """Context manager timing one cycle; `agents` may also be set inside the block."""
        self.agents = agents
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.observe(time.perf_counter() - self._start)
        if self.agents is not None:
            self.set_agents(self.agents)


class Instrumentation:
    """The redline_* metrics of one Python service, registered in `registry`.

    `buckets` maps histogram names to bounds; by default the catalogue's (`catalogue_buckets()`, from
    redline/telemetry/contract.py); an explicit mapping replaces them.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        bounds = dict(catalogue_buckets() if buckets is None else buckets)

        def histogram(name: str, doc: str, labels: list[str]) -> Histogram:
            if name in bounds:
                return Histogram(name, doc, labels, registry=self.registry, buckets=tuple(bounds[name]))
            return Histogram(name, doc, labels, registry=self.registry)

        reg = self.registry
        self.requests = Counter(
            "redline_requests", "HTTP requests handled.", ["handler", "method", "code"], registry=reg
        )
        self.request_duration = histogram(
            REQUEST_DURATION, "HTTP request duration in seconds.", ["handler", "method"]
        )
        self.operations = Counter("redline_operations", "Operations attempted.", ["operation"], registry=reg)
        self.operation_errors = Counter(
            "redline_operation_errors", "Operations that failed.", ["operation"], registry=reg
        )
        self.pool_size = Gauge(
            "redline_pool_connections_size", "Open connections in the pool.", ["pool"], registry=reg
        )
        self.pool_busy = Gauge("redline_pool_connections_busy", "Connections in use.", ["pool"], registry=reg)
        self.pool_max = Gauge(
            "redline_pool_connections_max", "Configured pool maximum.", ["pool"], registry=reg
        )
        self.cache_hits = Counter("redline_cache_hits", "Cache hits.", ["cache"], registry=reg)
        self.cache_misses = Counter("redline_cache_misses", "Cache misses.", ["cache"], registry=reg)
        self.cycle_duration = histogram(
            CYCLE_DURATION, "Duration of one monitoring cycle in seconds.", ["loop"]
        )
        self.cycle_agents = Gauge(
            "redline_cycle_agents", "Agents covered by the last cycle.", ["loop"], registry=reg
        )
        self.health_up = Gauge(
            "redline_health_up", "1 when the service's own health check passes.", registry=reg
        )

    def request(self, handler: str, method: str = "GET") -> BoundRequest:
        """RED metrics for one handler and method; keep the result and reuse it."""
        return BoundRequest(self.requests, self.request_duration, handler, method)

    def operation(self, operation: str) -> OperationTracker:
        """Operations and errors for one operation name; also a context manager (exception = error)."""
        return OperationTracker(
            self.operations.labels(operation=operation), self.operation_errors.labels(operation=operation)
        )

    def pool(self, pool: str, *, maximum: float | None = None) -> PoolGauges:
        """Gauges of one connection pool."""
        gauges = PoolGauges(
            self.pool_size.labels(pool=pool),
            self.pool_busy.labels(pool=pool),
            self.pool_max.labels(pool=pool),
        )
        if maximum is not None:
            gauges.set(maximum=maximum)
        return gauges

    def cache(self, cache: str) -> CacheCounters:
        """Hit and miss counters of one cache."""
        return CacheCounters(self.cache_hits.labels(cache=cache), self.cache_misses.labels(cache=cache))

    def cycle(self, loop: str = "main") -> CycleTimer:
        """Timer of one monitoring loop. Not shared between threads while timing with `with`."""
        return CycleTimer(self.cycle_duration.labels(loop=loop), self.cycle_agents.labels(loop=loop))

    def set_health(self, healthy: bool) -> None:
        """Publish the result of the service's own health check."""
        self.health_up.set(1 if healthy else 0)
