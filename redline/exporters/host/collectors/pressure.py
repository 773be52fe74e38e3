"""pressure: node_pressure_*_seconds_total, the pressure stall information (PSI) totals in /proc/pressure."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import (
    CollectFn,
    NoDataError,
    collector,
    counter,
    proc_path,
    read_text,
)
from redline.exporters.host.config import HostConfig

# resource -> ((line, metric name, help), ...);
# node_exporter exports no 'full' line for cpu and no 'some' line for irq
_RESOURCES = {
    "cpu": (("some", "cpu_waiting", "Total time in seconds that processes have waited for CPU time"),),
    "io": (
        ("some", "io_waiting", "Total time in seconds that processes have waited due to IO congestion"),
        ("full", "io_stalled", "Total time in seconds no process could make progress due to IO congestion"),
    ),
    "memory": (
        ("some", "memory_waiting", "Total time in seconds that processes have waited for memory"),
        (
            "full",
            "memory_stalled",
            "Total time in seconds no process could make progress due to memory congestion",
        ),
    ),
    "irq": (
        ("full", "irq_stalled", "Total time in seconds no process could make progress due to IRQ congestion"),
    ),
}


def totals(text: str) -> dict[str, int]:
    """'some avg10=0.11 avg60=0.36 avg300=1.21 total=48420934' -> {'some': 48420934} (microseconds)."""
    out = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for field in fields:
            key, _, value = field.partition("=")
            if key == "total":
                out[kind] = int(value)
    return out


@collector("pressure")
def make_pressure(config: HostConfig) -> CollectFn:
    paths = {resource: proc_path(config, "pressure", resource) for resource in _RESOURCES}

    def collect_pressure() -> list[Metric]:
        families = []
        for resource, lines in _RESOURCES.items():
            try:
                values = totals(read_text(paths[resource]))
            except FileNotFoundError:  # an older kernel, or irq before Linux 6.1
                continue
            except OSError as err:  # EOPNOTSUPP: PSI compiled in but off (psi=0)
                raise NoDataError(f"pressure information is disabled: {err}") from None
            for line, name, doc in lines:
                if line in values:
                    families.append(
                        counter(f"node_pressure_{name}_seconds_total", doc, values[line] / 1000.0 / 1000.0)
                    )  # node_exporter's arithmetic, to the last bit
        if not families:
            raise NoDataError("pressure information is unavailable (Linux >= 4.20 with CONFIG_PSI)")
        return families

    return collect_pressure
