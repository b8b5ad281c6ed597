-- Closes gaps of the apalis queue (schema `apalis`, created by `buybuddy migrate`
-- before these migrations run):
--  * retries wait: a failed attempt is retried after an exponential delay with
--    jitter, stored in `apalis.jobs.run_at` so it survives restarts;
--  * a task re-queued because its worker stopped heart-beating counts as an attempt
--    and stops at `max_attempts` instead of looping forever;
--  * the user-facing `jobs` row follows whatever the queue does on its own.

-- Delay before retrying after `attempt` failed attempts: base * 2^(attempt-1), at
-- most max, times a random factor in [1 - jitter, 1 + jitter]. Workers set the
-- three `buybuddy.retry_*` parameters on their connections; the defaults apply otherwise.
CREATE FUNCTION buybuddy_retry_delay(attempt integer) RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs =>
        least(
            coalesce(nullif(current_setting('buybuddy.retry_base_ms', true), '')::float8, 2000)
                * power(2, greatest(attempt - 1, 0)),
            coalesce(nullif(current_setting('buybuddy.retry_max_ms', true), '')::float8, 600000))
        * (1 + coalesce(nullif(current_setting('buybuddy.retry_jitter', true), '')::float8, 0.2)
               * (2 * random() - 1))
        / 1000.0)
$$;

-- apalis puts a running task back to 'Pending' (one more attempt) in two cases:
-- its worker stopped heart-beating (a crash, a kill, a lost machine), or its worker
-- shut down before starting it.
CREATE FUNCTION buybuddy_on_requeue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    job jobs;
    reason text;
BEGIN
    IF coalesce(NEW.last_result ->> 'Err', '') ILIKE '%shutdown%' THEN
        -- Fetched but never started: not an attempt.
        NEW.attempts := OLD.attempts;
        RETURN NEW;
    END IF;

    SELECT * INTO job FROM jobs WHERE task_id = NEW.id;
    IF job.cancel_requested_at IS NOT NULL THEN
        NEW.status := 'Killed';
        UPDATE jobs SET status = 'cancelled', completed_at = now(), next_attempt_at = NULL
            WHERE id = job.id AND status IN ('queued', 'running');
        INSERT INTO job_events (job_id, level, stage, message)
            VALUES (job.id, 'warn', job.stage, format(
                'Worker %s stopped responding; the job was cancelled as requested', OLD.lock_by));
        RETURN NEW;
    END IF;

    reason := format('Worker %s stopped responding during attempt %s of %s',
                     OLD.lock_by, NEW.attempts, NEW.max_attempts);
    IF NEW.attempts >= NEW.max_attempts THEN
        NEW.status := 'Failed';
        NEW.done_at := now();
        UPDATE jobs SET status = 'failed', attempts = NEW.attempts, completed_at = now(),
                        next_attempt_at = NULL, error_message = reason
            WHERE id = job.id AND status IN ('queued', 'running');
        INSERT INTO job_events (job_id, level, stage, message)
            VALUES (job.id, 'error', job.stage, reason || '; giving up');
    ELSE
        NEW.run_at := now() + buybuddy_retry_delay(NEW.attempts);
        UPDATE jobs SET status = 'queued', attempts = NEW.attempts,
                        next_attempt_at = NEW.run_at, error_message = reason
            WHERE id = job.id AND status IN ('queued', 'running');
        INSERT INTO job_events (job_id, level, stage, message)
            VALUES (job.id, 'warn', job.stage, format('%s; retrying in %s s', reason,
                    round(extract(epoch FROM NEW.run_at - now())::numeric, 1)));
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER buybuddy_requeue BEFORE UPDATE ON apalis.jobs
    FOR EACH ROW
    WHEN (OLD.status IN ('Queued', 'Running') AND NEW.status = 'Pending'
          AND NEW.lock_by IS NULL AND NEW.attempts > OLD.attempts)
    EXECUTE FUNCTION buybuddy_on_requeue();

-- apalis keeps two indexes twice: `unique_job_id` duplicates the primary key and
-- `lidx` duplicates `idx_apalis_jobs_lock_by`. Every task is written three times
-- (pushed, claimed, acknowledged), each time into every index: drop the twins.
DROP INDEX IF EXISTS apalis.unique_job_id;
DROP INDEX IF EXISTS apalis.lidx;
