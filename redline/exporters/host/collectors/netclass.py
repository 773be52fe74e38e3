"""netclass: node_network_* properties of each interface in /sys/class/net (speed, carrier, MTU,
operstate, ...), as node_exporter reads them from sysfs."""

from __future__ import annotations

import os
import re

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, NoDataError, collector, read_optional, sys_path
from redline.exporters.host.config import HostConfig

# metric name, sysfs attribute, kind; sorted like node_exporter's output
_PROPERTIES = (
    ("address_assign_type", "addr_assign_type", GaugeMetricFamily),
    ("carrier", "carrier", GaugeMetricFamily),
    ("carrier_changes_total", "carrier_changes", CounterMetricFamily),
    ("carrier_up_changes_total", "carrier_up_count", CounterMetricFamily),
    ("carrier_down_changes_total", "carrier_down_count", CounterMetricFamily),
    ("device_id", "dev_id", GaugeMetricFamily),
    ("dormant", "dormant", GaugeMetricFamily),
    ("flags", "flags", GaugeMetricFamily),
    ("iface_id", "ifindex", GaugeMetricFamily),
    ("iface_link", "iflink", GaugeMetricFamily),
    ("iface_link_mode", "link_mode", GaugeMetricFamily),
    ("mtu_bytes", "mtu", GaugeMetricFamily),
    ("name_assign_type", "name_assign_type", GaugeMetricFamily),
    ("net_dev_group", "netdev_group", GaugeMetricFamily),
    ("speed_bytes", "speed", GaugeMetricFamily),
    ("transmit_queue_length", "tx_queue_len", GaugeMetricFamily),
    ("protocol_type", "type", GaugeMetricFamily),
)
_INFO_LABELS = ["device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"]
IGNORED_DEVICES = re.compile(r"^$")  # node_exporter's --collector.netclass.ignored-devices default
IFF_UP = 0x1


def _number(text: str | None) -> int | None:
    """A sysfs number (flags and dev_id are hexadecimal '0x1003'); None when unreadable."""
    if text is None or text == "":
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


@collector("netclass")
def make_netclass(config: HostConfig) -> CollectFn:
    root = sys_path(config, "class", "net")

    def collect_netclass() -> list[Metric]:
        try:
            names = sorted(os.listdir(root))
        except (FileNotFoundError, PermissionError) as err:
            raise NoDataError(f"cannot read {root}: {err}") from None
        up = GaugeMetricFamily(
            "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", labels=["device"]
        )
        info = GaugeMetricFamily(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            labels=_INFO_LABELS,
        )
        properties = [
            kind(f"node_network_{name}", f"Network device property: {name}", labels=["device"])
            for name, _, kind in _PROPERTIES
        ]
        for device in names:
            folder = os.path.join(root, device)
            if IGNORED_DEVICES.search(device) or os.path.isfile(folder):  # e.g. bonding_masters
                continue

            def attr(name: str, folder: str = folder) -> str | None:
                return read_optional(os.path.join(folder, name))

            operstate = attr("operstate") or ""
            flags = _number(attr("flags"))
            adminstate = "unknown" if flags is None else ("up" if flags & IFF_UP else "down")
            up.add_metric([device], 1.0 if operstate == "up" else 0.0)
            info.add_metric(
                [device, attr("address") or "", attr("broadcast") or "", attr("duplex") or "", operstate,
                 adminstate, attr("ifalias") or ""],
                1.0,
            )  # fmt: skip
            for family, (name, attribute, _) in zip(properties, _PROPERTIES, strict=True):
                value = flags if attribute == "flags" else _number(attr(attribute))
                if value is None:
                    continue
                if name == "speed_bytes":
                    value = int(value * 1000 * 1000 / 8)  # Mbit/s in sysfs
                family.add_metric([device], float(value))
        return [up, info, *properties]

    return collect_netclass
