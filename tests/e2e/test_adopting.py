"""docs/adopting.md, run: the stack watches services it did not start, from an inventory file.

The test starts stand-ins for a team's four services (a prometheus_client app per system with its
/health endpoint, redline.testing.standin; a PostgreSQL with the reference job table), then runs every
```sh block of the guide in order with bash, in a scratch folder whose .venv is the checkout's, with the
sandbox's free ports and run folder in the environment. The only change to the guide's text is the
table EXAMPLES: its example addresses and file become the stand-ins'. Between blocks the test does what
the guide says happens in the world (a service stops, then comes back) and checks what Prometheus,
the pager-sink and the console show.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from redline.demo.pipeline import reference_schema
from redline.testing.links import assert_links_resolve, links_of
from redline.testing.pg import PgCluster, pg_cluster
from redline.testing.processes import ROOT, free_port, running, wait_until
from redline.testing.sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

GUIDE = ROOT / "docs" / "adopting.md"
STEPS = ["get", "inventory", "role", "up", "targets", "page", "restart", "reload", "down"]
SYSTEMS = ("gamebook", "qerrors", "pipeline", "tmux")
BLOCK = re.compile(r"^```sh step=(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGE_TIMEOUT = 180.0  # GamebookDown: for 1m, a probe interval, Alertmanager's group_wait


def guide_blocks() -> dict[str, str]:
    """step name -> the commands of its ```sh step=NAME block, in the guide's order."""
    return {name: body for name, body in BLOCK.findall(GUIDE.read_text())}


def test_the_guide_has_the_steps_this_test_runs() -> None:
    blocks = guide_blocks()
    assert list(blocks) == STEPS
    assert GUIDE.read_text().count("```sh") == len(STEPS), "a ```sh block without step= is not run"
    assert blocks["get"].splitlines()[-1] == "make setup"  # CI's clean clone and setup stand for it


class Standins:
    """One stand-in per system on a fixed free port, which a test can kill and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = {name: f"127.0.0.1:{free_port()}" for name in SYSTEMS}
        self._stack = ExitStack()
        self._running: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        cmd = [sys.executable, "-m", "redline.testing.standin", f"--listen={self.address[name]}"]
        log = self.folder / f"standin-{name}.log"
        ready = f"http://{self.address[name]}/health"
        self._running[name] = self._stack.enter_context(running([*cmd, f"--name={name}"], ready, log))

    def kill(self, name: str) -> None:
        self._running[name].kill()
        self._running[name].wait(timeout=10)

    def __enter__(self) -> Standins:
        for name in SYSTEMS:
            self.start(name)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def job_table(pg: PgCluster) -> None:
    """The pipeline's database: the reference table with a few finished jobs."""
    pg.execute("CREATE DATABASE pipeline")
    dsn = pg.dsn.replace("dbname=postgres", "dbname=pipeline")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(reference_schema().encode())
        conn.execute(
            "INSERT INTO jobs (state, started_at, finished_at) "
            "SELECT 'succeeded', now() - interval '30 seconds', now() - interval '10 seconds' "
            "FROM generate_series(1, 3)"
        )


def run_block(name: str, text: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(f"--- step {name}: exit {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def value(stack: Sandbox, expr: str) -> float | None:
    rows = stack.query(expr)
    return float(rows[0]["value"][1]) if rows else None


def test_adopting_guide_from_inventory_to_page_restart_and_reload(tmp_path: Path) -> None:
    stack = Sandbox()  # free ports and a run folder; the guide's own `redline up` starts the stack
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    dsn_file = tmp_path / "secrets" / "pipeline.dsn"
    env = {**os.environ, **stack.env}
    with pg_cluster() as pg, Standins(tmp_path) as services:
        job_table(pg)
        address = services.address
        examples = {
            "gamebook.internal:8080": address["gamebook"],
            "api.internal:9100": address["qerrors"],
            "pipeline.internal:8000": address["pipeline"],
            "orchestrator.internal:9205": address["tmux"],
            "gamebook.internal:9100": address["gamebook"],  # the host step: any /metrics will do
            "db.internal:5432": f"127.0.0.1:{pg.port}",
            "/etc/redline/pipeline.dsn": str(dsn_file),
            "sslmode=require": "sslmode=disable",  # the stand-in database has no TLS
        }
        blocks = guide_blocks()
        text = "".join(blocks.values())
        assert all(example in text for example in examples), [e for e in examples if e not in text]
        try:
            for name in STEPS[1:]:
                commands = blocks[name]
                for example, real in examples.items():
                    commands = commands.replace(example, real)
                if name == "page":  # one of the team's services stops
                    page = _stop_a_service_and_get_paged(stack, services)
                if name == "restart":  # and comes back before the stack restarts
                    services.start("gamebook")
                result = run_block(name, commands, workdir, env)
                assert result.returncode == 0, f"step {name}: {result.stderr}"
                CHECKS[name](stack, result.stdout + result.stderr, address)
                if name == "page":
                    assert_links_resolve(page["annotations"], links_of(stack, page["annotations"]))
            assert oct(dsn_file.stat().st_mode & 0o777) == "0o600"
        finally:
            stack.stop(keep=False)


def _stop_a_service_and_get_paged(stack: Sandbox, services: Standins) -> dict:
    since = len(stack.notifications())
    services.kill("gamebook")
    _, alert = stack.wait_for_notification(
        "/pager", "GamebookDown", timeout=PAGE_TIMEOUT, since=since, system="gamebook", env="production"
    )
    assert alert["labels"]["team"] == "games"  # the inventory's extra label reaches the page
    return alert


def _after_up(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    assert re.search(r"^demo\s+skipped\s", out, re.MULTILINE), out
    assert re.search(r"^postgres\s+skipped\s", out, re.MULTILINE), out
    assert (stack.run_dir / "stack.yml").is_file()


def _all_scraped(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    for system in SYSTEMS:
        assert re.search(rf"\s{re.escape(address[system])}\s+{system}\s.*\sup\s", out), (system, out)
    assert (
        value(
            stack,
            f'up{{system="gamebook", env="production", team="games", instance="{address["gamebook"]}"}}',
        )
        == 1
    )
    assert value(stack, f'probe_success{{system="tmux", instance="http://{address["tmux"]}/health"}}') == 1
    # the job exporter and postgres_exporter read the inventory's database with the guide's role
    wait_until(
        lambda: value(stack, 'sum(redline_jobs_duration_seconds_count{system="pipeline"})') == 3,
        timeout=30,
        what="the three finished jobs of the inventory's database",
    )
    assert value(stack, 'pg_up{system="pipeline"}') == 1


def _paged(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    assert "GamebookDown" in out, out  # the ledger lists the page
    assert re.search(rf"\s{re.escape(address['gamebook'])}\s+gamebook\s.*\sDOWN\s", out), out
    assert "redline targets: exit 3" in out


def _checks_nothing(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    pass


def _host_added(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    assert re.search(rf"\s{re.escape(address['gamebook'])}\s+host\s.*\sup\s", out), out
    assert value(stack, f'up{{system="host", instance="{address["gamebook"]}"}}') == 1
    assert "target files" in out and "written anew" in out


def _stopped(stack: Sandbox, out: str, address: dict[str, str]) -> None:
    assert stack.redline("status").returncode == 3


CHECKS = {
    "inventory": _checks_nothing,
    "role": _checks_nothing,
    "up": _after_up,
    "targets": _all_scraped,
    "page": _paged,
    "restart": _all_scraped,
    "reload": _host_added,
    "down": _stopped,
}
