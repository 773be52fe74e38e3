"""softnet: node_softnet_*{cpu} from /proc/net/softnet_stat (packets processed, dropped, squeezed...)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_text
from redline.exporters.host.config import HostConfig

# (name, help, kind, column of softnet_stat); the columns are hexadecimal
_Kind = type[CounterMetricFamily] | type[GaugeMetricFamily]
_COLUMNS: tuple[tuple[str, str, _Kind, int], ...] = (
    ("processed_total", "Number of processed packets", CounterMetricFamily, 0),
    ("dropped_total", "Number of dropped packets", CounterMetricFamily, 1),
    ("times_squeezed_total", "Number of times processing packets ran out of quota", CounterMetricFamily, 2),
    ("cpu_collision_total", "Number of collision occur while obtaining device lock while transmitting",
     CounterMetricFamily, 8),
    ("received_rps_total", "Number of times cpu woken up received_rps", CounterMetricFamily, 9),
    ("flow_limit_count_total", "Number of times flow limit has been reached", CounterMetricFamily, 10),
    ("backlog_len", "Softnet backlog status", GaugeMetricFamily, 11),
)  # fmt: skip
_INDEX_COLUMN = 12  # the CPU number, since Linux 5.10; before it the line number stands for it


@collector("softnet")
def make_softnet(config: HostConfig) -> CollectFn:
    path = proc_path(config, "net", "softnet_stat")

    def collect_softnet() -> list[Metric]:
        families: list[CounterMetricFamily | GaugeMetricFamily] = [
            kind(f"node_softnet_{name}", doc, labels=["cpu"]) for name, doc, kind, _ in _COLUMNS
        ]
        for line_number, line in enumerate(read_text(path).splitlines()):
            columns = line.split()
            cpu = str(int(columns[_INDEX_COLUMN], 16) if len(columns) > _INDEX_COLUMN else line_number)
            for family, (_, _, _, column) in zip(families, _COLUMNS, strict=True):
                family.add_metric([cpu], float(int(columns[column], 16)) if column < len(columns) else 0.0)
        return list(families)

    return collect_softnet
