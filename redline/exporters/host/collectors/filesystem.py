"""filesystem: node_filesystem_{size,free,avail}_bytes, _files, _files_free, _readonly, _device_error and
node_filesystem_mount_info for the mounts in PID 1's mount table."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, collector, proc_path, rootfs_path
from redline.exporters.host.config import HostConfig

Mount = tuple[str, str, str, bool, str]  # device, mountpoint, fstype, readonly, major:minor
_NAMES = {
    "size_bytes": "Filesystem size in bytes.",
    "free_bytes": "Filesystem free space in bytes.",
    "avail_bytes": "Filesystem space available to non-root users in bytes.",
    "files": "Filesystem total file nodes.",
    "files_free": "Filesystem total free file nodes.",
    "readonly": "Filesystem read-only status.",
    "device_error": "Whether an error occurred while getting statistics for the given device.",
}
_LABELS = ["device", "device_error", "fstype", "mountpoint"]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """(device, mountpoint, fstype, readonly, major:minor) per line of a mountinfo file."""
    mounts = []
    for line in text.splitlines():
        before, _, after = line.partition(" - ")
        pre, post = before.split(), after.split()
        if len(pre) < 6 or len(post) < 2:
            continue
        readonly = "ro" in pre[5].split(",")
        mounts.append((_unescape(post[1]), _unescape(pre[4]), post[0], readonly, pre[2]))
    return mounts


@collector("filesystem")
def make_filesystem(
    config: HostConfig, statvfs: Callable[[str], os.statvfs_result] = os.statvfs
) -> CollectFn:
    # PID 1's view first, like node_exporter: the exporter may run in its own mount namespace
    candidates = (proc_path(config, "1", "mountinfo"), proc_path(config, "self", "mountinfo"))
    strip = config.rootfs.rstrip("/")
    # The mount table is read on every scrape; parsing and filtering it again only when its text changed.
    last: dict[str, list[Mount]] = {}

    def read_mountinfo() -> str:
        error: OSError | None = None
        for path in candidates:
            try:
                with open(path) as f:
                    return f.read()
            except OSError as err:
                error = err
        assert error is not None
        raise error

    def reported_mounts() -> list[Mount]:
        text = read_mountinfo()
        if text in last:
            return last[text]
        reported, seen = [], set()
        for device, mountpoint, fstype, readonly, majmin in parse_mountinfo(text):
            if strip and mountpoint.startswith(strip + "/"):
                mountpoint = mountpoint[len(strip) :]
            if mountpoint in seen:  # stacked mounts: node_exporter reports the mount point once
                continue
            if config.mount_points_exclude.search(mountpoint) or config.fs_types_exclude.search(fstype):
                continue
            seen.add(mountpoint)
            reported.append((device, mountpoint, fstype, readonly, majmin))
        last.clear()
        last[text] = reported
        return reported

    def collect_filesystem() -> list[Metric]:
        fams = {
            k: GaugeMetricFamily(f"node_filesystem_{k}", doc, labels=_LABELS) for k, doc in _NAMES.items()
        }
        info = GaugeMetricFamily(
            "node_filesystem_mount_info",
            "Filesystem mount information.",
            labels=["device", "major", "minor", "mountpoint"],
        )
        for device, mountpoint, fstype, readonly, majmin in reported_mounts():
            major, _, minor = majmin.partition(":")
            info.add_metric([device, major, minor, mountpoint], 1.0)
            try:
                st = statvfs(rootfs_path(config, mountpoint))
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
        return [*fams.values(), info]

    return collect_filesystem
