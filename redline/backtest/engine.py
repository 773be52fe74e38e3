"""The rule engine: vmalert -replay over the datasource, writing into a scratch VictoriaMetrics.

vmalert (the pinned Debian build, `tools/versions.yml`) reads the history with range queries at the
group's interval and remote-writes what the rules produce: the recorded signals and, for every alert,
ALERTS{alertstate="pending"|"firing"} at each evaluation. The scratch store is a VictoriaMetrics
single-node in a temporary folder (it accepts samples of any age); its /api/v1/export gives the raw
samples back. The datasource is only read. Both processes are always stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redline import tools
from redline.backtest.datasource import Datasource, iso
from redline.backtest.rules import RULE_LABEL, SIGNAL_LABEL, SIGNAL_METRIC
from redline.backtest.timeline import Series, dedupe

Progress = Callable[[str], None]
# Prometheus refuses more than 11,000 points per series in one range query.
MAX_POINTS_PER_QUERY = 10_000
RULE_LINE_RE = re.compile(r'^> Rule "(.*)" \(ID: \d+\)')
LOG_FAILURE_RE = re.compile(r"\t(error|fatal|panic)\t|level=(error|fatal)|\b(FATAL|ERROR|panic):")


class EngineError(Exception):
    """vmalert or the scratch store failed (exit 1); the message ends with the tail of its log."""


@dataclass
class ReplayResult:
    alerts: dict[str, list[Series]]  # rule id -> its ALERTS{alertstate="firing"} series
    signals: dict[str, list[Series]]  # signal id -> its recorded series
    samples: int
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall time
    peak_rss: dict[str, int] = field(default_factory=dict)  # process -> bytes (VmHWM)


def binary(name: str) -> str:
    found = tools.binary(name)
    if found is None:
        raise EngineError(f"{name} not found in .tools/bin or on PATH; run 'redline setup-tools'")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss(pid: int) -> int:
    """The process' peak resident memory (VmHWM) in bytes; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tail(log: Path, lines: int = 3) -> str:
    """The last lines of a log that say what went wrong (its last lines when none does)."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    failures = [line for line in text if LOG_FAILURE_RE.search(line)]
    return " | ".join(" ".join(line.split()) for line in (failures or text)[-lines:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def scratch_store(folder: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A VictoriaMetrics single-node in `folder`; yields (base URL, process) once /health answers."""
    port = free_port()
    log = folder / "victoria-metrics.log"
    cmd = [
        binary("victoria-metrics"),
        f"-storageDataPath={folder / 'vm-data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=100y",  # replayed samples are as old as the history
        "-search.maxExportDuration=87600h",
        "-search.maxExportSeries=10000000",
        "-search.maxUniqueTimeseries=10000000",
        # a recorded signal is one series of up to MAX_POINTS_PER_QUERY samples per request item
        "-maxInsertRequestSize=268435456",
        "-loggerLevel=ERROR",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise EngineError(f"victoria-metrics exited {proc.returncode}: {_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise EngineError(f"victoria-metrics did not answer at {url}: {_tail(log)}") from None
                time.sleep(0.05)
        yield url, proc
    finally:
        _stop(proc)


def run_vmalert(
    rules_file: Path,
    source: Datasource,
    store: str,
    start: int,
    end: int,
    concurrency: int,
    log: Path,
    progress: Progress,
    total_rules: int,
) -> int:
    """vmalert -replay over [start, end]; returns its peak RSS in bytes. Raises EngineError."""
    cmd = [
        binary("vmalert"),
        f"-rule={rules_file}",
        f"-datasource.url={source.url}",
        *source.vmalert_flags,
        f"-remoteWrite.url={store}",
        f"-replay.timeFrom={iso(start)}",
        f"-replay.timeTo={iso(end)}",
        f"-replay.maxDatapointsPerQuery={MAX_POINTS_PER_QUERY}",
        "-replay.rulesDelay=0",  # no rule reads another's results: the group's concurrency applies
        f"-replay.ruleEvaluationConcurrency={concurrency}",
        "-replay.disableProgressBar",
        "-replay.ruleRetryAttempts=2",
        "-rule.validateExpressions=false",  # the datasource speaks PromQL, not MetricsQL
        "-remoteWrite.maxQueueSize=1000000",
        "-remoteWrite.maxBatchSize=1000",  # series per request: at most 10 million samples, 256 MiB
        "-remoteWrite.flushInterval=500ms",
        f"-remoteWrite.concurrency={max(2, concurrency)}",
        "-loggerLevel=WARN",
    ]
    done, started, peak = 0, time.monotonic(), 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line.encode())
                match = RULE_LINE_RE.match(line)
                if match:
                    peak = max(peak, peak_rss(proc.pid))
                    done += 1
                    elapsed = time.monotonic() - started
                    progress(f"vmalert replay: rule {done}/{total_rules} {match.group(1)} ({elapsed:.0f}s)")
            peak = max(peak, peak_rss(proc.pid))
            proc.wait()
        finally:
            _stop(proc)
    if proc.returncode != 0:
        raise EngineError(f"vmalert -replay exited {proc.returncode}: {_tail(log)}")
    return peak


def export(store: str, match: str, start: int, end: int) -> Iterator[dict]:
    """Raw samples of the series matching `match` from the scratch store, one JSON object a series."""
    params = urllib.parse.urlencode({"match[]": match, "start": str(start), "end": str(end + 1)})
    try:
        with urllib.request.urlopen(f"{store}/api/v1/export?{params}", timeout=600) as response:
            for line in response:
                if line.strip():
                    yield json.loads(line)
    except (OSError, ValueError) as err:
        raise EngineError(f"reading {match} from the scratch store: {err}") from None


def _flush(store: str) -> None:
    """Make everything vmalert wrote searchable (VictoriaMetrics buffers recent samples in memory)."""
    try:
        with urllib.request.urlopen(f"{store}/internal/force_flush", timeout=60):
            pass
    except OSError as err:
        raise EngineError(f"flushing the scratch store: {err}") from None


def replay(
    rules_yaml: str,
    source: Datasource,
    start: int,
    end: int,
    total_rules: int,
    progress: Progress,
    concurrency: int | None = None,
    workdir: Path | None = None,
) -> ReplayResult:
    """Evaluate the rules over [start, end] and read back the signals and the firing alerts."""
    concurrency = concurrency or max(1, os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="redline-backtest-")))
        rules_file = folder / "rules.yml"
        rules_file.write_text(rules_yaml)
        store, store_proc = stack.enter_context(scratch_store(folder))
        began = time.monotonic()
        vmalert_peak = run_vmalert(
            rules_file, source, store, start, end, concurrency, folder / "vmalert.log", progress, total_rules
        )
        replayed = time.monotonic()
        _flush(store)
        progress("reading the replay's results from the scratch store")
        alerts: dict[str, list[Series]] = defaultdict(list)
        signals: dict[str, list[Series]] = defaultdict(list)
        samples = 0
        for kind, match in (("alerts", 'ALERTS{alertstate="firing"}'), ("signals", SIGNAL_METRIC)):
            for item in export(store, match, start, end):
                labels = dict(item["metric"])
                deduped, values = dedupe([t // 1000 for t in item["timestamps"]], item["values"])
                timestamps = array("q", deduped)  # 8 bytes a sample instead of a Python int's 28
                samples += len(timestamps)
                if kind == "alerts":
                    alerts[labels.pop(RULE_LABEL, "")].append(Series(labels, timestamps, values))
                else:
                    labels.pop("__name__", None)
                    signals[labels.pop(SIGNAL_LABEL, "")].append(
                        Series(labels, timestamps, array("d", values))
                    )
        read = time.monotonic()
        store_peak = peak_rss(store_proc.pid)
    return ReplayResult(
        alerts=dict(alerts),
        signals=dict(signals),
        samples=samples,
        seconds={"replay": replayed - began, "read": read - replayed},
        peak_rss={"vmalert": vmalert_peak, "victoria-metrics": store_peak},
    )
