"""Host and named-process collectors with node_exporter's and process-exporter's metric names.

Each collector is a function returning fresh metric families, computed on scrape. IsolatedCollectors runs
them on persistent worker threads, each within a time budget, and reports
node_scrape_collector_{success,duration_seconds} per collector, so one failing or hanging collector never
fails the whole scrape.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import psutil
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from redline.exporters.host.config import DEFAULT_DISK_DEVICES_EXCLUDE, HostConfig, ProcessGroup

log = logging.getLogger(__name__)

CollectFn = Callable[[], list[Metric]]
LINUX = sys.platform.startswith("linux")


class _Run:
    """One run of one collector; scrapes that ask for the collector while it is in flight share it."""

    __slots__ = ("done", "elapsed", "error", "families", "fn", "submitted")

    def __init__(self, fn: CollectFn, submitted: float) -> None:
        self.fn = fn
        self.submitted = submitted
        self.done = False
        self.families: list[Metric] = []
        self.error: BaseException | None = None
        self.elapsed = 0.0


class IsolatedCollectors(Collector):
    """Runs named collect functions on persistent worker threads, each within `timeout_seconds`.

    A scrape queues its collectors and one idle worker runs them one after another (a single thread
    handoff per scrape). When a queued collector has waited 50 ms (a tenth of the budget if that is less)
    behind a slow or hung one and no worker is idle, another worker is started for the rest, so a hung
    collector delays the others by about that long. A collector that raises or overruns its budget is left
    out of this scrape and reported with node_scrape_collector_success 0. A collector still stuck from an
    earlier scrape is not started again, so a hung system call costs one thread, not one per scrape.
    Concurrent scrapes (Prometheus, the OTLP bridge, a curl) share a run that is in flight. At most
    `max_idle_workers` finished workers wait for the next scrape; any others exit.
    """

    max_idle_workers = 1

    def __init__(self, collectors: dict[str, CollectFn], timeout_seconds: float) -> None:
        self._collectors = dict(collectors)
        self._timeout = timeout_seconds
        self._stall = min(0.05, timeout_seconds / 10)
        self._latest: dict[str, _Run] = {}
        self._queue: collections.deque[_Run] = collections.deque()
        self._idle = 0  # workers not running a collector (waiting, or started and not yet running one)
        self._lock = threading.Lock()
        self._work_queued = threading.Condition(self._lock)  # workers wait here
        self._queue_drained = threading.Condition(self._lock)  # scrapes wait here

    def describe(self) -> list[Metric]:
        return []  # names are dynamic; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        deadline = started + self._timeout
        runs: dict[str, _Run | None] = {}
        with self._lock:
            for name, fn in self._collectors.items():
                run = self._latest.get(name)
                if run is None or run.done:
                    run = self._latest[name] = _Run(fn, started)
                    self._queue.append(run)
                elif started - run.submitted >= self._timeout:
                    run = None  # still hung from an earlier scrape
                # else: a concurrent scrape (or OTLP export) started this run; share it
                runs[name] = run
            if self._queue:
                self._wake_worker()
            while any(run is not None and not run.done for run in runs.values()):
                now = time.perf_counter()
                if now >= deadline:
                    break
                if not self._queue:
                    self._queue_drained.wait(deadline - now)
                elif self._idle == 0 and now - self._queue[0].submitted >= self._stall:
                    self._wake_worker()  # the queue is stuck behind a slow collector
                else:
                    self._queue_drained.wait(min(deadline - now, self._stall))
        yield from self._report(runs, started)

    def _report(self, runs: dict[str, _Run | None], started: float) -> Iterator[Metric]:
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
        for name, run in runs.items():
            ok, elapsed = False, 0.0
            if run is None:
                log.warning("collector %s is still running from an earlier scrape; skipped", name)
            elif not run.done:
                elapsed = time.perf_counter() - started
                log.warning("collector %s exceeded its %.1fs budget; skipped", name, self._timeout)
            elif run.error is not None:
                elapsed = run.elapsed
                log.warning("collector %s failed: %s: %s", name, type(run.error).__name__, run.error)
            else:
                yield from run.families
                ok, elapsed = True, run.elapsed
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], elapsed)
        yield duration
        yield success

    def _wake_worker(self) -> None:
        """Called with the lock held: let an idle worker take the queue, or start one."""
        if self._idle:
            self._work_queued.notify()
        else:
            threading.Thread(target=self._work, name="collector-worker", daemon=True).start()
            self._idle += 1  # the new worker cannot take the lock before we release it

    def _work(self) -> None:
        while (run := self._next_run()) is not None:
            started = time.perf_counter()
            try:
                run.families = list(run.fn())
            except BaseException as err:  # a collector must never take its worker down
                run.error = err
            run.elapsed = time.perf_counter() - started
            self._finish(run)

    def _next_run(self) -> _Run | None:
        """The next queued run, waiting for one; None when enough other workers are idle (exit)."""
        with self._lock:
            while not self._queue:
                if self._idle > self.max_idle_workers:
                    self._idle -= 1
                    return None
                self._work_queued.wait()
            self._idle -= 1
            return self._queue.popleft()

    def _finish(self, run: _Run) -> None:
        with self._lock:
            run.done = True
            self._idle += 1
            if not self._queue:  # wake waiting scrapes once per drained queue, not once per collector
                self._queue_drained.notify_all()


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


# /proc/meminfo key and unit -> (metric name, help, scale); the set of fields does not change at runtime.
_MEMINFO_FIELDS: dict[tuple[str, str], tuple[str, str, float]] = {}


def _meminfo_field(key: str, unit: str) -> tuple[str, str, float]:
    field = _MEMINFO_FIELDS.get((key, unit))
    if field is None:
        name = key.replace("(", "_").replace(")", "")
        scale = 1.0
        if unit == "kB":
            name, scale = f"{name}_bytes", 1024.0
        field = _MEMINFO_FIELDS[(key, unit)] = (
            f"node_memory_{name}",
            f"Memory information field {name}.",
            scale,
        )
    return field


def _meminfo_linux() -> list[Metric]:
    with open("/proc/meminfo") as f:
        lines = f.read().splitlines()
    families: list[Metric] = []
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        name, doc, scale = _meminfo_field(key, parts[1] if len(parts) > 1 else "")
        families.append(GaugeMetricFamily(name, doc, value=float(parts[0]) * scale))
    return families


def _unescape_mount(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


Mount = tuple[str, str, str, bool]  # device, mountpoint, fstype, readonly


def _read_mountinfo() -> str | None:
    """The mount table as node_exporter reads it (PID 1's view first), or None off Linux."""
    if LINUX:
        for path in ("/proc/1/mountinfo", "/proc/self/mountinfo"):
            try:
                with open(path) as f:
                    return f.read()
            except OSError:
                continue
    return None


def _parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        pre, post = before.split(), after.split()
        if len(pre) < 6 or len(post) < 2:
            continue
        readonly = "ro" in pre[5].split(",")
        mounts.append((_unescape_mount(post[1]), _unescape_mount(pre[4]), post[0], readonly))
    return mounts


def _mounts() -> list[Mount]:
    """(device, mountpoint, fstype, readonly) for each mount, read like node_exporter does."""
    text = _read_mountinfo()
    if text is not None:
        return _parse_mountinfo(text)
    return [
        (p.device, p.mountpoint, p.fstype, "ro" in p.opts.split(","))
        for p in psutil.disk_partitions(all=True)
    ]


def make_filesystem_collector(config: HostConfig) -> CollectFn:
    """node_filesystem_{size,free,avail}_bytes, _files, _files_free, _readonly, _device_error."""
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
    # The mount table is read on every scrape; parsing and filtering it again only when its text changed.
    last: dict[str, list[Mount]] = {}

    def reported_mounts() -> list[Mount]:
        text = _read_mountinfo()
        if text is not None and text in last:
            return last[text]
        reported, seen = [], set()
        for mount in _parse_mountinfo(text) if text is not None else _mounts():
            _, mountpoint, fstype, _ = mount
            if mountpoint in seen:  # stacked mounts: node_exporter reports the mount point once
                continue
            if config.mount_points_exclude.search(mountpoint) or config.fs_types_exclude.search(fstype):
                continue
            seen.add(mountpoint)
            reported.append(mount)
        if text is not None:
            last.clear()
            last[text] = reported
        return reported

    def collect_filesystem() -> list[Metric]:
        fams = {k: GaugeMetricFamily(f"node_filesystem_{k}", doc, labels=labels) for k, doc in names.items()}
        for device, mountpoint, fstype, readonly in reported_mounts():
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
    # metric suffix, help, psutil field and the scale of its value, /proc/diskstats column
    ("reads_completed_total", "The total number of reads completed successfully.", "read_count", 1.0, 3),
    ("reads_merged_total", "The total number of reads merged.", "read_merged_count", 1.0, 4),
    ("read_bytes_total", "The total number of bytes read successfully.", "read_bytes", 1.0, 5),
    ("read_time_seconds_total", "The total number of seconds spent by all reads.", "read_time", 0.001, 6),
    ("writes_completed_total", "The total number of writes completed successfully.", "write_count", 1.0, 7),
    ("writes_merged_total", "The number of writes merged.", "write_merged_count", 1.0, 8),
    ("written_bytes_total", "The total number of bytes written successfully.", "write_bytes", 1.0, 9),
    (
        "write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        "write_time",
        0.001,
        10,
    ),
    ("io_time_seconds_total", "Total seconds spent doing I/Os.", "busy_time", 0.001, 12),
)
# /proc/diskstats counts bytes in 512-byte sectors whatever the device (as node_exporter and psutil read it)
_DISKSTATS_COLUMNS = tuple(
    (column, scale * 512 if field.endswith("_bytes") else scale)
    for _, _, field, scale, column in _DISK_COUNTERS
)
_DISK_EXCLUDE = re.compile(DEFAULT_DISK_DEVICES_EXCLUDE)
_disk_excluded: dict[str, bool] = {}  # device name -> excluded (a regex decision, cached per name)


def _excluded_disk(device: str) -> bool:
    excluded = _disk_excluded.get(device)
    if excluded is None:
        if len(_disk_excluded) > 4096:  # devices come and go (loop, dm-N); keep the cache bounded
            _disk_excluded.clear()
        excluded = _disk_excluded[device] = bool(_DISK_EXCLUDE.search(device))
    return excluded


def _diskstats() -> list[tuple[str, list[float | None]]]:
    """(device, values in _DISK_COUNTERS order; None where the OS has no such counter) per whole disk."""
    disks: list[tuple[str, list[float | None]]] = []
    if LINUX:
        with open("/proc/diskstats") as f:
            lines = f.read().splitlines()
        for line in lines:
            fields = line.split()
            if (len(fields) == 14 or len(fields) >= 18) and not _excluded_disk(fields[2]):
                disks.append(
                    (fields[2], [int(fields[column]) * scale for column, scale in _DISKSTATS_COLUMNS])
                )
        return disks
    for device, counters in (psutil.disk_io_counters(perdisk=True, nowrap=False) or {}).items():
        if _excluded_disk(device):
            continue
        values: list[float | None] = []
        for _, _, field, scale, _ in _DISK_COUNTERS:
            value = getattr(counters, field, None)
            values.append(None if value is None else value * scale)
        disks.append((device, values))
    return disks


def collect_diskstats() -> list[Metric]:
    """node_disk_* I/O counters per whole disk (partitions, loop and ram devices excluded)."""
    disks = _diskstats()
    families: list[Metric] = []
    for i, (suffix, doc, *_) in enumerate(_DISK_COUNTERS):
        fam = CounterMetricFamily(f"node_disk_{suffix}", doc, labels=["device"])
        for device, values in disks:
            value = values[i]
            if value is not None:
                fam.add_metric([device], value)
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
