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

/// Puts back in the queue the tasks held by workers of the given lanes that
/// have been silent for `window_s` seconds or more, each as one more attempt
/// (the `buybuddy_requeue` trigger records it); returns how many went back.
/// What apalis's `reenqueue_orphaned` does for one lane, for all of them in one
/// statement: tasks are not indexed by holder (see the queue-claims migration),
/// so a sweep scans the queue table once, not once per lane.
pub async fn requeue_orphans(
    db: impl PgExecutor<'_>,
    queues: &[String],
    window_s: f64,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"
        WITH stale AS (
            SELECT t.id
            FROM apalis.jobs t
            JOIN apalis.workers w ON t.lock_by = w.id
            WHERE t.status IN ('Running', 'Queued')
              AND w.worker_type = ANY($1)
              AND now() - w.last_seen >= make_interval(secs => $2)
            FOR UPDATE OF t SKIP LOCKED
        )
        UPDATE apalis.jobs t
        SET status = 'Pending', done_at = NULL, lock_by = NULL, lock_at = NULL,
            attempts = t.attempts + 1,
            last_result = '{"Err": "Re-enqueued due to worker heartbeat timeout."}'
        FROM stale
        WHERE t.id = stale.id
        "#,
        queues,
        window_s
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
