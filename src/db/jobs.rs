//! Queries on `jobs`, the user-facing record of each job. Statements that move a
//! job through its life also update its queue task (`apalis.jobs`) in the same
//! statement, always locking the task before the job row so that concurrent
//! writers never deadlock.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// A job as people see it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub barcode: Option<String>,
    pub video_url: Option<String>,
    pub video_id: Option<i32>,
    pub status: String,
    pub progress: i16,
    pub stage: Option<String>,
    pub frame_count: Option<i32>,
    pub frames_path: Option<String>,
    pub output: Option<Value>,
    pub error_message: Option<String>,
    pub task_id: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The failed or cancelled job this one retries.
    pub retry_of: Option<Uuid>,
}

/// A job about to be created, with the id of its queue task.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: Value,
    pub barcode: Option<String>,
    pub video_url: Option<String>,
    pub video_id: Option<i32>,
    pub task_id: String,
    pub max_attempts: i32,
}

pub async fn insert_many(db: impl PgExecutor<'_>, jobs: &[NewJob]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let kinds: Vec<String> = jobs.iter().map(|j| j.kind.clone()).collect();
    let payloads: Vec<Value> = jobs.iter().map(|j| j.payload.clone()).collect();
    let barcodes: Vec<Option<String>> = jobs.iter().map(|j| j.barcode.clone()).collect();
    let urls: Vec<Option<String>> = jobs.iter().map(|j| j.video_url.clone()).collect();
    let video_ids: Vec<Option<i32>> = jobs.iter().map(|j| j.video_id).collect();
    let task_ids: Vec<String> = jobs.iter().map(|j| j.task_id.clone()).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
    sqlx::query!(
        r#"
        INSERT INTO jobs (id, kind, payload, barcode, video_url, video_id, task_id, max_attempts)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::text[],
                             $6::int4[], $7::text[], $8::int4[])
        "#,
        &ids,
        &kinds,
        &payloads,
        &barcodes as &[Option<String>],
        &urls as &[Option<String>],
        &video_ids as &[Option<i32>],
        &task_ids,
        &max_attempts,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(Job, "SELECT * FROM jobs WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// The newest jobs first.
pub async fn latest(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as!(
        Job,
        "SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await
}

/// How many jobs are in each status (statuses with no jobs are left out).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM jobs GROUP BY status"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// What a cancel request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// The job had not started: it is cancelled and will never run.
    Cancelled,
    /// The job is running (or claimed by a worker): it stops at its next stage boundary.
    Requested,
    /// The job had already ended with this status.
    AlreadyEnded(String),
    NotFound,
}

/// Cancels a job that has not started, or asks a running one to stop.
pub async fn cancel(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Cancel> {
    let mut tx = pool.begin().await?;
    let Some(job) = sqlx::query!("SELECT status, task_id FROM jobs WHERE id = $1", job_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(Cancel::NotFound);
    };
    if !matches!(job.status.as_str(), "queued" | "running") {
        return Ok(Cancel::AlreadyEnded(job.status));
    }
    // The task first, then the job: the order every writer follows.
    let unclaimed = sqlx::query!(
        r#"
        UPDATE apalis.jobs
        SET status = 'Killed', done_at = now(), last_result = '{"Err": "cancelled"}'
        WHERE id = $1 AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
        "#,
        job.task_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    let outcome = if unclaimed {
        sqlx::query!(
            r#"
            WITH updated AS (
                UPDATE jobs
                SET status = 'cancelled', cancel_requested_at = now(), completed_at = now(),
                    next_attempt_at = NULL
                WHERE id = $1
                RETURNING id, stage
            )
            INSERT INTO job_events (job_id, level, stage, message)
            SELECT id, 'warn', stage, 'Cancelled before it ran' FROM updated
            "#,
            job_id
        )
        .execute(&mut *tx)
        .await?;
        Cancel::Cancelled
    } else {
        sqlx::query!(
            r#"
            WITH updated AS (
                UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now())
                WHERE id = $1 AND status IN ('queued', 'running')
                RETURNING id, stage
            )
            INSERT INTO job_events (job_id, level, stage, message)
            SELECT id, 'warn', stage, 'Cancellation requested: the job stops at its next stage'
            FROM updated
            "#,
            job_id
        )
        .execute(&mut *tx)
        .await?;
        Cancel::Requested
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Filters of the jobs list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    /// Part of a barcode.
    pub barcode: Option<String>,
    /// Only jobs older than this one (created_at, id): the keyset of the page.
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// One page of jobs, newest first. Built per filter so that each shape gets a
/// plan that uses its index. No index holds the status (a job's every change
/// would write into it): a status is checked on the rows read newest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &ListFilter,
    limit: i64,
) -> sqlx::Result<Vec<Job>> {
    list_query("", filter, limit)
        .build_query_as::<Job>()
        .fetch_all(db)
        .await
}

/// The list's statement after `prefix` (`EXPLAIN ...` in the web benchmark).
pub fn list_query(
    prefix: &str,
    filter: &ListFilter,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut query = sqlx::QueryBuilder::new(format!("{prefix}SELECT * FROM jobs WHERE true"));
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(part) = filter.barcode.as_deref().filter(|p| !p.is_empty()) {
        query
            .push(" AND barcode ILIKE ")
            .push_bind(format!("%{}%", escape_like(part)));
    }
    super::push_newest_first(&mut query, filter.before, limit);
    query
}

/// `%`, `_` and `\` match themselves.
pub fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Completed and failed jobs per hour (UTC) over the last 24 hours, oldest
/// first, as counted where jobs end (`job_hours`).
pub async fn throughput_24h(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Vec<(DateTime<Utc>, i64, i64)>> {
    let rows = sqlx::query!(
        r#"
        WITH ended AS (
            SELECT hour, sum(completed)::int8 AS completed, sum(failed)::int8 AS failed
            FROM job_hours
            WHERE hour >= date_trunc('hour', now(), 'UTC') - interval '23 hours'
            GROUP BY hour
        )
        SELECT h.hour AS "hour!",
               coalesce(e.completed, 0) AS "completed!",
               coalesce(e.failed, 0) AS "failed!"
        FROM generate_series(date_trunc('hour', now(), 'UTC') - interval '23 hours',
                             date_trunc('hour', now(), 'UTC'), interval '1 hour') AS h(hour)
        LEFT JOIN ended e ON e.hour = h.hour
        ORDER BY h.hour
        "#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.hour, r.completed, r.failed))
        .collect())
}

/// The job that retried this one, if any.
pub async fn retried_as(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM jobs WHERE retry_of = $1 ORDER BY created_at DESC LIMIT 1",
        id
    )
    .fetch_optional(db)
    .await
}

/// Locks a job for a retry and reads its status and queued form.
pub async fn lock_for_retry(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> sqlx::Result<Option<(String, Value)>> {
    sqlx::query_as("SELECT status, payload FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Links a retry to the job it retries.
pub async fn set_retry_of(db: impl PgExecutor<'_>, retry: Uuid, of: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE jobs SET retry_of = $1 WHERE id = $2")
        .bind(of)
        .bind(retry)
        .execute(db)
        .await?;
    Ok(())
}

/// The newest video job of a barcode: its id, status and video.
pub async fn last_video_job(
    db: impl PgExecutor<'_>,
    barcode: &str,
) -> sqlx::Result<Option<(Uuid, String, Option<String>)>> {
    sqlx::query_as(
        "SELECT id, status, video_url FROM jobs WHERE barcode = $1 AND kind = 'video'
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(barcode)
    .fetch_optional(db)
    .await
}
