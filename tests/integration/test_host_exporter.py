"""The host exporter as a real process: side by side with node_exporter, scraped by a real Prometheus,
pushing OTLP through a real vmagent into that Prometheus, and linted by promtool."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from redline.exporters.host.config import DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE
from redline.testing.components import prometheus, vmagent
from redline.testing.processes import ROOT, free_port, http_get, prom_query, running, tool, wait_until

SERVICE = "redline-host-exporter"
COLLECTORS = ("cpu", "loadavg", "meminfo", "filesystem", "diskstats", "netdev", "stat", "time", "uname")


def _exporter_cmd(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "redline.cli", "exporter", "host", "--listen", f"127.0.0.1:{port}", *extra]


def _parse(text: str) -> dict[str, tuple[str, dict[tuple, float]]]:
    """metric (sample) name -> (family type, {sorted labels: value})."""
    out: dict[str, tuple[str, dict[tuple, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, (family.type, {}))[1][tuple(sorted(s.labels.items()))] = s.value
    return out


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, dict]]:
    """One scrape of each, taken at the same moment."""
    tmp = tmp_path_factory.mktemp("side")
    ours, theirs = free_port(), free_port()
    node_cmd = [
        tool("node_exporter"), f"--web.listen-address=127.0.0.1:{theirs}", "--collector.disable-defaults",
        *(f"--collector.{c}" for c in COLLECTORS),
        f"--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}",
        f"--collector.filesystem.fs-types-exclude={DEFAULT_FS_TYPES_EXCLUDE}",
    ]  # fmt: skip
    with (
        running(_exporter_cmd(ours), ready_url=f"http://127.0.0.1:{ours}/-/healthy", log=tmp / "host.log"),
        running(node_cmd, ready_url=f"http://127.0.0.1:{theirs}/metrics", log=tmp / "node.log"),
        ThreadPoolExecutor(2) as pool,
    ):
        a = pool.submit(http_get, f"http://127.0.0.1:{ours}/metrics")
        b = pool.submit(http_get, f"http://127.0.0.1:{theirs}/metrics")
        (code_a, text_a), (code_b, text_b) = a.result(), b.result()
    assert code_a == code_b == 200
    yield _parse(text_a), _parse(text_b)


def test_same_names_types_and_label_sets_as_node_exporter(side_by_side) -> None:
    ours, theirs = side_by_side
    core = [
        "node_cpu_seconds_total", "node_load1", "node_load5", "node_load15", "node_memory_MemTotal_bytes",
        "node_memory_MemAvailable_bytes", "node_memory_MemFree_bytes", "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes", "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes",
        "node_filesystem_size_bytes", "node_filesystem_free_bytes", "node_filesystem_avail_bytes",
        "node_filesystem_readonly", "node_filesystem_files", "node_filesystem_files_free",
        "node_disk_reads_completed_total", "node_disk_writes_completed_total", "node_disk_read_bytes_total",
        "node_disk_written_bytes_total", "node_disk_io_time_seconds_total",
        "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
        "node_network_receive_packets_total", "node_network_receive_errs_total",
        "node_network_receive_drop_total", "node_boot_time_seconds", "node_time_seconds", "node_uname_info",
    ]  # fmt: skip
    for name in core:
        assert name in ours, f"{name} missing from the host exporter"
        assert name in theirs, f"{name} missing from node_exporter (the comparison is meaningless)"
    overlap = {
        n for n in ours.keys() & theirs.keys() if n.startswith("node_") and not n.startswith("node_scrape_")
    }
    assert len(overlap) >= 60  # every meminfo field plus the core set
    for name in sorted(overlap):
        assert ours[name][0] == theirs[name][0], (
            f"{name}: type {ours[name][0]} vs node_exporter's {theirs[name][0]}"
        )
        ours_labels, theirs_labels = set(ours[name][1]), set(theirs[name][1])
        if name == "node_disk_info":
            # node_exporter 1.11.1 reports rotational="0" wherever it cannot parse every file of
            # /sys/block/DEV/queue (so on this kernel); redline reads queue/rotational itself (documented)
            ours_labels, theirs_labels = (
                _without("rotational", ours_labels),
                _without("rotational", theirs_labels),
            )
        assert ours_labels == theirs_labels, (
            f"{name}: label sets differ: ours {sorted(ours_labels)} vs theirs {sorted(theirs_labels)}"
        )
    # every /proc/meminfo field node_exporter reports, we report too
    missing = {n for n in theirs if n.startswith("node_memory_")} - set(ours)
    assert not missing, f"meminfo fields missing: {sorted(missing)}"


def _without(label: str, label_sets: set[tuple]) -> set[tuple]:
    return {tuple(pair for pair in labels if pair[0] != label) for labels in label_sets}


def _values(parsed: dict, name: str) -> dict[tuple, float]:
    return parsed[name][1]


def test_values_match_node_exporter(side_by_side) -> None:
    ours, theirs = side_by_side
    for name in ("node_memory_MemTotal_bytes", "node_memory_SwapTotal_bytes", "node_boot_time_seconds",
                 "node_filesystem_size_bytes", "node_filesystem_files", "node_uname_info"):  # fmt: skip
        assert _values(ours, name) == _values(theirs, name), name
    for name, tolerance in [
        ("node_memory_MemAvailable_bytes", 64 * 2**20),
        ("node_filesystem_avail_bytes", 64 * 2**20),
        ("node_filesystem_free_bytes", 64 * 2**20),
        ("node_cpu_seconds_total", 1.0),  # seconds per CPU between two scrapes taken together
        ("node_load1", 1.0),
        ("node_time_seconds", 2.0),
        ("node_network_receive_bytes_total", 1 * 2**20),  # the scrapes themselves cross the loopback
        ("node_network_transmit_packets_total", 1000),
        ("node_disk_reads_completed_total", 200),
        ("node_disk_written_bytes_total", 64 * 2**20),
        ("node_disk_io_time_seconds_total", 1.0),
    ]:
        a, b = _values(ours, name), _values(theirs, name)
        for labels, value in b.items():
            assert abs(a[labels] - value) <= tolerance, (
                f"{name}{dict(labels)}: ours {a[labels]} vs node_exporter {value}"
            )


# ---- a real Prometheus scraping it, and its OTLP through a real vmagent ---------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("host")
    exporter_port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n  - job_name: host\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    )
    host_config = tmp / "host.yml"
    # the exporter itself, by its unique listen address (other redline exporters may run on this machine)
    host_config.write_text(
        f"process_groups:\n  - {{name: self, cmdline: 'exporter host --listen 127.0.0.1:{exporter_port} '}}\n"
    )
    with prometheus(tmp, config) as prom, vmagent(tmp, prom) as otlp:
        exporter_cmd = _exporter_cmd(
            exporter_port, "--config", str(host_config), "--otlp-interval", "1", "--otlp-endpoint", otlp
        )
        ready = f"http://127.0.0.1:{exporter_port}/-/healthy"
        with running(exporter_cmd, ready_url=ready, log=tmp / "host.log"):
            yield {"prom": prom, "metrics_url": f"http://127.0.0.1:{exporter_port}/metrics"}


def _scalar(prom: str, expr: str) -> float:
    result = wait_until(lambda: prom_query(prom, expr), timeout=20, what=expr)
    assert len(result) == 1, f"{expr}: {result}"
    return float(result[0]["value"][1])


def test_prometheus_scrapes_it_and_the_usual_node_queries_work(stack: dict) -> None:
    prom = stack["prom"]
    assert _scalar(prom, 'up{job="host"}') == 1
    cpu = _scalar(prom, '1 - avg by (instance) (rate(node_cpu_seconds_total{job="host",mode="idle"}[5s]))')
    assert 0 <= cpu <= 1
    memory = _scalar(
        prom, '1 - node_memory_MemAvailable_bytes{job="host"} / node_memory_MemTotal_bytes{job="host"}'
    )
    assert 0 < memory < 1
    free = _scalar(
        prom,
        'node_filesystem_avail_bytes{job="host",mountpoint="/"}'
        ' / node_filesystem_size_bytes{job="host",mountpoint="/"}',
    )
    assert 0 < free <= 1
    rates = wait_until(
        lambda: prom_query(prom, 'rate(node_network_receive_bytes_total{job="host",device="lo"}[5s])')
    )
    assert float(rates[0]["value"][1]) > 0  # Prometheus's own scrapes cross the loopback
    # a named process group: "the exporter's own RSS" and "its CPU share" as an SRE would query them
    rss = _scalar(prom, 'namedprocess_namegroup_memory_bytes{job="host",groupname="self",memtype="resident"}')
    assert 5e6 < rss < 500e6
    assert _scalar(prom, 'namedprocess_namegroup_num_procs{job="host",groupname="self"}') == 1
    share = _scalar(
        prom, 'sum(rate(namedprocess_namegroup_cpu_seconds_total{job="host",groupname="self"}[5s]))'
    )
    assert 0 <= share < 2
    assert _scalar(prom, 'min(node_scrape_collector_success{job="host"})') == 1


def test_otlp_through_vmagent_arrives_with_the_scrapes_names_and_values(stack: dict) -> None:
    prom = stack["prom"]
    otlp = f'job="{SERVICE}"'
    for name in ("node_memory_MemTotal_bytes", "node_boot_time_seconds"):
        scraped = _scalar(prom, f'{name}{{job="host"}}')
        pushed = _scalar(prom, f"{name}{{{otlp}}}")
        assert pushed == scraped, name
    # same label sets for counters with labels
    scraped_cpu = {
        (r["metric"]["cpu"], r["metric"]["mode"])
        for r in prom_query(prom, 'node_cpu_seconds_total{job="host"}')
    }
    pushed_cpu = {
        (r["metric"]["cpu"], r["metric"]["mode"])
        for r in prom_query(prom, f"node_cpu_seconds_total{{{otlp}}}")
    }
    assert scraped_cpu == pushed_cpu and len(scraped_cpu) >= 8
    uname = prom_query(prom, f"node_uname_info{{{otlp}}}")[0]["metric"]
    assert uname["nodename"] == prom_query(prom, 'node_uname_info{job="host"}')[0]["metric"]["nodename"]
    assert uname["instance"].endswith(
        f"/{SERVICE}/127.0.0.1:{stack['metrics_url'].split(':')[2].split('/')[0]}"
    )
    # counters keep increasing across exports (cumulative, fixed start): the OTLP rate is sane. Every
    # mode summed, each CPU spends one second per second (idle alone is ~0 on a saturated machine).
    cpus = len({cpu for cpu, _ in scraped_cpu})
    rate = _scalar(prom, f"sum(rate(node_cpu_seconds_total{{{otlp}}}[5s]))")
    assert 0.5 * cpus <= rate <= 1.5 * cpus, (rate, cpus)


def test_promtool_finds_nothing_but_node_exporters_own_names(stack: dict) -> None:
    """promtool's lint flags only names node_exporter itself uses: camelCase meminfo and netstat fields, and
    entropy in bits (tests/integration/host compares the full output with node_exporter's, line by line)."""
    status, body = http_get(stack["metrics_url"])
    assert status == 200 and "namedprocess_namegroup_num_procs" in body
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    unexpected = [
        p
        for p in problems
        if not (p.startswith(("node_memory_", "node_netstat_")) and "camelCase" in p)
        and not (p.startswith("node_entropy_") and 'instead of "bits"' in p)
    ]
    assert not unexpected, unexpected
    assert any("node_memory_MemTotal_bytes" in p for p in problems), "promtool output format changed?"


def test_exits_2_with_one_line_for_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "host.yml"
    config.write_text("process_groups:\n  - name: monitor\n    cmdline: 'monitor(\\.py'\n")
    result = subprocess.run(
        [*_exporter_cmd(free_port()), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert (
        f"config {config}: process_groups[0] (monitor).cmdline: invalid regular expression" in result.stderr
    )
    bad_listen = subprocess.run(
        [*_exporter_cmd(0)[:-2], "--listen", "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert bad_listen.returncode == 2 and bad_listen.stderr.count("\n") == 1
