//! Queries on `job_events`, the per-job log shown on the job page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobEvent {
    /// `None` for the line that says the job completed, which is read from the
    /// job row rather than stored.
    pub id: Option<i64>,
    pub job_id: Uuid,
    pub at: DateTime<Utc>,
    pub level: String,
    pub stage: Option<String>,
    pub message: String,
}

/// Adds a line under the stage the job is in.
pub async fn insert_in_current_stage(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    level: &str,
    message: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO job_events (job_id, level, stage, message)
         SELECT id, $2, stage, $3 FROM jobs WHERE id = $1",
        job_id,
        level,
        message
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A job's log, oldest line first.
///
/// The last line of a completed job ("Attempt 1 of 3 on w completed in 2.5 ms")
/// is not stored: the job row holds all it says, and not writing it spares every
/// job a row, two index entries and a foreign-key check when it completes. It
/// names the worker unless an earlier line already said where the attempt
/// started, as the stored lines of other endings do.
pub async fn for_job(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<JobEvent>> {
    sqlx::query_as!(
        JobEvent,
        r#"
        WITH stored AS (
            SELECT id, job_id, at, level, stage, message FROM job_events WHERE job_id = $1
        ),
        completion AS (
            SELECT NULL::int8 AS id, j.id AS job_id, j.completed_at AS at, 'info' AS level,
                   j.stage,
                   format('Attempt %s of %s%s completed in %s', j.attempts, j.max_attempts,
                       CASE WHEN EXISTS (
                           SELECT 1 FROM stored s
                           WHERE s.message = format('Attempt %s of %s started on %s',
                                                    j.attempts, j.max_attempts, j.worker)
                       ) THEN '' ELSE ' on ' || j.worker END,
                       CASE WHEN j.completed_at - j.started_at < interval '1 second'
                            THEN round(extract(epoch FROM j.completed_at - j.started_at)::numeric * 1000, 1) || ' ms'
                            ELSE round(extract(epoch FROM j.completed_at - j.started_at)::numeric, 2) || ' s'
                       END) AS message
            FROM jobs j
            WHERE j.id = $1 AND j.status = 'completed' AND j.worker IS NOT NULL
              AND j.started_at IS NOT NULL AND j.completed_at IS NOT NULL
        )
        SELECT id, job_id AS "job_id!", at AS "at!", level AS "level!", stage,
               message AS "message!"
        FROM (SELECT * FROM stored UNION ALL SELECT * FROM completion) lines
        ORDER BY at, id NULLS LAST
        "#,
        job_id
    )
    .fetch_all(db)
    .await
}
