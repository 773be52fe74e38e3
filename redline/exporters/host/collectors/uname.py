"""uname: node_uname_info{domainname,machine,nodename,release,sysname,version} 1."""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_optional
from redline.exporters.host.config import HostConfig


def uname_families(u: os.uname_result, domainname: str | None) -> list[Metric]:
    """The info metric for one uname(2) result; the domain name as the kernel reports it."""
    info = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=["domainname", "machine", "nodename", "release", "sysname", "version"],
    )
    info.add_metric([domainname or "(none)", u.machine, u.nodename, u.release, u.sysname, u.version], 1.0)
    return [info]


@collector("uname")
def make_uname(config: HostConfig, uname: Callable[[], os.uname_result] = os.uname) -> CollectFn:
    # uname(2) has no domainname field in Python; the kernel exposes the same string here.
    domainname_path = proc_path(config, "sys", "kernel", "domainname")

    def collect_uname() -> list[Metric]:
        return uname_families(uname(), read_optional(domainname_path))

    return collect_uname
