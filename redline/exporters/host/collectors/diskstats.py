"""diskstats: node_disk_* I/O counters per whole disk from /proc/diskstats, and node_disk_info."""

from __future__ import annotations

import os
import re

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import (
    CollectFn,
    collector,
    proc_path,
    read_optional,
    read_text,
    rootfs_path,
    sys_path,
)
from redline.exporters.host.config import DEFAULT_DISK_DEVICES_EXCLUDE, HostConfig

_SECTOR = 512.0  # /proc/diskstats counts 512-byte sectors whatever the device
_MS = 0.001
# (metric name, help, kind, scale) for /proc/diskstats columns 3, 4, ... in order
_COLUMNS: tuple[tuple[str, str, type, float], ...] = (
    ("reads_completed_total", "The total number of reads completed successfully.", CounterMetricFamily, 1.0),
    ("reads_merged_total", "The total number of reads merged.", CounterMetricFamily, 1.0),
    ("read_bytes_total", "The total number of bytes read successfully.", CounterMetricFamily, _SECTOR),
    ("read_time_seconds_total", "The total number of seconds spent by all reads.", CounterMetricFamily, _MS),
    ("writes_completed_total", "The total number of writes completed successfully.",
     CounterMetricFamily, 1.0),
    ("writes_merged_total", "The number of writes merged.", CounterMetricFamily, 1.0),
    ("written_bytes_total", "The total number of bytes written successfully.", CounterMetricFamily, _SECTOR),
    ("write_time_seconds_total", "This is the total number of seconds spent by all writes.",
     CounterMetricFamily, _MS),
    ("io_now", "The number of I/Os currently in progress.", GaugeMetricFamily, 1.0),
    ("io_time_seconds_total", "Total seconds spent doing I/Os.", CounterMetricFamily, _MS),
    ("io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.",
     CounterMetricFamily, _MS),
    ("discards_completed_total", "The total number of discards completed successfully.",
     CounterMetricFamily, 1.0),
    ("discards_merged_total", "The total number of discards merged.", CounterMetricFamily, 1.0),
    # sectors, not bytes: node_exporter's name and unit
    ("discarded_sectors_total", "The total number of sectors discarded successfully.",
     CounterMetricFamily, 1.0),
    ("discard_time_seconds_total", "This is the total number of seconds spent by all discards.",
     CounterMetricFamily, _MS),
    ("flush_requests_total", "The total number of flush requests completed successfully",
     CounterMetricFamily, 1.0),
    ("flush_requests_time_seconds_total", "This is the total number of seconds spent by all flush requests.",
     CounterMetricFamily, _MS),
)  # fmt: skip
_INFO_LABELS = ["device", "major", "minor", "path", "wwn", "model", "serial", "revision", "rotational"]
_EXCLUDE = re.compile(DEFAULT_DISK_DEVICES_EXCLUDE)


def _udev_properties(path: str) -> dict[str, str]:
    """E:KEY=VALUE lines of a udev database entry (none when udev keeps no database here)."""
    text = read_optional(path)
    props = {}
    for line in (text or "").splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


@collector("diskstats")
def make_diskstats(config: HostConfig) -> CollectFn:
    path = proc_path(config, "diskstats")
    udev = rootfs_path(config, "/run/udev/data")
    excluded: dict[str, bool] = {}  # device name -> excluded (a regex decision, cached per name)
    info_cache: dict[tuple[str, str, str], list[str]] = {}

    def is_excluded(device: str) -> bool:
        result = excluded.get(device)
        if result is None:
            if len(excluded) > 4096:  # devices come and go (loop, dm-N); keep the cache bounded
                excluded.clear()
            result = excluded[device] = bool(_EXCLUDE.search(device))
        return result

    def info_labels(major: str, minor: str, device: str) -> list[str]:
        # udev properties and rotational change only when the device is replaced: read once per device
        key = (major, minor, device)
        labels = info_cache.get(key)
        if labels is None:
            if len(info_cache) > 4096:
                info_cache.clear()
            props = _udev_properties(os.path.join(udev, f"b{major}:{minor}"))
            serial = (
                props.get("SCSI_IDENT_SERIAL") or props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL", "")
            )
            rotational = read_optional(sys_path(config, "block", device, "queue", "rotational"))
            labels = info_cache[key] = [
                device, major, minor, props.get("ID_PATH", ""), props.get("ID_WWN", ""),
                props.get("ID_MODEL", ""), serial, props.get("ID_REVISION", ""),
                "1" if rotational == "1" else "0",
            ]  # fmt: skip
        return labels

    def collect_diskstats() -> list[Metric]:
        families = [kind(f"node_disk_{name}", doc, labels=["device"]) for name, doc, kind, _ in _COLUMNS]
        info = GaugeMetricFamily("node_disk_info", "Info of /sys/block/<block_device>.", labels=_INFO_LABELS)
        for line in read_text(path).splitlines():
            fields = line.split()
            if len(fields) < 14 or is_excluded(fields[2]):
                continue
            device = fields[2]
            info.add_metric(info_labels(fields[0], fields[1], device), 1.0)
            for family, (_, _, _, scale), value in zip(families, _COLUMNS, fields[3:], strict=False):
                family.add_metric([device], int(value) * scale)
        return [info, *(f for f in families if f.samples)]

    return collect_diskstats
