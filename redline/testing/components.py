"""Real Prometheus and vmagent processes for tests and benchmarks: free ports, a log, always stopped.

with prometheus(tmp, config) as prom:            # base URL, ready
    with vmagent(tmp, prom) as otlp:             # OTLP/HTTP endpoint that remote-writes into prom
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from redline.paths import PROMETHEUS
from redline.testing.processes import free_port, running, tool

VMAGENT_RELABEL = PROMETHEUS / "vmagent-relabel.yml"  # the stack's OTLP label mapping


@contextlib.contextmanager
def prometheus(
    folder: Path,
    config: Path,
    *flags: str,
    port: int | None = None,
    name: str = "prometheus",
    tsdb: Path | None = None,
) -> Iterator[str]:
    """Prometheus with `config`, its log (and TSDB, unless given) under `folder` named after `name`,
    accepting remote write; yields its base URL once /-/ready answers."""
    port = port or free_port()
    cmd = [
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb or folder / (name + '-tsdb')}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        *flags,
    ]
    url = f"http://127.0.0.1:{port}"
    with running(cmd, ready_url=f"{url}/-/ready", log=folder / f"{name}.log"):
        yield url


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
        f"-remoteWrite.tmpDataPath={folder / (name + '-data')}",
        "-remoteWrite.flushInterval=200ms",
        f"-remoteWrite.relabelConfig={VMAGENT_RELABEL}",
        "-loggerLevel=WARN",
        *flags,
    ]
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/health", log=folder / f"{name}.log"):
        yield f"http://127.0.0.1:{port}/opentelemetry/v1/metrics"
