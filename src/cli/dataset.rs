//! `buybuddy dataset`: create datasets, generate versions, export them and
//! download the archive, from the command line (the same actions as the
//! Datasets page and the API).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::action;
use crate::{
    actions::{
        Ctx, Intake,
        datasets::{self as act, DatasetInput},
    },
    config::{DbArgs, StorageArgs},
    db,
    queue::DEFAULT_QUEUE,
};

#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    #[command(flatten)]
    pub(crate) db: DbArgs,
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    pub(crate) queue: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// The datasets, as JSON.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Create a dataset. Settings come from --settings (a JSON file in the
    /// API's shape) and the flags, flags last.
    Create {
        #[command(flatten)]
        common: Common,
        name: String,
        /// detect, detect_classes, segment or recognition.
        #[arg(long, default_value = "detect")]
        task: String,
        /// Product statuses taken (repeatable; approved when unset).
        #[arg(long)]
        status: Vec<String>,
        /// Categories taken (repeatable; any when unset).
        #[arg(long)]
        category: Vec<String>,
        /// Only these products, by id or barcode (repeatable).
        #[arg(long)]
        product: Vec<String>,
        /// Train, val and test ratios, e.g. 0.8,0.1,0.1.
        #[arg(long)]
        split: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
        /// Augmented copies of every train frame.
        #[arg(long)]
        copies: Option<u32>,
        /// Shelf composites in all.
        #[arg(long)]
        composites: Option<u32>,
        /// The splits that take confirmed real shelf crops (recognition),
        /// e.g. val,test.
        #[arg(long, value_delimiter = ',')]
        real: Vec<String>,
        /// A JSON file: {"selection", "settings", "render"}.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Generate the next version of a dataset; with --wait, until it is rendered.
    Version {
        #[command(flatten)]
        common: Common,
        /// The dataset, by id or name.
        dataset: String,
        #[arg(long)]
        wait: bool,
    },
    /// Print a dataset's versions with their per-split counts, as JSON.
    Show {
        #[command(flatten)]
        common: Common,
        dataset: String,
    },
    /// Export a version (coco, yolo or folder); with --out, wait for the
    /// archive and download it there.
    Export {
        #[command(flatten)]
        common: Common,
        dataset: String,
        /// The version number (the newest when unset).
        #[arg(long)]
        version: Option<i32>,
        #[arg(long, default_value = "coco")]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Upload a background image for the background swap and the shelf.
    Background {
        #[command(flatten)]
        common: Common,
        file: PathBuf,
    },
}

impl Common {
    /// The database and the storage these commands work with.
    pub(crate) async fn open(&self) -> anyhow::Result<Opened> {
        let (_, pool) = super::open_database(&self.db, &[]).await?;
        let storage = self.storage.open(&self.db.data_dir).await?;
        Ok(Opened {
            pool,
            storage,
            queue: self.queue.clone(),
            intake: Intake::command_line(),
        })
    }
}

/// What a command of the CLI's action groups works with.
pub(crate) struct Opened {
    pub(crate) pool: sqlx::PgPool,
    pub(crate) storage: buybuddy_worker::storage::Storage,
    queue: String,
    intake: Intake,
}

impl Opened {
    /// The actions' context, as the pages and the API have it.
    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            pool: &self.pool,
            queue: &self.queue,
            storage: &self.storage,
            intake: &self.intake,
        }
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let common = match &command {
        Command::List { common }
        | Command::Create { common, .. }
        | Command::Version { common, .. }
        | Command::Show { common, .. }
        | Command::Export { common, .. }
        | Command::Background { common, .. } => common.clone(),
    };
    let opened = common.open().await?;
    let ctx = opened.ctx();
    match command {
        Command::List { .. } => {
            let all = db::datasets::list(&opened.pool).await?;
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Command::Create {
            name,
            task,
            status,
            category,
            product,
            split,
            seed,
            copies,
            composites,
            real,
            settings,
            ..
        } => {
            let mut input: DatasetInput = match settings {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not the JSON expected", path.display()))?
                }
                None => DatasetInput::default(),
            };
            input.name = name;
            input.task = task;
            if !status.is_empty() {
                input.selection.statuses = status;
            }
            if !category.is_empty() {
                input.selection.categories = category;
            }
            if !product.is_empty() {
                input.selection.products = product;
            }
            if let Some(split) = split {
                let parts: Vec<f64> = split
                    .split(',')
                    .map(|p| p.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| anyhow!("--split takes three numbers, e.g. 0.8,0.1,0.1"))?;
                anyhow::ensure!(
                    parts.len() == 3,
                    "--split takes three numbers, e.g. 0.8,0.1,0.1"
                );
                input.settings.ratios.train = parts[0];
                input.settings.ratios.val = parts[1];
                input.settings.ratios.test = parts[2];
            }
            if let Some(seed) = seed {
                input.settings.seed = seed;
            }
            if let Some(copies) = copies {
                input.settings.copies = copies;
            }
            if let Some(composites) = composites {
                input.settings.composites = composites;
            }
            for split in real {
                match split.trim() {
                    "train" => input.settings.real.train = true,
                    "val" => input.settings.real.val = true,
                    "test" => input.settings.real.test = true,
                    other => anyhow::bail!("--real takes train, val and test, not {other:?}"),
                }
            }
            let dataset = act::create(ctx, &input).await.map_err(action)?;
            println!(
                "{}",
                json!({"id": dataset.id, "name": dataset.name, "task": dataset.task})
            );
        }
        Command::Version { dataset, wait, .. } => {
            let dataset = act::find(ctx, &dataset).await.map_err(action)?;
            let (version, job) = act::generate(ctx, &dataset).await.map_err(action)?;
            eprintln!(
                "version {} of {:?}: {} images to render (job {job})",
                version.number,
                dataset.name,
                db::datasets::version_state(&opened.pool, version.id)
                    .await?
                    .map(|s| s.images)
                    .unwrap_or(0)
            );
            if wait {
                wait_rendered(ctx, &dataset, version.number).await?;
            }
            print_version(ctx, &dataset, version.number).await?;
        }
        Command::Show { dataset, .. } => {
            let dataset = act::find(ctx, &dataset).await.map_err(action)?;
            let mut out = Vec::new();
            for v in db::datasets::versions(&opened.pool, dataset.id).await? {
                out.push(version_json(ctx, &v).await?);
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"dataset": dataset, "versions": out}))?
            );
        }
        Command::Export {
            dataset,
            version,
            format,
            out,
            ..
        } => {
            let dataset = act::find(ctx, &dataset).await.map_err(action)?;
            let number = match version {
                Some(n) => n,
                None => db::datasets::versions(&opened.pool, dataset.id)
                    .await?
                    .first()
                    .map(|v| v.version.number)
                    .context(
                        "the dataset has no version yet: run `buybuddy dataset version` first",
                    )?,
            };
            let format = act::parse_format(&format).map_err(action)?;
            let (id, job) = act::export(ctx, &dataset, number, format)
                .await
                .map_err(action)?;
            eprintln!("export #{id} of version {number} queued (job {job})");
            if let Some(out) = out {
                let export = wait_export(ctx, id).await?;
                let (_, mut stream) = act::download(ctx, id).await.map_err(action)?;
                let part = out.with_extension("zip.part");
                let mut file = tokio::fs::File::create(&part)
                    .await
                    .with_context(|| format!("creating {}", part.display()))?;
                while let Some(chunk) = stream.body.next().await {
                    file.write_all(&chunk?).await?;
                }
                file.flush().await?;
                tokio::fs::rename(&part, &out).await?;
                println!(
                    "{}",
                    json!({"export": id, "path": out, "size": export.size, "sha256": export.sha256})
                );
            } else {
                println!("{}", json!({"export": id, "job": job}));
            }
        }
        Command::Background { file, .. } => {
            let bytes = tokio::fs::read(&file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let added = act::add_background(ctx, &name, bytes.into())
                .await
                .map_err(action)?;
            println!("{}", serde_json::to_string(&added)?);
        }
    }
    Ok(())
}

async fn version_json(ctx: Ctx<'_>, v: &db::datasets::VersionState) -> anyhow::Result<Value> {
    let splits = db::datasets::split_counts(ctx.pool, v.version.id).await?;
    let exports = db::datasets::exports(ctx.pool, v.version.id).await?;
    Ok(json!({
        "number": v.version.number,
        "rule": v.version.rule,
        "images": v.images,
        "rendered": v.rendered,
        "ready": v.ready(),
        "job_status": v.job_status,
        "error": v.job_error,
        "classes": v.version.classes.len(),
        "guard_frames": v.version.guard_frames,
        "splits": splits,
        "exports": exports.iter().map(|e| json!({
            "id": e.id, "format": e.format, "state": e.state(), "size": e.size, "sha256": e.sha256,
        })).collect::<Vec<_>>(),
    }))
}

async fn print_version(
    ctx: Ctx<'_>,
    dataset: &db::datasets::Dataset,
    number: i32,
) -> anyhow::Result<()> {
    let v = act::version(ctx, dataset, number).await.map_err(action)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&version_json(ctx, &v).await?)?
    );
    Ok(())
}

/// Waits for a version's render job (workers do the work), printing progress.
async fn wait_rendered(
    ctx: Ctx<'_>,
    dataset: &db::datasets::Dataset,
    number: i32,
) -> anyhow::Result<()> {
    let mut last = -1;
    loop {
        let v = act::version(ctx, dataset, number).await.map_err(action)?;
        if v.ready() {
            return Ok(());
        }
        if let Some(status @ ("failed" | "cancelled")) = v.job_status.as_deref() {
            anyhow::bail!(
                "rendering version {number} {status}: {}",
                v.job_error.unwrap_or_default()
            );
        }
        if v.rendered != last {
            eprintln!("rendered {} of {} images", v.rendered, v.images);
            last = v.rendered;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_export(ctx: Ctx<'_>, id: i32) -> anyhow::Result<db::datasets::Export> {
    let mut last = -1;
    loop {
        let e = db::datasets::export(ctx.pool, id)
            .await?
            .with_context(|| format!("export #{id} is gone"))?;
        if e.ready() {
            return Ok(e);
        }
        if let Some(status @ ("failed" | "cancelled")) = e.job_status.as_deref() {
            anyhow::bail!("export #{id} {status}: {}", e.job_error.unwrap_or_default());
        }
        let progress = e.job_progress.unwrap_or(0);
        if i32::from(progress) != last {
            eprintln!("export #{id}: {progress}%");
            last = i32::from(progress);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
