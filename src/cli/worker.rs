//! `buybuddy worker`: takes jobs from the queue until stopped.

use std::{collections::HashMap, sync::Arc, time::Duration};

use buybuddy_worker::retry::Backoff;

use crate::{
    config::{DbArgs, PipelineArgs, StorageArgs, parse_duration},
    jobs::{Resources, parse_kinds},
    queue::{
        DEFAULT_QUEUE,
        worker::{self, WorkerConfig, backoff_settings},
    },
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    pipeline: PipelineArgs,

    /// Queue to take jobs from.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,

    /// Prefix of this worker's name in the queue (the host name when unset); the
    /// process id and a random suffix make it unique.
    #[arg(long, env = "BUYBUDDY_WORKER_NAME")]
    name: Option<String>,

    /// Jobs this worker runs at the same time.
    #[arg(long, env = "BUYBUDDY_WORKER_CONCURRENCY", default_value_t = 2)]
    concurrency: usize,

    /// Jobs claimed per fetch (defaults to the concurrency).
    #[arg(long, env = "BUYBUDDY_WORKER_BATCH_SIZE")]
    batch_size: Option<usize>,

    /// How often an idle worker checks for jobs; a new job also wakes it at once
    /// through LISTEN/NOTIFY.
    #[arg(long, env = "BUYBUDDY_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    poll_interval: Duration,

    /// Silence after which a worker counts as dead and its jobs are re-queued
    /// (whole seconds, at least 1s).
    #[arg(long, env = "BUYBUDDY_DEAD_WORKER_AFTER", default_value = "30s", value_parser = parse_window)]
    dead_worker_after: Duration,

    /// Time in-flight jobs get to finish after SIGTERM/SIGINT before they go back
    /// to the queue.
    #[arg(long, env = "BUYBUDDY_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,

    /// Delay before the first retry of a failed job; it doubles with each attempt.
    #[arg(long, env = "BUYBUDDY_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    retry_base: Duration,

    /// Longest delay between two attempts.
    #[arg(long, env = "BUYBUDDY_RETRY_MAX", default_value = "10m", value_parser = parse_duration)]
    retry_max: Duration,

    /// Attempt timeout for one kind of job, as KIND=DURATION (repeatable, or
    /// comma-separated in the environment variable), e.g. `video=30m`.
    #[arg(long = "job-timeout", env = "BUYBUDDY_JOB_TIMEOUTS", value_delimiter = ',', value_parser = parse_kind_timeout)]
    job_timeouts: Vec<(String, Duration)>,

    /// The job kinds this worker takes (comma-separated, e.g. `video` on a GPU
    /// box); every kind when unset. Jobs of other kinds wait for a worker that
    /// takes them.
    #[arg(long, env = "BUYBUDDY_WORKER_KINDS", value_delimiter = ',', value_parser = parse_kind)]
    kinds: Vec<&'static str>,

    /// Let `crash` jobs kill this worker (for testing how the queue copes).
    #[arg(long, env = "BUYBUDDY_ENABLE_CRASH_JOBS")]
    enable_crash_jobs: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let backoff = Backoff::new(args.retry_base, args.retry_max);
    // Fetches, heartbeats, the ledger and the jobs' own progress writes share the pool.
    let (target, pool) = super::open_database(&args.db, &backoff_settings(&backoff)).await?;
    let mut resources =
        Resources::from_args(&args.db.data_dir, &args.storage, &args.pipeline).await?;
    resources.enable_crash_jobs = args.enable_crash_jobs;

    if args.kinds.is_empty()
        || args
            .kinds
            .contains(&<crate::jobs::video::Video as crate::jobs::Job>::KIND)
    {
        resources.check_gemini().await?;
    }
    resources.register_models(&pool).await?;
    tracing::info!(
        storage = %resources.storage.as_ref().map_or_else(String::new, |s| s.describe()),
        segmenter = resources.segmenter.as_ref().map_or("none", |s| s.name()),
        torch = %torch_summary(),
        gemini = resources.gemini.as_ref().map_or("off (GEMINI_API_KEY unset)", |g| g.settings().model.as_str()),
        "video pipeline ready"
    );
    let name = args.name.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "worker".to_owned())
    });
    tracing::info!(
        database = %target.describe(),
        queue = %args.queue,
        concurrency = args.concurrency,
        kinds = %if args.kinds.is_empty() { "all".to_owned() } else { args.kinds.join(",") },
        "worker starting"
    );
    let config = WorkerConfig {
        queue: args.queue,
        name,
        concurrency: args.concurrency,
        batch_size: args.batch_size.unwrap_or(args.concurrency),
        poll_interval: args.poll_interval,
        dead_worker_after: args.dead_worker_after,
        shutdown_grace: args.shutdown_grace,
        timeouts: args.job_timeouts.into_iter().collect::<HashMap<_, _>>(),
        kinds: args.kinds,
        resources: Arc::new(resources),
    };
    worker::run(config, pool, super::shutdown_signal()).await
}

fn parse_window(value: &str) -> Result<Duration, String> {
    let window = parse_duration(value)?;
    if window < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(window)
}

fn parse_kind(value: &str) -> Result<&'static str, String> {
    parse_kinds(&[value.to_owned()])?
        .first()
        .copied()
        .ok_or_else(|| "name a job kind".to_owned())
}

fn parse_kind_timeout(value: &str) -> Result<(String, Duration), String> {
    let (kind, duration) = value
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=DURATION, e.g. video=30m, not {value:?}"))?;
    Ok((
        parse_kind(kind)?.to_owned(),
        parse_duration(duration.trim())?,
    ))
}

/// The libtorch this worker runs SAM 3 with, and the GPUs it reaches.
fn torch_summary() -> String {
    #[cfg(feature = "sam3")]
    return buybuddy_vision::TorchInfo::probe().summary();
    #[cfg(not(feature = "sam3"))]
    return "none (built without the sam3 feature)".to_owned();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_timeouts_name_a_known_kind_and_a_duration() {
        assert_eq!(
            parse_kind_timeout("sleep=2s").unwrap(),
            ("sleep".to_owned(), Duration::from_secs(2))
        );
        assert!(
            parse_kind_timeout("nap=2s")
                .unwrap_err()
                .contains("unknown job kind")
        );
        assert!(
            parse_kind_timeout("sleep")
                .unwrap_err()
                .contains("KIND=DURATION")
        );
    }
}
