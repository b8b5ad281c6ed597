//! Queries on the training tables: runs, their metric curves and their
//! checkpoints.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: i32,
    pub name: String,
    pub version_id: i32,
    pub config: serde_json::Value,
    pub job_id: Option<Uuid>,
    pub steps_per_epoch: Option<i32>,
    pub total_steps: Option<i32>,
    pub data: Option<serde_json::Value>,
    pub baseline: Option<serde_json::Value>,
    pub model_id: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run with its job's state and what it is trained on, for lists and pages.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Listed {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub run: Run,
    pub dataset_id: i32,
    pub dataset_name: String,
    pub version_number: i32,
    pub status: Option<String>,
    pub progress: Option<i32>,
    pub stage: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// Steps done: the last logged step.
    pub step: i32,
    pub best_map_at_r: Option<f64>,
}

const RUN_COLUMNS: &str = "r.id, r.name, r.version_id, r.config, r.job_id, r.steps_per_epoch, \
     r.total_steps, r.data, r.baseline, r.model_id, r.created_at, r.finished_at";

fn listed_query(filter: &str) -> String {
    format!(
        "SELECT {RUN_COLUMNS}, v.dataset_id, d.name AS dataset_name, v.number AS version_number,
                j.status, j.progress::int4 AS progress, j.stage, j.error_message, j.started_at,
                COALESCE((SELECT max(m.step) FROM training_metrics m WHERE m.run_id = r.id), 0) AS step,
                (SELECT max(m.map_at_r) FROM training_metrics m
                  WHERE m.run_id = r.id AND m.kind = 'val' AND m.step > 0) AS best_map_at_r
         FROM training_runs r
         JOIN dataset_versions v ON v.id = r.version_id
         JOIN datasets d ON d.id = v.dataset_id
         LEFT JOIN jobs j ON j.id = r.job_id
         {filter}"
    )
}

pub async fn create(
    db: impl PgExecutor<'_>,
    name: &str,
    version_id: i32,
    config: &serde_json::Value,
) -> sqlx::Result<Option<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO training_runs AS r (name, version_id, config) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING {RUN_COLUMNS}"
    )))
    .bind(name)
    .bind(version_id)
    .bind(config)
    .fetch_optional(db)
    .await
}

pub async fn set_job(db: impl PgExecutor<'_>, id: i32, job: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE training_runs SET job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: i32) -> sqlx::Result<Option<Run>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM training_runs r WHERE r.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn listed(pool: &PgPool, id: i32) -> sqlx::Result<Option<Listed>> {
    sqlx::query_as(sqlx::AssertSqlSafe(listed_query("WHERE r.id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The newest runs first.
pub async fn list(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Listed>> {
    sqlx::query_as(sqlx::AssertSqlSafe(listed_query(
        "ORDER BY r.created_at DESC, r.id DESC LIMIT $1",
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// What the job found when it read the version.
pub async fn set_plan(
    pool: &PgPool,
    id: i32,
    steps_per_epoch: usize,
    total_steps: usize,
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE training_runs SET steps_per_epoch = $2, total_steps = $3, data = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(steps_per_epoch as i32)
    .bind(total_steps as i32)
    .bind(data)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_baseline(
    pool: &PgPool,
    id: i32,
    baseline: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE training_runs SET baseline = $2 WHERE id = $1")
        .bind(id)
        .bind(baseline)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn finish(pool: &PgPool, id: i32, model_id: Option<i32>) -> sqlx::Result<()> {
    sqlx::query("UPDATE training_runs SET model_id = $2, finished_at = now() WHERE id = $1")
        .bind(id)
        .bind(model_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// One point of a run's curve.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Metric {
    pub kind: String,
    pub step: i32,
    pub epoch: i32,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub images_per_s: Option<f64>,
    pub recall_at_1: Option<f64>,
    pub recall_at_5: Option<f64>,
    pub map_at_r: Option<f64>,
    pub at: DateTime<Utc>,
}

/// Writes a point; a point of the same kind and step (a resumed run
/// logging it again) is replaced.
pub async fn record(pool: &PgPool, run_id: i32, m: &Metric) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO training_metrics
             (run_id, kind, step, epoch, loss, lr, images_per_s, recall_at_1, recall_at_5, map_at_r)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (run_id, kind, step) DO UPDATE SET
             epoch = EXCLUDED.epoch, loss = EXCLUDED.loss, lr = EXCLUDED.lr,
             images_per_s = EXCLUDED.images_per_s, recall_at_1 = EXCLUDED.recall_at_1,
             recall_at_5 = EXCLUDED.recall_at_5, map_at_r = EXCLUDED.map_at_r, at = now()",
    )
    .bind(run_id)
    .bind(&m.kind)
    .bind(m.step)
    .bind(m.epoch)
    .bind(m.loss)
    .bind(m.lr)
    .bind(m.images_per_s)
    .bind(m.recall_at_1)
    .bind(m.recall_at_5)
    .bind(m.map_at_r)
    .execute(pool)
    .await?;
    Ok(())
}

/// The curve in step order (train and val rows interleaved).
pub async fn metrics(pool: &PgPool, run_id: i32) -> sqlx::Result<Vec<Metric>> {
    sqlx::query_as(
        "SELECT kind, step, epoch, loss, lr, images_per_s, recall_at_1, recall_at_5, map_at_r, at
         FROM training_metrics WHERE run_id = $1 ORDER BY step, kind",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
}

/// Drops the points logged after `step` (a run resuming from a checkpoint
/// there logs them again).
pub async fn forget_after(pool: &PgPool, run_id: i32, step: i32) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM training_metrics WHERE run_id = $1 AND step > $2")
        .bind(run_id)
        .bind(step)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Checkpoint {
    pub step: i32,
    pub epoch: i32,
    pub rng_state: i64,
    pub storage_key: String,
    pub size: i64,
    pub reason: String,
    pub map_at_r: Option<f64>,
    pub created_at: DateTime<Utc>,
}

pub async fn add_checkpoint(pool: &PgPool, run_id: i32, c: &Checkpoint) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO training_checkpoints
             (run_id, step, epoch, rng_state, storage_key, size, reason, map_at_r)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (run_id, step) DO UPDATE SET
             epoch = EXCLUDED.epoch, rng_state = EXCLUDED.rng_state,
             storage_key = EXCLUDED.storage_key, size = EXCLUDED.size,
             reason = CASE WHEN training_checkpoints.reason = 'epoch'
                           THEN 'epoch' ELSE EXCLUDED.reason END,
             map_at_r = COALESCE(EXCLUDED.map_at_r, training_checkpoints.map_at_r),
             created_at = now()",
    )
    .bind(run_id)
    .bind(c.step)
    .bind(c.epoch)
    .bind(c.rng_state)
    .bind(&c.storage_key)
    .bind(c.size)
    .bind(&c.reason)
    .bind(c.map_at_r)
    .execute(pool)
    .await?;
    Ok(())
}

/// Newest first.
pub async fn checkpoints(pool: &PgPool, run_id: i32) -> sqlx::Result<Vec<Checkpoint>> {
    sqlx::query_as(
        "SELECT step, epoch, rng_state, storage_key, size, reason, map_at_r, created_at
         FROM training_checkpoints WHERE run_id = $1 ORDER BY step DESC",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
}

/// The training rows of a recognition version: the rendered image, the
/// product, and where the frame sits in its video (for the evaluation's
/// near-duplicate window).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Item {
    pub ordinal: i32,
    pub split: String,
    pub kind: String,
    pub image_key: String,
    pub rendered: bool,
    pub product_id: Option<Uuid>,
    pub frame_id: Option<i64>,
    /// The frame's index in its video; the item's ordinal when the frame is gone.
    pub position: i32,
}

pub async fn items(pool: &PgPool, version_id: i32) -> sqlx::Result<Vec<Item>> {
    sqlx::query_as(
        "SELECT i.ordinal, i.split, i.kind, i.image_key, i.rendered_at IS NOT NULL AS rendered,
                (i.sources -> 0 ->> 'product_id')::uuid AS product_id,
                (i.sources -> 0 ->> 'frame_id')::bigint AS frame_id,
                COALESCE(f.frame_index, i.ordinal) AS position
         FROM dataset_items i
         LEFT JOIN frames f ON f.id = (i.sources -> 0 ->> 'frame_id')::bigint
         WHERE i.version_id = $1 AND i.split IN ('train', 'val')
         ORDER BY i.ordinal",
    )
    .bind(version_id)
    .fetch_all(pool)
    .await
}

/// Images per product and split of a version: (split, product barcode or
/// id, images).
pub async fn frames_per_product(
    pool: &PgPool,
    version_id: i32,
) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "SELECT i.split, COALESCE(p.barcode, i.sources -> 0 ->> 'product_id'), count(*)
         FROM dataset_items i
         LEFT JOIN products p ON p.id = (i.sources -> 0 ->> 'product_id')::uuid
         WHERE i.version_id = $1 AND i.split IN ('train', 'val')
         GROUP BY 1, 2 ORDER BY 1, 3, 2",
    )
    .bind(version_id)
    .fetch_all(pool)
    .await
}

/// A free default name for a run on a version: `<dataset>-v<n>-<k>`.
pub async fn next_name(pool: &PgPool, version_id: i32) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "SELECT d.name || '-v' || v.number || '-' ||
                (SELECT count(*) + 1 FROM training_runs r WHERE r.version_id = v.id)
         FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE v.id = $1",
    )
    .bind(version_id)
    .fetch_one(pool)
    .await
}

/// Recognition versions whose images are all rendered, newest first:
/// (version id, "dataset v<n>" label).
pub async fn trainable_versions(pool: &PgPool) -> sqlx::Result<Vec<(i32, String)>> {
    sqlx::query_as(
        "SELECT v.id, d.name || ' v' || v.number || ' (' ||
                (SELECT count(*) FROM dataset_items i WHERE i.version_id = v.id) || ' images)'
         FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id
         WHERE v.task = 'recognition'
           AND NOT EXISTS (SELECT 1 FROM dataset_items i
                           WHERE i.version_id = v.id AND i.rendered_at IS NULL)
         ORDER BY v.created_at DESC, v.id DESC LIMIT 200",
    )
    .fetch_all(pool)
    .await
}
