"""Real Prometheus and vmagent processes for tests and benchmarks: free ports, a log, always stopped.

with prometheus(tmp, config) as prom:            # base URL, ready
    with vmagent(tmp, prom) as otlp:             # OTLP/HTTP endpoint that remote-writes into prom
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from redline import credentials
from redline.paths import PROMETHEUS
from redline.testing.processes import free_port, running, tool

VMAGENT_RELABEL = PROMETHEUS / "vmagent-relabel.yml"  # the stack's OTLP label mapping


@contextlib.contextmanager
def _serving(
    cmd: list[str], port: int, ready_path: str, log: Path, headers: dict[str, str] | None = None
) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    with running(cmd, ready_url=url + ready_path, log=log, headers=headers):
        yield url


def stack_password(config: Path, password: str = "test-only-password") -> Path:
    """Write the password file the repository's prometheus.yml reads (../secrets/web-password beside the
    config's folder). A test Prometheus scraping components without basic auth sends it unchecked, but a
    missing file fails every scrape and alert that uses it."""
    path = credentials.secret_path(config.parent.parent, credentials.WEB_PASSWORD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_private(path, password)
    return path


def prometheus(
    folder: Path,
    config: Path,
    *flags: str,
    port: int | None = None,
    name: str = "prometheus",
    tsdb: Path | None = None,
    headers: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[str]:
    """Prometheus with `config`, its log (and TSDB, unless given) under `folder` named after `name`,
    accepting remote write; yields its base URL once /-/ready answers (to `headers`: with a
    --web.config.file in `flags`, its basic auth)."""
    port = port or free_port()
    cmd = [tool("prometheus"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    cmd += [f"--storage.tsdb.path={tsdb or folder / (name + '-tsdb')}", "--web.enable-remote-write-receiver"]
    return _serving([*cmd, *flags], port, "/-/ready", folder / f"{name}.log", headers)


@contextlib.contextmanager
def vmagent(
    folder: Path, prometheus_url: str, *flags: str, port: int | None = None, name: str = "vmagent"
) -> Iterator[str]:
    """vmagent remote-writing into a Prometheus every 200 ms (its buffer and log under `folder`), with the
    stack's OTLP label mapping; yields its OTLP/HTTP endpoint once /health answers."""
    port = port or free_port()
    cmd = [
        tool("vmagent"),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-remoteWrite.url={prometheus_url}/api/v1/write",
    ]
    cmd += [f"-remoteWrite.tmpDataPath={folder / (name + '-data')}", "-remoteWrite.flushInterval=200ms"]
    cmd.append(f"-remoteWrite.relabelConfig={VMAGENT_RELABEL}")
    with _serving([*cmd, "-loggerLevel=WARN", *flags], port, "/health", folder / f"{name}.log") as url:
        yield f"{url}/opentelemetry/v1/metrics"
