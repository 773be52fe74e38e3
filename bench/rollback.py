"""Deploy and rollback of a threshold change on a running Prometheus and Alertmanager.

    .venv/bin/python bench/rollback.py [--runs 10]

The job pipeline's document asks for deploys under 30 minutes and rollbacks under 10 minutes; this
measures redline's own config rollout. In a local clone of this repository (its committed files), a real
Prometheus and Alertmanager run the clone's prometheus/ and alertmanager/ configs. Each run:
1. change one number in the catalogue (qerrors' mean-latency threshold), `redline generate`, commit;
2. deploy: `redline reload` (promtool/amtool/blackbox validation, POST /-/reload, confirmation from the
   processes' own metrics and served rule groups);
3. rollback: `redline rollback` (the previous commit's configs, validated in a scratch folder, written,
   reloaded, confirmed), then check that Prometheus serves the old threshold again.
Reported: p50 and max of generate, deploy and rollback wall time. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common import ROOT, free_port, run, tool, wait_ready  # bench/common.py; puts the repository on sys.path

from redline.stack import reload

THRESHOLD_FILE = "thresholds/qerrors.yml"
OLD, NEW = "value: 0.05\n", "value: 0.1\n"  # thresholds in seconds must be histogram bucket bounds


def git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def timed(func: Callable[[], int], what: str) -> float:
    started = time.monotonic()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = func()
    if code != 0:
        sys.exit(f"{what} failed ({code}):\n{out.getvalue()}")
    return time.monotonic() - started


def served_latency_threshold(prometheus: str) -> str:
    with urllib.request.urlopen(f"{prometheus}/api/v1/rules?type=alert", timeout=10) as resp:
        groups = json.load(resp)["data"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule["name"] == "QerrorsLatencyHigh":
                return str(rule["query"])
    raise LookupError("QerrorsLatencyHigh not served")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="deploy + rollback cycles (10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="redline-rollback-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        if OLD not in (repo / THRESHOLD_FILE).read_text():
            sys.exit(f"{THRESHOLD_FILE} no longer has {OLD.strip()!r}; update bench/rollback.py")
        base = git(repo, "rev-parse", "HEAD")
        prom_port, am_port = free_port(), free_port()
        prometheus, alertmanager = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
        targets = ["--root", str(repo), "--prometheus", prometheus, "--alertmanager", alertmanager]
        logs = open(Path(tmp) / "processes.log", "wb")  # noqa: SIM115
        prometheus_bin, alertmanager_bin = tool("prometheus"), tool("alertmanager")  # before starting either
        procs = [
            subprocess.Popen(
                [
                    prometheus_bin,
                    f"--config.file={repo / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={Path(tmp) / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--web.enable-lifecycle",
                ],
                stdout=logs,
                stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [
                    alertmanager_bin,
                    f"--config.file={repo / 'alertmanager' / 'alertmanager.yml'}",
                    f"--storage.path={Path(tmp) / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                cwd=repo / "alertmanager",
                stdout=logs,
                stderr=subprocess.STDOUT,
            ),
        ]
        try:
            wait_ready(f"{prometheus}/-/ready")
            wait_ready(f"{alertmanager}/-/ready")
            generate, deploy, rollback = [], [], []
            for run in range(args.runs):
                git(repo, "reset", "-q", "--hard", base)
                path = repo / THRESHOLD_FILE
                path.write_text(path.read_text().replace(OLD, NEW, 1))
                started = time.monotonic()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "redline.cli",
                        "generate",
                        "--catalogue",
                        str(repo / "thresholds"),
                        "--out",
                        str(repo),
                    ],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                generate.append(time.monotonic() - started)
                git(repo, "commit", "-q", "-am", "Raise qerrors latency threshold to 100 ms")
                deploy.append(timed(lambda: reload.main(["reload", *targets]), "reload"))
                if "> 0.1" not in served_latency_threshold(prometheus):
                    sys.exit("the deployed threshold is not served")
                rollback.append(timed(lambda: reload.main(["rollback", *targets]), "rollback"))
                if "> 0.05" not in served_latency_threshold(prometheus):
                    sys.exit("the rolled-back threshold is not served")
                figures = (
                    f"generate {generate[-1]:.2f}s  deploy {deploy[-1]:.2f}s  rollback {rollback[-1]:.2f}s"
                )
                print(f"    run {run + 1:>2}/{args.runs}  {figures}", flush=True)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            logs.close()
    print("\n| step | p50 | max | document's limit |")
    print("|---|---|---|---|")
    for name, values, limit in (
        ("`redline generate` (catalogue -> rules, tests, runbooks, dashboards)", generate, ""),
        ("deploy: `redline reload` (validate, reload, confirm)", deploy, "30 min"),
        ("rollback: `redline rollback` (validate, write, reload, confirm)", rollback, "10 min"),
    ):
        print(f"| {name} | {statistics.median(values):.2f} s | {max(values):.2f} s | {limit} |")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
