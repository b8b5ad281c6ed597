//! The job queue: apalis with its PostgreSQL backend, plus what it lacks
//! (retry backoff, an attempt cap for jobs that kill their worker, supervision,
//! timeouts, graceful shutdown, cancellation). A job is a `jobs` row for people
//! and an `apalis.jobs` task for workers, always created in one transaction.

pub mod ledger;
pub mod worker;

use apalis::prelude::{TaskBuilder, TaskId};
use sqlx::PgPool;
use ulid::Ulid;
use uuid::Uuid;

use crate::{
    db::{self, jobs::NewJob},
    jobs::{JobSpec, QueuedJob},
};

/// The queue every job goes to unless configured otherwise.
pub const DEFAULT_QUEUE: &str = "buybuddy";

/// A job to create.
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub spec: JobSpec,
    /// Attempts before the job fails for good; the kind's default when unset.
    pub max_attempts: Option<u32>,
    pub barcode: Option<String>,
    pub video_url: Option<String>,
    pub video_id: Option<i32>,
}

impl From<JobSpec> for Enqueue {
    fn from(spec: JobSpec) -> Self {
        Self {
            spec,
            max_attempts: None,
            barcode: None,
            video_url: None,
            video_id: None,
        }
    }
}

/// Creates jobs and their queue tasks in one transaction; returns the job ids
/// in the order given.
pub async fn enqueue(pool: &PgPool, queue: &str, jobs: Vec<Enqueue>) -> anyhow::Result<Vec<Uuid>> {
    let mut tx = pool.begin().await?;
    let ids = enqueue_in(&mut tx, queue, jobs).await?;
    tx.commit().await?;
    Ok(ids)
}

/// Creates jobs and their queue tasks inside the caller's transaction.
pub async fn enqueue_in(
    tx: &mut sqlx::PgConnection,
    queue: &str,
    jobs: Vec<Enqueue>,
) -> anyhow::Result<Vec<Uuid>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(jobs.len());
    let mut tasks = Vec::with_capacity(jobs.len());
    for job in jobs {
        let id = Uuid::now_v7();
        let task_id = Ulid::generate();
        let max_attempts = job
            .max_attempts
            .unwrap_or_else(|| job.spec.default_max_attempts())
            .max(1);
        let payload = serde_json::to_value(&job.spec)?;
        // A video job's barcode and video are the job's too, for lists and searches.
        let (barcode, video_url, video_id) = match &job.spec {
            JobSpec::Video(video) => (
                Some(video.barcode.clone()),
                Some(video.video_url.clone()),
                video.video_id,
            ),
            _ => (job.barcode, job.video_url, job.video_id),
        };
        let args = serde_json::to_vec(&QueuedJob {
            job_id: id,
            spec: job.spec.clone(),
        })?;
        tasks.push(
            TaskBuilder::new(args)
                .task_id(TaskId::from_ulid(task_id))
                .max_attempts(max_attempts as usize)
                .build(),
        );
        rows.push(NewJob {
            id,
            kind: job.spec.kind().to_owned(),
            payload,
            barcode,
            video_url,
            video_id,
            task_id: task_id.to_string(),
            max_attempts: max_attempts as i32,
        });
    }
    let ids = rows.iter().map(|r| r.id).collect();
    db::jobs::insert_many(&mut *tx, &rows).await?;
    apalis_postgres::queries::push_tasks(&mut *tx, queue, tasks).await?;
    Ok(ids)
}
