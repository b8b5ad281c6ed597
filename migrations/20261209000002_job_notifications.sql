-- Job changes and event lines are announced in batches of 25 rows a notification
-- (`{"batch": [...]}`, each element what one row's notification said before): a
-- worker acknowledging 1,000 jobs sent 2,000 notifications, and every listening
-- session read each of them. 25 rows stay well inside the 8,000-byte payload limit
-- (a stage is cut to 100 characters here; the page reads the row).
CREATE OR REPLACE FUNCTION notify_job_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object('batch', json_agg(change))::text)
    FROM (SELECT (row_number() OVER () - 1) / 25 AS chunk,
                 json_build_object('topic', 'job', 'op', lower(TG_OP), 'id', c.id, 'kind', c.kind,
                     'status', c.status, 'progress', c.progress, 'stage', left(c.stage, 100)) AS change
          FROM changed c) rows
    GROUP BY chunk;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION notify_job_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object('batch', json_agg(change))::text)
    FROM (SELECT (row_number() OVER () - 1) / 25 AS chunk,
                 json_build_object('topic', 'job_event', 'op', 'insert', 'id', e.id,
                     'job_id', e.job_id, 'level', e.level, 'stage', left(e.stage, 100)) AS change
          FROM added e) rows
    GROUP BY chunk;
    RETURN NULL;
END
$$;

-- The attempt ledger sets `updated_at` itself; the trigger keeps it right for
-- every other writer without a function call per acknowledged job.
DROP TRIGGER jobs_updated_at ON jobs;
CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION set_updated_at();
