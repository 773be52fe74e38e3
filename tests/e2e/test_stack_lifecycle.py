"""The foundation: pinned binaries, config checks, and the native stack runner with real processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from redline.testing.processes import ROOT, free_port, http_get

REDLINE = [sys.executable, "-m", "redline.cli"]


def run_redline(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*REDLINE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    return {
        "REDLINE_PORT_PROMETHEUS": str(free_port()),
        "REDLINE_PORT_ALERTMANAGER": str(free_port()),
        "REDLINE_PORT_PAGER_SINK": str(free_port()),
        "REDLINE_RUN_DIR": str(tmp_path / "run"),
    }


def test_up_status_down_with_prometheus_and_alertmanager(stack_env: dict[str, str]) -> None:
    prom, am = int(stack_env["REDLINE_PORT_PROMETHEUS"]), int(stack_env["REDLINE_PORT_ALERTMANAGER"])
    up = run_redline("up", "--only", "prometheus,alertmanager,pager-sink", env=stack_env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        table = up.stdout
        assert re.search(rf"prometheus\s+ready\s+\d+\s+http://127\.0\.0\.1:{prom}", table), table
        assert re.search(rf"alertmanager\s+ready\s+\d+\s+http://127\.0\.0\.1:{am}", table), table
        assert http_get(f"http://127.0.0.1:{prom}/-/ready")[0] == 200
        assert http_get(f"http://127.0.0.1:{am}/-/ready")[0] == 200
        # Prometheus reads the generated native targets and discovers the Alertmanager.
        run_dir = Path(stack_env["REDLINE_RUN_DIR"])
        assert (run_dir / "prometheus" / "prometheus.yml").resolve() == ROOT / "prometheus" / "prometheus.yml"
        status = run_redline("status", env=stack_env)
        assert status.returncode == 0 and "prometheus" in status.stdout and "ready" in status.stdout
        pids = [int(p) for p in re.findall(r"\s(?:ready|starting)\s+(\d+)\s", status.stdout)]
        assert len(pids) == 3
        again = run_redline("up", env=stack_env)
        assert again.returncode == 0 and "already running" in again.stdout
    finally:
        down = run_redline("down", env=stack_env)
    assert down.returncode == 0, down.stderr
    assert not _listening(prom) and not _listening(am)
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    stopped = run_redline("status", env=stack_env)
    assert stopped.returncode == 3 and "not running" in stopped.stdout


def test_up_refuses_a_taken_port_in_one_line(stack_env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = run_redline(
            "up", "--only", "prometheus", env={**stack_env, "REDLINE_PORT_PROMETHEUS": str(taken)}
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"redline up: port {taken} (prometheus) is already in use on 127.0.0.1; "
        "stop what holds it or set REDLINE_PORT_PROMETHEUS"
    )


def test_up_names_a_missing_binary_in_one_line(stack_env: dict[str, str], tmp_path: Path) -> None:
    empty_tools = tmp_path / "tools"
    (empty_tools / "bin").mkdir(parents=True)
    if shutil.which("prometheus"):
        pytest.skip("a prometheus binary on PATH would be used as the fallback")
    result = run_redline(
        "up", "--only", "prometheus", env={**stack_env, "REDLINE_TOOLS_DIR": str(empty_tools)}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"redline up: cannot start prometheus: prometheus not found in {empty_tools / 'bin'} or on PATH "
        "(run 'make setup')"
    )


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a script and nohup hand down


@pytest.mark.parametrize(
    ("signum", "preexec"),
    [(signal.SIGINT, None), (signal.SIGINT, _ignore_sigint), (signal.SIGTERM, None)],
    ids=["ctrl-c", "ctrl-c-with-sigint-ignored-by-the-parent", "sigterm"],
)
def test_ctrl_c_or_sigterm_stops_a_foreground_stack(
    stack_env: dict[str, str], signum: int, preexec: Callable[[], None] | None
) -> None:
    prom = int(stack_env["REDLINE_PORT_PROMETHEUS"])
    proc = subprocess.Popen(
        [*REDLINE, "up", "--foreground", "--only", "prometheus,pager-sink"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **stack_env},
        preexec_fn=preexec,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "attached; Ctrl-C stops the stack" in line:
                break
        assert _listening(prom), "".join(lines)
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, rest
        assert "interrupted; stopping the stack" in rest
        assert not _listening(prom)
        assert run_redline("status", env=stack_env).returncode == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        run_redline("down", env=stack_env)  # after a failure, leave no stack behind
