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


def trips(*alerts: str) -> tuple[tuple[str, str], ...]:
    """(alert, severity) pairs from "AlertName severity [severity ...]" (a critical breach also passes
    the warning of the same alert)."""
    pairs = []
    for alert in alerts:
        name, *severities = alert.split()
        pairs += [(name, severity) for severity in severities]
    return tuple(pairs)


# (system, fault) -> the catalogue alerts, as (alert name, severity), that the fault is meant to trip.
# tests/integration/test_demo.py turns each fault on and checks every listed alert's expression.
FAULT_ALERTS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("gamebook", "latency"): trips("GamebookLatencyBudgetBurn critical"),
    ("gamebook", "errors"): trips("GamebookErrorBudgetBurn critical"),
    ("gamebook", "cpu"): trips("GamebookCpuHigh warning"),
    ("gamebook", "memory"): trips("GamebookMemoryHigh warning"),
    ("gamebook", "low-fps"): trips("GamebookClientFpsLow warning"),
    ("gamebook", "pool-exhaustion"): trips("GamebookWorkerPoolSaturated warning"),
    ("gamebook", "breaker-open"): trips("GamebookCircuitBreakerOpen warning"),
    ("gamebook", "down"): trips("GamebookDown critical"),
    ("qerrors", "heap"): trips("QerrorsHeapUsageHigh warning"),
    ("qerrors", "cache-misses"): trips("QerrorsCacheHitRateLow warning"),
    ("qerrors", "latency"): trips("QerrorsLatencyHigh warning"),
    ("qerrors", "error-burst"): trips("QerrorsErrorRateAboveBaseline warning"),
    ("qerrors", "down"): trips("QerrorsDown critical"),
    ("qerrors-staging", "heap"): trips("QerrorsHeapUsageHigh warning"),
    ("qerrors-staging", "cache-misses"): trips("QerrorsCacheHitRateLow warning"),
    ("qerrors-staging", "latency"): trips("QerrorsLatencyHigh warning"),
    ("qerrors-staging", "error-burst"): trips("QerrorsErrorRateAboveBaseline warning"),
    ("qerrors-staging", "down"): trips("QerrorsDown critical"),
    ("pipeline", "slow-jobs"): trips("PipelineJobsSlow warning"),
    ("pipeline", "very-slow-jobs"): trips("PipelineJobsSlow warning critical"),
    ("pipeline", "job-failures"): trips("PipelineJobSuccessBudgetBurn critical"),
    ("pipeline", "concurrency"): trips("PipelineConcurrencyHigh warning"),
    ("pipeline", "concurrency-critical"): trips("PipelineConcurrencyHigh warning critical"),
    ("pipeline", "workers-down"): trips("PipelineWorkersDown critical"),
    ("pipeline", "db-connections"): trips("PipelinePostgresConnectionsHigh warning"),
    ("pipeline", "job-table-locked"): trips("PipelineJobExporterDown warning"),
    ("pipeline", "db-down"): trips("PipelinePostgresDown critical", "PipelineJobExporterDown warning"),
    ("pipeline", "down"): trips("PipelineApiDown critical"),
    ("tmux", "slow-cycles"): trips("TmuxMonitorCycleSlow warning"),
    ("tmux", "cpu"): trips("TmuxMonitorCpuHigh warning"),
    ("tmux", "memory"): trips("TmuxMonitorMemoryHigh warning"),
    ("tmux", "memory-critical"): trips("TmuxMonitorMemoryHigh warning critical"),
    ("tmux", "errors"): trips("TmuxMonitorErrorRateHigh warning"),
    ("tmux", "pool-exhaustion"): trips("TmuxMonitorPoolSaturated warning"),
    ("tmux", "cache-misses"): trips("TmuxMonitorCacheHitRateLow warning"),
    ("tmux", "unhealthy"): trips("TmuxMonitorDown critical"),
    ("tmux", "down"): trips("TmuxMonitorDown critical"),
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
