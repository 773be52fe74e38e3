"""What every simulated system shares: its own registry, its active faults, a health route, a tick."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

Response = tuple[int, str, bytes]


class FaultError(Exception):
    """A fault could not be turned on or off; the control endpoint answers `status` with the message."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Traffic:
    """How much simulated traffic (a multiplier of the request rates) and its random seed (None: random)."""

    scale: float = 1.0
    seed: int | None = None


DEFAULT_TRAFFIC = Traffic()


class SimulatedSystem:
    """Base of the simulated systems. Subclasses register metrics and implement `tick(seconds)`.

    `tick` is called about ten times a second with the real time elapsed; counters advance by what the
    simulated traffic did in that time, gauges are set to their current value, so an injected fault
    shows on the next scrape.
    """

    name = "system"
    # True: the 'down' fault stops the process answering at all (scrapes fail, `up` is 0);
    # False: the process still serves /metrics but /health answers 503.
    stops_when_down = False

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.set_traffic(DEFAULT_TRAFFIC)
        self._faults: set[str] = set()
        self._lock = threading.Lock()

    def set_traffic(self, traffic: Traffic) -> None:
        """Scale the simulated request rates and seed the random draws (before start())."""
        self.traffic_scale = traffic.scale
        self.rng = random.Random(traffic.seed)

    def set_fault(self, fault: str, active: bool) -> None:
        """Turn a fault on or off. Raises FaultError when that is impossible (the state stays as it was)."""
        with self._lock:
            if active:
                self._faults.add(fault)
            else:
                self._faults.discard(fault)

    def faulty(self, fault: str) -> bool:
        """True while the fault is on."""
        return fault in self._faults

    @property
    def active_faults(self) -> list[str]:
        with self._lock:
            return sorted(self._faults)

    def healthy(self) -> bool:
        """The answer of /health: down only while the `down` fault is on."""
        return not self.faulty("down")

    def health(self, environ: dict) -> Response:
        """/health route: 200 ok or 503."""
        if self.healthy():
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 503, "text/plain; charset=utf-8", b"unhealthy: fault 'down' injected\n"

    def events(self, per_second: float, seconds: float) -> int:
        """How many events happen in `seconds` at `per_second` (scaled by --traffic-scale), randomised."""
        expected = per_second * self.traffic_scale * seconds
        whole = int(expected)
        return whole + (1 if self.rng.random() < expected - whole else 0)

    def tick(self, seconds: float) -> None:
        """Advance the simulation by `seconds` of real time."""
        raise NotImplementedError

    def start(self) -> None:
        """Start background work (threads, connections); default none."""

    def stop(self) -> None:
        """Stop background work."""


class SimulatedProcess:
    """process_cpu_seconds_total and process_resident_memory_bytes of a simulated process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self._cpu = Counter(
            "process_cpu_seconds", "Total user and system CPU time spent in seconds.", registry=registry
        )
        self._rss = Gauge(
            "process_resident_memory_bytes", "Resident memory size in bytes.", registry=registry
        )

    def advance(self, seconds: float, cpu_ratio: float, rss_bytes: float) -> None:
        """`seconds` of real time at `cpu_ratio` cores, now using `rss_bytes`."""
        self._cpu.inc(max(0.0, seconds * cpu_ratio))
        self._rss.set(rss_bytes)
