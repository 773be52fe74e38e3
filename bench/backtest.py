"""`redline backtest` over 7 and 30 days of synthesised history: wall time and peak memory.

    .venv/bin/python bench/backtest.py [--profile demo|scale] [--days 7,30] [--scrape 15]
        [--keep DIR [--prepare-only]]

The history is synthesised, not recorded: for every scrape target of the profile, every catalogue entry
of its system gets its `test:` fixture series (the series its rules read, as the generated promtool
tests drive them), following a daily wave with noise around the good side of the documented target and,
about every two days per series, an incident past the alert value lasting 2 to 60 minutes; every target
has `up` (with the odd outage). Profiles:
- demo: the demo's 14 targets (redline/topology.py: Prometheus, Alertmanager, vmagent, the host
  exporter, the PostgreSQL and job exporters, GameBook, qerrors production and staging, the pipeline
  API, the tmux monitor, and three blackbox probes), sampled every --scrape seconds (default 15);
- scale: bench/scale.py's 500 targets (250 tmux monitors, 250 hosts), sampled every 60 s by default.
Before the N days evaluated, the history covers the longest window a rule of the profile reads (the
qerrors baseline's `offset 1w` plus its hour for demo, the availability SLO's 3 days for scale), so no
rule sees a partial window. The history is written as OpenMetrics, backfilled with promtool into a TSDB
that a real Prometheus serves, then `redline backtest --from --to --step 1m --json` runs against it.
Reported: the backtest's wall time, run twice (cold: the first run after Prometheus started; warm:
the second), the phases of the cold run, peak RSS of redline, vmalert and the scratch VictoriaMetrics
(cold run), and of the Prometheus it reads; how long preparing the history took, apart.
Not a test: prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT, free_port, run, tool, wait_ready  # bench/common.py; puts the repository on sys.path

from redline import topology
from redline.backtest.engine import peak_rss
from redline.generate.load import load_catalogue
from redline.generate.model import Catalogue, Fixture, Slo, Threshold, parse_duration
from redline.testing.history import Driver, Incident, backfill, constant, write_openmetrics

DAY, HOUR, MINUTE = 86400, 3600, 60
STRETCH = 4 * DAY  # history written and backfilled this much at a time


class Wave:
    """A daily wave with per-minute noise around mid, clipped to [low, high] (deterministic for a seed).

    The noise of a minute is drawn from one generator per series and day (seeded by both), a day of
    minutes at a time: `over(times)` gives a whole range's values for the history writer (a generator
    seeded for each minute, as before, cost 4 us a sample, most of the time spent writing)."""

    def __init__(
        self, mid: float, spread: float, seed: int, low: float | None = None, high: float | None = None
    ) -> None:
        self.mid, self.spread, self.seed, self.low, self.high = mid, spread, seed, low, high
        self.phase = random.Random(seed).uniform(0, 2 * math.pi)

    def noise(self, day: int) -> list[float]:
        """The noise of each minute of this day (days since the epoch), in [-1, 1)."""
        draw = random.Random(self.seed * 1_000_003 + day).random
        return [-1 + 2 * draw() for _ in range(DAY // MINUTE)]

    def __call__(self, t: int) -> float:
        return self.over(range(t, t + 1))[0]

    def over(self, times: range) -> list[float]:
        if not times:
            return []
        first_day = times[0] // DAY
        noise = [n for day in range(first_day, times[-1] // DAY + 1) for n in self.noise(day)]
        base = first_day * (DAY // MINUTE)
        mid, spread, phase, low, high = self.mid, self.spread, self.phase, self.low, self.high
        sin, turn = math.sin, 2 * math.pi
        values = [
            mid + spread * (0.6 * sin(turn * t / DAY + phase) + 0.4 * noise[t // MINUTE - base])
            for t in times
        ]
        values = values if low is None else [max(low, v) for v in values]
        return values if high is None else [min(high, v) for v in values]


def wave(
    mid: float, spread: float, seed: int, low: float | None = None, high: float | None = None
) -> Callable[[int], float]:
    """A daily wave with per-minute noise around mid (deterministic for a seed): a Wave."""
    return Wave(mid, spread, seed, low, high)


def threshold_driver(t: Threshold, target: dict[str, str], seed: int, start: int, end: int) -> Driver | None:
    """Normal behaviour on the good side of the documented target, incidents past the alert value."""
    if t.fixture is None or t.fixture.kind == "always":
        return None
    rng = random.Random(seed)
    up = t.operator in (">", ">=")
    ratio = t.unit in ("ratio",)
    if t.unit == "boolean":
        normal, bad = (0.0, 1.0) if up else (1.0, 0.0)
        baseline = constant(normal)
    elif t.fixture.kind == "baseline":  # qerrors: the error ratio against its own week-old level
        baseline, bad = wave(1.0, 0.2, seed, low=0.1), 3.0
    else:
        good = min(t.target, t.value) if up else max(t.target, t.value)
        mid = good * 0.7 if up else good * 1.1
        if ratio:
            mid = min(mid, 0.97)
        spread = abs(mid) * 0.15
        baseline = wave(mid, spread, seed, low=0.0, high=1.0 if ratio else None)
        bad = t.value * 1.3 if up else t.value * 0.7
        if t.unit == "count":
            bad = math.floor(t.value) + 2 if up else max(0, math.ceil(t.value) - 2)
    incidents = []
    at = start + rng.randint(HOUR, 2 * DAY)
    while at < end:
        length = rng.randint(2, 60) * MINUTE
        incidents.append(Incident(at, at + length, bad))
        at += length + rng.randint(DAY, 3 * DAY)
    return Driver(t.fixture, target, baseline, incidents, where=f"{t.file} {t.id}")


def slo_driver(slo: Slo, target: dict[str, str], seed: int, start: int, end: int) -> Driver | None:
    if slo.fixture is None:
        return None
    rng = random.Random(seed)
    budget = slo.error_budget
    incidents = []
    at = start + rng.randint(HOUR, 3 * DAY)
    while at < end:
        length = rng.randint(5, 45) * MINUTE
        incidents.append(Incident(at, at + length, min(1.0, budget * rng.choice((5, 20, 50)))))
        at += length + rng.randint(2 * DAY, 5 * DAY)
    return Driver(
        slo.fixture,
        target,
        wave(budget * 0.3, budget * 0.2, seed, low=0.0),
        incidents,
        f"{slo.file} {slo.id}",
    )


def up_driver(up: Fixture, labels: dict[str, str], seed: int, start: int, end: int) -> Driver:
    """`up` of a scrape target (HostDown's fixture: a gauge): 1, about once a week a short outage."""
    rng = random.Random(seed)
    incidents, at = [], start + rng.randint(DAY, 7 * DAY)
    while at < end:
        length = rng.randint(1, 10) * MINUTE
        incidents.append(Incident(at, at + length, 0.0))
        at += length + rng.randint(4 * DAY, 10 * DAY)
    return Driver(up, labels, constant(1.0), incidents, where="up")


def demo_targets() -> list[tuple[str, dict[str, str]]]:
    """(system, target labels) of the demo's 14 scrape targets (probes: their URL as instance)."""
    found = []
    for row in topology.ENDPOINTS:
        if row.job and row.native and not row.ha_only and row.system:
            found.append((row.system, {"job": row.job, "instance": f"127.0.0.1:{row.port}", **row.labels}))
        if row.probe and row.system:
            url = f"http://127.0.0.1:{row.port}{row.probe}"
            found.append((row.system, {"job": topology.PROBE_JOB, "instance": url, "system": row.system}))
    return found


def drivers_for(catalogue: Catalogue, profile: str, start: int, end: int) -> list[Driver]:
    targets = demo_targets()
    if profile == "scale":
        targets = [
            ("tmux", {"job": "tmux-monitor", "instance": f"10.0.{i // 250}.{i % 250}:9205", "system": "tmux"})
            for i in range(250)
        ]
        targets += [
            ("host", {"job": "host", "instance": f"10.1.{i // 250}.{i % 250}:9110", "system": "host"})
            for i in range(250)
        ]
    # A system's entries are driven on the targets of the jobs its generated tests use (or on all its
    # targets when the demo has none of those jobs); fixture series with their own job label keep it.
    driven: dict[str, set[str]] = {}
    for system_id, labels in targets:
        if labels["job"] != topology.PROBE_JOB:
            driven.setdefault(system_id, set()).add(labels["job"])
    for system in catalogue.systems:
        test_jobs = {dict(t).get("job", "") for t in system.test_targets} & driven.get(system.id, set())
        driven[system.id] = test_jobs or driven.get(system.id, set())
    up = next(t.fixture for t in catalogue.thresholds() if t.alert_name == "HostDown")
    assert up is not None
    drivers: list[Driver] = []
    for index, (system_id, labels) in enumerate(targets):
        drivers.append(up_driver(up, labels, index, start, end))
        if labels["job"] not in driven.get(system_id, set()):
            continue
        for number, entry in enumerate(catalogue.system(system_id).entries()):
            seed = index * 1000 + number
            driver = (
                threshold_driver(entry, labels, seed, start, end)
                if isinstance(entry, Threshold)
                else slo_driver(entry, labels, seed, start, end)
            )
            if driver is not None:
                drivers.append(driver)
    return drivers


def prepare(profile: str, days: int, scrape: int, lookback: int, folder: Path) -> dict:
    """Write and backfill the history into folder/tsdb (kept from an earlier run with --keep)."""
    described = folder / "history.json"
    if described.exists() and (folder / "tsdb").is_dir():
        history = dict(json.loads(described.read_text()))
        if (history["profile"], history["days"], history["scrape"]) == (profile, days, scrape):
            print(f"    {profile} {days}d: reusing the history in {folder}", flush=True)
            return history
        shutil.rmtree(folder / "tsdb")
    end = (int(time.time()) // DAY - 1) * DAY  # yesterday midnight: whole days, all in the past
    start = end - days * DAY
    began = time.monotonic()
    drivers = drivers_for(load_catalogue(), profile, start - lookback, end + HOUR)
    samples, size, writing = 0, 0, 0.0
    counters: dict[str, tuple[float, int]] = {}
    # In stretches of STRETCH: promtool holds a whole file's samples in memory while it backfills.
    for first in range(start - lookback, end + HOUR, STRETCH):
        clock = time.monotonic()
        with open(folder / "history.om", "w") as out:
            samples += write_openmetrics(
                drivers, first, min(first + STRETCH, end + HOUR), scrape, out, counters
            )
        size += (folder / "history.om").stat().st_size
        writing += time.monotonic() - clock
        backfill(folder / "history.om", folder / "tsdb")
        (folder / "history.om").unlink()
    series = len({text for d in drivers for text, *_ in d.series()})
    history = {"profile": profile, "days": days, "scrape": scrape, "start": start, "end": end}
    history |= {"series": series, "samples": samples, "prepare": time.monotonic() - began}
    described.write_text(json.dumps(history))
    print(
        f"    {profile} {days}d: {series} series, {samples:,} samples ({size / 1e9:.1f} GB OpenMetrics) "
        f"written in {writing:.0f}s, backfilled in {time.monotonic() - began - writing:.0f}s",
        flush=True,
    )
    return history


def measure(profile: str, days: int, scrape: int, lookback: int, folder: Path) -> dict:
    history = prepare(profile, days, scrape, lookback, folder)
    start, end, series, samples = history["start"], history["end"], history["series"], history["samples"]
    port = free_port()
    (folder / "prometheus.yml").write_text("global: {}\n")
    with open(folder / "prometheus.log", "wb") as log:
        command = [
            tool("prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            "--storage.tsdb.retention.time=100y",
        ]
        command += [f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]
        prom = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://127.0.0.1:{port}/-/ready", timeout=120)
            before = peak_rss(prom.pid)
            walls = []
            # The first run reads chunks Prometheus has not touched since it started (cold), the second
            # finds them in its caches and the page cache (warm).
            for _ in range(2):
                clock = time.monotonic()
                result = subprocess.run(
                    [sys.executable, "-m", "redline.cli", "backtest", f"--prometheus=http://127.0.0.1:{port}",
                     f"--from={start}", f"--to={end}", "--step=1m", f"--json={folder / 'report.json'}",
                     f"--html={folder / 'report.html'}"],
                    capture_output=True, text=True, cwd=ROOT, check=False,
                )  # fmt: skip
                walls.append(time.monotonic() - clock)
                if result.returncode != 0:
                    raise RuntimeError(
                        f"redline backtest exited {result.returncode}: {result.stderr[-1500:]}"
                    )
                if not walls[1:]:
                    cold = json.loads((folder / "report.json").read_text())
            prometheus_peak = peak_rss(prom.pid)
        finally:
            prom.terminate()
            prom.wait(timeout=60)
    report = cold
    return {
        "profile": profile,
        "days": days,
        "series": series,
        "samples": samples,
        "prepare": history["prepare"],
        "wall": walls[0],
        "warm": walls[1],
        "phases": report["run"]["seconds"],
        "rss": report["run"]["peak_rss_bytes"],
        "prometheus": (before, prometheus_peak),
        "alerts": report["alerts"],
        "receivers": report["receivers"],
        "table": result.stdout,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=("demo", "scale"), default="demo")
    parser.add_argument("--days", default="7,30", help="comma-separated history lengths to evaluate")
    parser.add_argument(
        "--scrape", type=int, default=None, help="seconds between samples (demo 15, scale 60)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build (or reuse) the history, TSDB and reports in this folder",
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="with --keep: only build the history there (e.g. before taking a lock for the measured runs)",
    )
    args = parser.parse_args()
    if args.prepare_only and not args.keep:
        parser.error("--prepare-only needs --keep DIR")
    scrape = args.scrape or (15 if args.profile == "demo" else 60)
    lookback = parse_duration("1w1h") if args.profile == "demo" else parse_duration("3d1h")
    if args.prepare_only:
        for days in (int(d) for d in args.days.split(",")):
            folder = args.keep / f"{args.profile}-{days}d"
            folder.mkdir(parents=True, exist_ok=True)
            prepare(args.profile, days, scrape, lookback, folder)
        return 0
    rows = []
    for days in (int(d) for d in args.days.split(",")):
        if args.keep:  # history, TSDB and reports stay there, and a later run reuses the history
            folder = args.keep / f"{args.profile}-{days}d"
            folder.mkdir(parents=True, exist_ok=True)
            rows.append(measure(args.profile, days, scrape, lookback, folder))
            continue
        with tempfile.TemporaryDirectory(prefix="redline-bench-backtest-") as tmp:
            rows.append(measure(args.profile, days, scrape, lookback, Path(tmp)))
    mib = 1024 * 1024
    print(
        "\n| history | series | samples in the history | wall time (cold / warm) | vmalert replay | analysis "
        "| RSS: redline | vmalert | VictoriaMetrics | Prometheus (ready / peak) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rss, (before, peak) = r["rss"], r["prometheus"]
        phases = r["phases"]
        print(
            f"| {r['profile']} {r['days']} days | {r['series']} | {r['samples']:,} | {r['wall']:.1f} / "
            f"{r['warm']:.1f} s | {phases['replay']:.1f} s | {phases['analysis']:.1f} s "
            f"| {rss['redline'] / mib:.0f} MiB | {rss['vmalert'] / mib:.0f} MiB "
            f"| {rss['victoria-metrics'] / mib:.0f} MiB | {before / mib:.0f} / {peak / mib:.0f} MiB |"
        )
    for r in rows:
        fired = [a for a in r["alerts"] if a["episodes"]]
        print(
            f"\n{r['profile']} {r['days']} days: {len(fired)} alerts fired; receivers {r['receivers']}; "
            f"history prepared in {r['prepare']:.0f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
