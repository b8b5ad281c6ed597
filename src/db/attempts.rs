//! Statements that move a job through its attempts, written by workers: attempt
//! starts and ends (in one statement per batch, from the ledger), progress
//! reports, and tasks handed back at shutdown. Each also updates the queue task
//! (`apalis.jobs`), locking the task before the job row, as every writer does.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A worker started an attempt.
#[derive(Debug, Clone)]
pub struct Started {
    pub task_id: String,
    pub attempt: i32,
    pub worker: String,
    pub at: DateTime<Utc>,
}

/// How an attempt ended, as the queue records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// Failed; another attempt follows after the backoff delay.
    Retry,
    /// Failed for good.
    Failed,
    Cancelled,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Retry => "retry",
            Ending::Failed => "failed",
            Ending::Cancelled => "cancelled",
        }
    }
}

/// A worker ended an attempt.
#[derive(Debug, Clone)]
pub struct Finished {
    pub task_id: String,
    pub worker: String,
    pub attempt: i32,
    pub ending: Ending,
    pub error: Option<String>,
    pub output: Value,
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// The attempt's start is written in the same statement: one event line
    /// (naming the worker) tells both.
    pub with_start: bool,
}

/// Records attempt starts and ends in one statement: the queue tasks are
/// acknowledged (only while still held by the worker that ran them), the jobs
/// move to their new status, each transition but a completion gets its event
/// line (a completion's line is read from the job row), and the jobs that ended
/// are counted in `job_hours`. An attempt whose end is in `finished` is left out
/// of `started` (its end's `with_start` says so): the job goes straight to its
/// end. Returns the task ids whose ends were recorded.
pub async fn record_attempts(
    db: impl PgExecutor<'_>,
    started: &[Started],
    finished: &[Finished],
) -> sqlx::Result<Vec<String>> {
    let s_tasks: Vec<String> = started.iter().map(|s| s.task_id.clone()).collect();
    let s_attempts: Vec<i32> = started.iter().map(|s| s.attempt).collect();
    let s_workers: Vec<String> = started.iter().map(|s| s.worker.clone()).collect();
    let s_at: Vec<DateTime<Utc>> = started.iter().map(|s| s.at).collect();
    let f_tasks: Vec<String> = finished.iter().map(|f| f.task_id.clone()).collect();
    let f_workers: Vec<String> = finished.iter().map(|f| f.worker.clone()).collect();
    let f_attempts: Vec<i32> = finished.iter().map(|f| f.attempt).collect();
    let f_endings: Vec<&str> = finished.iter().map(|f| f.ending.as_str()).collect();
    let f_errors: Vec<Option<String>> = finished.iter().map(|f| f.error.clone()).collect();
    let f_outputs: Vec<Value> = finished.iter().map(|f| f.output.clone()).collect();
    let f_started: Vec<DateTime<Utc>> = finished.iter().map(|f| f.started_at).collect();
    let f_at: Vec<DateTime<Utc>> = finished.iter().map(|f| f.at).collect();
    let f_with_start: Vec<bool> = finished.iter().map(|f| f.with_start).collect();
    sqlx::query_scalar!(
        r#"
        WITH starts AS (
            SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamptz[])
                AS s (task_id, attempt, worker, at)
        ),
        -- Every join below is a batch against a table through a unique index; the
        -- batches are never joined to each other, so no plan can turn quadratic.
        start_events AS (
            INSERT INTO job_events (job_id, at, level, message)
            SELECT j.id, s.at, 'info',
                   format('Attempt %s of %s started on %s', s.attempt, j.max_attempts, s.worker)
            FROM starts s JOIN jobs j ON j.task_id = s.task_id
        ),
        running AS (
            UPDATE jobs j
            SET status = 'running', attempts = s.attempt, worker = s.worker, started_at = s.at,
                next_attempt_at = NULL, updated_at = now()
            FROM starts s
            -- unfinished (see jobs_completed_when_ended); a late start never reopens a job,
            -- nor one that went back to the queue before its start was written
            WHERE j.task_id = s.task_id AND j.completed_at IS NULL
              AND EXISTS (SELECT 1 FROM apalis.jobs t WHERE t.id = s.task_id AND t.lock_by = s.worker)
        ),
        finishes AS (
            SELECT f.*,
                   -- a job someone cancelled is not retried (only a retry reads the job row)
                   CASE WHEN f.ending <> 'retry' THEN f.ending
                        WHEN EXISTS (SELECT 1 FROM jobs j
                                     WHERE j.task_id = f.task_id AND j.cancel_requested_at IS NOT NULL)
                        THEN 'cancelled' ELSE f.ending END AS result
            FROM unnest($5::text[], $6::text[], $7::int4[], $8::text[], $9::text[],
                        $10::jsonb[], $11::timestamptz[], $12::timestamptz[], $13::bool[])
                AS f (task_id, worker, attempt, ending, error, output, started_at, at, with_start)
        ),
        -- A completed task leaves the queue: the job row is its record. Deleting
        -- writes no new row version and no index entries, unlike an update.
        removed AS (
            DELETE FROM apalis.jobs a
            USING finishes f
            WHERE a.id = f.task_id AND f.result = 'completed'
              AND a.lock_by = f.worker AND a.status IN ('Queued', 'Running')
            RETURNING a.id, a.run_at, f.worker, f.attempt, f.result, f.error, f.output,
                      f.started_at, f.at, f.with_start
        ),
        kept AS (
            UPDATE apalis.jobs a
            SET status = CASE WHEN f.result = 'retry' THEN 'Failed'
                              -- out of attempts: 'Failed'; failed for good earlier: 'Killed',
                              -- which the queue never picks up again either
                              WHEN f.result = 'failed' AND f.attempt >= a.max_attempts THEN 'Failed'
                              ELSE 'Killed' END,
                attempts = f.attempt,
                last_result = jsonb_build_object('Err', coalesce(f.error, f.result)),
                done_at = f.at,
                run_at = CASE WHEN f.result = 'retry' THEN now() + buybuddy_retry_delay(f.attempt)
                              ELSE a.run_at END
            FROM finishes f
            WHERE a.id = f.task_id AND f.result <> 'completed'
              AND a.lock_by = f.worker AND a.status IN ('Queued', 'Running')
            RETURNING a.id, a.run_at, f.worker, f.attempt, f.result, f.error, f.output,
                      f.started_at, f.at, f.with_start
        ),
        acked AS (
            SELECT * FROM removed UNION ALL SELECT * FROM kept
        ),
        done AS (
            UPDATE jobs j
            SET status = CASE k.result WHEN 'retry' THEN 'queued' ELSE k.result END,
                attempts = k.attempt,
                worker = k.worker,
                started_at = k.started_at,
                progress = CASE k.result WHEN 'completed' THEN 100
                                         WHEN 'retry' THEN 0
                                         ELSE j.progress END,
                output = CASE WHEN k.result = 'completed' THEN nullif(k.output, 'null'::jsonb)
                              ELSE j.output END,
                error_message = CASE WHEN k.result = 'completed' THEN NULL ELSE k.error END,
                next_attempt_at = CASE WHEN k.result = 'retry' THEN k.run_at END,
                completed_at = CASE WHEN k.result = 'retry' THEN NULL ELSE k.at END,
                updated_at = now()
            FROM acked k
            WHERE j.task_id = k.id
            RETURNING j.id, j.stage, j.max_attempts, k.run_at, k.worker, k.attempt, k.result,
                      k.error, k.started_at, k.at, k.with_start
        ),
        -- The dashboard's jobs ended per hour, added to this session's own rows.
        hours AS (
            INSERT INTO job_hours AS h (hour, session, completed, failed)
            SELECT date_trunc('hour', d.at, 'UTC'), pg_backend_pid(),
                   count(*) FILTER (WHERE d.result = 'completed'),
                   count(*) FILTER (WHERE d.result = 'failed')
            FROM done d
            WHERE d.result IN ('completed', 'failed')
            GROUP BY 1
            ON CONFLICT (hour, session) DO UPDATE
            SET completed = h.completed + excluded.completed, failed = h.failed + excluded.failed
        ),
        -- A completed attempt's line is read from the job row (`job_events::for_job`).
        done_events AS (
            INSERT INTO job_events (job_id, at, level, stage, message)
            SELECT d.id, d.at, CASE d.result WHEN 'failed' THEN 'error' ELSE 'warn' END,
                   d.stage,
                   format('Attempt %s of %s%s %s', d.attempt, d.max_attempts,
                       CASE WHEN d.with_start THEN ' on ' || d.worker ELSE '' END,
                       CASE d.result
                           WHEN 'retry' THEN format('failed: %s; retrying in %s s', d.error,
                               round(extract(epoch FROM d.run_at - now())::numeric, 1))
                           WHEN 'cancelled' THEN 'was cancelled'
                           ELSE format('failed: %s', d.error)
                       END)
            FROM done d
            WHERE d.result <> 'completed'
        )
        SELECT id AS "task_id!" FROM acked
        "#,
        &s_tasks,
        &s_attempts,
        &s_workers,
        &s_at,
        &f_tasks,
        &f_workers,
        &f_attempts,
        &f_endings as &[&str],
        &f_errors as &[Option<String>],
        &f_outputs,
        &f_started,
        &f_at,
        &f_with_start,
    )
    .fetch_all(db)
    .await
}

/// Records a running job's stage and progress, with an optional event line, and
/// tells whether someone asked for the job to stop.
pub async fn report_progress(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    stage: Option<&str>,
    progress: u8,
    event: Option<(&str, &str)>,
) -> sqlx::Result<bool> {
    let (level, message) = event.unzip();
    let cancelled = sqlx::query_scalar!(
        r#"
        WITH updated AS (
            UPDATE jobs
            SET stage = coalesce($2, stage), progress = $3,
                status = CASE WHEN status = 'queued' THEN 'running' ELSE status END
            WHERE id = $1
            RETURNING id, stage, cancel_requested_at IS NOT NULL AS cancelled
        ),
        event AS (
            INSERT INTO job_events (job_id, level, stage, message)
            SELECT id, $4, stage, $5 FROM updated WHERE $5::text IS NOT NULL
        )
        SELECT cancelled AS "cancelled!" FROM updated
        "#,
        job_id,
        stage,
        i16::from(progress),
        level.unwrap_or("info"),
        message,
    )
    .fetch_optional(db)
    .await?;
    Ok(cancelled.unwrap_or(false))
}

/// Puts every task still held by the given worker names back in the queue, as
/// they were before this attempt (a shutdown is not the job's fault). Returns how
/// many tasks went back.
pub async fn return_to_queue(db: impl PgExecutor<'_>, workers: &[String]) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"
        WITH returned AS (
            UPDATE apalis.jobs
            SET status = 'Pending', lock_by = NULL, lock_at = NULL
            WHERE lock_by = ANY($1) AND status IN ('Queued', 'Running')
            RETURNING id, attempts, lock_by
        ),
        requeued AS (
            UPDATE jobs j SET status = 'queued', attempts = r.attempts, progress = 0
            FROM returned r
            WHERE j.task_id = r.id AND j.status = 'running'
            RETURNING j.id, j.stage
        ),
        events AS (
            INSERT INTO job_events (job_id, level, stage, message)
            SELECT id, 'warn', stage,
                   'The worker shut down before the job finished; it went back to the queue'
            FROM requeued
        )
        SELECT count(*) AS "count!" FROM returned
        "#,
        workers
    )
    .fetch_one(db)
    .await
}
