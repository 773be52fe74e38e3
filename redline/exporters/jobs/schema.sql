-- Reference job table of the pipeline, as read by `redline exporter jobs` (redline/exporters/jobs/queries.sql).
-- Other schemas: keep your table and point the exporter at your own SQL with --sql-file.
--
-- Life of a row: queued -> running -> succeeded | failed. Finished rows are kept: the exporter derives
-- its counters from them (see docs/job-exporter.md), so delete old rows only together with a rollup.

CREATE TABLE IF NOT EXISTS jobs (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL DEFAULT 'default',
    state       text        NOT NULL DEFAULT 'queued'
                            CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz,
    error       text,
    CHECK (state IN ('queued', 'running') OR finished_at IS NOT NULL)
);

-- Workers claim the oldest queued job; the exporter counts queued and running rows on every scrape.
CREATE INDEX IF NOT EXISTS jobs_open_idx ON jobs (state, enqueued_at) WHERE state IN ('queued', 'running');
