//! A worker process: an apalis worker on the PostgreSQL queue, kept alive by a
//! supervisor, that runs each job with its kind's timeout and records every
//! attempt through the ledger.
//!
//! What apalis-postgres leaves to us, and where it is handled:
//! - polling: an interval strategy next to its LISTEN/NOTIFY wake-up (`backend`);
//! - backoff between attempts: `buybuddy_retry_delay` in the database, applied when
//!   the ledger records a failed attempt and when a dead worker's task is re-queued;
//! - the attempt cap for tasks whose worker died: the `buybuddy_requeue` trigger;
//! - a database error ends an apalis worker: `run` restarts it with backoff;
//! - apalis heart-beats only between fetches, so a worker whose claimed tasks wait
//!   behind long jobs would go silent and count as dead: `heartbeat` beats for every
//!   live worker of the process on its own schedule, and re-queues dead workers' tasks;
//! - the dead-worker window: `dead_worker_after` (heartbeats every third of it);
//! - hung handlers: a per-kind timeout around every attempt;
//! - shutdown: in-flight jobs get a grace period, then go back to the queue.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::prelude::{
    Attempt, BoxDynError, Data, Event, FromRequest, PollWith, Strategy, Task, TaskId,
    WorkerBuilder, WorkerBuilderExt, WorkerContext,
};
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use buybuddy_worker::retry::Backoff;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use rand::RngExt;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::ledger::Ledger;
use crate::{
    config::format_duration,
    db::{
        self,
        jobs::{Ending, Finished, Started},
    },
    jobs::{JobContext, JobError, QueuedJob, context::WorkerSettings},
};

/// How a worker process behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The apalis queue to consume.
    pub queue: String,
    /// Prefix of this process's worker names (the host name by default).
    pub name: String,
    /// Jobs run at the same time.
    pub concurrency: usize,
    /// Tasks claimed per fetch.
    pub batch_size: usize,
    /// How often an idle worker looks for work without being woken by a NOTIFY.
    pub poll_interval: Duration,
    /// Silence after which a worker counts as dead and its tasks are re-queued
    /// (at least 1 s; apalis counts it in whole seconds).
    pub dead_worker_after: Duration,
    /// How long in-flight jobs may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Per-kind attempt timeouts overriding the kinds' own.
    pub timeouts: HashMap<String, Duration>,
    pub settings: WorkerSettings,
}

/// The settings that carry a retry backoff to PostgreSQL: workers set them on
/// their connections, and `buybuddy_retry_delay` reads them.
pub fn backoff_settings(backoff: &Backoff) -> Vec<(&'static str, String)> {
    vec![
        (
            "buybuddy.retry_base_ms",
            backoff.base.as_millis().to_string(),
        ),
        ("buybuddy.retry_max_ms", backoff.max.as_millis().to_string()),
        ("buybuddy.retry_jitter", backoff.jitter.to_string()),
    ]
}

/// What every attempt of this process shares.
struct Runtime {
    pool: PgPool,
    ledger: Ledger,
    timeouts: HashMap<String, Duration>,
    settings: Arc<WorkerSettings>,
}

/// The attempt limit of the task being run, read from the queue row.
struct TaskLimits {
    max_attempts: u32,
}

impl FromRequest<Task<Value>> for TaskLimits {
    type Error = std::convert::Infallible;

    async fn from_request(task: &Task<Value>) -> Result<Self, Self::Error> {
        Ok(Self {
            max_attempts: task.max_attempts().unwrap_or(1) as u32,
        })
    }
}

/// Runs workers until `shutdown` fires, restarting them when they fail.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime {
        pool: pool.clone(),
        ledger: Ledger::spawn(&pool),
        timeouts: config.timeouts.clone(),
        settings: Arc::new(config.settings.clone()),
    });
    let base_name = format!(
        "{}-{}-{:04x}",
        config.name,
        std::process::id(),
        rand::rng().random::<u16>()
    );
    let mut names = Vec::new();
    let live = Arc::new(Mutex::new(Vec::<String>::new()));
    let beating = CancellationToken::new();
    let _stop_beating = beating.clone().drop_guard();
    tokio::spawn(heartbeat(
        pool.clone(),
        config.queue.clone(),
        live.clone(),
        heartbeat_interval(config.dead_worker_after),
        config.dead_worker_after,
        beating,
    ));
    let restarts = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut failures = 0;
    for generation in 0.. {
        let name = format!("{base_name}-{generation}");
        names.push(name.clone());
        live.lock().expect("not poisoned").push(name.clone());
        let ctx = WorkerContext::new(&name);
        let started = Instant::now();
        let ended = drive(&config, &pool, runtime.clone(), &ctx, &shutdown, &names).await;
        live.lock().expect("not poisoned").retain(|n| *n != name);
        match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Failed(error) => {
                // A worker that ran well for a while starts its backoff afresh.
                failures = if started.elapsed() > Duration::from_secs(60) {
                    1
                } else {
                    failures + 1
                };
                let wait = restarts.delay(failures);
                tracing::error!(
                    worker = %name,
                    error = %error,
                    "worker stopped; restarting in {}",
                    format_duration(wait)
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
    unreachable!("the generations never run out")
}

enum Ended {
    Shutdown,
    Failed(String),
}

/// Runs one apalis worker until it fails or a shutdown completes.
async fn drive(
    config: &WorkerConfig,
    pool: &PgPool,
    runtime: Arc<Runtime>,
    ctx: &WorkerContext,
    shutdown: &CancellationToken,
    names: &[String],
) -> Ended {
    if let Err(error) = db::workers::register(pool, &config.queue, ctx.name()).await {
        return Ended::Failed(format!("registering the worker: {error}"));
    }
    let heartbeat = heartbeat_interval(config.dead_worker_after);
    let storage = PostgresStorage::<Value>::new(pool).with_config(
        Config::default()
            .queue(&config.queue)
            .batch_size(config.batch_size.max(1))
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(3)
            // Attempts are acknowledged by the ledger, together with the job row.
            .lock_tasks(false)
            .persist_results(false),
    );
    let wake_up = Strategy::new()
        .stream(Pubsub::new(pool.clone(), config.queue.clone()))
        .interval(config.poll_interval);
    let backend = PollWith::new(storage, wake_up);
    let worker = WorkerBuilder::new(ctx)
        .backend(backend)
        .concurrency(config.concurrency.max(1))
        .data(runtime)
        .build(handle);
    let mut events = std::pin::pin!(worker.stream());

    let mut failure: Option<String> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => {
                    return match (deadline, failure) {
                        (Some(_), _) => Ended::Shutdown,
                        (None, Some(error)) => Ended::Failed(error),
                        (None, None) => Ended::Failed("the worker ended on its own".into()),
                    };
                }
                Some(Ok(Event::Start)) => {
                    tracing::info!(worker = ctx.name(), queue = %config.queue, "worker started");
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    // Stop taking work; in-flight jobs finish, then the stream ends.
                    failure.get_or_insert_with(|| error.to_string());
                    let _ = ctx.stop();
                }
            },
            _ = shutdown.cancelled(), if deadline.is_none() => {
                tracing::info!(
                    worker = ctx.name(),
                    grace = %format_duration(config.shutdown_grace),
                    "shutting down: finishing in-flight jobs"
                );
                deadline = Some(tokio::time::Instant::now() + config.shutdown_grace);
                let _ = ctx.stop();
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() =>
            {
                match db::jobs::return_to_queue(pool, names).await {
                    Ok(count) => tracing::warn!(
                        worker = ctx.name(),
                        returned = count,
                        "grace period over: unfinished jobs went back to the queue"
                    ),
                    Err(error) => tracing::error!(
                        worker = ctx.name(),
                        error = %error,
                        "grace period over, and returning unfinished jobs failed; \
                         they are re-queued once this worker counts as dead"
                    ),
                }
                return Ended::Shutdown;
            }
        }
    }
}

/// A third of the dead-worker window. apalis counts the window in whole seconds
/// (heartbeat x 3 missed heartbeats): rounding up keeps it from shrinking below
/// what was asked.
fn heartbeat_interval(dead_worker_after: Duration) -> Duration {
    let window_ms = dead_worker_after.as_millis().max(1_000) as u64;
    Duration::from_millis(window_ms.div_ceil(3))
}

/// Beats for every live worker of this process and re-queues the tasks of workers
/// of the queue that went silent for longer than the window.
async fn heartbeat(
    pool: PgPool,
    queue: String,
    live: Arc<Mutex<Vec<String>>>,
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
        let names = live.lock().expect("not poisoned").clone();
        if names.is_empty() {
            continue;
        }
        let beat = async {
            let mut tx = pool.begin().await?;
            db::workers::keep_alive(&mut *tx, &queue, &names).await?;
            apalis_postgres::queries::reenqueue_orphaned(&mut *tx, &queue, window.as_secs())
                .await?;
            tx.commit().await?;
            Ok::<_, anyhow::Error>(())
        };
        if let Err(error) = beat.await {
            tracing::warn!(error = %error, "worker heartbeat failed");
        }
    }
}

/// The apalis handler: runs one attempt and records how it ended.
async fn handle(
    args: Value,
    task_id: TaskId,
    attempt: Attempt,
    limits: TaskLimits,
    worker: WorkerContext,
    runtime: Data<Arc<Runtime>>,
) -> Result<(), BoxDynError> {
    let task_id = task_id.to_string();
    let attempt = attempt.current() as u32;
    let started_at = Utc::now();
    runtime.ledger.started(Started {
        task_id: task_id.clone(),
        attempt: attempt as i32,
        worker: worker.name().to_owned(),
        at: started_at,
        finishing: false,
    });

    let (ending, output, error) = runtime.attempt(args, attempt, limits.max_attempts).await;
    if let Some(error) = &error {
        tracing::warn!(task.id = %task_id, attempt, ?ending, "job attempt failed: {error}");
    }
    let recorded = runtime
        .ledger
        .finished(Finished {
            task_id: task_id.clone(),
            worker: worker.name().to_owned(),
            attempt: attempt as i32,
            ending,
            error,
            output,
            started_at,
            at: Utc::now(),
            with_start: false,
        })
        .await?;
    if !recorded {
        tracing::warn!(
            task.id = %task_id,
            worker = worker.name(),
            "the queue gave this job to another worker meanwhile; this attempt's result is dropped"
        );
    }
    Ok(())
}

impl Runtime {
    /// Runs one attempt of a queued job, within its timeout, and says how it ended.
    async fn attempt(
        &self,
        args: Value,
        attempt: u32,
        max_attempts: u32,
    ) -> (Ending, Value, Option<String>) {
        let retry_or_fail = |error: String| {
            let ending = if attempt < max_attempts {
                Ending::Retry
            } else {
                Ending::Failed
            };
            (ending, Value::Null, Some(error))
        };
        let job: QueuedJob = match serde_json::from_value(args) {
            Ok(job) => job,
            Err(e) => {
                return (
                    Ending::Failed,
                    Value::Null,
                    Some(format!(
                        "this worker cannot read the job ({e}); is the worker older than what queued it?"
                    )),
                );
            }
        };
        let timeout = self
            .timeouts
            .get(job.spec.kind())
            .copied()
            .unwrap_or_else(|| job.spec.timeout());
        let ctx = JobContext::new(
            self.pool.clone(),
            job.job_id,
            attempt,
            max_attempts,
            self.settings.clone(),
        );
        let run = AssertUnwindSafe(job.spec.run(&ctx)).catch_unwind();
        match tokio::time::timeout(timeout, run).await {
            Err(_) => retry_or_fail(format!("timed out after {}", format_duration(timeout))),
            Ok(Err(panic)) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                retry_or_fail(format!("the job crashed: {message}"))
            }
            Ok(Ok(Ok(output))) => (Ending::Completed, output, None),
            Ok(Ok(Err(JobError::Cancelled))) => (Ending::Cancelled, Value::Null, None),
            Ok(Ok(Err(JobError::Permanent(e)))) => {
                (Ending::Failed, Value::Null, Some(format!("{e:#}")))
            }
            Ok(Ok(Err(JobError::Transient(e)))) => retry_or_fail(format!("{e:#}")),
        }
    }
}
