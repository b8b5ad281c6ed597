//! Heartbeats for every live apalis worker of a process, on their own
//! schedule: apalis beats only between fetches, so a worker whose claimed
//! tasks wait behind long jobs would go silent and count as dead. The same
//! beat re-queues the tasks of workers of its lanes that did go silent.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::worker::Lane;
use crate::db;

/// A third of the dead-worker window. apalis counts the window in whole seconds
/// (heartbeat x 3 missed heartbeats): rounding up keeps it from shrinking below
/// what was asked.
pub(super) fn heartbeat_interval(dead_worker_after: Duration) -> Duration {
    let window_ms = dead_worker_after.as_millis().max(1_000) as u64;
    Duration::from_millis(window_ms.div_ceil(3))
}

/// Beats for every live worker of this process and re-queues the tasks of workers
/// of its lanes that went silent for longer than the window. `pool` is the
/// heartbeat's own: a process whose lanes hold every connection of the main pool
/// (polling a slow database) must still be seen alive.
pub(super) async fn heartbeat(
    pool: PgPool,
    live: Arc<Mutex<Vec<Lane>>>,
    interval: Duration,
    window: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let lanes = live.lock().expect("not poisoned").clone();
        if lanes.is_empty() {
            continue;
        }
        // Liveness is committed before the sweep for dead workers, which may
        // wait on the jobs table: this process's beat is never held back by it.
        let beat = async {
            let mut conn = pool.acquire().await?;
            let mut queues: Vec<String> = lanes.iter().map(|l| l.queue.clone()).collect();
            queues.dedup();
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            for queue in &queues {
                let names: Vec<String> = lanes
                    .iter()
                    .filter(|l| l.queue == *queue)
                    .map(|l| l.name.clone())
                    .collect();
                db::workers::keep_alive(&mut *tx, queue, &names).await?;
            }
            tx.commit().await?;
            // Whole seconds, as apalis counts the window.
            let requeued =
                db::workers::requeue_orphans(&mut *conn, &queues, window.as_secs() as f64).await?;
            if requeued > 0 {
                tracing::info!(requeued, "tasks of silent workers went back to the queue");
            }
            Ok::<_, anyhow::Error>(())
        };
        if let Err(error) = beat.await {
            tracing::warn!(error = %error, "worker heartbeat failed");
        }
    }
}
