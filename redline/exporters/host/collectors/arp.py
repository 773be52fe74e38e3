"""arp: node_arp_entries{device}, the IPv4 neighbour entries per interface from /proc/net/arp."""

from __future__ import annotations

import collections

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, labelled, proc_path, read_text
from redline.exporters.host.config import HostConfig


@collector("arp")
def make_arp(config: HostConfig) -> CollectFn:
    path = proc_path(config, "net", "arp")

    def collect_arp() -> list[Metric]:
        # the device is the last column; the kernel leaves NOARP entries out of this file, as node_exporter
        # does when it asks over netlink
        counts = collections.Counter(
            line.split()[-1] for line in read_text(path).splitlines()[1:] if line.strip()
        )
        rows = (([device], float(n)) for device, n in sorted(counts.items()))
        return [labelled(GaugeMetricFamily, "node_arp_entries", "ARP entries by device", ["device"], rows)]

    return collect_arp
