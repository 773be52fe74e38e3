"""Host collectors with node_exporter's names, one module per node_exporter collector, plus named process
groups with process-exporter's names; IsolatedCollectors runs them within a per-collector time budget.

Every collector reads the configured procfs/sysfs/rootfs (HostConfig.procfs etc., node_exporter's
--path.procfs/--path.sysfs/--path.rootfs), so its output can be asserted against a fixture tree.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, ProcessCollector

# Each module registers its factory in FACTORIES when imported.
from redline.exporters.host.collectors import (  # noqa: F401
    arp,
    conntrack,
    cpu,
    diskstats,
    entropy,
    filefd,
    filesystem,
    loadavg,
    meminfo,
    namedprocess,
    netclass,
    netdev,
    netstat,
    pressure,
    processes,
    sockstat,
    softnet,
    stat,
    textfile,
    time,
    timex,
    uname,
    vmstat,
)
from redline.exporters.host.collectors.base import FACTORIES, CollectFn, NoDataError
from redline.exporters.host.collectors.isolation import IsolatedCollectors
from redline.exporters.host.collectors.namedprocess import ProcessGroupCollector
from redline.exporters.host.config import COLLECTOR_NAMES, HostConfig

__all__ = [
    "FACTORIES",
    "CollectFn",
    "IsolatedCollectors",
    "NoDataError",
    "ProcessGroupCollector",
    "build_registry",
    "node_collectors",
]
# the config validates names without importing the collectors; both lists must agree
assert set(FACTORIES) == set(COLLECTOR_NAMES), sorted(set(FACTORIES) ^ set(COLLECTOR_NAMES))


def node_collectors(config: HostConfig) -> dict[str, CollectFn]:
    """The enabled collectors by node_exporter collector name, built for this config."""
    return {name: FACTORIES[name](config) for name in config.enabled_collectors()}


def build_registry(config: HostConfig, extra: dict[str, CollectFn] | None = None) -> CollectorRegistry:
    """A dedicated registry: the isolated host collectors (plus `extra`) and the exporter's process_*."""
    registry = CollectorRegistry()
    collectors = {**node_collectors(config), **(extra or {})}
    registry.register(IsolatedCollectors(collectors, config.collector_timeout_seconds))
    ProcessCollector(registry=registry)
    return registry
