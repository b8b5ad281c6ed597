//! A worker process: an apalis worker on the PostgreSQL queue, kept alive by a
//! supervisor, that runs each job with its kind's timeout and records every
//! attempt through the ledger.
//!
//! What apalis-postgres leaves to us, and where it is handled:
//! - when to fetch, and finishing a fetch whatever the slots say: the lane's own
//!   backend (`backend`), woken by LISTEN/NOTIFY (`wakeups`) and its poll interval;
//! - backoff between attempts: `buybuddy_retry_delay` in the database, applied when
//!   the ledger records a failed attempt and when a dead worker's task is re-queued;
//! - the attempt cap for tasks whose worker died: the `buybuddy_requeue` trigger;
//! - a database error ends an apalis worker: `run` restarts it with backoff;
//! - apalis heart-beats only between fetches, so a worker whose claimed tasks wait
//!   behind long jobs would go silent and count as dead: `heartbeat` beats for every
//!   live worker of the process on its own schedule and connection, and re-queues
//!   dead workers' tasks;
//! - the dead-worker window: `dead_worker_after` (heartbeats every third of it);
//! - hung handlers: a per-kind timeout around every attempt;
//! - shutdown: in-flight jobs get a grace period, then go back to the queue;
//! - kinds: apalis fetches by queue name, so each kind has a lane (`queue::lane`);
//!   a worker runs one apalis worker per lane it takes, and slots shared by all
//!   of them keep the process at its concurrency: a lane fetches only while a
//!   slot is free (`slots`).
//!
//! Longer than most files: supervision, the apalis worker of a lane and the
//! attempt handler are one worker's life, and read best in one place.

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::prelude::{
    Attempt, BoxDynError, Data, Event, FromRequest, Task, TaskId, WorkerBuilder, WorkerContext,
};
use apalis_postgres::Config;
use buybuddy_worker::retry::Backoff;
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use rand::RngExt;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{
    backend::LaneBackend,
    heartbeat::{heartbeat, heartbeat_interval},
    lane,
    ledger::Ledger,
    slots::Slots,
    wakeups::WakeUps,
};
use crate::{
    config::format_duration,
    db::{
        self,
        attempts::{Ending, Finished, Started},
    },
    jobs::{JobContext, JobError, KINDS, QueuedJob, Resources},
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
    /// The kinds this worker takes; every kind when empty. Jobs of other kinds
    /// wait for a worker that takes them.
    pub kinds: Vec<&'static str>,
    /// What the jobs run on: storage, clients, models.
    pub resources: Arc<Resources>,
}

impl WorkerConfig {
    /// The kinds taken, in a stable order.
    pub fn taken_kinds(&self) -> Vec<&'static str> {
        if self.kinds.is_empty() {
            KINDS.to_vec()
        } else {
            KINDS
                .iter()
                .copied()
                .filter(|k| self.kinds.contains(k))
                .collect()
        }
    }
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
    resources: Arc<Resources>,
    /// The queue this process serves: where jobs queue their follow-ups.
    queue: String,
    /// Fires when the process is asked to stop.
    stopping: CancellationToken,
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

/// Runs one supervised apalis worker per lane taken until `shutdown` fires,
/// restarting each when it fails.
pub async fn run(
    config: WorkerConfig,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime {
        pool: pool.clone(),
        ledger: Ledger::spawn(&pool),
        timeouts: config.timeouts.clone(),
        resources: config.resources.clone(),
        queue: config.queue.clone(),
        stopping: shutdown.clone(),
    });
    let listening = CancellationToken::new();
    let _stop_listening = listening.clone().drop_guard();
    let process = Process {
        base_name: format!(
            "{}-{}-{:04x}",
            config.name,
            std::process::id(),
            rand::rng().random::<u16>()
        ),
        live: Arc::new(Mutex::new(Vec::new())),
        // One slot per job this process may run at once, whatever its lane.
        slots: Slots::new(config.concurrency),
        wake_ups: WakeUps::listen(pool.clone(), listening.clone()),
    };
    let beating = CancellationToken::new();
    let _stop_beating = beating.clone().drop_guard();
    tokio::spawn(heartbeat(
        db::side_pool(&pool, 1, &[]),
        process.live.clone(),
        heartbeat_interval(config.dead_worker_after),
        config.dead_worker_after,
        beating,
    ));
    let kinds = config.taken_kinds();
    tracing::info!(
        worker = %process.base_name,
        queue = %config.queue,
        kinds = %kinds.join(","),
        "worker starting its lanes"
    );
    let lanes = kinds
        .iter()
        .map(|kind| supervise(&config, &pool, runtime.clone(), &process, kind, &shutdown));
    futures::future::join_all(lanes).await;
    Ok(())
}

/// What the lanes of one worker process share.
struct Process {
    base_name: String,
    /// The apalis workers alive now, for the heartbeat.
    live: Arc<Mutex<Vec<Lane>>>,
    slots: Slots,
    /// One LISTEN connection that wakes whichever lane a new task is for.
    wake_ups: WakeUps,
}

/// Runs one lane's apalis worker until shutdown, restarting it with backoff
/// when it fails (a database error ends an apalis worker).
async fn supervise(
    config: &WorkerConfig,
    pool: &PgPool,
    runtime: Arc<Runtime>,
    process: &Process,
    kind: &str,
    shutdown: &CancellationToken,
) {
    let restarts = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut failures = 0;
    let mut names = Vec::new();
    for generation in 0.. {
        let lane = Lane {
            queue: lane(&config.queue, kind),
            name: format!("{}-{generation}-{kind}", process.base_name),
        };
        names.push(lane.name.clone());
        process
            .live
            .lock()
            .expect("not poisoned")
            .push(lane.clone());
        let started = Instant::now();
        let ended = drive(
            config,
            pool,
            runtime.clone(),
            &lane,
            process,
            shutdown,
            &names,
        )
        .await;
        process
            .live
            .lock()
            .expect("not poisoned")
            .retain(|l| *l != lane);
        match ended {
            Ended::Shutdown => return,
            Ended::Failed(error) => {
                // A worker that ran well for a while starts its backoff afresh.
                failures = if started.elapsed() > Duration::from_secs(60) {
                    1
                } else {
                    failures + 1
                };
                let wait = restarts.delay(failures);
                tracing::error!(
                    worker = %lane.name,
                    error = %error,
                    "worker stopped; restarting in {}",
                    format_duration(wait)
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
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

/// One apalis worker of this process: the lane it serves and its unique name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lane {
    pub queue: String,
    pub name: String,
}

/// Runs one lane's apalis worker until it fails or a shutdown completes.
async fn drive(
    config: &WorkerConfig,
    pool: &PgPool,
    runtime: Arc<Runtime>,
    lane: &Lane,
    process: &Process,
    shutdown: &CancellationToken,
    names: &[String],
) -> Ended {
    if shutdown.is_cancelled() {
        return Ended::Shutdown;
    }
    if let Err(error) = db::workers::register(pool, &lane.queue, &lane.name).await {
        return Ended::Failed(format!("registering the worker: {error}"));
    }
    let heartbeat = heartbeat_interval(config.dead_worker_after);
    let ctx = WorkerContext::new(&lane.name);
    let backend = LaneBackend::new(
        pool,
        Config::default()
            .queue(&lane.queue)
            .batch_size(config.batch_size.max(1))
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(3)
            // Attempts are acknowledged by the ledger, together with the job row.
            .lock_tasks(false)
            .persist_results(false),
        Box::pin(process.wake_ups.subscribe(&lane.queue)),
        config.poll_interval,
    );
    let worker = WorkerBuilder::new(&ctx)
        .backend(backend)
        .layer(process.slots.clone())
        .data(runtime)
        .build(handle);
    let mut events = std::pin::pin!(worker.stream());

    let mut failure: Option<String> = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    // apalis refuses to stop a worker it has not started yet (and panics when a
    // closing worker is stopped twice): a stop asked for before the start is
    // made when the start is seen.
    let mut stop_wanted = false;
    let mut stopped = false;
    let stop = |stopped: &mut bool| {
        if !*stopped {
            *stopped = ctx.stop().is_ok();
        }
    };
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
                    tracing::info!(worker = ctx.name(), queue = %lane.queue, "worker started");
                    if stop_wanted {
                        stop(&mut stopped);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    // Stop taking work; in-flight jobs finish, then the stream ends.
                    failure.get_or_insert_with(|| error.to_string());
                    stop_wanted = true;
                    stop(&mut stopped);
                }
            },
            _ = shutdown.cancelled(), if deadline.is_none() => {
                tracing::info!(
                    worker = ctx.name(),
                    grace = %format_duration(config.shutdown_grace),
                    "shutting down: finishing in-flight jobs"
                );
                deadline = Some(tokio::time::Instant::now() + config.shutdown_grace);
                stop_wanted = true;
                stop(&mut stopped);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)),
                if deadline.is_some() =>
            {
                match db::attempts::return_to_queue(pool, names).await {
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
            self.resources.clone(),
        )
        .on_queue(&self.queue)
        .stopping_with(self.stopping.clone());
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
