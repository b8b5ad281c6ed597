//! `buybuddy process`, `enqueue` and `sample-video`: video jobs from the
//! command line, and the sample videos this project makes.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, anyhow, bail};
use buybuddy_domain::{Barcode, JobStatus};
use buybuddy_worker::media::synthetic::{Codec, Scene};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    actions::{
        self, Ctx, Intake,
        jobs::{NewVideoJob, VideoSource},
    },
    config::{DbArgs, PipelineArgs, StorageArgs},
    db,
    jobs::{Job, Resources, embed::Embed, video::Video},
    queue::{
        DEFAULT_QUEUE,
        worker::{self, WorkerConfig},
    },
};

#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The video: a file, `http(s)://...` or `s3://bucket/key`.
    source: String,
    /// The product's barcode.
    #[arg(long)]
    barcode: String,
    /// The video's id in the Buybuddy catalog.
    #[arg(long)]
    video_id: Option<i32>,
}

#[derive(clap::Args, Debug)]
pub struct EnqueueArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    storage: StorageArgs,
    /// Queue to push to.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,
    /// The video: a file (uploaded to storage first, so any worker can read it),
    /// `http(s)://...` or `s3://bucket/key`.
    source: String,
    /// The product's barcode.
    #[arg(long)]
    barcode: String,
    /// The video's id in the Buybuddy catalog.
    #[arg(long)]
    video_id: Option<i32>,
    /// Attempts before the job fails for good.
    #[arg(long)]
    max_attempts: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// Where to write the video (its extension should suit the codec).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1280)]
    width: u32,
    #[arg(long, default_value_t = 720)]
    height: u32,
    #[arg(long, default_value_t = 90)]
    frames: usize,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// h264, hevc, vp9, av1 or mjpeg.
    #[arg(long, default_value = "h264")]
    codec: Codec,
    /// Store the picture sideways with a rotation tag, as phones do.
    #[arg(long)]
    portrait: bool,
    /// Also write the ground-truth masks, one PNG per frame, into this folder.
    #[arg(long)]
    masks: Option<PathBuf>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A kind of scene and product instead of the plain carton: can, bottle,
    /// pouch, table, ... (the segmentation bench's kinds).
    #[arg(long)]
    kind: Option<String>,
}

/// Processes one video now, in this process, and prints the job's output.
pub async fn process(args: ProcessArgs) -> anyhow::Result<ExitCode> {
    Barcode::parse(&args.barcode)?;
    let (_, pool) = super::open_database(&args.db, &[]).await?;
    let resources = Resources::from_args(&args.db.data_dir, &args.storage, &args.pipeline).await?;
    resources.check_gemini().await?;
    resources.register_models(&pool).await?;
    // A one-job worker on a queue of its own runs the job exactly as a worker
    // would, attempt and events included, without waiting for one.
    let queue = format!(
        "process-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let storage = resources.storage().map_err(|e| anyhow!("{e}"))?;
    let ctx = Ctx {
        pool: &pool,
        queue: &queue,
        storage,
        intake: &Intake::command_line(),
    };
    let job = NewVideoJob {
        barcode: args.barcode.clone(),
        source: VideoSource::Url(args.source.clone()),
        video_id: args.video_id,
        max_attempts: Some(1),
    };
    let job_id = actions::jobs::create_video_job(ctx, job).await?;
    eprintln!("job {job_id}: processing {}", args.source);

    let stop = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(worker::run(
        WorkerConfig {
            queue: queue.clone(),
            name: "process".to_owned(),
            concurrency: 1,
            batch_size: 1,
            poll_interval: Duration::from_millis(200),
            dead_worker_after: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            timeouts: Default::default(),
            kinds: vec![Video::KIND, Embed::KIND],
            resources: Arc::new(resources),
        },
        pool.clone(),
        stop.clone(),
    ));
    let interrupted = super::shutdown_signal();
    let mut job = follow(&pool, job_id, &interrupted).await;
    // The product's vectors follow in the embed job the video job queued.
    if let Ok(done) = &job
        && let Some(embed_id) = done
            .output
            .as_ref()
            .and_then(|o| o.get("embed_job"))
            .and_then(|id| id.as_str())
            .and_then(|id| id.parse::<Uuid>().ok())
    {
        eprintln!("job {embed_id}: embedding the frames");
        match follow(&pool, embed_id, &interrupted).await {
            Ok(embedded) if embedded.status == JobStatus::Completed => {
                if let (Ok(done), Some(output)) = (&mut job, embedded.output)
                    && let Some(map) = done.output.as_mut().and_then(|o| o.as_object_mut())
                {
                    map.insert("embedding".to_owned(), output);
                }
            }
            Ok(embedded) => eprintln!(
                "warning: the embed job {}: {}",
                embedded.status,
                embedded.error_message.as_deref().unwrap_or("cancelled")
            ),
            Err(error) => eprintln!("warning: following the embed job: {error:#}"),
        }
    }
    stop.cancel();
    runner.await??;
    // The private queue has served its purpose; the job row is the record.
    db::queue::remove(&pool, &queue).await?;
    let job = job?;
    if job.status == JobStatus::Completed {
        println!(
            "{}",
            serde_json::to_string_pretty(&job.output.unwrap_or(Value::Null))?
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: the job {} at the {} stage: {}",
            job.status,
            job.stage.as_deref().unwrap_or("first"),
            job.error_message.as_deref().unwrap_or("cancelled")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Prints the job's event lines as they come, until it ends; cancels it on Ctrl-C.
async fn follow(
    pool: &sqlx::PgPool,
    job_id: Uuid,
    interrupted: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<db::jobs::Job> {
    let mut printed = std::collections::HashSet::new();
    let mut cancelling = false;
    loop {
        let job = db::jobs::get(pool, job_id)
            .await?
            .context("the job disappeared")?;
        let events = db::job_events::for_job(pool, job_id).await?;
        for event in events {
            if printed.insert(event.id) {
                let stage = event.stage.as_deref().unwrap_or("");
                eprintln!("  {:<5} {stage:<12} {}", event.level, event.message);
            }
        }
        if job
            .status
            .parse::<JobStatus>()
            .is_ok_and(JobStatus::has_ended)
        {
            return Ok(job);
        }
        if interrupted.is_cancelled() && !cancelling {
            cancelling = true;
            eprintln!("  cancelling: the job stops at its next stage");
            db::jobs::cancel(pool, job_id).await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Queues one video job; a local file goes to storage first, so that any
/// worker can read it.
pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    Barcode::parse(&args.barcode)?;
    if args.max_attempts == Some(0) {
        bail!("--max-attempts must be at least 1");
    }
    let (_, pool) = super::open_database(&args.db, &[]).await?;
    let storage = args.storage.open(&args.db.data_dir).await?;
    let remote = ["http://", "https://", "s3://"]
        .iter()
        .any(|scheme| args.source.starts_with(scheme));
    let source = if remote {
        VideoSource::Url(args.source.clone())
    } else {
        let path = PathBuf::from(args.source.strip_prefix("file://").unwrap_or(&args.source));
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file", path.display()))?
            .to_string_lossy()
            .into_owned();
        anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
        eprintln!("uploading {} to {}", path.display(), storage.describe());
        VideoSource::Upload { file: path, name }
    };
    let ctx = Ctx {
        pool: &pool,
        queue: &args.queue,
        storage: &storage,
        intake: &Intake::command_line(),
    };
    let job = NewVideoJob {
        barcode: args.barcode,
        source,
        video_id: args.video_id,
        max_attempts: args.max_attempts,
    };
    println!("{}", actions::jobs::create_video_job(ctx, job).await?);
    Ok(())
}

/// Writes a sample product video (and, if asked, its ground-truth masks).
pub async fn sample_video(args: SampleArgs) -> anyhow::Result<()> {
    let base = match &args.kind {
        Some(name) => buybuddy_worker::media::synthetic::Kind::named(name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no kind {name:?}; kinds: {}",
                    buybuddy_worker::media::synthetic::KINDS
                        .iter()
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
            .scene(args.seed),
        None => Scene::default(),
    };
    let scene = Scene {
        width: args.width,
        height: args.height,
        frames: args.frames,
        fps: args.fps,
        seed: args.seed,
        ..base
    };
    if let Some(folder) = args.out.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let out = args.out.clone();
    let codec = args.codec;
    let portrait = args.portrait;
    let writer = scene.clone();
    tokio::task::spawn_blocking(move || writer.write_video(&out, codec, portrait)).await??;
    if let Some(folder) = &args.masks {
        std::fs::create_dir_all(folder)?;
        for i in 0..scene.frames {
            scene
                .render(i)
                .1
                .save(folder.join(format!("{i:04}.png")))
                .context("writing a mask")?;
        }
    }
    eprintln!(
        "wrote {} ({} frames, {}x{}, {:?}{})",
        args.out.display(),
        scene.frames,
        scene.width,
        scene.height,
        codec,
        if portrait { ", stored sideways" } else { "" }
    );
    Ok(())
}
