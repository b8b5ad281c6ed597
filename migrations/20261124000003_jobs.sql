-- Jobs as people see them, and their record once done. The queue itself (apalis)
-- lives in the `apalis` schema; `task_id` links a job to its queue task, which
-- exists until the job completes.
CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    kind                text NOT NULL,
    payload             jsonb NOT NULL DEFAULT '{}',
    barcode             text,
    video_url           text,
    video_id            integer,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    progress            smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    stage               text,
    frame_count         integer,
    frames_path         text,
    output              jsonb,
    error_message       text,
    task_id             text UNIQUE,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at     timestamptz,
    worker              text,
    cancel_requested_at timestamptz,
    started_at          timestamptz,
    completed_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- A job is unfinished exactly while it has no completion time.
    CONSTRAINT jobs_completed_when_ended
        CHECK ((status IN ('queued', 'running')) = (completed_at IS NULL))
);

CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE INDEX jobs_created_idx ON jobs (created_at DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC);
CREATE INDEX jobs_barcode_idx ON jobs (barcode, created_at DESC) WHERE barcode IS NOT NULL;

-- What happened to a job, line by line, shown on the job page.
CREATE TABLE job_events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    level   text NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warn', 'error')),
    stage   text,
    message text NOT NULL
);

-- A job's log in time order; `at` comes from the writer's clock, `id` breaks ties.
CREATE INDEX job_events_job_idx ON job_events (job_id, at, id);
