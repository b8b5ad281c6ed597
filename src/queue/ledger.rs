//! Writes attempt starts and ends in batches. Every running attempt reports its
//! start (without waiting) and its end (waiting until it is durable); whatever
//! arrives while one batch is being written goes into the next, so a busy worker
//! pays one round trip for many jobs and an idle one writes at once.
//!
//! Two writers share the work, each with its own batches: while one waits on
//! its statement, the other's runs. A task always goes to the same writer, so
//! its start is written before its end, and the two never write the same rows
//! (no lock waits or deadlocks between them).

use std::{collections::HashSet, time::Duration};

use buybuddy_worker::retry::Backoff;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::db::{
    self,
    attempts::{self, Finished, Started},
};

/// Most transitions written in one statement.
const MAX_BATCH: usize = 4096;

/// Batches written at the same time. With one writer, nothing is written while
/// its batch's statement travels and the next batch waits behind it. Draining
/// 20,000 no-op jobs on two cores, two writers were faster than one in each pair
/// of runs measured (20,000 against 14,400 jobs/s, 13,100 against 10,500); three
/// and four were no faster than two.
const WRITERS: usize = 2;

enum Entry {
    Started(Started),
    Finished(Finished, oneshot::Sender<bool>),
}

/// The handle workers use; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    writers: Vec<mpsc::UnboundedSender<Entry>>,
}

/// The ledger's writer stopped (its task ended), so nothing more can be recorded.
#[derive(Debug, thiserror::Error)]
#[error("the job ledger has stopped")]
pub struct Stopped;

impl Ledger {
    /// Starts the writer task on connections of its own. It runs until every
    /// handle is dropped and all entries are written.
    pub fn spawn(pool: &PgPool) -> Self {
        // The batch statement's estimates never depend on its (array) parameters:
        // a generic plan spares planning it again for every batch.
        let own = db::side_pool(
            pool,
            WRITERS as u32,
            &[("plan_cache_mode", "force_generic_plan")],
        );
        let writers = (0..WRITERS)
            .map(|_| {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(write_batches(own.clone(), receiver));
                sender
            })
            .collect();
        Self { writers }
    }

    /// The writer that records everything about one task.
    fn writer(&self, task_id: &str) -> &mpsc::UnboundedSender<Entry> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(task_id, &mut hasher);
        let index = std::hash::Hasher::finish(&hasher) as usize % self.writers.len();
        &self.writers[index]
    }

    /// Records that an attempt started; returns at once.
    pub fn started(&self, started: Started) {
        let _ = self.writer(&started.task_id).send(Entry::Started(started));
    }

    /// Records how an attempt ended and waits until that is durable. `Ok(false)`
    /// means the worker no longer held the task (the queue gave it to another
    /// worker meanwhile), so this end was not recorded.
    pub async fn finished(&self, finished: Finished) -> Result<bool, Stopped> {
        let (reply, recorded) = oneshot::channel();
        self.writer(&finished.task_id)
            .send(Entry::Finished(finished, reply))
            .map_err(|_| Stopped)?;
        recorded.await.map_err(|_| Stopped)
    }
}

async fn write_batches(pool: PgPool, mut receiver: mpsc::UnboundedReceiver<Entry>) {
    let mut entries = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut entries, MAX_BATCH).await > 0 {
        let mut started = Vec::new();
        let mut finished = Vec::new();
        let mut replies = Vec::new();
        for entry in entries.drain(..) {
            match entry {
                Entry::Started(s) => started.push(s),
                Entry::Finished(f, reply) => {
                    replies.push((f.task_id.clone(), reply));
                    finished.push(f);
                }
            }
        }
        // An attempt that starts and ends within one batch is written once: its
        // start goes with its end.
        let ending: HashSet<&str> = finished.iter().map(|f| f.task_id.as_str()).collect();
        let (joined, started): (Vec<Started>, Vec<Started>) = started
            .into_iter()
            .partition(|s| ending.contains(s.task_id.as_str()));
        let joined: HashSet<String> = joined.into_iter().map(|s| s.task_id).collect();
        for f in &mut finished {
            f.with_start = joined.contains(&f.task_id);
        }

        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut failures = 0;
        let recorded: HashSet<String> = loop {
            match attempts::record_attempts(&pool, &started, &finished).await {
                Ok(recorded) => break recorded.into_iter().collect(),
                Err(error) => {
                    failures += 1;
                    let delay = backoff.delay(failures);
                    tracing::warn!(
                        error = %error,
                        entries = started.len() + finished.len(),
                        retry_in = ?delay,
                        "writing job results failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        };
        for (task_id, reply) in replies {
            let _ = reply.send(recorded.contains(&task_id));
        }
    }
}
