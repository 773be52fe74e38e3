"""The foundation: pinned binaries, config checks, and the native stack runner with real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from redline import tools
from redline.testing.processes import ROOT, tool

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


@pytest.mark.parametrize("name", [t.name for t in tools.load_versions()[1]])
def test_pinned_binary_runs_and_satisfies_its_constraint(name: str) -> None:
    _archive, pinned = tools.load_versions()
    tool_spec = next(t for t in pinned if t.name == name)
    version = tools.check_tool(tool_spec, tool(name))
    assert tools.parse_version(version) in tool_spec.spec


def test_prometheus_reports_the_major_version_the_stack_needs() -> None:
    out = subprocess.run([tool("prometheus"), "--version"], capture_output=True, text=True, check=True)
    assert re.search(r"version 3\.\d+\.\d+", out.stdout), out.stdout


def test_setup_tools_check_rejects_a_broken_constraint_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "versions.yml"
    text = (ROOT / "tools" / "versions.yml").read_text().replace('">=3.5,<4"', '">=99"', 1)
    broken.write_text(text)
    result = run_redline("setup-tools", "--check", f"--versions-file={broken}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "prometheus" in lines[0] and ">=99" in lines[0] and "3.5" in lines[0]
    assert "Traceback" not in result.stderr


def test_setup_tools_reports_an_unparsable_constraint_with_file_and_field(tmp_path: Path) -> None:
    broken = tmp_path / "versions.yml"
    broken.write_text((ROOT / "tools" / "versions.yml").read_text().replace('">=0.28,<1"', '"newest"', 1))
    result = run_redline("setup-tools", "--check", f"--versions-file={broken}")
    assert result.returncode == 1
    assert f"{broken}: tools.alertmanager.version" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_setup_tools_second_run_fetches_nothing() -> None:
    result = run_redline("setup-tools")
    assert result.returncode == 0, result.stderr
    assert "downloading" not in result.stdout and "apt-get update" not in result.stdout
    assert f"{len(tools.load_versions()[1])} tools ready" in result.stdout  # every pin of tools/versions.yml


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # file_sd files are the only thing that differs between stacks; check the config as the runner links it.
    (tmp_path / "targets").mkdir()
    (tmp_path / "prometheus.yml").symlink_to(ROOT / "prometheus" / "prometheus.yml")
    (tmp_path / "rules").symlink_to(ROOT / "prometheus" / "rules")
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run(
        [tool("amtool"), "check-config", str(ROOT / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
