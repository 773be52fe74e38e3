"""The faults the demo can inject, and which catalogue alerts each one is meant to trip."""

from __future__ import annotations

# system -> fault -> what it does
FAULTS: dict[str, dict[str, str]] = {
    "gamebook": {
        "latency": "requests take ~180 ms (most over the 100 ms target)",
        "errors": "2% of requests answer 5xx (20x the 0.1% budget)",
        "cpu": "process CPU at ~1.4 cores",
        "memory": "resident memory at ~90% of the memory limit",
        "low-fps": "browsers report ~35 FPS",
        "pool-exhaustion": "all render workers busy, tasks queue up",
        "breaker-open": "the storage circuit breaker stays open",
        "down": "/health answers 503 (the blackbox probe fails)",
    },
    "qerrors": {
        "heap": "heap used at ~87% of heap total",
        "cache-misses": "cache hit rate drops to ~55%",
        "latency": "analysis takes ~100 ms on average",
        "error-burst": "error rate rises from 1% to 3% of requests",
        "down": "the process stops answering (scrapes fail)",
    },
    "qerrors-staging": {
        "heap": "heap used at ~87% of heap total",
        "cache-misses": "cache hit rate drops to ~55%",
        "latency": "analysis takes ~100 ms on average",
        "error-burst": "error rate rises from 1% to 3% of requests",
        "down": "the process stops answering (scrapes fail)",
    },
    "pipeline": {
        "slow-jobs": "jobs take ~35 s (target 25 s)",
        "very-slow-jobs": "jobs take ~65 s (above the old 45 s)",
        "job-failures": "60% of jobs fail",
        "concurrency": "8 jobs run at once (5 validated)",
        "concurrency-critical": "12 jobs run at once (10 ever load-tested)",
        "workers-down": "workers stop taking jobs; the queue waits",
        "db-connections": "idle sessions push connections in use past 90% of max_connections (~93%)",
        "job-table-locked": "a transaction holds ACCESS EXCLUSIVE on the job table; reads time out",
        "db-down": "the pipeline database refuses connections; its sessions are ended",
        "down": "the API server's /health answers 503",
    },
    "tmux": {
        "slow-cycles": "monitoring cycles take 1.3-2.2 s",
        "cpu": "monitor CPU at ~75% of one core",
        "memory": "monitor RSS ~600 MiB (over the 500 MB warning)",
        "memory-critical": "monitor RSS ~820 MiB (over the 750 MB critical level)",
        "errors": "5% of agent checks fail",
        "pool-exhaustion": "all pool connections busy",
        "cache-misses": "cache hit rate drops to ~35%",
        "unhealthy": "the monitor's own health check fails (/health 503, redline_health_up 0)",
        "down": "the process stops answering (scrapes fail)",
    },
}

# Every pipeline fault but 'down' needs the job table's database (--pipeline-dsn); without it the control
# endpoint refuses to inject them.
#
# (system, fault) -> the catalogue alerts, as (alert name, severity), that the fault is meant to trip.
# tests/integration/test_demo.py turns each fault on and checks every listed alert's expression.
FAULT_ALERTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("gamebook", "latency"): (("GamebookLatencyBudgetBurn", "critical"),),
    ("gamebook", "errors"): (("GamebookErrorBudgetBurn", "critical"),),
    ("gamebook", "cpu"): (("GamebookCpuHigh", "warning"),),
    ("gamebook", "memory"): (("GamebookMemoryHigh", "warning"),),
    ("gamebook", "low-fps"): (("GamebookClientFpsLow", "warning"),),
    ("gamebook", "pool-exhaustion"): (("GamebookWorkerPoolSaturated", "warning"),),
    ("gamebook", "breaker-open"): (("GamebookCircuitBreakerOpen", "warning"),),
    ("gamebook", "down"): (("GamebookDown", "critical"),),
    ("qerrors", "heap"): (("QerrorsHeapUsageHigh", "warning"),),
    ("qerrors", "cache-misses"): (("QerrorsCacheHitRateLow", "warning"),),
    ("qerrors", "latency"): (("QerrorsLatencyHigh", "warning"),),
    ("qerrors", "error-burst"): (("QerrorsErrorRateAboveBaseline", "warning"),),
    ("qerrors", "down"): (("QerrorsDown", "critical"),),
    ("qerrors-staging", "heap"): (("QerrorsHeapUsageHigh", "warning"),),
    ("qerrors-staging", "cache-misses"): (("QerrorsCacheHitRateLow", "warning"),),
    ("qerrors-staging", "latency"): (("QerrorsLatencyHigh", "warning"),),
    ("qerrors-staging", "error-burst"): (("QerrorsErrorRateAboveBaseline", "warning"),),
    ("qerrors-staging", "down"): (("QerrorsDown", "critical"),),
    ("pipeline", "slow-jobs"): (("PipelineJobsSlow", "warning"),),
    ("pipeline", "very-slow-jobs"): (("PipelineJobsSlow", "warning"), ("PipelineJobsSlow", "critical")),
    ("pipeline", "job-failures"): (("PipelineJobSuccessBudgetBurn", "critical"),),
    ("pipeline", "concurrency"): (("PipelineConcurrencyHigh", "warning"),),
    ("pipeline", "concurrency-critical"): (
        ("PipelineConcurrencyHigh", "warning"),
        ("PipelineConcurrencyHigh", "critical"),
    ),
    ("pipeline", "workers-down"): (("PipelineWorkersDown", "critical"),),
    ("pipeline", "db-connections"): (("PipelinePostgresConnectionsHigh", "warning"),),
    ("pipeline", "job-table-locked"): (("PipelineJobExporterDown", "warning"),),
    ("pipeline", "db-down"): (("PipelinePostgresDown", "critical"), ("PipelineJobExporterDown", "warning")),
    ("pipeline", "down"): (("PipelineApiDown", "critical"),),
    ("tmux", "slow-cycles"): (("TmuxMonitorCycleSlow", "warning"),),
    ("tmux", "cpu"): (("TmuxMonitorCpuHigh", "warning"),),
    ("tmux", "memory"): (("TmuxMonitorMemoryHigh", "warning"),),
    ("tmux", "memory-critical"): (
        ("TmuxMonitorMemoryHigh", "warning"),
        ("TmuxMonitorMemoryHigh", "critical"),
    ),
    ("tmux", "errors"): (("TmuxMonitorErrorRateHigh", "warning"),),
    ("tmux", "pool-exhaustion"): (("TmuxMonitorPoolSaturated", "warning"),),
    ("tmux", "cache-misses"): (("TmuxMonitorCacheHitRateLow", "warning"),),
    ("tmux", "unhealthy"): (("TmuxMonitorDown", "critical"),),
    ("tmux", "down"): (("TmuxMonitorDown", "critical"),),
}


def describe() -> str:
    """A plain-text table of every fault, for --help and `redline demo faults`."""
    lines = []
    for system, faults in FAULTS.items():
        for fault, what in faults.items():
            alerts = ", ".join(
                f"{name} ({severity})" for name, severity in FAULT_ALERTS.get((system, fault), ())
            )
            lines.append(f"  {system:<16} {fault:<20} {what}  [trips: {alerts or '-'}]")
    return "\n".join(lines)
