"""The hosts dashboard: the host catalogue entries plus node_exporter-style resource panels.

The queries use node_exporter's and process-exporter's metric names, so they work on redline's host
exporter (job `host`) and on node_exporter itself (job `node`); `$job` and `$instance` select hosts.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from redline.generate.model import Catalogue, System
from redline.generate.render.dashboards import common
from redline.generate.render.dashboards.system import FIRST_EXTRA_PANEL, system_dashboard

HOST_SYSTEM = "host"
SELECTOR = 'job=~"$job", instance=~"$instance"'
RATE = "[$__rate_interval]"
IDLE = 'mode="idle"'
RESIDENT = 'memtype="resident"'


def _sel(extra: str = "") -> str:
    return "{" + SELECTOR + (f", {extra}" if extra else "") + "}"


def host_variables() -> list[dashboard.QueryVariable]:
    return [
        common.query_variable("instance", "Instance", 'label_values(node_uname_info{job=~"$job"}, instance)')
    ]


def _resources(ids: list[int]) -> list[Builder[model.Panel]]:
    def ts(title: str, description: str, unit: str, queries: list, **kw) -> Builder[model.Panel]:
        return common.panel("timeseries", ids.pop(0), title, description, unit, queries, **kw)

    q = common.query
    return [
        ts(
            "CPU busy",
            "Share of CPU time not idle, averaged over the host's CPUs (1 = every core busy).",
            "percentunit",
            [
                q(
                    f"1 - avg by (instance) (rate(node_cpu_seconds_total{_sel(IDLE)}{RATE}))",
                    legend="{{instance}}",
                )
            ],
            min_value=0,
        ),
        ts(
            "Memory used",
            "1 - MemAvailable / MemTotal: memory the kernel cannot hand out without swapping.",
            "percentunit",
            [
                q(
                    f"1 - node_memory_MemAvailable_bytes{_sel()} / node_memory_MemTotal_bytes{_sel()}",
                    legend="{{instance}}",
                )
            ],
            min_value=0,
        ),
        ts(
            "Filesystem used",
            "1 - available / size per mounted filesystem (the exporter drops pseudo filesystems).",
            "percentunit",
            [
                q(
                    f"1 - node_filesystem_avail_bytes{_sel()} / node_filesystem_size_bytes{_sel()}",
                    legend="{{instance}} {{mountpoint}}",
                )
            ],
            min_value=0,
        ),
        ts(
            "Load average",
            "1, 5 and 15 minute load averages; compare with the number of CPUs.",
            "short",
            [
                q(f"node_load1{_sel()}", legend="{{instance}} load1", ref_id="A"),
                q(f"node_load5{_sel()}", legend="{{instance}} load5", ref_id="B"),
                q(f"node_load15{_sel()}", legend="{{instance}} load15", ref_id="C"),
                q(
                    f"count by (instance) (node_cpu_seconds_total{_sel(IDLE)})",
                    legend="{{instance}} CPUs",
                    ref_id="D",
                ),
            ],
            min_value=0,
        ),
        ts(
            "Network traffic",
            "Bytes per second received and sent per network device (loopback included).",
            "Bps",
            [
                q(
                    f"rate(node_network_receive_bytes_total{_sel()}{RATE})",
                    legend="{{instance}} {{device}} received",
                    ref_id="A",
                ),
                q(
                    f"rate(node_network_transmit_bytes_total{_sel()}{RATE})",
                    legend="{{instance}} {{device}} sent",
                    ref_id="B",
                ),
            ],
            min_value=0,
        ),
        ts(
            "Disk throughput",
            "Bytes per second read and written per block device.",
            "Bps",
            [
                q(
                    f"rate(node_disk_read_bytes_total{_sel()}{RATE})",
                    legend="{{instance}} {{device}} read",
                    ref_id="A",
                ),
                q(
                    f"rate(node_disk_written_bytes_total{_sel()}{RATE})",
                    legend="{{instance}} {{device}} written",
                    ref_id="B",
                ),
            ],
            min_value=0,
        ),
        ts(
            "Disk busy",
            "Share of time each block device had I/O in flight (1 = saturated).",
            "percentunit",
            [q(f"rate(node_disk_io_time_seconds_total{_sel()}{RATE})", legend="{{instance}} {{device}}")],
            min_value=0,
        ),
    ]


def _process_groups(ids: list[int]) -> list[Builder[model.Panel]]:
    def ts(title: str, description: str, unit: str, expr: str) -> Builder[model.Panel]:
        return common.panel(
            "timeseries",
            ids.pop(0),
            title,
            description,
            unit,
            [common.query(expr, legend="{{instance}} {{groupname}}")],
            min_value=0,
        )

    return [
        ts(
            "Process groups: resident memory",
            "Resident set size of each named process group.",
            "bytes",
            f"namedprocess_namegroup_memory_bytes{_sel(RESIDENT)}",
        ),
        ts(
            "Process groups: CPU",
            "CPU used by each named process group (1 = one full core).",
            "percentunit",
            f"sum by (instance, groupname) (rate(namedprocess_namegroup_cpu_seconds_total{_sel()}{RATE}))",
        ),
        ts(
            "Process groups: processes",
            "Processes in each named group (0 = the service is not running).",
            "short",
            f"namedprocess_namegroup_num_procs{_sel()}",
        ),
        ts(
            "Process groups: threads",
            "Threads of each named process group.",
            "short",
            f"namedprocess_namegroup_num_threads{_sel()}",
        ),
        ts(
            "Process groups: open file descriptors",
            "Open file descriptors of each named process group.",
            "short",
            f"namedprocess_namegroup_open_filedesc{_sel()}",
        ),
    ]


def host_rows() -> list[tuple[dashboard.Row, list[Builder[model.Panel]]]]:
    """The resource rows, with panel ids from FIRST_EXTRA_PANEL up."""
    ids = list(range(FIRST_EXTRA_PANEL, FIRST_EXTRA_PANEL + 40))
    resources_row = common.row(ids.pop(0), "Host resources")
    resources = _resources(ids)
    groups_row = common.row(ids.pop(0), "Named process groups")
    groups = _process_groups(ids)
    return [(resources_row, resources), (groups_row, groups)]


def hosts_dashboard(catalogue: Catalogue) -> dashboard.Dashboard:
    """The host system's dashboard: its catalogue entries, then the node_exporter-style rows."""
    try:
        system = catalogue.system(HOST_SYSTEM)
    except KeyError:
        system = System(
            id=HOST_SYSTEM,
            name="Hosts",
            source="node_exporter conventions",
            file="host.yml",
            alert_prefix="Host",
            metrics=[],
            thresholds=[],
            slos=[],
        )
    return system_dashboard(catalogue, system, extra_variables=host_variables(), extra_rows=host_rows())
