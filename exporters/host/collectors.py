"""Host and named-process collectors with node_exporter's and process-exporter's metric names.

Each collector is a function returning fresh metric families, computed on scrape. IsolatedCollectors runs
them in parallel, each within a time budget, and reports node_scrape_collector_{success,duration_seconds}
per collector, so one failing or hanging collector never fails the whole scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import psutil
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporters.host.config import DEFAULT_DISK_DEVICES_EXCLUDE, HostConfig, ProcessGroup

log = logging.getLogger(__name__)

CollectFn = Callable[[], list[Metric]]
LINUX = sys.platform.startswith("linux")


class _CollectorThread:
    """One daemon thread per collector: a hung collector never blocks the exporter from exiting."""

    def __init__(self, name: str, fn: CollectFn) -> None:
        self._fn = fn
        self._requests: queue.SimpleQueue[Future[tuple[list[Metric], float]]] = queue.SimpleQueue()
        self.current: Future[tuple[list[Metric], float]] | None = None
        self.started = 0.0
        threading.Thread(target=self._loop, name=f"collector-{name}", daemon=True).start()

    def submit(self) -> Future[tuple[list[Metric], float]]:
        self.current = Future()
        self.started = time.perf_counter()
        self._requests.put(self.current)
        return self.current

    def _loop(self) -> None:
        while True:
            future = self._requests.get()
            started = time.perf_counter()
            try:
                families = self._fn()
            except BaseException as err:
                future.set_exception(err)
            else:
                future.set_result((families, time.perf_counter() - started))


class IsolatedCollectors(Collector):
    """Runs named collect functions in parallel, each within `timeout_seconds`.

    A collector that raises or overruns its budget is left out of this scrape and reported with
    node_scrape_collector_success 0. A collector still stuck from an earlier scrape is not started again,
    so a hung system call costs one thread, not one per scrape. Concurrent scrapes (Prometheus, the OTLP
    bridge, a curl) share a run that is in flight.
    """

    def __init__(self, collectors: dict[str, CollectFn], timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._threads = {name: _CollectorThread(name, fn) for name, fn in collectors.items()}
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # names are dynamic; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        futures: dict[str, Future[tuple[list[Metric], float]] | None] = {}
        with self._lock:
            for name, worker in self._threads.items():
                if worker.current is None or worker.current.done():
                    futures[name] = worker.submit()
                elif started - worker.started < self._timeout:
                    futures[name] = worker.current  # a concurrent scrape (or OTLP export) shares this run
                else:
                    futures[name] = None  # still hung from an earlier scrape
        deadline = started + self._timeout
        success = GaugeMetricFamily(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            labels=["collector"],
        )
        for name, future in futures.items():
            ok, elapsed = False, 0.0
            if future is None:
                log.warning("collector %s is still running from an earlier scrape; skipped", name)
            else:
                try:
                    families, elapsed = future.result(timeout=max(0.0, deadline - time.perf_counter()))
                    yield from families
                    ok = True
                except FutureTimeout:
                    elapsed = time.perf_counter() - started
                    log.warning("collector %s exceeded its %.1fs budget; skipped", name, self._timeout)
                except Exception as err:
                    elapsed = time.perf_counter() - started
                    log.warning("collector %s failed: %s: %s", name, type(err).__name__, err)
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], elapsed)
        yield duration
        yield success


# ---- node_exporter-compatible collectors -------------------------------------------------------------

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def collect_cpu() -> list[Metric]:
    """node_cpu_seconds_total{cpu,mode} and node_cpu_guest_seconds_total{cpu,mode}, as in /proc/stat."""
    seconds = CounterMetricFamily(
        "node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", labels=["cpu", "mode"]
    )
    guest = CounterMetricFamily(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
        labels=["cpu", "mode"],
    )
    has_guest = False
    for cpu, times in enumerate(psutil.cpu_times(percpu=True)):
        label = str(cpu)
        for mode in _CPU_MODES:
            value = getattr(times, mode, None)
            if value is not None:
                seconds.add_metric([label, mode], value)
        if hasattr(times, "guest"):
            has_guest = True
            guest.add_metric([label, "user"], times.guest)
            guest.add_metric([label, "nice"], getattr(times, "guest_nice", 0.0))
    return [seconds, guest] if has_guest else [seconds]


def collect_loadavg() -> list[Metric]:
    """node_load1, node_load5, node_load15."""
    one, five, fifteen = os.getloadavg()
    return [
        GaugeMetricFamily("node_load1", "1m load average.", value=one),
        GaugeMetricFamily("node_load5", "5m load average.", value=five),
        GaugeMetricFamily("node_load15", "15m load average.", value=fifteen),
    ]


def collect_meminfo() -> list[Metric]:
    """node_memory_<Field>_bytes for every /proc/meminfo field (Linux), or the core set from psutil."""
    if LINUX:
        return _meminfo_linux()
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    fields = {
        "MemTotal": vm.total, "MemFree": vm.free, "MemAvailable": vm.available,
        "Buffers": getattr(vm, "buffers", 0), "Cached": getattr(vm, "cached", 0),
        "SwapTotal": swap.total, "SwapFree": swap.free,
    }  # fmt: skip
    return [
        GaugeMetricFamily(f"node_memory_{k}_bytes", f"Memory information field {k}_bytes.", value=float(v))
        for k, v in fields.items()
    ]


def _meminfo_linux() -> list[Metric]:
    families: list[Metric] = []
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if not parts:
                continue
            key = key.replace("(", "_").replace(")", "")
            value = float(parts[0])
            if len(parts) > 1 and parts[1] == "kB":
                key, value = f"{key}_bytes", value * 1024
            families.append(
                GaugeMetricFamily(f"node_memory_{key}", f"Memory information field {key}.", value=value)
            )
    return families


def _unescape_mount(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts() -> list[tuple[str, str, str, bool]]:
    """(device, mountpoint, fstype, readonly) for each mount, read like node_exporter does."""
    if LINUX:
        for path in ("/proc/1/mountinfo", "/proc/self/mountinfo"):
            try:
                with open(path) as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            mounts = []
            for line in lines:
                before, _, after = line.partition(" - ")
                pre, post = before.split(), after.split()
                if len(pre) < 6 or len(post) < 2:
                    continue
                readonly = "ro" in pre[5].split(",")
                mounts.append((_unescape_mount(post[1]), _unescape_mount(pre[4]), post[0], readonly))
            return mounts
    return [
        (p.device, p.mountpoint, p.fstype, "ro" in p.opts.split(","))
        for p in psutil.disk_partitions(all=True)
    ]


def make_filesystem_collector(config: HostConfig) -> CollectFn:
    """node_filesystem_{size,free,avail}_bytes, _files, _files_free, _readonly, _device_error."""

    def collect_filesystem() -> list[Metric]:
        labels = ["device", "device_error", "fstype", "mountpoint"]
        names = {
            "size_bytes": "Filesystem size in bytes.",
            "free_bytes": "Filesystem free space in bytes.",
            "avail_bytes": "Filesystem space available to non-root users in bytes.",
            "files": "Filesystem total file nodes.",
            "files_free": "Filesystem total free file nodes.",
            "readonly": "Filesystem read-only status.",
            "device_error": "Whether an error occurred while getting statistics for the given device.",
        }
        fams = {k: GaugeMetricFamily(f"node_filesystem_{k}", doc, labels=labels) for k, doc in names.items()}
        seen: set[str] = set()
        for device, mountpoint, fstype, readonly in _mounts():
            if mountpoint in seen:  # stacked mounts: node_exporter reports the mount point once
                continue
            if config.mount_points_exclude.search(mountpoint) or config.fs_types_exclude.search(fstype):
                continue
            seen.add(mountpoint)
            try:
                st = os.statvfs(mountpoint)
            except OSError as err:
                fams["device_error"].add_metric([device, err.strerror or str(err), fstype, mountpoint], 1.0)
                continue
            values = [device, "", fstype, mountpoint]
            fams["size_bytes"].add_metric(values, float(st.f_blocks * st.f_bsize))
            fams["free_bytes"].add_metric(values, float(st.f_bfree * st.f_bsize))
            fams["avail_bytes"].add_metric(values, float(st.f_bavail * st.f_bsize))
            fams["files"].add_metric(values, float(st.f_files))
            fams["files_free"].add_metric(values, float(st.f_ffree))
            fams["readonly"].add_metric(values, 1.0 if readonly else 0.0)
            fams["device_error"].add_metric(values, 0.0)
        return list(fams.values())

    return collect_filesystem


_DISK_COUNTERS = (
    ("reads_completed_total", "The total number of reads completed successfully.", "read_count", 1.0),
    ("reads_merged_total", "The total number of reads merged.", "read_merged_count", 1.0),
    ("read_bytes_total", "The total number of bytes read successfully.", "read_bytes", 1.0),
    ("read_time_seconds_total", "The total number of seconds spent by all reads.", "read_time", 0.001),
    ("writes_completed_total", "The total number of writes completed successfully.", "write_count", 1.0),
    ("writes_merged_total", "The number of writes merged.", "write_merged_count", 1.0),
    ("written_bytes_total", "The total number of bytes written successfully.", "write_bytes", 1.0),
    (
        "write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        "write_time",
        0.001,
    ),
    ("io_time_seconds_total", "Total seconds spent doing I/Os.", "busy_time", 0.001),
)
_DISK_EXCLUDE = re.compile(DEFAULT_DISK_DEVICES_EXCLUDE)


def collect_diskstats() -> list[Metric]:
    """node_disk_* I/O counters per whole disk (partitions, loop and ram devices excluded)."""
    per_disk = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
    families: list[Metric] = []
    for suffix, doc, field, scale in _DISK_COUNTERS:
        fam = CounterMetricFamily(f"node_disk_{suffix}", doc, labels=["device"])
        for device, counters in per_disk.items():
            value = getattr(counters, field, None)
            if value is not None and not _DISK_EXCLUDE.search(device):
                fam.add_metric([device], value * scale)
        if fam.samples:
            families.append(fam)
    return families


_NET_COUNTERS = (
    ("receive_bytes_total", "bytes_recv"),
    ("receive_packets_total", "packets_recv"),
    ("receive_errs_total", "errin"),
    ("receive_drop_total", "dropin"),
    ("transmit_bytes_total", "bytes_sent"),
    ("transmit_packets_total", "packets_sent"),
    ("transmit_errs_total", "errout"),
    ("transmit_drop_total", "dropout"),
)


def collect_netdev() -> list[Metric]:
    """node_network_{receive,transmit}_{bytes,packets,errs,drop}_total{device}."""
    per_nic = psutil.net_io_counters(pernic=True, nowrap=False)
    families: list[Metric] = []
    for suffix, field in _NET_COUNTERS:
        direction, what = suffix.split("_")[:2]
        fam = CounterMetricFamily(
            f"node_network_{suffix}", f"Network device statistic {direction}_{what}.", labels=["device"]
        )
        for device, counters in per_nic.items():
            fam.add_metric([device], float(getattr(counters, field)))
        families.append(fam)
    return families


def collect_stat() -> list[Metric]:
    """node_boot_time_seconds, plus context switches, interrupts, forks, running/blocked procs on Linux."""
    if not LINUX:
        return [
            GaugeMetricFamily(
                "node_boot_time_seconds", "Node boot time, in unixtime.", value=psutil.boot_time()
            )
        ]
    values: dict[str, float] = {}
    with open("/proc/stat") as f:
        for line in f:
            key, _, rest = line.partition(" ")
            if key in ("btime", "ctxt", "intr", "processes", "procs_running", "procs_blocked"):
                values[key] = float(rest.split()[0])
    return [
        GaugeMetricFamily("node_boot_time_seconds", "Node boot time, in unixtime.", value=values["btime"]),
        CounterMetricFamily(
            "node_context_switches_total", "Total number of context switches.", value=values["ctxt"]
        ),
        CounterMetricFamily("node_intr_total", "Total number of interrupts serviced.", value=values["intr"]),
        CounterMetricFamily("node_forks_total", "Total number of forks.", value=values["processes"]),
        GaugeMetricFamily(
            "node_procs_running", "Number of processes in runnable state.", value=values["procs_running"]
        ),
        GaugeMetricFamily(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            value=values["procs_blocked"],
        ),
    ]


def collect_time() -> list[Metric]:
    """node_time_seconds."""
    return [
        GaugeMetricFamily(
            "node_time_seconds", "System time in seconds since epoch (1970).", value=time.time()
        )
    ]


def collect_uname() -> list[Metric]:
    """node_uname_info{domainname,machine,nodename,release,sysname,version} 1."""
    u = os.uname()
    domainname = "(none)"
    if LINUX:
        try:
            with open("/proc/sys/kernel/domainname") as f:
                domainname = f.read().strip() or "(none)"
        except OSError:
            pass
    info = GaugeMetricFamily(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        labels=["domainname", "machine", "nodename", "release", "sysname", "version"],
    )
    info.add_metric([domainname, u.machine, u.nodename, u.release, u.sysname, u.version], 1.0)
    return [info]


# ---- named process groups (process-exporter names) -------------------------------------------------


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


def node_collectors(config: HostConfig) -> dict[str, CollectFn]:
    """The enabled collectors by node_exporter collector name."""
    collectors: dict[str, CollectFn] = {
        "cpu": collect_cpu,
        "loadavg": collect_loadavg,
        "meminfo": collect_meminfo,
        "filesystem": make_filesystem_collector(config),
        "diskstats": collect_diskstats,
        "netdev": collect_netdev,
        "stat": collect_stat,
        "time": collect_time,
        "uname": collect_uname,
    }
    if config.process_groups:
        collectors["namedprocess"] = ProcessGroupCollector(config.process_groups).collect
    return {name: fn for name, fn in collectors.items() if name not in config.disable_collectors}


def build_registry(config: HostConfig, extra: dict[str, CollectFn] | None = None) -> CollectorRegistry:
    """A dedicated registry: the isolated host collectors (plus `extra`) and the exporter's process_*."""
    registry = CollectorRegistry()
    collectors = {**node_collectors(config), **(extra or {})}
    registry.register(IsolatedCollectors(collectors, config.collector_timeout_seconds))
    ProcessCollector(registry=registry)
    return registry
