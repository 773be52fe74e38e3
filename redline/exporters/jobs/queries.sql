-- SQL of `redline exporter jobs` for the reference schema (schema.sql). Copy this file and pass it with
-- --sql-file to read another schema. Two named queries, each a single SELECT without parameters:
--
--   current:  one row with columns in_progress, queued, oldest_queued_age_seconds
--   finished: one row per finished job with columns outcome ('success' | 'failure') and
--             duration_seconds (NULL when the job never started). The exporter aggregates this
--             relation into the duration histogram and the completed counters itself.
--
-- Both run in a read-only transaction under the exporter's statement timeout.

-- name: current
SELECT
    count(*) FILTER (WHERE state = 'running') AS in_progress,
    count(*) FILTER (WHERE state = 'queued') AS queued,
    coalesce(extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE state = 'queued')), 0)
        AS oldest_queued_age_seconds
FROM jobs
WHERE state IN ('queued', 'running')

-- name: finished
SELECT
    CASE state WHEN 'succeeded' THEN 'success' ELSE 'failure' END AS outcome,
    extract(epoch FROM finished_at - started_at) AS duration_seconds
FROM jobs
WHERE state IN ('succeeded', 'failed')
