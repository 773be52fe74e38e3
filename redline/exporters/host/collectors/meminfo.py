"""meminfo: node_memory_<Field>_bytes (and unitless node_memory_HugePages_*) for every /proc/meminfo field."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, proc_path, read_text
from redline.exporters.host.config import HostConfig

# /proc/meminfo key and unit -> (metric name, help, scale); the set of fields does not change at runtime.
_FIELDS: dict[tuple[str, str], tuple[str, str, float]] = {}


def _field(key: str, unit: str) -> tuple[str, str, float]:
    field = _FIELDS.get((key, unit))
    if field is None:
        name = key.replace("(", "_").replace(")", "")
        scale = 1.0
        if unit == "kB":
            name, scale = f"{name}_bytes", 1024.0
        field = _FIELDS[(key, unit)] = (f"node_memory_{name}", f"Memory information field {name}.", scale)
    return field


@collector("meminfo")
def make_meminfo(config: HostConfig) -> CollectFn:
    path = proc_path(config, "meminfo")

    def collect_meminfo() -> list[Metric]:
        families: list[Metric] = []
        for line in read_text(path).splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if not parts:
                continue
            name, doc, scale = _field(key, parts[1] if len(parts) > 1 else "")
            families.append(gauge(name, doc, float(parts[0]) * scale))
        return families

    return collect_meminfo
