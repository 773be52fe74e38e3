"""The shared exporter web server: listen parsing, routes, OpenMetrics, TLS and basic auth, for real."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
)

from redline.telemetry.web import serve
from redline.testing.components import prometheus
from redline.testing.processes import prom_query, wait_until


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_requests_total", "Requests.", ["code"], registry=registry).labels("200").inc(3)
    return registry


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_prometheus_scrapes_through_tls_and_basic_auth(
    tmp_path: Path, registry: CollectorRegistry, tls_files: tuple[Path, Path]
) -> None:
    """A real Prometheus scrapes the protected endpoint: up 1 with credentials, 0 without."""
    cert, key = tls_files
    hashed = bcrypt.hashpw(b"pw-for-prometheus", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  prom: '{hashed}'\n"
    )
    server = serve(registry, "127.0.0.1:0", web_config=str(web))
    target = f"127.0.0.1:{server.port}"
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: with_auth\n    scheme: https\n    tls_config: {{ca_file: {cert}}}\n"
        "    basic_auth: {username: prom, password: pw-for-prometheus}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
        f"  - job_name: without_auth\n    scheme: https\n    tls_config: {{ca_file: {cert}}}\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    try:
        with prometheus(tmp_path, prom_config) as base:
            up = wait_until(
                lambda: (
                    {r["metric"]["job"]: r["value"][1] for r in prom_query(base, "up")}
                    if len(prom_query(base, "up")) == 2
                    else None
                ),
                timeout=30,
                what="both scrape jobs to report up",
            )
            assert up == {"with_auth": "1", "without_auth": "0"}
            series = prom_query(base, 'demo_requests_total{job="with_auth"}')
            assert [s["value"][1] for s in series] == ["3"]
    finally:
        server.shutdown()
