"""One topology table: a port changed there moves the native targets, the compose targets and the tests,
`redline check` fails until `redline generate` has run, and the demo honours every REDLINE_PORT_*."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from redline import topology
from redline.generate import cli
from redline.stack.rundir import native_targets
from redline.stack.services import SERVICES, Context
from redline.testing.processes import free_port, http_get, running

MOVED = 19201  # demo-gamebook's port in the changed table


@pytest.fixture
def moved_gamebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """The topology with demo-gamebook on another port, and no REDLINE_PORT_* from outside."""
    rows = tuple(
        dataclasses.replace(row, port=MOVED) if row.name == "demo-gamebook" else row
        for row in topology.ENDPOINTS
    )
    monkeypatch.setattr(topology, "ENDPOINTS", rows)
    for row in rows:
        monkeypatch.delenv(row.env_name, raising=False)


def test_a_port_changed_in_the_table_moves_native_and_compose_targets_and_check_fails_until_generated(
    moved_gamebook: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    native = native_targets(Context(run_dir=tmp_path), SERVICES)
    assert native["gamebook"] == [{"targets": [f"127.0.0.1:{MOVED}"], "labels": {"system": "gamebook"}}]
    assert f"http://127.0.0.1:{MOVED}/health" in [g["targets"][0] for g in native["probes"]]

    assert cli.main(["check"]) == 1
    drift = capsys.readouterr().err
    for path in (
        "prometheus/targets/compose/gamebook.yml",
        "prometheus/targets/compose/probes.yml",
        "prometheus/tests/gamebook_test.yml",  # the tests' target labels come from the table too
    ):
        assert f"changed {path}" in drift, drift

    out = tmp_path / "tree"
    assert cli.main(["generate", "--out", str(out)]) == 0
    compose = yaml.safe_load((out / "prometheus/targets/compose/gamebook.yml").read_text())
    assert compose == [{"targets": [f"demo:{MOVED}"], "labels": {"system": "gamebook"}}]
    assert f'instance="127.0.0.1:{MOVED}"' in (out / "prometheus/tests/gamebook_test.yml").read_text()
    assert cli.main(["check", "--root", str(out)]) == 0


def test_the_demo_and_its_fault_command_honour_every_port_override(tmp_path: Path) -> None:
    ports = {name: free_port() for name in topology.demo_parts().values()}
    env = {**os.environ, **{topology.endpoint(name).env_name: str(port) for name, port in ports.items()}}
    redline = [sys.executable, "-m", "redline.cli", "demo"]
    control = f"http://127.0.0.1:{ports['demo-control']}"
    with running(redline, ready_url=f"{control}/health", log=tmp_path / "demo.log", env=env):
        for name, port in ports.items():
            path = "/health" if name == "demo-control" else "/metrics"
            assert http_get(f"http://127.0.0.1:{port}{path}")[0] == 200, name
        fault = subprocess.run(
            [*redline, "fault", "gamebook", "errors"], capture_output=True, text=True, env=env, timeout=30
        )
        assert fault.returncode == 0 and fault.stdout.strip() == "gamebook errors: injected", fault.stderr
        listed = subprocess.run([*redline, "faults"], capture_output=True, text=True, env=env, timeout=30)
        assert "ON  gamebook         errors" in listed.stdout, listed.stdout
    bad = subprocess.run(
        [*redline, "fault", "gamebook", "errors"],
        capture_output=True,
        text=True,
        env={**env, "REDLINE_PORT_DEMO_CONTROL": "ninety"},
        timeout=30,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "redline demo fault: REDLINE_PORT_DEMO_CONTROL='ninety' is not a TCP port"
