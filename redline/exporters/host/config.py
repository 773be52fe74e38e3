"""The host exporter's YAML config: collectors on and off, named process groups, budget, exclusions.

    collector_timeout_seconds: 3          # per-collector time budget on each scrape
    enable_collectors: [processes]        # off by default (as in node_exporter), see DEFAULT_DISABLED
    disable_collectors: [diskstats]       # node_exporter collector names, see COLLECTOR_NAMES
    textfile:
      directory: /var/lib/prometheus/node-exporter   # *.prom files; default none (node_exporter's)
    filesystem:
      mount_points_exclude: '^/(dev|proc|sys)($|/)'   # default: node_exporter's
      fs_types_exclude: '^(autofs|proc|sysfs|tmpfs)$'  # default: node_exporter's
    process_groups:
      - name: tmux-monitor                # the groupname label
        comm: [python3]                   # process names (as in /proc/PID/comm), any of them
        cmdline: 'tmux_orchestrator/monitor\\.py'   # regex searched in the space-joined command line
      - name: postgres
        pidfile: /var/run/postgresql/15-main.pid   # the process whose PID is in this file
A process joins the first group whose every given matcher (comm, cmdline, pidfile) matches it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline import safe_yaml

# node_exporter's upstream defaults (v1.x), so the same filesystems are reported.
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)
DEFAULT_DISK_DEVICES_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
DEFAULT_COLLECTOR_TIMEOUT_SECONDS = 3.0
# node_exporter's collectors that redline implements, split by node_exporter's own default (on or off).
DEFAULT_ENABLED = (
    "arp", "conntrack", "cpu", "diskstats", "entropy", "filefd", "filesystem", "loadavg", "meminfo",
    "netclass", "netdev", "netstat", "pressure", "sockstat", "softnet", "stat", "textfile", "time", "timex",
    "uname", "vmstat",
)  # fmt: skip
DEFAULT_DISABLED = ("processes",)
# namedprocess (process-exporter's names) runs whenever process_groups are configured.
COLLECTOR_NAMES = (*DEFAULT_ENABLED, *DEFAULT_DISABLED, "namedprocess")
DEFAULT_PROCFS, DEFAULT_SYSFS, DEFAULT_ROOTFS = "/proc", "/sys", "/"  # node_exporter's --path.* defaults

_TOP_KEYS = {
    "collector_timeout_seconds", "enable_collectors", "disable_collectors", "filesystem", "textfile",
    "process_groups",
}  # fmt: skip
_FS_KEYS = {"mount_points_exclude", "fs_types_exclude"}
_TEXTFILE_KEYS = {"directory"}
_GROUP_KEYS = {"name", "comm", "cmdline", "pidfile"}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class ProcessGroup:
    """One named process group: a process matches when every given matcher matches."""

    name: str
    comm: frozenset[str] = frozenset()
    cmdline: re.Pattern[str] | None = None
    pidfile: str | None = None


@dataclass(frozen=True)
class HostConfig:
    """Validated host exporter settings."""

    collector_timeout_seconds: float = DEFAULT_COLLECTOR_TIMEOUT_SECONDS
    enable_collectors: frozenset[str] = frozenset()
    disable_collectors: frozenset[str] = frozenset()
    mount_points_exclude: re.Pattern[str] = re.compile(DEFAULT_MOUNT_POINTS_EXCLUDE)
    fs_types_exclude: re.Pattern[str] = re.compile(DEFAULT_FS_TYPES_EXCLUDE)
    textfile_directory: str | None = None
    process_groups: tuple[ProcessGroup, ...] = field(default_factory=tuple)
    # where collectors read the kernel's files (--path.procfs, --path.sysfs, --path.rootfs)
    procfs: str = DEFAULT_PROCFS
    sysfs: str = DEFAULT_SYSFS
    rootfs: str = DEFAULT_ROOTFS

    def enabled_collectors(self) -> list[str]:
        """The collectors to run, by name, in COLLECTOR_NAMES order."""
        wanted = (set(DEFAULT_ENABLED) | self.enable_collectors) - self.disable_collectors
        if self.process_groups and "namedprocess" not in self.disable_collectors:
            wanted.add("namedprocess")
        return [name for name in COLLECTOR_NAMES if name in wanted]


def load_config(path: str | None) -> HostConfig:
    """Read and validate the YAML config (None: defaults). Raises ConfigError with one clear line."""
    if path is None:
        return HostConfig()
    try:
        raw = safe_yaml.load_file(Path(path))
    except safe_yaml.YamlInputError as err:
        raise ConfigError(f"config {path}: {err.problem}") from None
    return parse_config(raw or {}, path)


def parse_config(raw: Any, path: str = "<config>") -> HostConfig:
    """Validate an already-parsed config mapping."""
    where = f"config {path}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    _reject_unknown(raw, _TOP_KEYS, where)
    timeout = raw.get("collector_timeout_seconds", DEFAULT_COLLECTOR_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}: collector_timeout_seconds: expected a positive number, got {timeout!r}")
    enabled = _collector_names(raw, "enable_collectors", where)
    disabled = _collector_names(raw, "disable_collectors", where)
    both = sorted(set(enabled) & set(disabled))
    if both:
        raise ConfigError(f"{where}: enable_collectors: {both[0]!r} is also in disable_collectors")
    fs = raw.get("filesystem") or {}
    if not isinstance(fs, dict):
        raise ConfigError(f"{where}: filesystem: expected a mapping")
    _reject_unknown(fs, _FS_KEYS, f"{where}: filesystem")
    textfile = raw.get("textfile") or {}
    if not isinstance(textfile, dict):
        raise ConfigError(f"{where}: textfile: expected a mapping")
    _reject_unknown(textfile, _TEXTFILE_KEYS, f"{where}: textfile")
    directory = textfile.get("directory")
    if directory is not None and (not isinstance(directory, str) or not os.path.isabs(directory)):
        raise ConfigError(f"{where}: textfile.directory: expected an absolute path, got {directory!r}")
    groups_raw = raw.get("process_groups") or []
    if not isinstance(groups_raw, list):
        raise ConfigError(f"{where}: process_groups: expected a list")
    groups = [_parse_group(entry, f"{where}: process_groups[{i}]") for i, entry in enumerate(groups_raw)]
    names = [g.name for g in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{where}: process_groups[{i}].name: duplicate group name {name!r}")
    return HostConfig(
        collector_timeout_seconds=float(timeout),
        enable_collectors=frozenset(enabled),
        disable_collectors=frozenset(disabled),
        textfile_directory=directory,
        mount_points_exclude=_regex(
            fs.get("mount_points_exclude", DEFAULT_MOUNT_POINTS_EXCLUDE),
            f"{where}: filesystem.mount_points_exclude",
        ),
        fs_types_exclude=_regex(
            fs.get("fs_types_exclude", DEFAULT_FS_TYPES_EXCLUDE), f"{where}: filesystem.fs_types_exclude"
        ),
        process_groups=tuple(groups),
    )


def _collector_names(raw: dict, key: str, where: str) -> list[str]:
    names = raw.get(key) or []
    if not isinstance(names, list):
        raise ConfigError(f"{where}: {key}: expected a list of collector names")
    for name in names:
        if name not in COLLECTOR_NAMES:
            raise ConfigError(
                f"{where}: {key}: unknown collector {name!r} (known: {', '.join(COLLECTOR_NAMES)})"
            )
    return names


def _reject_unknown(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(mapping) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")


def _regex(value: Any, where: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as err:
        raise ConfigError(f"{where}: invalid regular expression '{value}': {err}") from None


def _parse_group(entry: Any, where: str) -> ProcessGroup:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name and comm/cmdline/pidfile")
    _reject_unknown(entry, _GROUP_KEYS, where)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name: required, a non-empty string")
    where = f"{where} ({name})"
    if not set(entry) & {"comm", "cmdline", "pidfile"}:
        raise ConfigError(f"{where}: give at least one matcher: comm, cmdline or pidfile")
    comm = entry.get("comm", [])
    if isinstance(comm, str):
        comm = [comm]
    if not isinstance(comm, list) or not all(isinstance(c, str) and c for c in comm):
        raise ConfigError(f"{where}.comm: expected a process name or a list of process names")
    cmdline = _regex(entry["cmdline"], f"{where}.cmdline") if "cmdline" in entry else None
    pidfile = entry.get("pidfile")
    if pidfile is not None:
        _check_pidfile(pidfile, f"{where}.pidfile")
    return ProcessGroup(name=name, comm=frozenset(comm), cmdline=cmdline, pidfile=pidfile)


def _check_pidfile(pidfile: Any, where: str) -> None:
    # The file itself may be missing while the service is down (the group then reports 0 processes),
    # but a path that can never be read is a config mistake.
    if not isinstance(pidfile, str) or not os.path.isabs(pidfile):
        raise ConfigError(f"{where}: expected an absolute path, got {pidfile!r}")
    path = Path(pidfile)
    if path.is_dir():
        raise ConfigError(f"{where}: {pidfile} is a directory, not a pidfile")
    if path.exists():
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{where}: {pidfile} is not readable")
        return
    if not path.parent.is_dir():
        raise ConfigError(f"{where}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.R_OK | os.X_OK):
        raise ConfigError(f"{where}: directory {path.parent} is not readable")
