"""entropy: node_entropy_available_bits and node_entropy_pool_size_bits from /proc/sys/kernel/random."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, proc_path, read_int
from redline.exporters.host.config import HostConfig


@collector("entropy")
def make_entropy(config: HostConfig) -> CollectFn:
    available = proc_path(config, "sys", "kernel", "random", "entropy_avail")
    pool = proc_path(config, "sys", "kernel", "random", "poolsize")

    def collect_entropy() -> list[Metric]:
        return [
            gauge("node_entropy_available_bits", "Bits of available entropy.", float(read_int(available))),
            gauge("node_entropy_pool_size_bits", "Bits of entropy pool.", float(read_int(pool))),
        ]

    return collect_entropy
