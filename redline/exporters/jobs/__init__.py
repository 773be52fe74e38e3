"""Job-queue exporter: the pipeline's PostgreSQL job table as redline_jobs_* metrics."""
