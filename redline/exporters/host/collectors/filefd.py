"""filefd: node_filefd_allocated and node_filefd_maximum from /proc/sys/fs/file-nr."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, proc_path, read_text
from redline.exporters.host.config import HostConfig


@collector("filefd")
def make_filefd(config: HostConfig) -> CollectFn:
    path = proc_path(config, "sys", "fs", "file-nr")

    def collect_filefd() -> list[Metric]:
        # allocated, allocated-but-unused (always 0 since 2.6), maximum
        allocated, _, maximum = read_text(path).split()[:3]
        return [
            gauge("node_filefd_allocated", "File descriptor statistics: allocated.", float(allocated)),
            gauge("node_filefd_maximum", "File descriptor statistics: maximum.", float(maximum)),
        ]

    return collect_filefd
