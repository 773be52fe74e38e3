"""sockstat: node_sockstat_<PROTOCOL>_<state> from /proc/net/sockstat and /proc/net/sockstat6."""

from __future__ import annotations

import contextlib
import os

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, proc_path, read_text
from redline.exporters.host.config import HostConfig


def sockstat_families(text: str, ipv6: bool, page_size: int) -> list[Metric]:
    """One file's families; 'mem' is in pages, so node_exporter adds it in bytes as mem_bytes."""
    families: list[Metric] = []
    for line in text.splitlines():
        protocol, _, rest = line.partition(":")
        parts = rest.split()
        pairs = list(zip(parts[::2], parts[1::2], strict=False))
        if protocol == "sockets":
            if not ipv6:
                used = dict(pairs).get("used")
                if used is not None:
                    families.append(
                        gauge("node_sockstat_sockets_used", "Number of IPv4 sockets in use.", float(used))
                    )
            continue
        values = [(state, float(value)) for state, value in pairs]
        values += [("mem_bytes", value * page_size) for state, value in values if state == "mem"]
        families.extend(
            gauge(
                f"node_sockstat_{protocol}_{state}", f"Number of {protocol} sockets in state {state}.", value
            )
            for state, value in values
        )
    return families


@collector("sockstat")
def make_sockstat(config: HostConfig) -> CollectFn:
    v4, v6 = proc_path(config, "net", "sockstat"), proc_path(config, "net", "sockstat6")
    page_size = os.sysconf("SC_PAGESIZE")

    def collect_sockstat() -> list[Metric]:
        families = sockstat_families(read_text(v4), False, page_size)
        with contextlib.suppress(FileNotFoundError):  # IPv6 disabled
            families += sockstat_families(read_text(v6), True, page_size)
        return families

    return collect_sockstat
