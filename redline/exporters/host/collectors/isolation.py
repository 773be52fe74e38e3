"""IsolatedCollectors: runs the collectors on persistent worker threads, each within a time budget, and
reports node_scrape_collector_{success,duration_seconds} per collector, so one failing or hanging collector
never fails the whole scrape."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from redline.exporters.host.collectors.base import CollectFn, NoDataError

log = logging.getLogger(__name__)


class _Run:
    """One run of one collector; scrapes that ask for the collector while it is in flight share it."""

    __slots__ = ("done", "elapsed", "error", "families", "fn", "submitted")

    def __init__(self, fn: CollectFn, submitted: float) -> None:
        self.fn = fn
        self.submitted = submitted
        self.done = False
        self.families: list[Metric] = []
        self.error: BaseException | None = None
        self.elapsed = 0.0


class IsolatedCollectors(Collector):
    """Runs named collect functions on persistent worker threads, each within `timeout_seconds`.

    A scrape queues its collectors and one idle worker runs them one after another (a single thread
    handoff per scrape). When a queued collector has waited 50 ms (a tenth of the budget if that is less)
    behind a slow or hung one and no worker is idle, another worker is started for the rest, so a hung
    collector delays the others by about that long. A collector that raises or overruns its budget is left
    out of this scrape and reported with node_scrape_collector_success 0. A collector still stuck from an
    earlier scrape is not started again, so a hung system call costs one thread, not one per scrape.
    Concurrent scrapes (Prometheus, the OTLP bridge, a curl) share a run that is in flight. At most
    `max_idle_workers` finished workers wait for the next scrape; any others exit.
    """

    max_idle_workers = 1

    def __init__(self, collectors: dict[str, CollectFn], timeout_seconds: float) -> None:
        self._collectors = dict(collectors)
        self._timeout = timeout_seconds
        self._stall = min(0.05, timeout_seconds / 10)
        self._latest: dict[str, _Run] = {}
        self._queue: collections.deque[_Run] = collections.deque()
        self._idle = 0  # workers not running a collector (waiting, or started and not yet running one)
        self._lock = threading.Lock()
        self._work_queued = threading.Condition(self._lock)  # workers wait here
        self._queue_drained = threading.Condition(self._lock)  # scrapes wait here

    def describe(self) -> list[Metric]:
        return []  # names are dynamic; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        deadline = started + self._timeout
        runs: dict[str, _Run | None] = {}
        with self._lock:
            for name, fn in self._collectors.items():
                run = self._latest.get(name)
                if run is None or run.done:
                    run = self._latest[name] = _Run(fn, started)
                    self._queue.append(run)
                elif started - run.submitted >= self._timeout:
                    run = None  # still hung from an earlier scrape
                # else: a concurrent scrape (or OTLP export) started this run; share it
                runs[name] = run
            if self._queue:
                self._wake_worker()
            while any(run is not None and not run.done for run in runs.values()):
                now = time.perf_counter()
                if now >= deadline:
                    break
                if not self._queue:
                    self._queue_drained.wait(deadline - now)
                elif self._idle == 0 and now - self._queue[0].submitted >= self._stall:
                    self._wake_worker()  # the queue is stuck behind a slow collector
                else:
                    self._queue_drained.wait(min(deadline - now, self._stall))
        yield from self._report(runs, started)

    def _report(self, runs: dict[str, _Run | None], started: float) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            labels=["collector"],
        )
        for name, run in runs.items():
            ok, elapsed = False, 0.0
            if run is None:
                log.warning("collector %s is still running from an earlier scrape; skipped", name)
            elif not run.done:
                elapsed = time.perf_counter() - started
                log.warning("collector %s exceeded its %.1fs budget; skipped", name, self._timeout)
            elif isinstance(run.error, NoDataError):  # a property of this machine, not a failure
                elapsed = run.elapsed
                log.debug("collector %s has no data: %s", name, run.error)
            elif run.error is not None:
                elapsed = run.elapsed
                log.warning("collector %s failed: %s: %s", name, type(run.error).__name__, run.error)
            else:
                yield from run.families
                ok, elapsed = True, run.elapsed
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], elapsed)
        yield duration
        yield success

    def _wake_worker(self) -> None:
        """Called with the lock held: let an idle worker take the queue, or start one."""
        if self._idle:
            self._work_queued.notify()
        else:
            threading.Thread(target=self._work, name="collector-worker", daemon=True).start()
            self._idle += 1  # the new worker cannot take the lock before we release it

    def _work(self) -> None:
        while (run := self._next_run()) is not None:
            started = time.perf_counter()
            try:
                run.families = list(run.fn())
            except BaseException as err:  # a collector must never take its worker down
                run.error = err
            run.elapsed = time.perf_counter() - started
            self._finish(run)

    def _next_run(self) -> _Run | None:
        """The next queued run, waiting for one; None when enough other workers are idle (exit)."""
        with self._lock:
            while not self._queue:
                if self._idle > self.max_idle_workers:
                    self._idle -= 1
                    return None
                self._work_queued.wait()
            self._idle -= 1
            return self._queue.popleft()

    def _finish(self, run: _Run) -> None:
        with self._lock:
            run.done = True
            self._idle += 1
            if not self._queue:  # wake waiting scrapes once per drained queue, not once per collector
                self._queue_drained.notify_all()
