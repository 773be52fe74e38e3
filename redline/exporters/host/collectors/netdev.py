"""netdev: node_network_{receive,transmit}_*_total{device} for every field of /proc/net/dev."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_text
from redline.exporters.host.config import HostConfig

# /proc/net/dev's 16 columns in order
_FIELDS = tuple(
    f"{direction}_{what}"
    for direction, whats in (
        ("receive", ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")),
        ("transmit", ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")),
    )
    for what in whats
)


@collector("netdev")
def make_netdev(config: HostConfig) -> CollectFn:
    path = proc_path(config, "net", "dev")

    def collect_netdev() -> list[Metric]:
        families = [
            CounterMetricFamily(
                f"node_network_{field}_total", f"Network device statistic {field}.", labels=["device"]
            )
            for field in _FIELDS
        ]
        for line in read_text(path).splitlines()[2:]:
            device, _, values = line.partition(":")
            device = device.strip()
            for family, value in zip(families, values.split(), strict=False):
                family.add_metric([device], float(value))
        return list(families)

    return collect_netdev
