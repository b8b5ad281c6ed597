//! `bench queue`: our queue beside graphile-worker, on the same cluster and
//! under the same protocol, interleaved over several runs.
//!
//! A round enqueues no-op jobs, drains them (timed from the first job's start
//! to the last one's end) and then pushes single jobs into the idle queue to
//! time how long each waits to start. Before each drain the cluster is
//! checkpointed; the drain's statements, row versions and WAL are counted from
//! `pg_stat_statements`, `pg_stat_user_tables` and the WAL position.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::process::{Child, Command as Process};

use super::{Throwaway, percentile, stop};
use crate::{
    config::{DbArgs, Secret},
    db,
    jobs::{JobSpec, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};

#[derive(clap::Args, Debug)]
pub struct QueueArgs {
    #[command(flatten)]
    db: DbArgs,
    /// No-op jobs per round; each count gets its rounds in every run.
    #[arg(long, value_delimiter = ',', default_value = "20000,100000")]
    jobs: Vec<usize>,
    /// Runs; within a run every system drains every count once, the systems
    /// taking turns to go first.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Worker process counts of our queue, one round each.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Concurrency of each of our worker processes.
    #[arg(long, default_value_t = 1000)]
    concurrency: usize,
    /// Tasks each of our workers claims per fetch.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// graphile-worker's concurrency (its docs' performance settings).
    #[arg(long, default_value_t = 50)]
    peer_concurrency: usize,
    /// graphile-worker's local queue size (its docs' performance settings).
    #[arg(long, default_value_t = 500)]
    peer_local_queue: usize,
    /// Leave graphile-worker out.
    #[arg(long)]
    no_peer: bool,
    /// Single jobs pushed into the idle queue to measure pickup latency.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
}

/// What one drain cost the database, per job.
#[derive(Debug, Clone, Copy, Default)]
struct Costs {
    /// Statements the workers sent (`pg_stat_statements`, top level).
    statements: f64,
    /// Their execution time, in microseconds.
    db_us: f64,
    /// Rows inserted, updated or deleted (`pg_stat_user_tables`).
    row_versions: f64,
    /// Updates that wrote new index entries (not HOT).
    index_updates: f64,
    /// WAL written, in bytes.
    wal_bytes: f64,
}

struct Round {
    jobs: usize,
    system: System,
    enqueue_per_s: f64,
    drain_per_s: f64,
    pickup_ms: Vec<f64>,
    costs: Option<Costs>,
}

#[derive(Debug, Clone, PartialEq)]
enum System {
    Ours { workers: usize },
    Peer,
}

impl System {
    fn label(&self, peer_version: &str) -> String {
        match self {
            System::Ours { workers: 1 } => "buybuddy, 1 process".into(),
            System::Ours { workers } => format!("buybuddy, {workers} processes"),
            System::Peer => format!("graphile-worker {peer_version}"),
        }
    }
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let peer = if args.no_peer {
        None
    } else {
        Some(Peer::install().await?)
    };
    let scratch = Throwaway::create(&args.db).await?;
    let url = scratch.url.clone();
    let result = async {
        let pool = db::connect(&url, 4, &[]).await?;
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&pool)
            .await?;
        // The extension installs anywhere; its view answers only where the
        // server loaded the library at start.
        let counting = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pool)
            .await
            .is_ok()
            && sqlx::raw_sql("SELECT 1 FROM pg_stat_statements LIMIT 1 /* bench-probe */")
                .execute(&pool)
                .await
                .is_ok();
        if !counting {
            eprintln!(
                "pg_stat_statements is not loaded in this cluster (restart it with \
                 `buybuddy db stop`): statement counts are left out"
            );
        }
        let mut systems: Vec<System> = args
            .workers
            .iter()
            .map(|&workers| System::Ours { workers })
            .collect();
        if peer.is_some() {
            systems.push(System::Peer);
        }
        let mut rounds = Vec::new();
        for run in 0..args.runs {
            // Whoever went first last time goes last.
            let mut order = systems.clone();
            order.rotate_left(run % systems.len());
            for &jobs in &args.jobs {
                for system in &order {
                    eprint!(
                        "run {}/{}, {jobs} jobs, {}: ",
                        run + 1,
                        args.runs,
                        system.label(peer.as_ref().map_or("", |p| &p.version))
                    );
                    let round = match system {
                        System::Ours { workers } => {
                            ours(&pool, &url, &args, jobs, *workers, counting).await?
                        }
                        System::Peer => {
                            let peer = peer.as_ref().expect("the peer is installed");
                            peer.round(&pool, url.expose(), &args, jobs, counting)
                                .await?
                        }
                    };
                    eprintln!(
                        "drained {:.0} jobs/s, pickup p50 {:.1} ms",
                        round.drain_per_s,
                        percentile(&round.pickup_ms, 0.5)
                    );
                    rounds.push(round);
                }
            }
        }
        pool.close().await;
        Ok::<_, anyhow::Error>((version, rounds))
    }
    .await;
    scratch.drop().await?;
    let (version, rounds) = result?;
    report(&args, &version, peer.as_ref(), &rounds);
    Ok(())
}

fn report(args: &QueueArgs, version: &str, peer: Option<&Peer>, rounds: &[Round]) {
    let peer_version = peer.map_or("", |p| p.version.as_str());
    println!(
        "\nqueue benchmark, {}: {} runs, no-op jobs, PostgreSQL {version} (embedded cluster, \
         durable), {} CPU cores",
        Utc::now().format("%Y-%m-%d"),
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "buybuddy: concurrency {}, batch {} per process; {}",
        args.concurrency,
        args.batch_size,
        match peer {
            Some(p) => format!(
                "graphile-worker {} on Node.js {}: concurrency {}, local queue {}, completions \
                 batched with no delay, one process",
                p.version, p.node, args.peer_concurrency, args.peer_local_queue
            ),
            None => "graphile-worker left out".into(),
        }
    );
    println!(
        "\n{:>7}  {:<24} {:>13} {:>17} {:>11} {:>11} {:>10}",
        "jobs", "system", "drain jobs/s", "(min - max)", "pickup p50", "pickup p99", "enqueue/s"
    );
    let mut systems: Vec<System> = Vec::new();
    for r in rounds {
        if !systems.contains(&r.system) {
            systems.push(r.system.clone());
        }
    }
    for &jobs in &args.jobs {
        for system in &systems {
            let mine: Vec<&Round> = rounds_of(rounds, jobs, system).collect();
            let drains: Vec<f64> = mine.iter().map(|r| r.drain_per_s).collect();
            let p50s: Vec<f64> = mine.iter().map(|r| percentile(&r.pickup_ms, 0.5)).collect();
            let p99s: Vec<f64> = mine
                .iter()
                .map(|r| percentile(&r.pickup_ms, 0.99))
                .collect();
            let enqueues: Vec<f64> = mine.iter().map(|r| r.enqueue_per_s).collect();
            println!(
                "{:>7}  {:<24} {:>13.0} {:>17} {:>8.1} ms {:>8.1} ms {:>10.0}",
                jobs,
                system.label(peer_version),
                percentile(&drains, 0.5),
                format!(
                    "({:.0} - {:.0})",
                    percentile(&drains, 0.0),
                    percentile(&drains, 1.0)
                ),
                percentile(&p50s, 0.5),
                percentile(&p99s, 0.5),
                percentile(&enqueues, 0.5),
            );
        }
        if peer.is_some() {
            for system in systems.iter().filter(|s| **s != System::Peer) {
                // Each run's rounds are paired: they ran minutes apart at most.
                let ratios: Vec<f64> = rounds_of(rounds, jobs, system)
                    .zip(rounds_of(rounds, jobs, &System::Peer))
                    .map(|(ours, peer)| ours.drain_per_s / peer.drain_per_s)
                    .collect();
                println!(
                    "{:>7}  {:<24} {:>12.2}x {:>17}",
                    jobs,
                    format!(
                        "ratio, {}",
                        system.label(peer_version).replace("buybuddy, ", "")
                    ),
                    percentile(&ratios, 0.5),
                    format!(
                        "({:.2} - {:.2})",
                        percentile(&ratios, 0.0),
                        percentile(&ratios, 1.0)
                    ),
                );
            }
        }
    }
    println!(
        "\ndrain jobs/s and pickup: median of the runs; ratio: ours / graphile-worker in the \
         same run, median and range"
    );

    if rounds.iter().all(|r| r.costs.is_none()) {
        return;
    }
    println!("\nwhere the drain's time goes, per job (median of the runs):");
    println!(
        "{:>7}  {:<24} {:>11} {:>14} {:>13} {:>15} {:>10}",
        "jobs",
        "system",
        "statements",
        "database time",
        "row versions",
        "index updates",
        "WAL bytes"
    );
    for &jobs in &args.jobs {
        for system in &systems {
            let costs: Vec<Costs> = rounds_of(rounds, jobs, system)
                .filter_map(|r| r.costs)
                .collect();
            if costs.is_empty() {
                continue;
            }
            let median =
                |f: fn(&Costs) -> f64| percentile(&costs.iter().map(f).collect::<Vec<_>>(), 0.5);
            println!(
                "{:>7}  {:<24} {:>11.4} {:>11.1} µs {:>13.2} {:>15.2} {:>10.0}",
                jobs,
                system.label(peer_version),
                median(|c| c.statements),
                median(|c| c.db_us),
                median(|c| c.row_versions),
                median(|c| c.index_updates),
                median(|c| c.wal_bytes),
            );
        }
    }
    println!(
        "statements and database time: pg_stat_statements; row versions: rows inserted, \
         updated or deleted; index updates: updates that were not HOT; WAL: the cluster's \
         WAL position"
    );
}

/// The rounds of one system at one job count, in the order they ran.
fn rounds_of<'a>(
    rounds: &'a [Round],
    jobs: usize,
    system: &'a System,
) -> impl Iterator<Item = &'a Round> {
    rounds
        .iter()
        .filter(move |r| r.jobs == jobs && r.system == *system)
}

/// One round of our queue with `workers` processes.
async fn ours(
    pool: &PgPool,
    url: &Secret,
    args: &QueueArgs,
    jobs: usize,
    workers: usize,
    counting: bool,
) -> anyhow::Result<Round> {
    sqlx::raw_sql("TRUNCATE jobs, job_events, job_hours, apalis.jobs, apalis.workers CASCADE")
        .execute(pool)
        .await?;

    // A session of its own, closed before counting starts: a session hands in
    // its table counts when it ends, not when it commits.
    let enqueuer = db::connect(url, 1, &[]).await?;
    let enqueue_started = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let batch = chunk
            .iter()
            .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
            .collect();
        queue::enqueue(&enqueuer, DEFAULT_QUEUE, batch).await?;
    }
    let enqueue_s = enqueue_started.elapsed().as_secs_f64();
    enqueuer.close().await;

    let counter = Counter::start(pool, counting).await?;
    let mut children = (0..workers)
        .map(|_| spawn_worker(url.expose(), args))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let drained = wait_until_completed(pool, jobs as i64, Duration::from_secs(600)).await;
    for child in &mut children {
        stop(child).await;
    }
    drained?;
    let costs = counter.read(pool, jobs).await?;
    let drain_s: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8 FROM jobs \
         /* bench-probe */",
    )
    .fetch_one(pool)
    .await?;

    let mut pickup_ms = Vec::new();
    if args.latency_samples > 0 {
        let mut children = (0..workers)
            .map(|_| spawn_worker(url.expose(), args))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let sampled = pickups(pool, args.latency_samples, &mut pickup_ms).await;
        for child in &mut children {
            stop(child).await;
        }
        sampled?;
    }
    Ok(Round {
        jobs,
        system: System::Ours { workers },
        enqueue_per_s: jobs as f64 / enqueue_s,
        drain_per_s: jobs as f64 / drain_s,
        pickup_ms,
        costs,
    })
}

/// Pushes single jobs into the idle queue, 20 ms apart, and notes how long
/// each waited between its commit and its start.
async fn pickups(pool: &PgPool, samples: usize, into: &mut Vec<f64>) -> anyhow::Result<()> {
    // One more job than samples: the first waits for the workers to be up.
    for sample in 0..=samples {
        if sample > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ids = queue::enqueue(
            pool,
            DEFAULT_QUEUE,
            vec![Enqueue::from(JobSpec::Noop(Noop {}))],
        )
        .await?;
        let committed = Utc::now();
        let limit = Duration::from_secs(if sample == 0 { 60 } else { 10 });
        let started = wait_for_start(pool, ids[0], limit).await?;
        if sample > 0 {
            into.push((started - committed).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
    }
    Ok(())
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
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status = 'completed' /* bench-probe */",
        )
        .fetch_one(pool)
        .await?;
        if done >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {done} of {expected} jobs completed in {limit:?}");
        }
        // Rarely: this process shares the machine with what it measures.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_for_start(
    pool: &PgPool,
    id: uuid::Uuid,
    limit: Duration,
) -> anyhow::Result<DateTime<Utc>> {
    let deadline = Instant::now() + limit;
    loop {
        let started: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT started_at FROM jobs WHERE id = $1 AND status = 'completed' /* bench-probe */",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .flatten();
        if let Some(started) = started {
            return Ok(started);
        }
        if Instant::now() > deadline {
            bail!("job {id} was not picked up within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Counts what the database does between `start` and `read`: a checkpoint
/// first, so that no round pays for the one before it.
struct Counter {
    counting: bool,
    wal_start: String,
}

impl Counter {
    async fn start(pool: &PgPool, counting: bool) -> anyhow::Result<Self> {
        // Sessions that just closed (the enqueuer, the last round's workers)
        // hand in their counts as they end, a moment after closing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        sqlx::raw_sql("CHECKPOINT").execute(pool).await?;
        if counting {
            sqlx::raw_sql("SELECT pg_stat_statements_reset() /* bench-probe */")
                .execute(pool)
                .await?;
        }
        sqlx::raw_sql("SELECT pg_stat_reset() /* bench-probe */")
            .execute(pool)
            .await?;
        let wal_start: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(pool)
            .await?;
        Ok(Self {
            counting,
            wal_start,
        })
    }

    /// Reads the counts once the workers have stopped (their sessions hand in
    /// their table counts when they end).
    async fn read(self, pool: &PgPool, jobs: usize) -> anyhow::Result<Option<Costs>> {
        if !self.counting {
            return Ok(None);
        }
        let wal: f64 = sqlx::query_scalar(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 /* bench-probe */",
        )
        .bind(&self.wal_start)
        .fetch_one(pool)
        .await?;
        // Ended sessions hand in their counts a moment after they close.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (statements, exec_ms): (f64, f64) = sqlx::query_as(
            "SELECT coalesce(sum(calls), 0)::float8, coalesce(sum(total_exec_time), 0)::float8
             FROM pg_stat_statements
             WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '%bench-probe%' AND query NOT ILIKE 'CHECKPOINT%'
             /* bench-probe */",
        )
        .fetch_one(pool)
        .await?;
        let (rows, index_updates): (f64, f64) = sqlx::query_as(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::float8,
                    coalesce(sum(n_tup_upd - n_tup_hot_upd), 0)::float8
             FROM pg_stat_user_tables /* bench-probe */",
        )
        .fetch_one(pool)
        .await?;
        let n = jobs as f64;
        Ok(Some(Costs {
            statements: statements / n,
            db_us: exec_ms * 1000.0 / n,
            row_versions: rows / n,
            index_updates: index_updates / n,
            wal_bytes: wal / n,
        }))
    }
}

/// graphile-worker from npm, on its own Node.js from npm, driven by
/// `bench/graphile/run.mjs`.
struct Peer {
    dir: PathBuf,
    node: String,
    version: String,
}

impl Peer {
    /// Installs the peer on first use (`npm ci` in `bench/graphile`).
    async fn install() -> anyhow::Result<Self> {
        let script =
            super::repository_file(Path::new("bench/graphile/run.mjs")).map_err(|missing| {
                anyhow::anyhow!("{missing}: run from the repository, or pass --no-peer")
            })?;
        let dir = script.parent().expect("a file has a folder").to_owned();
        let node = dir.join("node_modules/.bin/node");
        let installed = dir.join("node_modules/graphile-worker/package.json");
        if !node.is_file() || !installed.is_file() {
            eprintln!(
                "installing graphile-worker and Node.js from npm into {} (first use)",
                dir.display()
            );
            let status = Process::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .await
                .context("running npm (scripts/setup.sh installs it)")?;
            anyhow::ensure!(status.success(), "npm ci in {} failed", dir.display());
        }
        let package: serde_json::Value = serde_json::from_slice(&std::fs::read(&installed)?)?;
        let version = package["version"].as_str().unwrap_or("?").to_owned();
        let out = Process::new(&node).arg("--version").output().await?;
        anyhow::ensure!(out.status.success(), "{} does not run", node.display());
        let node = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches('v')
            .to_owned();
        Ok(Self { dir, node, version })
    }

    /// Runs one phase of `run.mjs` and returns its JSON.
    async fn phase(&self, args: &[String]) -> anyhow::Result<serde_json::Value> {
        let out = Process::new(self.dir.join("node_modules/.bin/node"))
            .arg(self.dir.join("run.mjs"))
            .args(args)
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output()
            .await
            .context("running graphile-worker")?;
        anyhow::ensure!(
            out.status.success(),
            "graphile-worker's {} phase failed",
            args[0]
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .context("graphile-worker printed no result")?;
        Ok(serde_json::from_str(line)?)
    }

    async fn round(
        &self,
        pool: &PgPool,
        url: &str,
        args: &QueueArgs,
        jobs: usize,
        counting: bool,
    ) -> anyhow::Result<Round> {
        sqlx::raw_sql(
            "DO $$ BEGIN
                IF to_regclass('graphile_worker._private_jobs') IS NOT NULL THEN
                    TRUNCATE graphile_worker._private_jobs, graphile_worker._private_job_queues;
                END IF;
             END $$",
        )
        .execute(pool)
        .await?;
        let settings = |phase: &str, count: usize| {
            vec![
                phase.to_owned(),
                url.to_owned(),
                count.to_string(),
                args.peer_concurrency.to_string(),
                args.peer_local_queue.to_string(),
            ]
        };
        let enqueued = self.phase(&settings("enqueue", jobs)).await?;
        let counter = Counter::start(pool, counting).await?;
        let drained = self.phase(&settings("drain", jobs)).await?;
        let costs = counter.read(pool, jobs).await?;
        let pickup_ms = if args.latency_samples > 0 {
            let picked = self
                .phase(&settings("pickup", args.latency_samples))
                .await?;
            serde_json::from_value(picked["pickup_ms"].clone())?
        } else {
            Vec::new()
        };
        let ms = |v: &serde_json::Value, key: &str| {
            v[key]
                .as_f64()
                .with_context(|| format!("graphile-worker's result lacks {key}"))
        };
        Ok(Round {
            jobs,
            system: System::Peer,
            enqueue_per_s: jobs as f64 / (ms(&enqueued, "enqueue_ms")? / 1000.0),
            drain_per_s: jobs as f64 / (ms(&drained, "drain_ms")? / 1000.0),
            pickup_ms,
            costs,
        })
    }
}
