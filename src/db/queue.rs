//! The queue's own tables (`apalis.jobs`, `apalis.workers`): how a queue's
//! lanes are named there, and queries across all lanes of one queue.
//!
//! Each kind has its own lane in a queue: the apalis queue `{queue}:{kind}`.
//! apalis fetches by queue name alone, so lanes are what lets a worker take
//! only some kinds (see `crate::queue`).

use sqlx::PgExecutor;

/// The apalis queue that holds one kind's tasks of `queue`.
pub fn lane(queue: &str, kind: &str) -> String {
    format!("{queue}:{kind}")
}

/// The SQL `LIKE` pattern matching every lane of `queue`.
pub fn lanes_pattern(queue: &str) -> String {
    format!("{}:%", super::jobs::escape_like(queue))
}

/// How one queue stands: tasks waiting, tasks claimed, live worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Figures {
    pub waiting: i64,
    pub claimed: i64,
    /// Worker processes seen in the last 2 minutes: one process serves many
    /// lanes, each with its own apalis worker named `{process}-{generation}-{kind}`.
    pub workers: i64,
}

pub async fn figures(db: impl PgExecutor<'_>, queue: &str) -> sqlx::Result<Figures> {
    sqlx::query_as::<_, Figures>(
        r"SELECT (SELECT count(*) FROM apalis.jobs WHERE job_type LIKE $1 AND status = 'Pending') AS waiting,
                 (SELECT count(*) FROM apalis.jobs WHERE job_type LIKE $1 AND status IN ('Queued', 'Running')) AS claimed,
                 (SELECT count(DISTINCT regexp_replace(id, '-[0-9]+-[^-]+$', '')) FROM apalis.workers
                   WHERE worker_type LIKE $1 AND last_seen > now() - interval '2 minutes') AS workers",
    )
    .bind(lanes_pattern(queue))
    .fetch_one(db)
    .await
}

/// Removes a queue's tasks and workers (a private queue that has served its purpose).
pub async fn remove(db: &sqlx::PgPool, queue: &str) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type LIKE $1")
        .bind(lanes_pattern(queue))
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM apalis.workers WHERE worker_type LIKE $1")
        .bind(lanes_pattern(queue))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
