"""The job pipeline's services, as real processes scraped by the suite's stack: a PostgreSQL 15 watched by
postgres_exporter (job postgres), the job exporter on docs/instrumenting/pipeline.md's table (job
pipeline-jobs) and an API server scraped (job pipeline-api) and probed on /health (blackbox; a
prometheus_client stand-in, as tests/e2e/test_adopting.py's teams run). Each service-level alert fires at
its receiver and resolves: connections above 90% of max_connections, PostgreSQL stopped (which also
blinds the job exporter), the job exporter stopped, the API server stopped."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from redline.testing.pg import PgCluster
from redline.testing.processes import free_port, running, tool, wait_until

from .conftest import ClientStack, job_exporter, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MAX_CONNECTIONS = 30
PIPELINE = {"system": "pipeline"}


@pytest.fixture(scope="module")
def postgres(table: tuple[PgCluster, dict[str, Path]], client_stack: ClientStack) -> Iterator[str]:
    """postgres_exporter on the table's cluster, restarted with max_connections = 30 (a ratio above 90%
    is 28 connections); its address once Prometheus scrapes pg_up = 1 in job postgres."""
    pg, files = table
    pg.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
    pg.stop()
    pg.start()
    port = free_port()
    env = {"DATA_SOURCE_NAME": f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"}
    cmd = [tool("postgres_exporter"), f"--web.listen-address=127.0.0.1:{port}"]
    log = files["schema.sql"].parent / "postgres_exporter.log"
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/metrics", env=env, log=log):
        instance = f"127.0.0.1:{port}"
        client_stack.add_targets("services", "postgres", [instance], PIPELINE)
        try:
            wait_until(
                lambda: client_stack.sandbox.query(f'pg_up{{instance="{instance}"}} == 1'),
                timeout=60,
                what="postgres_exporter scraped",
            )
            yield instance
        finally:
            client_stack.remove_targets("services", "postgres")


def fired(
    stack: ClientStack, name: str, since: int, path: str, severity: str, job: str, instance: str
) -> dict:
    """The firing `name` of `instance` after notification `since`, checked: at `path` (/pager, /ticket),
    with `severity`, system pipeline and scrape job `job`."""
    record, alert = wait_alert(stack, name, "firing", since, instance=instance)
    assert record["path"] == path
    labels = alert["labels"]
    assert (labels["severity"], labels["system"], labels["job"]) == (severity, "pipeline", job)
    return alert


def jobs_scraped(stack: ClientStack, instance: str) -> int:
    """Once Prometheus has read the job table through the exporter at `instance`: the pager-sink's count."""
    query = f'redline_jobs_up{{instance="{instance}"}} == 1'
    wait_until(lambda: stack.sandbox.query(query), what="the job exporter scraped")
    return len(stack.sandbox.notifications())


def test_connections_above_90_percent_of_max_connections_fire_and_resolve(
    table: tuple[PgCluster, dict[str, Path]], postgres: str, client_stack: ClientStack
) -> None:
    """27 held connections and the exporter's own: 28 of 30 (93%) fire PipelinePostgresConnectionsHigh at
    the ticket receiver with the exporter's labels and the ratio; closed, it resolves."""
    pg, _files = table
    settings = f'pg_settings_max_connections{{instance="{postgres}"}} == {MAX_CONNECTIONS}'
    wait_until(lambda: client_stack.sandbox.query(settings), timeout=60, what="max_connections scraped")
    since = len(client_stack.sandbox.notifications())
    with contextlib.ExitStack() as held:
        for _ in range(27):
            held.enter_context(psycopg.connect(pg.dsn, autocommit=True))
        alert = fired(
            client_stack, "PipelinePostgresConnectionsHigh", since, "/ticket", "warning", "postgres", postgres
        )
    assert alert["annotations"]["summary"] == "PostgreSQL connections near max_connections"
    match = re.search(r" is ([0-9.]+)%: ", alert["annotations"]["description"])
    assert match and 90 < float(match.group(1)) <= 100, alert["annotations"]["description"]
    wait_alert(client_stack, "PipelinePostgresConnectionsHigh", "resolved", since, instance=postgres)


def test_a_stopped_postgres_pages_and_blinds_the_job_exporter(
    table: tuple[PgCluster, dict[str, Path]], postgres: str, client_stack: ClientStack, tmp_path: Path
) -> None:
    """PostgreSQL stops: postgres_exporter answers with pg_up = 0 and PipelinePostgresDown pages; the job
    exporter, still scraped, cannot read its table (redline_jobs_up = 0) and PipelineJobExporterDown
    tickets. PostgreSQL back on its port resolves both."""
    pg, files = table
    with job_exporter(pg, files, free_port(), tmp_path / "exporter.log") as jobs:
        client_stack.add_targets("services-blind", "pipeline-jobs", [jobs], PIPELINE)
        try:
            since = jobs_scraped(client_stack, jobs)
            pg.stop()
            try:
                alert = fired(
                    client_stack, "PipelinePostgresDown", since, "/pager", "critical", "postgres", postgres
                )
                assert alert["annotations"]["summary"] == "The pipeline's PostgreSQL is unreachable"
                fired(
                    client_stack,
                    "PipelineJobExporterDown",
                    since,
                    "/ticket",
                    "warning",
                    "pipeline-jobs",
                    jobs,
                )
                unread = f'redline_jobs_up{{instance="{jobs}"}} == 0'  # it answers: the table is unread
                wait_until(lambda: client_stack.sandbox.query(unread), what=unread)
            finally:
                pg.start()
            wait_alert(client_stack, "PipelinePostgresDown", "resolved", since, instance=postgres)
            wait_alert(client_stack, "PipelineJobExporterDown", "resolved", since, instance=jobs)
        finally:
            client_stack.remove_targets("services-blind", "pipeline-jobs")


def test_a_stopped_job_exporter_tickets_and_resolves(
    table: tuple[PgCluster, dict[str, Path]], client_stack: ClientStack, tmp_path: Path
) -> None:
    """The job exporter's process exits: its scrape fails (up = 0) and PipelineJobExporterDown reaches the
    ticket receiver; started again on its port, it resolves."""
    pg, files = table
    port = free_port()
    instance = f"127.0.0.1:{port}"
    client_stack.add_targets("services-exit", "pipeline-jobs", [instance], PIPELINE)
    try:
        with job_exporter(pg, files, port, tmp_path / "exporter-1.log"):
            since = jobs_scraped(client_stack, instance)
        alert = fired(
            client_stack, "PipelineJobExporterDown", since, "/ticket", "warning", "pipeline-jobs", instance
        )
        assert alert["annotations"]["summary"] == "Pipeline job metrics are unavailable"
        with job_exporter(pg, files, port, tmp_path / "exporter-2.log"):
            wait_alert(client_stack, "PipelineJobExporterDown", "resolved", since, instance=instance)
    finally:
        client_stack.remove_targets("services-exit", "pipeline-jobs")


def test_a_stopped_api_server_pages_and_resolves(client_stack: ClientStack, tmp_path: Path) -> None:
    """An API server scraped in job pipeline-api and probed on /health exits: both fail and
    PipelineApiDown (one alert per system: min over the API's scrapes and probes) pages; back on its port,
    it resolves."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    health = f"http://{address}/health"
    cmd = [sys.executable, "-m", "redline.testing.standin", f"--listen={address}", "--name=pipeline-api"]
    client_stack.add_targets("services", "pipeline-api", [address], PIPELINE)
    client_stack.add_probe("pipeline-api", health, "pipeline")
    try:
        with running(cmd, ready_url=health, log=tmp_path / "api-1.log"):
            for query in (f'up{{instance="{address}"}} == 1', f'probe_success{{instance="{health}"}} == 1'):
                wait_until(lambda q=query: client_stack.sandbox.query(q), timeout=60, what=query)
            since = len(client_stack.sandbox.notifications())
        record, alert = wait_alert(client_stack, "PipelineApiDown", "firing", since, system="pipeline")
        assert record["path"] == "/pager"
        # one alert for the system: no instance or job; `stack` is Prometheus' external label
        assert alert["labels"] == {
            "alertname": "PipelineApiDown",
            "severity": "critical",
            "system": "pipeline",
            "stack": "redline",
        }
        assert alert["annotations"]["summary"] == "The pipeline API server is down"
        with running(cmd, ready_url=health, log=tmp_path / "api-2.log"):
            wait_alert(client_stack, "PipelineApiDown", "resolved", since, system="pipeline")
    finally:
        client_stack.remove_targets("services", "pipeline-api")
        client_stack.remove_targets("pipeline-api", "probes")
