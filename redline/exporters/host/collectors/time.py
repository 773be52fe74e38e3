"""time: node_time_seconds, node_time_zone_offset_seconds{time_zone} and the clocksources in sysfs."""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, read_text, sys_path
from redline.exporters.host.config import HostConfig


def clock_families(now: float, zone: str, offset: int) -> list[Metric]:
    """node_time_seconds and the zone offset for one reading of the clock."""
    tz = GaugeMetricFamily(
        "node_time_zone_offset_seconds", "System time zone offset in seconds.", labels=["time_zone"]
    )
    tz.add_metric([zone], float(offset))
    return [gauge("node_time_seconds", "System time in seconds since epoch (1970).", now), tz]


@collector("time")
def make_time(config: HostConfig, clock: Callable[[], float] = time.time) -> CollectFn:
    pattern = sys_path(config, "devices", "system", "clocksource", "clocksource[0-9]*")

    def collect_time() -> list[Metric]:
        now = clock()
        local = time.localtime(now)
        families = clock_families(now, local.tm_zone, local.tm_gmtoff)
        available = GaugeMetricFamily(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            labels=["device", "clocksource"],
        )
        current = GaugeMetricFamily(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            labels=["device", "clocksource"],
        )
        # the device label is the position in the sorted list, as node_exporter numbers them
        for index, folder in enumerate(sorted(glob.glob(pattern))):
            device = str(index)
            for name in read_text(os.path.join(folder, "available_clocksource")).split():
                available.add_metric([device, name], 1.0)
            current.add_metric([device, read_text(os.path.join(folder, "current_clocksource")).strip()], 1.0)
        return [*families, available, current]

    return collect_time
