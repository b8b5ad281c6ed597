//! The job queue: apalis with its PostgreSQL backend, plus what it lacks
//! (retry backoff, an attempt cap for jobs that kill their worker, supervision,
//! timeouts, graceful shutdown, cancellation, workers that take only some
//! kinds). A job is a `jobs` row for people and an `apalis.jobs` task for
//! workers, always created in one transaction.
//!
//! Each kind has its own lane in a queue: the apalis queue `{queue}:{kind}`.
//! apalis fetches by queue name alone, so lanes are what lets a GPU box take
//! only segmentation and training while a CPU box takes exports; a worker that
//! takes every kind serves every lane.

mod backend;
mod heartbeat;
pub mod ledger;
pub mod slots;
mod wakeups;
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

pub use db::queue::{lane, lanes_pattern};

/// A job to create.
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub spec: JobSpec,
    /// Attempts before the job fails for good; the kind's default when unset.
    pub max_attempts: Option<u32>,
}

impl From<JobSpec> for Enqueue {
    fn from(spec: JobSpec) -> Self {
        Self {
            spec,
            max_attempts: None,
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
    // Tasks by lane, in the order given within each lane.
    let mut lanes: Vec<(&'static str, Vec<_>)> = Vec::new();
    for job in jobs {
        let id = Uuid::now_v7();
        let task_id = Ulid::generate();
        let max_attempts = job
            .max_attempts
            .unwrap_or_else(|| job.spec.default_max_attempts())
            .max(1);
        let payload = serde_json::to_value(&job.spec)?;
        let summary = job.spec.summary();
        let kind = job.spec.kind();
        let args = serde_json::to_vec(&QueuedJob {
            job_id: id,
            spec: job.spec,
        })?;
        let task = TaskBuilder::new(args)
            .task_id(TaskId::from_ulid(task_id))
            .max_attempts(max_attempts as usize)
            .build();
        match lanes.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, tasks)) => tasks.push(task),
            None => lanes.push((kind, vec![task])),
        }
        rows.push(NewJob {
            id,
            kind: kind.to_owned(),
            payload,
            barcode: summary.barcode,
            video_url: summary.video_url,
            video_id: summary.video_id,
            task_id: task_id.to_string(),
            max_attempts: max_attempts as i32,
        });
    }
    let ids = rows.iter().map(|r| r.id).collect();
    db::jobs::insert_many(&mut *tx, &rows).await?;
    for (kind, tasks) in lanes {
        apalis_postgres::queries::push_tasks(&mut *tx, &lane(queue, kind), tasks).await?;
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_a_lane_of_its_own_in_a_queue() {
        assert_eq!(lane("buybuddy", "video"), "buybuddy:video");
        assert_eq!(lanes_pattern("gpu_box"), "gpu\\_box:%");
    }
}
