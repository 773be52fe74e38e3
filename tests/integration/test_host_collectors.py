"""Host exporter pieces in-process: collector isolation over real HTTP, named process groups on real child
processes, and config validation."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from redline.exporters.host.collectors import IsolatedCollectors, ProcessGroupCollector, build_registry
from redline.exporters.host.config import ConfigError, HostConfig, load_config, parse_config
from redline.exporters.host.main import main as host_main
from redline.telemetry.web import serve
from redline.testing.processes import http_get, wait_until


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_collector_that_raises_or_hangs_does_not_fail_the_scrape() -> None:
    release = threading.Event()
    calls = {"hang": 0}

    def broken() -> list:
        raise OSError("disk on fire")

    def hang() -> list:
        calls["hang"] += 1
        release.wait(60)
        return [GaugeMetricFamily("node_never_seen", "Never.", value=1)]

    registry = build_registry(
        HostConfig(collector_timeout_seconds=0.5), extra={"broken": broken, "hang": hang}
    )
    server = serve(registry, "127.0.0.1:0")
    try:
        for attempt in range(2):
            started = time.monotonic()
            status, body = http_get(server.metrics_url, timeout=10)
            took = time.monotonic() - started
            assert status == 200
            # the budget is enforced (a functional bound, generous against a slow CI machine)
            assert took < 3.0, f"scrape {attempt} took {took:.1f}s with a 0.5s collector budget"
            samples = _samples(body)
            assert samples[("node_scrape_collector_success", (("collector", "broken"),))] == 0
            assert samples[("node_scrape_collector_success", (("collector", "hang"),))] == 0
            assert samples[("node_scrape_collector_success", (("collector", "cpu"),))] == 1
            assert samples[("node_scrape_collector_success", (("collector", "meminfo"),))] == 1
            assert ("node_memory_MemTotal_bytes", ()) in samples
            assert not any(name == "node_never_seen" for name, _ in samples)
            if attempt == 0:
                assert samples[("node_scrape_collector_duration_seconds", (("collector", "hang"),))] >= 0.5
        assert calls["hang"] == 1, "a collector still hung from the last scrape is not started again"
        release.set()
        wait_for = time.monotonic() + 5
        while time.monotonic() < wait_for:
            samples = _samples(http_get(server.metrics_url)[1])
            if samples[("node_scrape_collector_success", (("collector", "hang"),))] == 1:
                break
            time.sleep(0.1)
        assert samples[("node_never_seen", ())] == 1, "the collector recovers once the call returns"
    finally:
        release.set()
        server.shutdown()


def test_concurrent_scrapes_share_a_slow_collector_run() -> None:
    """Prometheus, the OTLP bridge and a curl can collect at once: none sees a spurious failure."""
    calls = []

    def slow() -> list:
        calls.append(1)
        time.sleep(0.3)
        return [GaugeMetricFamily("node_slow_value", "Slow.", value=7)]

    registry = build_registry(HostConfig(collector_timeout_seconds=5), extra={"slow": slow})
    server = serve(registry, "127.0.0.1:0")
    try:
        with ThreadPoolExecutor(3) as pool:
            bodies = list(pool.map(lambda _: http_get(server.metrics_url, timeout=10)[1], range(3)))
    finally:
        server.shutdown()
    for body in bodies:
        samples = _samples(body)
        assert samples[("node_scrape_collector_success", (("collector", "slow"),))] == 1
        assert samples[("node_slow_value", ())] == 7
    assert len(calls) < 3, "concurrent scrapes joined the run in flight"


def _collector_workers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "collector-worker")


def test_a_hung_collector_first_in_line_holds_up_the_others_only_briefly() -> None:
    """Collectors share a worker in turn; one stuck in front hands the rest to another worker."""
    release = threading.Event()
    ran_at: list[float] = []

    def hang() -> list:
        release.wait(60)
        return []

    def quick() -> list:
        ran_at.append(time.monotonic())
        return [GaugeMetricFamily("node_quick", "Quick.", value=1)]

    before = _collector_workers()
    isolated = IsolatedCollectors({"hang": hang, "quick": quick}, timeout_seconds=1.0)
    try:
        for attempt in range(4):
            started = time.monotonic()
            samples = {
                (s.name, tuple(s.labels.items())): s.value for m in isolated.collect() for s in m.samples
            }
            took = time.monotonic() - started
            assert samples[("node_quick", ())] == 1
            assert samples[("node_scrape_collector_success", (("collector", "quick"),))] == 1
            assert samples[("node_scrape_collector_success", (("collector", "hang"),))] == 0
            assert took < 3.0, f"scrape {attempt} took {took:.1f}s with a 1s budget"
            if attempt == 0:
                assert took >= 1.0, "the scrape waited for the hung collector up to its budget"
                assert ran_at[0] - started < 0.5, "quick ran soon after hang blocked its worker"
        # one thread stuck in hang, one for the rest, however many scrapes
        assert _collector_workers() - before <= 2
    finally:
        release.set()
    wait_until(
        lambda: _collector_workers() - before <= isolated.max_idle_workers,
        timeout=5,
        what="spare collector workers to exit when idle",
    )


def test_all_collectors_of_a_scrape_run_on_one_worker() -> None:
    threads: set[str] = set()

    def record() -> list:
        threads.add(str(threading.get_ident()))
        return []

    before = _collector_workers()
    isolated = IsolatedCollectors({f"c{i}": record for i in range(9)}, timeout_seconds=5)
    for _ in range(20):
        families = list(isolated.collect())
        assert {s.value for s in families[-1].samples} == {1.0}  # node_scrape_collector_success
    assert len(threads) == 1, "every run of every scrape on the same worker thread"
    assert _collector_workers() - before <= 1


# ---- named process groups on real processes ------------------------------------------------------------

_CHILD = (
    "import sys, time\n"
    "end = time.process_time() + float(sys.argv[1])\n"
    "while time.process_time() < end: pass\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def _spawn(procs: list[subprocess.Popen], cpu_seconds: float, marker: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(cpu_seconds), marker], stdout=subprocess.PIPE, text=True
    )
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _group_values(collector: ProcessGroupCollector) -> dict[tuple, float]:
    out = {}
    for family in collector.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_process_groups_by_cmdline_comm_and_pidfile(tmp_path: Path, children: list) -> None:
    burner = _spawn(children, 0.3, "redline-test-burner")
    other = _spawn(children, 0.0, "redline-test-other")
    pidfile = tmp_path / "other.pid"
    pidfile.write_text(f"{other.pid}\n")
    config = parse_config(
        {
            "process_groups": [
                {"name": "burner", "cmdline": r"redline-test-burner"},
                {"name": "by-pidfile", "pidfile": str(pidfile)},
                {"name": "by-comm", "comm": ["no-such-process-name"]},
            ]
        }
    )
    collector = ProcessGroupCollector(config.process_groups)
    v = _group_values(collector)
    g = lambda name: (("groupname", name),)  # noqa: E731
    assert v[("namedprocess_namegroup_num_procs", g("burner"))] == 1
    assert v[("namedprocess_namegroup_num_procs", g("by-pidfile"))] == 1
    assert v[("namedprocess_namegroup_num_procs", g("by-comm"))] == 0
    user = v[("namedprocess_namegroup_cpu_seconds_total", (("groupname", "burner"), ("mode", "user")))]
    system = v[("namedprocess_namegroup_cpu_seconds_total", (("groupname", "burner"), ("mode", "system")))]
    assert 0.25 <= user + system <= 5.0
    rss = v[("namedprocess_namegroup_memory_bytes", (("groupname", "burner"), ("memtype", "resident")))]
    assert rss == psutil.Process(burner.pid).memory_info().rss
    assert v[("namedprocess_namegroup_memory_bytes", (("groupname", "burner"), ("memtype", "virtual")))] > rss
    assert v[("namedprocess_namegroup_num_threads", g("burner"))] >= 1
    assert v[("namedprocess_namegroup_open_filedesc", g("burner"))] >= 3
    start = v[("namedprocess_namegroup_oldest_start_time_seconds", g("burner"))]
    assert start == pytest.approx(psutil.Process(burner.pid).create_time())
    assert ("namedprocess_namegroup_oldest_start_time_seconds", g("by-comm")) not in v
    # the pidfile is read on every scrape: point it elsewhere and the group follows
    pidfile.write_text("999999999\n")
    assert _group_values(collector)[("namedprocess_namegroup_num_procs", g("by-pidfile"))] == 0


def test_process_group_cpu_counter_never_drops_when_a_member_exits(children: list) -> None:
    first = _spawn(children, 0.3, "redline-test-pair")
    _spawn(children, 0.3, "redline-test-pair")
    collector = ProcessGroupCollector(
        parse_config({"process_groups": [{"name": "pair", "cmdline": "test-pair"}]}).process_groups
    )

    def cpu(values: dict) -> float:
        return sum(
            values[("namedprocess_namegroup_cpu_seconds_total", (("groupname", "pair"), ("mode", mode)))]
            for mode in ("user", "system")
        )

    before = _group_values(collector)
    assert before[("namedprocess_namegroup_num_procs", (("groupname", "pair"),))] == 2
    first.kill()
    first.wait(timeout=10)
    after = _group_values(collector)
    assert after[("namedprocess_namegroup_num_procs", (("groupname", "pair"),))] == 1
    assert cpu(after) >= cpu(before) >= 0.5  # the exited member's CPU time stays in the total


def test_comm_matches_the_process_name(children: list) -> None:
    proc = _spawn(children, 0.0, "redline-test-comm")
    name = psutil.Process(proc.pid).name()
    config = parse_config(
        {"process_groups": [{"name": "py", "comm": [name], "cmdline": "redline-test-comm"}]}
    )
    v = _group_values(ProcessGroupCollector(config.process_groups))
    assert v[("namedprocess_namegroup_num_procs", (("groupname", "py"),))] == 1


# ---- config validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("colector_timeout_seconds: 1\n", "unknown key 'colector_timeout_seconds'"),
        (
            "process_groups:\n  - name: a\n    cmdline: '(unclosed'\n",
            r"process_groups\[0\] \(a\)\.cmdline: invalid regular",
        ),
        (
            "process_groups:\n  - name: a\n    pidfile: /nonexistent-dir/x.pid\n",
            "directory /nonexistent-dir does not exist",
        ),
        ("process_groups:\n  - name: a\n    pidfile: relative.pid\n", "expected an absolute path"),
        ("process_groups:\n  - name: a\n    pidfile: /tmp\n", "is a directory"),
        ("process_groups:\n  - name: a\n    exe: x\n", r"process_groups\[0\]: unknown key 'exe'"),
        ("process_groups:\n  - name: a\n", "give at least one matcher"),
        ("process_groups:\n  - comm: [x]\n", r"process_groups\[0\]\.name: required"),
        ("process_groups:\n  - {name: a, comm: x}\n  - {name: a, comm: y}\n", "duplicate group name 'a'"),
        ("collector_timeout_seconds: -1\n", "collector_timeout_seconds: expected a positive number"),
        ("disable_collectors: [cpux]\n", "unknown collector 'cpux'"),
        ("filesystem:\n  fs_types_exclude: '['\n", "filesystem.fs_types_exclude: invalid regular expression"),
        ("process_groups: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_the_file_entry_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "host.yml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(str(path))
    assert str(err.value).startswith(f"config {path}: ") and "\n" not in str(err.value)


def test_valid_config(tmp_path: Path) -> None:
    path = tmp_path / "host.yml"
    path.write_text(
        "collector_timeout_seconds: 2\ndisable_collectors: [diskstats]\n"
        "filesystem: {mount_points_exclude: '^/boot'}\n"
        "process_groups:\n  - {name: monitor, comm: python3, cmdline: 'monitor\\.py'}\n"
        f"  - {{name: pg, pidfile: {tmp_path}/pg.pid}}\n"
    )
    config = load_config(str(path))
    assert config.collector_timeout_seconds == 2.0 and config.disable_collectors == {"diskstats"}
    assert [g.name for g in config.process_groups] == ["monitor", "pg"]
    assert (
        config.process_groups[0].comm == {"python3"}
        and config.process_groups[1].pidfile == f"{tmp_path}/pg.pid"
    )
    assert config.mount_points_exclude.search("/boot/efi") and not config.mount_points_exclude.search("/")
    assert load_config(None) == HostConfig()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "127.0.0.1"], "invalid listen address '127.0.0.1': missing port"),
        (["--listen", "127.0.0.1:99999"], "port '99999' is not a number"),
        (["--config", "/nonexistent/host.yml"], "config /nonexistent/host.yml: cannot read"),
        (["--web-config", "/nonexistent/web.yml"], "web-config /nonexistent/web.yml: cannot read"),
        (["--otlp-endpoint", "localhost:4318"], "invalid OTLP endpoint"),
    ],
)
def test_cli_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert host_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("redline exporter host: ")


def test_exporter_dispatcher(capsys: pytest.CaptureFixture) -> None:
    from redline.exporters.cli import main as exporter_main

    assert exporter_main([]) == 2
    assert "redline exporter {host,jobs}" in capsys.readouterr().out
    assert exporter_main(["nope"]) == 2
    assert "unknown exporter 'nope'; choose from: host, jobs" in capsys.readouterr().err
    assert exporter_main(["host", "--listen", "bad"]) == 2
    assert "invalid listen address 'bad'" in capsys.readouterr().err
