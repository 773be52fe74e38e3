"""conntrack: node_nf_conntrack_entries, _entries_limit and node_nf_conntrack_stat_* summed over CPUs."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import (
    CollectFn,
    collector,
    gauge,
    missing_is_no_data,
    proc_path,
    read_int,
    read_text,
)
from redline.exporters.host.config import HostConfig

# /proc/net/stat/nf_conntrack column -> help; node_exporter exports these as gauges
_STATS = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, if maximum table size "
    "was reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
}


@collector("conntrack")
def make_conntrack(config: HostConfig) -> CollectFn:
    count = proc_path(config, "sys", "net", "netfilter", "nf_conntrack_count")
    limit = proc_path(config, "sys", "net", "netfilter", "nf_conntrack_max")
    stat = proc_path(config, "net", "stat", "nf_conntrack")

    def collect_conntrack() -> list[Metric]:
        missing_is_no_data(count)  # the nf_conntrack module is not loaded
        families = [
            gauge(
                "node_nf_conntrack_entries",
                "Number of currently allocated flow entries for connection tracking.",
                float(read_int(count)),
            ),
            gauge(
                "node_nf_conntrack_entries_limit",
                "Maximum size of connection tracking table.",
                float(read_int(limit)),
            ),
        ]
        missing_is_no_data(stat)
        lines = read_text(stat).splitlines()
        header = lines[0].split()
        totals = dict.fromkeys(_STATS, 0)
        for line in lines[1:]:  # one line of hexadecimal counters per CPU
            values = dict(zip(header, line.split(), strict=False))
            for key in _STATS:
                totals[key] += int(values.get(key, "0"), 16)
        families.extend(
            gauge(f"node_nf_conntrack_stat_{key}", doc, float(totals[key])) for key, doc in _STATS.items()
        )
        return families

    return collect_conntrack
