"""loadavg: node_load1, node_load5, node_load15 from /proc/loadavg."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, proc_path, read_text
from redline.exporters.host.config import HostConfig


@collector("loadavg")
def make_loadavg(config: HostConfig) -> CollectFn:
    path = proc_path(config, "loadavg")

    def collect_loadavg() -> list[Metric]:
        one, five, fifteen = (float(v) for v in read_text(path).split()[:3])
        return [
            gauge("node_load1", "1m load average.", one),
            gauge("node_load5", "5m load average.", five),
            gauge("node_load15", "15m load average.", fifteen),
        ]

    return collect_loadavg
