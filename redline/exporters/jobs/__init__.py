"""Job-queue exporter: the pipeline's PostgreSQL job table as redline_jobs_* metrics."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `redline exporter jobs` (imports psycopg only when run)."""
    from redline.exporters.jobs.cli import main as run

    return run(argv)
