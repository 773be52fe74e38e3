"""processes: node_processes_* (PIDs and threads in use, their limits, processes and threads by state),
from /proc/PID/stat and /proc/PID/task; off by default, as in node_exporter."""

from __future__ import annotations

import collections
import os

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, gauge, labelled, proc_path, read_int
from redline.exporters.host.config import HostConfig


def _stat(path: str) -> tuple[str, int] | None:
    """(state, number of threads) from a stat file; None when the process or thread is gone."""
    try:
        with open(path) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[17])


@collector("processes")
def make_processes(config: HostConfig) -> CollectFn:
    root = config.procfs

    def collect_processes() -> list[Metric]:
        pids = threads = 0
        states: collections.Counter[str] = collections.Counter()
        thread_states: collections.Counter[str] = collections.Counter()
        for entry in os.listdir(root):
            if not entry.isdigit():
                continue
            stat = _stat(os.path.join(root, entry, "stat"))
            if stat is None:
                continue
            state, num_threads = stat
            pids += 1
            threads += num_threads
            states[state] += 1
            try:
                tasks = os.listdir(os.path.join(root, entry, "task"))
            except (FileNotFoundError, ProcessLookupError):
                continue
            for tid in tasks:
                if tid == entry:  # the main thread: the process's own state
                    thread_states[state] += 1
                    continue
                task = _stat(os.path.join(root, entry, "task", tid, "stat"))
                if task is not None:
                    thread_states[task[0]] += 1
        return [
            gauge("node_processes_threads", "Allocated threads in system", float(threads)),
            gauge(
                "node_processes_max_threads",
                "Limit of threads in the system",
                float(read_int(proc_path(config, "sys", "kernel", "threads-max"))),
            ),
            labelled(GaugeMetricFamily, "node_processes_state", "Number of processes in each state.",
                     ["state"], (([s], float(n)) for s, n in sorted(states.items()))),
            labelled(GaugeMetricFamily, "node_processes_threads_state", "Number of threads in each state.",
                     ["thread_state"], (([s], float(n)) for s, n in sorted(thread_states.items()))),
            gauge("node_processes_pids", "Number of PIDs", float(pids)),
            gauge(
                "node_processes_max_processes",
                "Number of max PIDs limit",
                float(read_int(proc_path(config, "sys", "kernel", "pid_max"))),
            ),
        ]  # fmt: skip

    return collect_processes
