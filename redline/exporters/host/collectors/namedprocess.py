"""namedprocess: namedprocess_namegroup_* for the configured process groups, with process-exporter's names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector
from redline.exporters.host.config import HostConfig, ProcessGroup


def _read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class ProcessGroupCollector:
    """namedprocess_namegroup_* metrics for the configured process groups.

    CPU seconds are kept monotonic like process-exporter does: when a member exits, its last CPU times
    are carried in the group's total instead of making the counter drop.
    """

    def __init__(self, groups: Iterable[ProcessGroup]) -> None:
        self._groups = tuple(groups)
        # (pid, create time, name) -> group name or None; the name is part of the key because exec()
        # keeps pid and create time but changes it.
        self._assignment: dict[tuple[int, float, str], str | None] = {}
        self._live_cpu: dict[str, dict[tuple[int, float], tuple[float, float]]] = {}
        self._exited_cpu: dict[str, list[float]] = {g.name: [0.0, 0.0] for g in self._groups}

    def _match(self, proc: psutil.Process, name: str, pidfile_pids: dict[str, int | None]) -> str | None:
        for group in self._groups:
            if group.comm and name not in group.comm:
                continue
            if group.pidfile is not None and pidfile_pids.get(group.name) != proc.pid:
                continue
            if group.cmdline is not None:
                try:
                    cmdline = " ".join(proc.cmdline())
                except (psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                if not group.cmdline.search(cmdline):
                    continue
            return group.name
        return None

    def collect(self) -> list[Metric]:
        pidfile_pids = {g.name: _read_pidfile(g.pidfile) for g in self._groups if g.pidfile}
        members: dict[str, list[psutil.Process]] = {g.name: [] for g in self._groups}
        assignment: dict[tuple[int, float, str], str | None] = {}
        uses_pidfile = bool(pidfile_pids)
        for proc in psutil.process_iter():
            try:
                key = (proc.pid, proc.create_time(), proc.name())
            except psutil.Error:
                continue
            if key in self._assignment and not uses_pidfile:
                group = self._assignment[key]
            else:
                try:
                    group = self._match(proc, key[2], pidfile_pids)
                except psutil.NoSuchProcess:
                    continue
            assignment[key] = group
            if group is not None:
                members[group].append(proc)
        self._assignment = assignment
        return self._families(members)

    def _families(self, members: dict[str, list[psutil.Process]]) -> list[Metric]:
        g = ["groupname"]
        num_procs = GaugeMetricFamily(
            "namedprocess_namegroup_num_procs", "number of processes in this group", labels=g
        )
        cpu = CounterMetricFamily(
            "namedprocess_namegroup_cpu_seconds_total", "Cpu user usage in seconds", labels=[*g, "mode"]
        )
        memory = GaugeMetricFamily(
            "namedprocess_namegroup_memory_bytes", "number of bytes of memory in use", labels=[*g, "memtype"]
        )
        threads = GaugeMetricFamily("namedprocess_namegroup_num_threads", "Number of threads", labels=g)
        fds = GaugeMetricFamily(
            "namedprocess_namegroup_open_filedesc", "number of open file descriptors for this group", labels=g
        )
        oldest = GaugeMetricFamily(
            "namedprocess_namegroup_oldest_start_time_seconds",
            "start time in seconds since 1970/01/01 of oldest process in group",
            labels=g,
        )
        for group, procs in members.items():
            live: dict[tuple[int, float], tuple[float, float]] = {}
            rss = vms = n_threads = n_fds = 0
            starts = []
            for proc in procs:
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        mem = proc.memory_info()
                        n_threads += proc.num_threads()
                        start = proc.create_time()
                        with contextlib.suppress(psutil.AccessDenied):  # other users' processes
                            n_fds += proc.num_fds()
                except psutil.Error:
                    continue
                live[(proc.pid, start)] = (times.user, times.system)
                rss += mem.rss
                vms += mem.vms
                starts.append(start)
            exited = self._exited_cpu[group]
            for key, (user, system) in self._live_cpu.get(group, {}).items():
                if key not in live:
                    exited[0] += user
                    exited[1] += system
            self._live_cpu[group] = live
            num_procs.add_metric([group], len(live))
            cpu.add_metric([group, "user"], exited[0] + sum(u for u, _ in live.values()))
            cpu.add_metric([group, "system"], exited[1] + sum(s for _, s in live.values()))
            memory.add_metric([group, "resident"], rss)
            memory.add_metric([group, "virtual"], vms)
            threads.add_metric([group], n_threads)
            fds.add_metric([group], n_fds)
            if starts:
                oldest.add_metric([group], min(starts))
        return [num_procs, cpu, memory, threads, fds, oldest]


@collector("namedprocess")
def make_namedprocess(config: HostConfig) -> CollectFn:
    # psutil reads /proc through one process-wide setting; the exporter has a single procfs
    psutil.PROCFS_PATH = config.procfs
    return ProcessGroupCollector(config.process_groups).collect
