"""Every host collector against the committed fixture tree tests/fixtures/host (a fake /proc, /sys and
udev database, as node_exporter tests with its collector/fixtures): exact names, types, labels and values,
independent of this machine. No binary, no network; each test takes milliseconds."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors import FACTORIES, NoDataError, build_registry
from redline.exporters.host.collectors.filesystem import make_filesystem
from redline.exporters.host.collectors.time import make_time
from redline.exporters.host.collectors.timex import STA_NANO, Timex, adjtimex, make_timex
from redline.exporters.host.collectors.uname import make_uname
from redline.exporters.host.config import COLLECTOR_NAMES, DEFAULT_ENABLED, HostConfig, parse_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "host"
CONFIG = HostConfig(procfs=str(FIXTURES / "proc"), sysfs=str(FIXTURES / "sys"), rootfs=str(FIXTURES))
# collectors whose whole output follows from the fixture files alone
FILE_COLLECTORS = sorted(p.stem for p in (FIXTURES / "expected").glob("*.txt"))


def render(families: list[Metric]) -> str:
    """The families as exposed: '# TYPE' per family, then its samples with sorted labels."""
    lines = []
    for family in families:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        lines.append(f"# TYPE {name} {'untyped' if family.type == 'unknown' else family.type}")
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            value = repr(float(s.value))
            lines.append(f"{s.name}{{{labels}}} {value}" if labels else f"{s.name} {value}")
    return "\n".join(lines) + "\n"


def collect(name: str, config: HostConfig = CONFIG) -> str:
    return render(FACTORIES[name](config)())


def test_the_fixture_tree_covers_every_collector_that_reads_files() -> None:
    # the others have their own tests below (system calls, a clock, the textfile directory, processes)
    assert (
        sorted(
            set(COLLECTOR_NAMES)
            - {"filesystem", "namedprocess", "sockstat", "textfile", "time", "timex", "uname"}
        )
        == FILE_COLLECTORS
    )


@pytest.mark.parametrize("name", FILE_COLLECTORS)
def test_collector_output_for_the_fixture_tree(name: str) -> None:
    assert collect(name) == (FIXTURES / "expected" / f"{name}.txt").read_text()


def test_sockstat_reports_mem_in_pages_and_bytes() -> None:
    page = os.sysconf("SC_PAGESIZE")
    assert collect("sockstat") == (
        "# TYPE node_sockstat_sockets_used gauge\nnode_sockstat_sockets_used 210.0\n"
        "# TYPE node_sockstat_TCP_inuse gauge\nnode_sockstat_TCP_inuse 12.0\n"
        "# TYPE node_sockstat_TCP_orphan gauge\nnode_sockstat_TCP_orphan 1.0\n"
        "# TYPE node_sockstat_TCP_tw gauge\nnode_sockstat_TCP_tw 4.0\n"
        "# TYPE node_sockstat_TCP_alloc gauge\nnode_sockstat_TCP_alloc 15.0\n"
        "# TYPE node_sockstat_TCP_mem gauge\nnode_sockstat_TCP_mem 3.0\n"
        f"# TYPE node_sockstat_TCP_mem_bytes gauge\nnode_sockstat_TCP_mem_bytes {float(3 * page)!r}\n"
        "# TYPE node_sockstat_UDP_inuse gauge\nnode_sockstat_UDP_inuse 2.0\n"
        "# TYPE node_sockstat_UDP_mem gauge\nnode_sockstat_UDP_mem 5.0\n"
        f"# TYPE node_sockstat_UDP_mem_bytes gauge\nnode_sockstat_UDP_mem_bytes {float(5 * page)!r}\n"
        "# TYPE node_sockstat_UDPLITE_inuse gauge\nnode_sockstat_UDPLITE_inuse 0.0\n"
        "# TYPE node_sockstat_RAW_inuse gauge\nnode_sockstat_RAW_inuse 0.0\n"
        "# TYPE node_sockstat_FRAG_inuse gauge\nnode_sockstat_FRAG_inuse 0.0\n"
        "# TYPE node_sockstat_FRAG_memory gauge\nnode_sockstat_FRAG_memory 0.0\n"
        "# TYPE node_sockstat_TCP6_inuse gauge\nnode_sockstat_TCP6_inuse 3.0\n"
        "# TYPE node_sockstat_UDP6_inuse gauge\nnode_sockstat_UDP6_inuse 1.0\n"
        "# TYPE node_sockstat_UDPLITE6_inuse gauge\nnode_sockstat_UDPLITE6_inuse 0.0\n"
        "# TYPE node_sockstat_RAW6_inuse gauge\nnode_sockstat_RAW6_inuse 0.0\n"
        "# TYPE node_sockstat_FRAG6_inuse gauge\nnode_sockstat_FRAG6_inuse 0.0\n"
        "# TYPE node_sockstat_FRAG6_memory gauge\nnode_sockstat_FRAG6_memory 0.0\n"
    )


def _statvfs(path: str) -> os.statvfs_result:
    """statvfs(2) of the fixture's filesystems: 4 KiB blocks; /mnt/backup disk is an unreachable disk."""
    if path.endswith("backup disk"):
        raise OSError(5, "Input/output error")
    blocks = {"": (1000, 400, 300, 5000, 2000), "boot/efi": (100, 50, 50, 0, 0), "run": (2, 1, 1, 10, 9)}
    f_blocks, f_bfree, f_bavail, f_files, f_ffree = blocks[os.path.relpath(path, FIXTURES).strip(".")]
    return os.statvfs_result((4096, 4096, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_ffree, 0, 255))


def test_filesystem_reads_pid1s_mount_table_and_statvfs_under_the_rootfs() -> None:
    # /proc, /sys (excluded mount points), tmpfs /run (kept: not in node_exporter's default fs types) is
    # stacked (reported once), /var/lib/docker/... excluded, the escaped space unescaped
    run = render(make_filesystem(CONFIG, statvfs=_statvfs)())
    root = 'device="/dev/vda",device_error="",fstype="ext4",mountpoint="/"'
    efi = 'device="/dev/vda1",device_error="",fstype="vfat",mountpoint="/boot/efi"'
    tmp = 'device="tmpfs",device_error="",fstype="tmpfs",mountpoint="/run"'
    assert run == (
        "# TYPE node_filesystem_size_bytes gauge\n"
        f"node_filesystem_size_bytes{{{root}}} 4096000.0\n"
        f"node_filesystem_size_bytes{{{tmp}}} 8192.0\n"
        f"node_filesystem_size_bytes{{{efi}}} 409600.0\n"
        "# TYPE node_filesystem_free_bytes gauge\n"
        f"node_filesystem_free_bytes{{{root}}} 1638400.0\n"
        f"node_filesystem_free_bytes{{{tmp}}} 4096.0\n"
        f"node_filesystem_free_bytes{{{efi}}} 204800.0\n"
        "# TYPE node_filesystem_avail_bytes gauge\n"
        f"node_filesystem_avail_bytes{{{root}}} 1228800.0\n"
        f"node_filesystem_avail_bytes{{{tmp}}} 4096.0\n"
        f"node_filesystem_avail_bytes{{{efi}}} 204800.0\n"
        "# TYPE node_filesystem_files gauge\n"
        f"node_filesystem_files{{{root}}} 5000.0\n"
        f"node_filesystem_files{{{tmp}}} 10.0\n"
        f"node_filesystem_files{{{efi}}} 0.0\n"
        "# TYPE node_filesystem_files_free gauge\n"
        f"node_filesystem_files_free{{{root}}} 2000.0\n"
        f"node_filesystem_files_free{{{tmp}}} 9.0\n"
        f"node_filesystem_files_free{{{efi}}} 0.0\n"
        "# TYPE node_filesystem_readonly gauge\n"
        f"node_filesystem_readonly{{{root}}} 0.0\n"
        f"node_filesystem_readonly{{{tmp}}} 0.0\n"
        f"node_filesystem_readonly{{{efi}}} 1.0\n"
        "# TYPE node_filesystem_device_error gauge\n"
        f"node_filesystem_device_error{{{root}}} 0.0\n"
        f"node_filesystem_device_error{{{tmp}}} 0.0\n"
        f"node_filesystem_device_error{{{efi}}} 0.0\n"
        'node_filesystem_device_error{device="/dev/sdb",device_error="Input/output error",fstype="xfs",'
        'mountpoint="/mnt/backup disk"} 1.0\n'
        "# TYPE node_filesystem_mount_info gauge\n"
        'node_filesystem_mount_info{device="/dev/vda",major="254",minor="0",mountpoint="/"} 1.0\n'
        'node_filesystem_mount_info{device="tmpfs",major="0",minor="22",mountpoint="/run"} 1.0\n'
        'node_filesystem_mount_info{device="/dev/vda1",major="254",minor="1",mountpoint="/boot/efi"} 1.0\n'
        'node_filesystem_mount_info{device="/dev/sdb",major="8",minor="16",'
        'mountpoint="/mnt/backup disk"} 1.0\n'
    )


def test_time_reports_the_clock_zone_and_clocksources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    out = render(make_time(CONFIG, clock=lambda: 1767225600.25)())
    assert out == (
        "# TYPE node_time_seconds gauge\nnode_time_seconds 1767225600.25\n"
        '# TYPE node_time_zone_offset_seconds gauge\nnode_time_zone_offset_seconds{time_zone="UTC"} 0.0\n'
        "# TYPE node_time_clocksource_available_info gauge\n"
        'node_time_clocksource_available_info{clocksource="tsc",device="0"} 1.0\n'
        'node_time_clocksource_available_info{clocksource="kvm-clock",device="0"} 1.0\n'
        'node_time_clocksource_available_info{clocksource="acpi_pm",device="0"} 1.0\n'
        "# TYPE node_time_clocksource_current_info gauge\n"
        'node_time_clocksource_current_info{clocksource="tsc",device="0"} 1.0\n'
    )


def test_uname_takes_the_domain_name_from_procfs() -> None:
    fixed = os.uname_result(("Linux", "web-1", "6.1.0-18-amd64", "#1 SMP Debian 6.1.76-1", "x86_64"))
    assert render(make_uname(CONFIG, uname=lambda: fixed)()) == (
        "# TYPE node_uname_info gauge\n"
        'node_uname_info{domainname="(none)",machine="x86_64",nodename="web-1",release="6.1.0-18-amd64",'
        'sysname="Linux",version="#1 SMP Debian 6.1.76-1"} 1.0\n'
    )


def _timex(**fields: int) -> Timex:
    base = dict.fromkeys(Timex.__dataclass_fields__, 0)
    return Timex(**{**base, **fields})


def test_timex_scales_like_node_exporter() -> None:
    # microsecond mode: offset 1500 us, freq +8 ppm (8 << 16), maxerror 16 s (not synchronised), tick 10 ms
    unsynced = _timex(state=5, offset=1500, freq=8 << 16, maxerror=16_000_000, esterror=250, status=0x41,
                      constant=7, tick=10_000, jitter=30, calcnt=4, tai=37)  # fmt: skip
    values = {s.name: s.value for f in make_timex(CONFIG, read=lambda: unsynced)() for s in f.samples}
    assert values == {
        "node_timex_sync_status": 0.0,
        "node_timex_offset_seconds": 0.0015,
        "node_timex_frequency_adjustment_ratio": 1.000008,
        "node_timex_maxerror_seconds": 16.0,
        "node_timex_estimated_error_seconds": 0.00025,
        "node_timex_status": 65.0,
        "node_timex_loop_time_constant": 7.0,
        "node_timex_tick_seconds": 0.01,
        "node_timex_pps_frequency_hertz": 0.0,
        "node_timex_pps_jitter_seconds": 3e-05,
        "node_timex_pps_shift_seconds": 0.0,
        "node_timex_pps_stability_hertz": 0.0,
        "node_timex_pps_jitter_total": 0.0,
        "node_timex_pps_calibration_total": 4.0,
        "node_timex_pps_error_total": 0.0,
        "node_timex_pps_stability_exceeded_total": 0.0,
        "node_timex_tai_offset_seconds": 37.0,
    }
    # nanosecond mode (STA_NANO): offset and jitter are in ns; synchronised
    nano = _timex(state=0, offset=-2_000_000, status=STA_NANO, jitter=500)
    values = {s.name: s.value for f in make_timex(CONFIG, read=lambda: nano)() for s in f.samples}
    assert values["node_timex_offset_seconds"] == -0.002 and values["node_timex_sync_status"] == 1.0
    assert values["node_timex_pps_jitter_seconds"] == 5e-07


def test_adjtimex_reads_this_kernel() -> None:
    """The real system call through ctypes: the struct layout gives plausible values."""
    try:
        t = adjtimex()
    except NoDataError:
        pytest.skip("adjtimex is not permitted here")
    assert 0 <= t.state <= 5 and 1000 <= t.tick <= 100_000  # USER_HZ 10..1000 -> tick in microseconds
    assert 0 <= t.maxerror <= 16_000_000 and 0 <= t.tai < 100


def _textfile_tree(tmp_path: Path, which: str) -> Path:
    directory = tmp_path / which
    shutil.copytree(FIXTURES / "textfile" / which, directory)
    for i, path in enumerate(sorted(directory.iterdir())):
        os.utime(path, (1767225600 + i, 1767225600.75 + i))  # mtime in whole seconds, like node_exporter
    return directory


def test_textfile_directory(tmp_path: Path) -> None:
    directory = _textfile_tree(tmp_path, "ok")
    families = FACTORIES["textfile"](parse_config({"textfile": {"directory": str(directory)}}))()
    assert render(families) == (
        "# TYPE apt_upgrades_pending untyped\n"
        'apt_upgrades_pending{arch="amd64",origin="Debian"} 3.0\n'
        "# TYPE backup_last_success_timestamp_seconds gauge\n"
        'backup_last_success_timestamp_seconds{target="db"} 1767225000.0\n'
        'backup_last_success_timestamp_seconds{target="files"} 1767224000.0\n'
        "# TYPE backup_runs_total counter\nbackup_runs_total 42.0\n"
        "# TYPE node_textfile_mtime_seconds gauge\n"
        f'node_textfile_mtime_seconds{{file="{directory}/apt.prom"}} 1767225600.0\n'
        f'node_textfile_mtime_seconds{{file="{directory}/backup.prom"}} 1767225601.0\n'
        "# TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0.0\n"
    )
    helps = {f.name: f.documentation for f in families}
    assert helps["apt_upgrades_pending"] == f"Metric read from {directory}/apt.prom"
    assert helps["backup_last_success_timestamp_seconds"] == "When the last backup finished."


def test_textfile_skips_broken_files_and_reports_the_error(tmp_path: Path) -> None:
    directory = _textfile_tree(tmp_path, "broken")
    out = render(FACTORIES["textfile"](parse_config({"textfile": {"directory": str(directory)}}))())
    # syntax.prom does not parse; timestamped.prom has a client-side timestamp: both skipped whole
    assert out == (
        '# TYPE cron_job_ok gauge\ncron_job_ok{job="rotate"} 1.0\n'
        "# TYPE node_textfile_mtime_seconds gauge\n"
        f'node_textfile_mtime_seconds{{file="{directory}/good.prom"}} 1767225600.0\n'
        "# TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 1.0\n"
    )


def test_textfile_without_a_directory_or_with_a_missing_one(tmp_path: Path) -> None:
    assert collect("textfile") == "# TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0.0\n"
    missing = parse_config({"textfile": {"directory": str(tmp_path / "nope")}})
    assert collect("textfile", missing) == (
        "# TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 1.0\n"
    )


def test_missing_kernel_features_are_no_data(tmp_path: Path) -> None:
    """conntrack without the module, pressure without PSI: success 0 and nothing else, like ErrNoData."""
    empty = HostConfig(procfs=str(tmp_path), sysfs=str(tmp_path), rootfs=str(tmp_path))
    for name in ("conntrack", "pressure", "netclass"):
        with pytest.raises(NoDataError):
            FACTORIES[name](empty)()


def test_a_scrape_of_the_fixture_tree_with_every_collector() -> None:
    """The registry as the exporter builds it: every default collector succeeds on the fixture tree."""
    config = HostConfig(
        procfs=CONFIG.procfs,
        sysfs=CONFIG.sysfs,
        rootfs=CONFIG.rootfs,
        enable_collectors=frozenset({"processes"}),
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in build_registry(config).collect()
        for s in family.samples
    }
    success = {
        labels[0][1]: v for (name, labels), v in samples.items() if name == "node_scrape_collector_success"
    }
    assert success == dict.fromkeys([*DEFAULT_ENABLED, "processes"], 1.0)
    assert samples[("node_load15", ())] == 1.75 and samples[("node_nf_conntrack_entries", ())] == 123


def test_collector_selection_follows_node_exporters_defaults() -> None:
    assert HostConfig().enabled_collectors() == list(DEFAULT_ENABLED)
    config = parse_config(
        {
            "enable_collectors": ["processes"],
            "disable_collectors": ["arp", "textfile"],
            "process_groups": [{"name": "x", "comm": ["x"]}],
        }
    )
    assert config.enabled_collectors() == [
        *(c for c in DEFAULT_ENABLED if c not in ("arp", "textfile")), "processes", "namedprocess",
    ]  # fmt: skip
