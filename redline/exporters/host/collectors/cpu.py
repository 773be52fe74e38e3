"""cpu: node_cpu_seconds_total{cpu,mode} and node_cpu_guest_seconds_total{cpu,mode} from /proc/stat."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, read_text
from redline.exporters.host.config import HostConfig

# /proc/stat counts in USER_HZ, which the kernel fixes at 100 for every userspace ABI (as procfs assumes).
USER_HZ = 100.0
_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@collector("cpu")
def make_cpu(config: HostConfig) -> CollectFn:
    path = proc_path(config, "stat")

    def collect_cpu() -> list[Metric]:
        seconds = CounterMetricFamily(
            "node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
        )
        guest = CounterMetricFamily(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            labels=["cpu", "mode"],
        )
        for line in read_text(path).splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            fields = line.split()
            cpu = fields[0][3:]
            values = [int(v) / USER_HZ for v in fields[1:]]
            for mode, value in zip(_MODES, values, strict=False):
                seconds.add_metric([cpu, mode], value)
            if len(values) >= 10:  # guest and guest_nice (kernels since 2.6.33)
                guest.add_metric([cpu, "user"], values[8])
                guest.add_metric([cpu, "nice"], values[9])
        return [seconds, guest] if guest.samples else [seconds]

    return collect_cpu
