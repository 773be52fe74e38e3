"""netstat: node_netstat_<Protocol>_<Field> from /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6,
the fields node_exporter exports by default (TCP, UDP, ICMP, IP counters)."""

from __future__ import annotations

import contextlib
import re

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_text, untyped
from redline.exporters.host.config import HostConfig

# node_exporter's --collector.netstat.fields default
FIELDS = re.compile(
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)


def parse_pairs(text: str) -> dict[tuple[str, str], str]:
    """/proc/net/{netstat,snmp}: a line of field names, then a line of values, per protocol."""
    stats: dict[tuple[str, str], str] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        protocol, _, names = names.partition(":")
        for name, value in zip(names.split(), values.partition(":")[2].split(), strict=False):
            stats[(protocol, name)] = value
    return stats


def parse_snmp6(text: str) -> dict[tuple[str, str], str]:
    """/proc/net/snmp6: one 'Ip6InReceives 31' per line; the protocol ends at its first '6'."""
    stats: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        six = parts[0].find("6")
        if six != -1:
            stats[(parts[0][: six + 1], parts[0][six + 1 :])] = parts[1]
    return stats


@collector("netstat")
def make_netstat(config: HostConfig) -> CollectFn:
    netstat, snmp, snmp6 = (proc_path(config, "net", name) for name in ("netstat", "snmp", "snmp6"))
    wanted: dict[str, bool] = {}  # key -> matches FIELDS (a regex decision per key, cached)

    def collect_netstat() -> list[Metric]:
        stats = parse_pairs(read_text(netstat))
        stats.update(parse_pairs(read_text(snmp)))
        with contextlib.suppress(FileNotFoundError):  # IPv6 disabled
            stats.update(parse_snmp6(read_text(snmp6)))
        families = []
        for (protocol, name), value in stats.items():
            key = f"{protocol}_{name}"
            ok = wanted.get(key)
            if ok is None:
                ok = wanted[key] = bool(FIELDS.match(key))
            if ok:
                families.append(untyped(f"node_netstat_{key}", f"Statistic {protocol}{name}.", float(value)))
        return families

    return collect_netstat
