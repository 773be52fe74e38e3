"""The client conformance suite: real client libraries in their own runtimes against the real stack.

One native stack for the whole suite (Prometheus, Alertmanager, the pager-sink, vmagent and blackbox_exporter
from `redline up --only`, on free ports), with the rules rendered by `redline generate --for-override 3s` and
Alertmanager's group timers capped at 2 s, as tests/e2e does: what is decided is unchanged, no test waits
for a real `for`. A client joins by a target file in the stack's file_sd folder (as a team's service
would), by a /health URL the stack's blackbox_exporter probes, or by pushing OTLP to its vmagent. The alerts
whose windows need hours of history (SLO burn rates, the qerrors baseline) run on a second stack, slo_stack,
whose rules also have those windows divided (`redline generate --window-divisor`). Node's
packages and Debian's chromium come from `make setup`; a missing one fails with the line that installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from redline import atomic
from redline.paths import ROOT
from redline.testing.pg import PgCluster, pg_cluster
from redline.testing.processes import running, wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules
from redline.testing.snippets import write_snippets

NODE_DIR = ROOT / "tests" / "clients" / "node"
CHROMIUM = Path("/usr/bin/chromium")
FOR_OVERRIDE = "3s"
WINDOW_DIVISOR = 360  # redline generate --window-divisor of slo_stack
SERVICES = ["prometheus", "alertmanager", "pager-sink", "vmagent", "blackbox"]


def node_modules() -> Path:
    """tests/clients/node/node_modules, or a failure that says how to install it."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node 20 (apt-get install nodejs npm), then 'make setup'")
    folder = NODE_DIR / "node_modules"
    if not (folder / "prom-client").is_dir():
        pytest.fail(f"{folder} is missing: run 'make setup' (npm ci in tests/clients/node)")
    return folder


def chromium() -> Path:
    """Debian's chromium, or a failure that says how to install it."""
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run 'make setup' as root (apt-get install chromium)")
    return CHROMIUM


class ClientStack:
    """The suite's stack and how a client joins it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def add_targets(self, name: str, job: str, targets: list[str], labels: dict[str, str]) -> None:
        """A file_sd target file `targets/<job>-<name>.yml` in the run folder: Prometheus scrapes
        `targets` in scrape job `job` with `labels`, as it would a team's service."""
        folder = self.sandbox.run_dir / "prometheus" / "targets"
        text = yaml.safe_dump([{"targets": targets, "labels": labels}])
        atomic.write_text(folder / f"{job}-{name}.yml", text)  # file_sd reads whole files only

    def add_probe(self, name: str, url: str, system: str, **labels: str) -> None:
        """A target file `targets/probes-<name>.yml`: the blackbox job probes `url` through the stack's
        blackbox_exporter (series `probe_success{job="blackbox", instance=url, system=system, **labels}`)."""
        prober = f"127.0.0.1:{self.sandbox.port('blackbox')}"
        self.add_targets(name, "probes", [url], {"system": system, **labels, "__blackbox_address__": prober})

    def remove_targets(self, name: str, job: str) -> None:
        """Drop the target file add_targets (or add_probe, job "probes") wrote: Prometheus stops scraping
        it, so a process a test stopped does not stay down (and alerting) for the rest of the session."""
        (self.sandbox.run_dir / "prometheus" / "targets" / f"{job}-{name}.yml").unlink(missing_ok=True)

    @property
    def otlp_url(self) -> str:
        return f"{self.sandbox.url('vmagent')}/opentelemetry/v1/metrics"

    @property
    def otlp_headers(self) -> dict[str, str]:
        """The stack's credentials, which vmagent requires on every push."""
        return self.sandbox.auth

    @property
    def otlp_headers_env(self) -> dict[str, str]:
        """The same credentials as the OpenTelemetry SDKs read them from the environment
        (OTEL_EXPORTER_OTLP_METRICS_HEADERS, values URL-encoded)."""
        pairs = [f"{name}={urllib.parse.quote(value)}" for name, value in self.otlp_headers.items()]
        return {"OTEL_EXPORTER_OTLP_METRICS_HEADERS": ",".join(pairs)}


@contextlib.contextmanager
def stack(tmp: Path, window_divisor: int | None = None) -> Iterator[ClientStack]:
    """The suite's services with the rules of `redline generate --for-override 3s` (and --window-divisor)."""
    rules = render_rules(FOR_OVERRIDE, tmp / "generated", window_divisor)
    am = alertmanager_config_with_timers(tmp / "alertmanager.yml", group_wait="2s", group_interval="2s")
    with Sandbox(rules_dir=rules, alertmanager_config=am, only=SERVICES) as sandbox:
        sandbox.wait_sending_to_alertmanager()
        yield ClientStack(sandbox)


@pytest.fixture(scope="session")
def client_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientStack]:
    with stack(tmp_path_factory.mktemp("clients")) as clients:
        yield clients


@pytest.fixture(scope="session")
def slo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientStack]:
    """A second stack on a clock WINDOW_DIVISOR times faster for the windows that need history: the SLO
    burn-rate windows (1h is 10 s, 3d 12 min) and the qerrors baseline (a week ago is 28 min ago), so a
    burn fires and resolves, and a baseline exists, within a test. Thresholds and factors are the
    catalogue's; the other alerts read their usual windows."""
    with stack(tmp_path_factory.mktemp("slo"), WINDOW_DIVISOR) as slo:
        yield slo


def wait_alert(stack: ClientStack, alert: str, status: str, since: int, timeout: float = 90, **labels: str):
    """The pager-sink's first `status` notification of `alert` with `labels` after notification `since`,
    at the receiver its severity routes to (/pager critical, /ticket warning)."""
    found = None

    def arrived() -> bool:
        nonlocal found
        found = next(stack.sandbox.matching_alerts(alert, status, since, **labels), None)
        return found is not None

    wait_until(arrived, timeout=timeout, interval=0.2, what=f"{status} {alert} {labels} at the pager-sink")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PgCluster, dict[str, Path]]]:
    """A throwaway PostgreSQL 15 holding docs/instrumenting/pipeline.md's `tasks` table; the guide's files."""
    files = write_snippets(ROOT / "docs" / "instrumenting" / "pipeline.md", tmp_path_factory.mktemp("pipe"))
    with pg_cluster() as pg:
        pg.execute(files["schema.sql"].read_text())
        yield pg, files


@contextlib.contextmanager
def job_exporter(pg: PgCluster, files: dict[str, Path], port: int, log: Path) -> Iterator[str]:
    """The guide's run-exporter.sh (`redline exporter jobs` with its queries) on `port`, until the block
    ends; yields its address."""
    env = {
        **os.environ,
        "PIPELINE_DSN": pg.dsn,
        "PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the `redline` of this virtualenv
    }
    cmd = ["sh", str(files["run-exporter.sh"])]
    ready = f"http://127.0.0.1:{port}/metrics"
    with running(cmd, ready_url=ready, log=log, env=env, cwd=files["queries.sql"].parent):
        yield f"127.0.0.1:{port}"
