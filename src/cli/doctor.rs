//! `buybuddy doctor`: says what this installation has, one line per part,
//! each OK or a problem with what to do about it.

use std::process::ExitCode;

use sqlx::PgPool;

use crate::{
    config::{BuybuddyArgs, DbArgs, GeminiArgs, SegmenterArgs, StorageArgs},
    db::{self, Target},
    queue::DEFAULT_QUEUE,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    gemini: GeminiArgs,

    #[command(flatten)]
    api: BuybuddyArgs,

    #[command(flatten)]
    segmenter: SegmenterArgs,

    /// Queue whose workers and backlog are reported.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,
}

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&mut self, part: &str, detail: impl AsRef<str>) {
        println!("OK    {part:<10} {}", detail.as_ref());
    }

    /// Something optional that is not set up.
    fn absent(&mut self, part: &str, detail: impl AsRef<str>) {
        println!("--    {part:<10} {}", detail.as_ref());
    }

    fn problem(&mut self, part: &str, detail: impl AsRef<str>) {
        self.problems += 1;
        println!("FAIL  {part:<10} {}", detail.as_ref());
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut report = Report { problems: 0 };
    match database(&args.db).await {
        Ok((target, pool)) => {
            let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
                .fetch_one(&pool)
                .await?;
            report.ok(
                "postgres",
                format!("PostgreSQL {version} at {}", target.describe()),
            );
            extension(&mut report, &pool, "vector", "pgvector").await?;
            extension(&mut report, &pool, "hstore", "hstore").await?;
            schema(&mut report, &pool).await;
            queue(&mut report, &pool, &args.queue).await;
        }
        Err(error) => report.problem("postgres", format!("{error:#}")),
    }
    let location = args.storage.location(&args.db.data_dir);
    let checked = async {
        let storage = args.storage.open(&args.db.data_dir).await?;
        storage.check().await?;
        Ok::<_, anyhow::Error>(storage.describe())
    };
    match checked.await {
        Ok(described) => report.ok("storage", format!("{described} (writable)")),
        Err(error) => report.problem("storage", format!("{location}: {error:#}")),
    }
    media(&mut report);
    torch(&mut report, &args.segmenter);
    segmenter(&mut report, &args.segmenter).await;
    gemini(&mut report, &args.gemini).await;
    catalog(&mut report, &args.api).await;
    Ok(if report.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn database(args: &DbArgs) -> anyhow::Result<(Target, PgPool)> {
    let target = Target::resolve(args).await?;
    let pool = db::connect(&target.url, 2, &[]).await?;
    Ok((target, pool))
}

async fn extension(
    report: &mut Report,
    pool: &PgPool,
    name: &str,
    label: &str,
) -> anyhow::Result<()> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT installed_version, default_version FROM pg_available_extensions WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((Some(installed), _)) => report.ok(label, format!("{label} {installed}")),
        Some((None, Some(available))) => report.problem(
            label,
            format!("{label} {available} is available but not enabled: run `buybuddy migrate`"),
        ),
        _ => report.problem(
            label,
            format!("{label} is not installed in this server: run scripts/setup.sh"),
        ),
    }
    Ok(())
}

async fn schema(report: &mut Report, pool: &PgPool) {
    match db::schema::status(pool).await {
        Ok(status) if status.is_current() => report.ok(
            "schema",
            format!(
                "current ({} platform, {} queue migrations)",
                status.platform.0, status.queue.0
            ),
        ),
        Ok(status) if !status.unknown.is_empty() => report.problem(
            "schema",
            format!(
                "migrated by a newer buybuddy (unknown migrations {:?}): upgrade this binary",
                status.unknown
            ),
        ),
        Ok(status) => report.problem(
            "schema",
            format!(
                "{} of {} platform and {} of {} queue migrations applied: run `buybuddy migrate`",
                status.platform.0, status.platform.1, status.queue.0, status.queue.1
            ),
        ),
        Err(error) => report.problem("schema", format!("{error:#}")),
    }
}

async fn queue(report: &mut Report, pool: &PgPool, queue: &str) {
    match crate::db::queue::figures(pool, queue).await {
        Ok(f) => report.ok(
            "queue",
            format!(
                "{queue:?}: {} waiting, {} claimed, {} worker(s) seen in the last 2 minutes",
                f.waiting, f.claimed, f.workers
            ),
        ),
        Err(error) => report.problem("queue", format!("cannot read the queue: {error}")),
    }
}

/// The FFmpeg libraries this binary runs with, and the `ffmpeg` program that
/// makes sample videos.
fn media(report: &mut Report) {
    let (major, minor, micro) = buybuddy_worker::media::decode::libavcodec_version();
    report.ok("ffmpeg", format!("libavcodec {major}.{minor}.{micro}"));
    match std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
    {
        Ok(out) if out.status.success() => {
            let first = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            report.ok("ffmpeg-cli", first)
        }
        _ => report.problem(
            "ffmpeg-cli",
            "the ffmpeg program is missing (sample videos need it): run scripts/setup.sh",
        ),
    }
}

#[cfg(not(feature = "sam3"))]
fn torch(report: &mut Report, _: &SegmenterArgs) {
    report.absent(
        "libtorch",
        "this build has no SAM 3 (the `sam3` feature): workers use the CPU segmenter",
    );
}

/// The libtorch the binary runs with, and whether it reaches a GPU.
#[cfg(feature = "sam3")]
fn torch(report: &mut Report, args: &SegmenterArgs) {
    let info = buybuddy_vision::TorchInfo::probe();
    match args.device.resolve() {
        Ok(device) => report.ok(
            "libtorch",
            format!(
                "{}; DEVICE={} runs on {}",
                info.summary(),
                args.device,
                buybuddy_vision::sam3::device_name(device)
            ),
        ),
        Err(error) => report.problem("libtorch", format!("{}: {error}", info.summary())),
    }
}

/// Whether the configured SAM 3 export loads and runs.
async fn segmenter(report: &mut Report, args: &SegmenterArgs) {
    if args.sam3_model_path.is_none() {
        report.absent(
            "segmenter",
            "SAM3_MODEL_PATH is not set: the CPU segmenter (plain backgrounds) finds products",
        );
        return;
    }
    let args = args.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        args.open()
            .map(|_| args.sam3_model_path.unwrap_or_default())
    })
    .await;
    match loaded {
        Ok(Ok(path)) => report.ok(
            "segmenter",
            format!("SAM 3 from {} loads and runs", path.display()),
        ),
        Ok(Err(error)) => report.problem("segmenter", format!("{error:#}")),
        Err(error) => report.problem("segmenter", error.to_string()),
    }
}

/// Whether the configured key and model answer.
async fn gemini(report: &mut Report, args: &GeminiArgs) {
    match args.client() {
        Ok(None) => report.absent(
            "gemini",
            "GEMINI_API_KEY is not set: videos are processed without catalog metadata",
        ),
        Ok(Some(client)) => {
            let model = &client.settings().model;
            match client.check_model().await {
                Ok(()) => report.ok("gemini", format!("model {model} answers")),
                Err(error) => report.problem("gemini", format!("model {model}: {error}")),
            }
        }
        Err(error) => report.problem("gemini", format!("{error:#}")),
    }
}

/// Whether the Buybuddy API takes the configured credentials.
async fn catalog(report: &mut Report, args: &BuybuddyArgs) {
    match args.client() {
        Ok(None) => report.absent(
            "buybuddy",
            "BUYBUDDY_API_URL is not set: the catalog cannot be synced",
        ),
        Ok(Some(client)) => match client.sign_in().await {
            Ok(()) => report.ok("buybuddy", format!("signed in to {}", client.base_url())),
            Err(error) => report.problem("buybuddy", format!("{error}")),
        },
        Err(error) => report.problem("buybuddy", format!("{error:#}")),
    }
}
