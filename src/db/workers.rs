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

/// Registers a worker with the current time. apalis registers workers itself,
/// but with `last_seen` truncated to the second, which can make a worker that just
/// started look up to a second stale; its registration then only refreshes this row.
pub async fn register(db: impl PgExecutor<'_>, queue: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ($1, $2, 'PgStorage', '', now())
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
        name,
        queue
    )
    .execute(db)
    .await?;
    Ok(())
}
