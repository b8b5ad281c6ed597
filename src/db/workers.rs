//! Queries on the queue's worker registry (`apalis.workers`).

use sqlx::PgExecutor;

/// Marks the named workers of a queue as alive now; returns how many were found.
pub async fn keep_alive(
    db: impl PgExecutor<'_>,
    queue: &str,
    names: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE apalis.workers SET last_seen = now() WHERE id = ANY($1) AND worker_type = $2",
        names,
        queue
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
