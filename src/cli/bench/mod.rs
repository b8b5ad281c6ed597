//! `buybuddy bench`: measurements that print figures (never pass/fail tests).

mod dataset;
mod embed;
mod merchants;
mod queue;
mod search;
mod segment;
mod train;
mod video;
mod web;

use std::time::Duration;

use anyhow::bail;
use tokio::process::Child;

use crate::{
    config::{DbArgs, Secret},
    db,
};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Queue throughput and pickup latency with no-op jobs, in a throwaway
    /// database of the embedded cluster.
    Queue(queue::QueueArgs),
    /// Decode (against `ffmpeg -benchmark`), segmentation and post-processing
    /// speed, and end-to-end time, on a 10 s 1080p H.264 clip.
    Video(video::VideoArgs),
    /// Segmentation accuracy (IoU) per kind of scene on held-out sample
    /// videos, and time per frame.
    Segment(segment::SegmentArgs),
    /// The DINOv2 port against transformers (images/s, peak memory) and the
    /// retrieval of the classic descriptor beside a DINOv2 model.
    Embed(embed::EmbedArgs),
    /// pgvector HNSW through SQL against FAISS HNSW on frame-like vectors
    /// (1,000,000; 100,000 with --quick): build, size, recall, latency, filters.
    Search(search::SearchArgs),
    /// Augmentation speed per core beside albumentations on the same image,
    /// and export speed (images/s, MB/s, peak memory) for 10,000 and
    /// 100,000 images.
    Dataset(dataset::DatasetArgs),
    /// Training steps/s and peak memory beside Python torch (same model,
    /// loss, optimiser and batch), and validation recall of the tiny preset
    /// trained on synthetic products beside the classic descriptor.
    Train(train::TrainArgs),
    /// Merchant suggestions: precision and recall of the top suggestion on a
    /// list made from a synthetic directory as real lists differ (names only,
    /// barcodes, images), and speed at 100,000 lines against 100,000 products.
    Merchants(merchants::MerchantsArgs),
    /// Page latency under concurrent clients: seeds 100,000 products and
    /// 200,000 jobs, serves them, and loads the first page of /products and
    /// /jobs and a product page.
    Web(web::WebArgs),
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Queue(args) => queue::run(args).await,
        Command::Embed(args) => embed::run(args).await,
        Command::Search(args) => search::run(args).await,
        Command::Segment(args) => segment::run(args).await,
        Command::Video(args) => video::run(args).await,
        Command::Web(args) => web::run(args).await,
        Command::Dataset(args) => dataset::run(args).await,
        Command::Train(args) => train::run(args).await,
        Command::Merchants(args) => merchants::run(args).await,
    }
}

/// A migrated database of its own in the embedded cluster, dropped afterwards.
struct Throwaway {
    cluster: db::embedded::Cluster,
    name: String,
    url: Secret,
}

impl Throwaway {
    async fn create(args: &DbArgs) -> anyhow::Result<Self> {
        if args.database_url.is_some() {
            bail!(
                "benchmarks use a throwaway database in the embedded cluster: unset DATABASE_URL"
            );
        }
        let cluster = db::embedded_cluster(args)?;
        let started = cluster.clone();
        tokio::task::spawn_blocking(move || started.ensure_running()).await??;
        let name = format!("buybuddy_bench_{}", std::process::id());
        db::create_database(&cluster, &name).await?;
        let url = cluster.url(&name)?;
        let pool = db::connect(&url, 1, &[]).await?;
        db::schema::migrate(&pool).await?;
        pool.close().await;
        Ok(Self { cluster, name, url })
    }

    async fn drop(self) -> anyhow::Result<()> {
        let admin = db::connect(&self.cluster.url("postgres")?, 1, &[]).await?;
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await?;
        Ok(())
    }
}

pub(super) async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// The torch virtualenv's Python, with `requirement` installed if `module`
/// does not import (a benchmark's reference side, installed on first use).
pub(super) async fn ensure_module(
    python: &std::path::Path,
    module: &str,
    requirement: &str,
) -> anyhow::Result<std::path::PathBuf> {
    anyhow::ensure!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh (it makes the torch virtualenv)",
        python.display()
    );
    let has = tokio::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .await?
        .success();
    if !has {
        println!("installing {requirement} into {}", python.display());
        let status = tokio::process::Command::new(python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "pip install {requirement} failed");
    }
    Ok(python.to_owned())
}

/// A script of `vision/python`, beside the sources this binary was built
/// from, else under the current folder.
pub(super) fn python_script(name: &str) -> anyhow::Result<std::path::PathBuf> {
    repository_file(&std::path::Path::new("vision/python").join(name))
        .map_err(|missing| anyhow::anyhow!("{missing}: run from the repository"))
}

/// A file of the repository, beside the sources this binary was built from,
/// else under the current folder; the error names what is missing.
pub(super) fn repository_file(relative: &std::path::Path) -> Result<std::path::PathBuf, String> {
    [
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative),
        relative.to_owned(),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| format!("{} is missing", relative.display()))
}

pub(super) fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
