"""vmstat: node_vmstat_<field> for the /proc/vmstat fields node_exporter exports by default (page faults,
paging and swapping in and out, OOM kills)."""

from __future__ import annotations

import re

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_text, untyped
from redline.exporters.host.config import HostConfig

# node_exporter's --collector.vmstat.fields default
FIELDS = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")


@collector("vmstat")
def make_vmstat(config: HostConfig) -> CollectFn:
    path = proc_path(config, "vmstat")

    def collect_vmstat() -> list[Metric]:
        families = []
        for line in read_text(path).splitlines():
            name, _, value = line.partition(" ")
            if FIELDS.match(name):
                families.append(
                    untyped(f"node_vmstat_{name}", f"/proc/vmstat information field {name}.", float(value))
                )
        return families

    return collect_vmstat
