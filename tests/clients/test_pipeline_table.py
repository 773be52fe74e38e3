"""A job pipeline whose table has another shape (docs/instrumenting/pipeline.md's `tasks`), read by the
real job exporter with the guide's queries, scraped by the suite's stack: success rate, job duration,
concurrency and jobs waiting without a worker each fire at the pager-sink and resolve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.testing.pg import PgCluster
from redline.testing.processes import free_port, wait_until

from .conftest import ClientStack, job_exporter, wait_alert

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def exporter(table: tuple[PgCluster, dict[str, Path]], client_stack: ClientStack) -> Iterator[str]:
    pg, files = table
    log = files["schema.sql"].parent / "exporter.log"
    with job_exporter(pg, files, free_port(), log) as instance:
        client_stack.add_targets("tasks", "pipeline-jobs", [instance], {"system": "pipeline"})
        wait_until(
            lambda: client_stack.sandbox.query(f'redline_jobs_up{{instance="{instance}"}} == 1'),
            what="scraped",
        )
        yield instance


def finish(pg: PgCluster, count: int, status: str, seconds: float) -> None:
    """`count` rows that ran for `seconds` and ended now as done or error."""
    pg.execute(
        "INSERT INTO tasks (status, created, begun, ended)"
        " SELECT %s, now(), now() - make_interval(secs => %s), now() FROM generate_series(1, %s)",
        (status, seconds, count),
    )


def test_success_rate_below_the_documented_95_8_percent(
    table, exporter: str, client_stack: ClientStack
) -> None:
    pg, _files = table
    since = len(client_stack.sandbox.notifications())
    for _ in range(5):  # 90% success, a batch a second: the counters increase while scraped
        finish(pg, 9, "done", 2)
        finish(pg, 1, "error", 2)
        time.sleep(1)
    record, alert = wait_alert(client_stack, "PipelineJobSuccessLow", "firing", since, instance=exporter)
    assert record["path"] == "/ticket" and alert["labels"]["system"] == "pipeline"
    assert "is 90%" in alert["annotations"]["description"]
    finish(pg, 400, "done", 2)
    wait_alert(client_stack, "PipelineJobSuccessLow", "resolved", since, instance=exporter)


def test_slow_jobs_and_too_many_running(table, exporter: str, client_stack: ClientStack) -> None:
    pg, _files = table
    since = len(client_stack.sandbox.notifications())
    pg.execute("INSERT INTO tasks (status, begun) SELECT 'active', now() FROM generate_series(1, 7)")
    _record, alert = wait_alert(
        client_stack, "PipelineConcurrencyHigh", "firing", since, instance=exporter, severity="warning"
    )
    assert "is 7" in alert["annotations"]["description"]
    pg.execute("UPDATE tasks SET status = 'done', ended = now() WHERE status = 'active'")
    wait_alert(
        client_stack, "PipelineConcurrencyHigh", "resolved", since, instance=exporter, severity="warning"
    )
    # the 10m mean also holds the jobs of the other tests: enough slow ones to outweigh them
    for _ in range(3):
        finish(pg, 700, "done", 120)  # two minutes per job: above the 45 s critical level
        time.sleep(1)
    record, _alert = wait_alert(
        client_stack, "PipelineJobsSlow", "firing", since, instance=exporter, severity="critical"
    )
    assert record["path"] == "/pager"
    for _ in range(3):
        finish(pg, 3000, "done", 1)
        time.sleep(1)
    wait_alert(client_stack, "PipelineJobsSlow", "resolved", since, instance=exporter, severity="critical")


def test_jobs_waiting_with_no_worker_page_and_resolve(
    table, exporter: str, client_stack: ClientStack
) -> None:
    """Last in this module: a critical *Down alert holds back the pipeline's other alerts while it fires."""
    pg, _files = table
    since = len(client_stack.sandbox.notifications())
    pg.execute("INSERT INTO tasks (status) SELECT 'pending' FROM generate_series(1, 3)")
    record, alert = wait_alert(client_stack, "PipelineWorkersDown", "firing", since, instance=exporter)
    assert record["path"] == "/pager" and alert["labels"]["severity"] == "critical"
    pg.execute("UPDATE tasks SET status = 'active', begun = now() WHERE status = 'pending'")
    wait_alert(client_stack, "PipelineWorkersDown", "resolved", since, instance=exporter)
    pg.execute("UPDATE tasks SET status = 'done', ended = now() WHERE status = 'active'")
