//! Queries on `job_events`, the per-job log shown on the job page.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct JobEvent {
    pub id: i64,
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
pub async fn for_job(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<JobEvent>> {
    sqlx::query_as!(
        JobEvent,
        "SELECT * FROM job_events WHERE job_id = $1 ORDER BY at, id",
        job_id
    )
    .fetch_all(db)
    .await
}
