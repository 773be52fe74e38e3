"""Simulated tmux-orchestrator monitor: a Python service using redline.telemetry.instrument.

Each cycle checks N agents (operations, errors, cache lookups through a connection pool); cycle time,
process CPU and RSS are simulated, so faults can push them over the documented thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from redline.demo.system import SimulatedProcess, SimulatedSystem
from redline.telemetry.instrument import Instrumentation

MIB = 1024**2
CYCLES_PER_SECOND = 2.0
POOL_MAX = 20


class TmuxMonitor(SimulatedSystem):
    """Monitoring cycles over `agents` agents.

    Faults: slow-cycles, cpu, memory, memory-critical, errors, pool-exhaustion, cache-misses,
    unhealthy (its own health check fails), down (the process stops answering).
    """

    name = "tmux"
    stops_when_down = True

    def __init__(
        self,
        *,
        agents: int = 50,
        buckets: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.agents = agents
        self.inst = Instrumentation(self.registry, buckets=buckets)
        self.cycle = self.inst.cycle("main")
        self.checks = self.inst.operation("agent_check")
        self.cache = self.inst.cache("agent_status")
        self.pool = self.inst.pool("tmux", maximum=POOL_MAX)
        self.status_api = self.inst.request("/status", "GET")
        self.process = SimulatedProcess(self.registry)
        self.inst.set_health(True)

    def tick(self, seconds: float) -> None:
        rng = self.rng
        for _ in range(self.events(CYCLES_PER_SECOND, seconds)):
            if self.faulty("slow-cycles"):
                duration = rng.uniform(1.3, 2.2)
            else:
                duration = rng.lognormvariate(math.log(0.3), 0.2)
            self.cycle.observe(duration)
            self.cycle.set_agents(self.agents)
            error_ratio = 0.05 if self.faulty("errors") else 0.002
            failed = sum(1 for _ in range(self.agents) if rng.random() < error_ratio)
            if failed:
                self.checks.failed(failed)
            self.checks.succeeded(self.agents - failed)
            hit_ratio = 0.35 if self.faulty("cache-misses") else 0.85
            hits = sum(1 for _ in range(self.agents) if rng.random() < hit_ratio)
            self.cache.hit(hits)
            self.cache.miss(self.agents - hits)
        for _ in range(self.events(3.0, seconds)):
            self.status_api.observe(rng.lognormvariate(math.log(0.004), 0.3), 200)
        busy = POOL_MAX if self.faulty("pool-exhaustion") else rng.randint(8, 13)
        self.pool.set(size=max(busy, 12), busy=busy)
        cpu = rng.uniform(0.7, 0.8) if self.faulty("cpu") else rng.uniform(0.10, 0.20)
        if self.faulty("memory-critical"):
            rss = rng.uniform(800, 840) * MIB
        elif self.faulty("memory"):
            rss = rng.uniform(580, 620) * MIB
        else:
            rss = rng.uniform(280, 320) * MIB
        self.process.advance(seconds, cpu, rss)
        self.inst.set_health(self.healthy())

    def healthy(self) -> bool:
        return not self.faulty("unhealthy") and not self.faulty("down")
