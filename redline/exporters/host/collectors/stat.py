"""stat: boot time, context switches, interrupts, forks, running and blocked processes from /proc/stat."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, counter, gauge, proc_path, read_text
from redline.exporters.host.config import HostConfig

_KEYS = ("btime", "ctxt", "intr", "processes", "procs_running", "procs_blocked")


@collector("stat")
def make_stat(config: HostConfig) -> CollectFn:
    path = proc_path(config, "stat")

    def collect_stat() -> list[Metric]:
        values: dict[str, float] = {}
        for line in read_text(path).splitlines():
            key, _, rest = line.partition(" ")
            if key in _KEYS:
                values[key] = float(rest.split()[0])
        return [
            gauge("node_boot_time_seconds", "Node boot time, in unixtime.", values["btime"]),
            counter("node_context_switches_total", "Total number of context switches.", values["ctxt"]),
            counter("node_intr_total", "Total number of interrupts serviced.", values["intr"]),
            counter("node_forks_total", "Total number of forks.", values["processes"]),
            gauge("node_procs_running", "Number of processes in runnable state.", values["procs_running"]),
            gauge(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                values["procs_blocked"],
            ),
        ]

    return collect_stat
