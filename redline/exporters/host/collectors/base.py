"""What every collector shares: the registry of collectors by node_exporter name, the configured
procfs/sysfs/rootfs, file helpers and metric constructors.

A collector module registers a factory with @collector(name): the factory gets the HostConfig once at
start-up and returns the function the exporter calls on every scrape (a closure may keep state, such as
the filesystem collector's parsed mount table).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.config import HostConfig

CollectFn = Callable[[], list[Metric]]
Factory = Callable[[HostConfig], CollectFn]

FACTORIES: dict[str, Factory] = {}


class NoDataError(Exception):
    """The kernel has no data for this collector here (a module not loaded, a feature compiled out).

    Like node_exporter's ErrNoData: the collector reports node_scrape_collector_success 0, logged at
    debug level only, since it is a property of the machine rather than a failure.
    """


def collector(name: str) -> Callable[[Factory], Factory]:
    """Register a collector factory under its node_exporter collector name."""

    def register(factory: Factory) -> Factory:
        FACTORIES[name] = factory
        return factory

    return register


def proc_path(config: HostConfig, *parts: str) -> str:
    """A file under the configured procfs (node_exporter's procFilePath)."""
    return os.path.join(config.procfs, *parts)


def sys_path(config: HostConfig, *parts: str) -> str:
    """A file under the configured sysfs (node_exporter's sysFilePath)."""
    return os.path.join(config.sysfs, *parts)


def rootfs_path(config: HostConfig, path: str) -> str:
    """An absolute host path under the configured rootfs (node_exporter's rootfsFilePath)."""
    return os.path.join(config.rootfs, path.lstrip("/"))


def read_text(path: str) -> str:
    """The whole file. os.open/os.read instead of open(): no buffered text wrapper to set up, a third of
    the cost for the many small /proc and /sys files read on every scrape."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_int(path: str) -> int:
    """A file holding one integer (most of /proc/sys and /sys)."""
    return int(read_text(path).strip())


def read_optional(path: str) -> str | None:
    """A sysfs attribute, or None where the kernel refuses it (e.g. carrier of a device that is down)."""
    try:
        return read_text(path).strip()
    except OSError:
        return None


def missing_is_no_data(path: str) -> None:
    """Raise NoDataError when `path` does not exist (the kernel lacks the feature)."""
    if not os.path.exists(path):
        raise NoDataError(f"{path} does not exist")


def gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


def counter(name: str, doc: str, value: float) -> Metric:
    return CounterMetricFamily(name, doc, value=value)


def untyped(name: str, doc: str, value: float) -> Metric:
    return UnknownMetricFamily(name, doc, value=value)


def labelled(kind: type, name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float]]):
    """One family of `kind` (GaugeMetricFamily, CounterMetricFamily...) with a sample per row."""
    family = kind(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def entries(path: str) -> list[str]:
    """Sorted names in a directory (so output order does not depend on the filesystem)."""
    return sorted(os.listdir(path))


def exists(path: str) -> bool:
    return Path(path).exists()
