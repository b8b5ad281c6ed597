//! A lane's backend: apalis's persistence loop over the apalis-postgres queries,
//! with its own rules for when to fetch and for a fetch in flight.
//!
//! When: a lane fetches when a task was pushed to its queue (a notification),
//! when its poll interval has passed since its last look (tasks whose retry
//! delay ran out wake no one), and right after a fetch that found tasks (more
//! may wait). Any other wake-up of the lane's task (apalis wakes lanes for many
//! reasons) is not a reason to ask the database again: without this rule every
//! idle process sent thousands of empty fetches a second.
//!
//! In flight: apalis asks for the next task only while the lane's service is
//! ready (a slot is free), and drove a fetch only from that request. A fetch whose
//! answer came after another lane took the last slot was left unpolled until a
//! slot freed, holding a connection of the pool (inside its transaction) for as
//! long as the running job took; enough of them and the running job could not get
//! a connection for its own writes. Here a fetch in flight is finished whenever
//! apalis checks readiness, which it does on every wake-up before it looks at the
//! slots; a new fetch still starts only when a slot is free.
//!
//! The rest: a fetch is the one claim statement (`db::queue::claim`, which
//! updates the chosen tasks where they lie, where apalis's `get_jobs` scanned
//! the queue), without a transaction around it; liveness and the re-queueing of
//! dead workers' tasks belong to the process's heartbeat (`heartbeat`), which
//! beats for every lane; attempts are recorded by the ledger, so apalis persists
//! no results and locks nothing.

use std::{
    collections::HashMap,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{
        Backend, BackendConfig, WireFormatBackend,
        finalize::Durable,
        persistence::{Persisted, Persistence, State, TaskEvent, TaskPersistLayer},
    },
    task::{
        builder::TaskBuilder,
        metadata::MetadataStore,
        status::Status,
        task_id::{TaskId, TaskIdError},
    },
    worker::context::WorkerContext,
};
use apalis_postgres::{Config, Error, PgTask, queries};
use futures::{Stream, StreamExt};
use serde_json::Value;
use sqlx::PgPool;
use tokio::time::{Instant, Sleep};
use ulid::Ulid;

use crate::db;

/// What the persistence loop asks of the database for one lane.
#[derive(Clone)]
struct LaneQueries {
    pool: PgPool,
    config: Config,
}

impl Persistence for LaneQueries {
    type Compact = Vec<u8>;
    type Response = Value;
    type Error = Error;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        db::workers::register(&self.pool, self.config.queue.as_ref(), worker.name()).await?;
        Ok(())
    }

    async fn heartbeat(&mut self, _worker: &WorkerContext) -> Result<(), Error> {
        // The process's heartbeat keeps every lane alive on its own connection.
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<PgTask>, Error> {
        let claimed = db::queue::claim(
            &self.pool,
            worker.name(),
            self.config.queue.as_ref(),
            self.config.batch_size as i64,
        )
        .await?;
        claimed
            .into_iter()
            .map(|row| task_from_claim(row, worker.name()))
            .collect()
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<PgTask>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.task_id().map(|id| id.to_string()))
            .collect();
        let mut conn = self.pool.acquire().await?;
        let count = queries::reenqueue_abandoned(
            &mut *conn,
            self.config.queue.as_ref(),
            worker.name(),
            &ids,
        )
        .await?;
        if count as usize != tasks.len() {
            return Err(Error::ReenqueueMismatch {
                queued: tasks.len(),
                abandoned: count as usize,
            });
        }
        Ok(count)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        _worker: &WorkerContext,
    ) -> Result<(), Error> {
        // The layer is built neither to lock nor to persist results, so it
        // sends nothing; the ledger records every attempt.
        if !events.is_empty() {
            tracing::debug!(count = events.len(), "task events left to the ledger");
        }
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<PgTask>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        queries::push_tasks(&mut *tx, self.config.queue.as_ref(), tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The task apalis runs, built from a claimed row as apalis builds it from its own.
fn task_from_claim(row: db::queue::ClaimedTask, worker: &str) -> Result<PgTask, Error> {
    let id = Ulid::from_string(&row.id)
        .map_err(|e| Error::TaskIdError(TaskIdError::Decode(e.to_string())))?;
    let metadata = row
        .metadata
        .map(|meta| {
            meta.into_iter()
                .filter_map(|(k, v)| Some((k, v?)))
                .collect::<HashMap<String, String>>()
        })
        .map(MetadataStore::from_map)
        .unwrap_or_default();
    let mut task = TaskBuilder::new(row.job)
        .task_id(TaskId::from_ulid(id))
        .queue(row.job_type.into())
        .status(Status::Queued)
        .attempt(row.attempts.max(0) as usize)
        .max_attempts(row.max_attempts.max(0) as usize)
        .run_at_timestamp(row.run_at.max(0) as u64)
        .lock_at(Some(row.lock_at.max(0) as u64))
        .lock_by(Some(worker.to_owned()))
        .priority(row.priority.max(0) as usize)
        .with_metadata(metadata);
    if let Some(key) = row.idempotency_key {
        task = task.idempotency_key(key);
    }
    Ok(task.build())
}

/// Yields whenever a task is pushed to the lane's queue.
pub(super) type WakeUp = Pin<Box<dyn Stream<Item = ()> + Send + Sync>>;

/// One lane's backend on the queue.
pub(super) struct LaneBackend {
    persisted: Persisted<LaneQueries>,
    config: Config,
    codec: JsonCodec,
    wake_up: WakeUp,
    poll_interval: Duration,
    /// When the lane looks again without being told.
    next_look: Pin<Box<Sleep>>,
    /// The last fetch found tasks, or the lane has not looked yet: the next
    /// request fetches without waiting for a reason.
    eager: bool,
}

impl LaneBackend {
    pub(super) fn new(
        pool: &PgPool,
        config: Config,
        wake_up: WakeUp,
        poll_interval: Duration,
    ) -> Self {
        Self {
            persisted: Persisted::new(LaneQueries {
                pool: pool.clone(),
                config: config.clone(),
            }),
            config,
            codec: JsonCodec::default(),
            wake_up,
            poll_interval,
            next_look: Box::pin(tokio::time::sleep(poll_interval)),
            eager: true,
        }
    }

    /// Polls a fetch in flight, if any, leaving its tasks in the buffer.
    fn finish_fetch(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let state = self.persisted.state_mut();
        let State::Fetch(fetch) = state else {
            return Ok(());
        };
        match fetch.poll_unpin(cx) {
            Poll::Pending => Ok(()),
            Poll::Ready(Ok(tasks)) if tasks.is_empty() => {
                *state = State::Ready;
                Ok(())
            }
            Poll::Ready(Ok(tasks)) => {
                *state = State::Buffered(tasks.into());
                Ok(())
            }
            Poll::Ready(Err(error)) => {
                *state = State::Dead;
                Err(error)
            }
        }
    }

    /// Whether the lane has a reason to fetch now; when it has none, the
    /// wake-ups that will give it one are registered with `cx`.
    fn reason_to_fetch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut reason = std::mem::take(&mut self.eager);
        // Every notification waiting is taken: one fetch answers them all.
        while let Poll::Ready(Some(())) = self.wake_up.poll_next_unpin(cx) {
            reason = true;
        }
        if self.next_look.as_mut().poll(cx).is_ready() {
            reason = true;
        }
        if reason {
            self.next_look
                .as_mut()
                .reset(Instant::now() + self.poll_interval);
            // Polled once so that it wakes the lane when it runs out.
            let _ = self.next_look.as_mut().poll(cx);
        }
        reason
    }
}

impl Backend for LaneBackend {
    type Task = PgTask;
    type Error = Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        if let Err(error) = self.finish_fetch(cx) {
            return Poll::Ready(Err(error));
        }
        self.persisted
            .poll_ready(cx, worker, self.config.heartbeat_interval)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<PgTask, Error>>> {
        if matches!(self.persisted.state(), State::Ready) && !self.reason_to_fetch(cx) {
            return Poll::Pending;
        }
        let next = self.persisted.poll_next(cx, worker);
        if let Poll::Ready(Some(Ok(_))) = next {
            self.eager = true;
        }
        next
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        // A fetch in flight may have claimed tasks: finished first, they are
        // handed back with the rest of the buffer.
        if let Err(error) = self.finish_fetch(cx) {
            return Poll::Ready(Err(error));
        }
        if matches!(self.persisted.state(), State::Fetch(_)) {
            return Poll::Pending;
        }
        self.persisted.poll_close(cx, worker)
    }
}

impl BackendConfig for LaneBackend {
    type Args = Value;
    type Kind = Durable;
    type Id = Ulid;
    type Config = Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &Config {
        &self.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        self.persisted
            .layer(JsonCodec::<Value>::default(), self.config.batch_size)
    }
}

impl WireFormatBackend for LaneBackend {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &self.codec
    }
}
