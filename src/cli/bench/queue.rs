//! `bench queue`: enqueues and drains no-op jobs with 1 and 2 worker processes
//! and measures how fast a job pushed into an idle queue is picked up.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::process::{Child, Command as Process};

use super::{Throwaway, percentile, stop};
use crate::{
    config::DbArgs,
    db,
    jobs::{JobSpec, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    #[command(flatten)]
    db: DbArgs,
    /// No-op jobs enqueued and drained per round.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker process counts, one round each.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Concurrency of each worker process.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Tasks each worker claims per fetch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Single jobs pushed into the idle queue to measure pickup latency.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
}

struct Round {
    workers: usize,
    enqueue_per_s: f64,
    drain_per_s: f64,
    drain_s: f64,
    pickup_ms: Vec<f64>,
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let scratch = Throwaway::create(&args.db).await?;
    let url = scratch.url.clone();
    let result = async {
        let pool = db::connect(&url, 4, &[]).await?;
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&pool)
            .await?;
        let mut rounds = Vec::new();
        for &workers in &args.workers {
            eprintln!("round: {workers} worker process(es), {} jobs", args.jobs);
            rounds.push(round(&pool, url.expose(), &args, workers).await?);
        }
        pool.close().await;
        Ok::<_, anyhow::Error>((version, rounds))
    }
    .await;
    scratch.drop().await?;
    let (version, rounds) = result?;

    println!(
        "\nqueue benchmark: {} no-op jobs per round, concurrency {}, batch {}, \
         PostgreSQL {version} (embedded cluster, durable), {} CPU cores",
        args.jobs,
        args.concurrency,
        args.batch_size,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>8} {:>15} {:>13} {:>9} {:>11} {:>11}",
        "workers", "enqueue jobs/s", "drain jobs/s", "drain s", "pickup p50", "pickup p99"
    );
    for r in &rounds {
        println!(
            "{:>8} {:>15.0} {:>13.0} {:>9.2} {:>8.1} ms {:>8.1} ms",
            r.workers,
            r.enqueue_per_s,
            r.drain_per_s,
            r.drain_s,
            percentile(&r.pickup_ms, 0.50),
            percentile(&r.pickup_ms, 0.99)
        );
    }
    Ok(())
}

async fn round(
    pool: &PgPool,
    url: &str,
    args: &QueueArgs,
    workers: usize,
) -> anyhow::Result<Round> {
    sqlx::raw_sql("TRUNCATE jobs, job_events, apalis.jobs, apalis.workers CASCADE")
        .execute(pool)
        .await?;

    let enqueue_started = Instant::now();
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(5_000) {
        let jobs = chunk
            .iter()
            .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
            .collect();
        queue::enqueue(pool, DEFAULT_QUEUE, jobs).await?;
    }
    let enqueue_s = enqueue_started.elapsed().as_secs_f64();

    let mut children = (0..workers)
        .map(|_| spawn_worker(url, args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let drained = wait_until_completed(pool, args.jobs as i64, Duration::from_secs(600)).await;
    let drain_s: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8 FROM jobs",
    )
    .fetch_one(pool)
    .await?;

    let mut pickup_ms = Vec::new();
    if drained.is_ok() {
        for _ in 0..args.latency_samples {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let ids = queue::enqueue(
                pool,
                DEFAULT_QUEUE,
                vec![Enqueue::from(JobSpec::Noop(Noop {}))],
            )
            .await?;
            let committed = Utc::now();
            let started = wait_for_start(pool, ids[0]).await?;
            pickup_ms.push((started - committed).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    for child in &mut children {
        stop(child).await;
    }
    drained?;
    Ok(Round {
        workers,
        enqueue_per_s: args.jobs as f64 / enqueue_s,
        drain_per_s: args.jobs as f64 / drain_s,
        drain_s,
        pickup_ms,
    })
}

fn spawn_worker(url: &str, args: &QueueArgs) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding this binary")?;
    Process::new(exe)
        .args(["worker", "--poll-interval", "100ms"])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting a worker process")
}

async fn wait_until_completed(pool: &PgPool, expected: i64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'completed'")
            .fetch_one(pool)
            .await?;
        if done >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {expected} jobs completed in {limit:?}");
        }
        // Rarely: this process shares the machine with what it measures.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_start(pool: &PgPool, id: uuid::Uuid) -> anyhow::Result<DateTime<Utc>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT started_at FROM jobs WHERE id = $1 AND status = 'completed'",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .flatten();
        if let Some(started) = started {
            return Ok(started);
        }
        if Instant::now() > deadline {
            bail!("job {id} was not picked up within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
