//! `buybuddy train`: start a training run, follow it, cancel it, and make its
//! model the search model, from the command line (the same actions as the
//! Training page and the API).

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use serde_json::json;

use super::action;
use crate::{
    actions::{Ctx, training as act},
    db,
    training::RunConfig,
};

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Start a run on a recognition dataset version. Settings come from
    /// --config (a JSON file in the API's shape) and the flags, flags last;
    /// with --wait, print the curve as it comes until the run ends.
    Start {
        #[command(flatten)]
        common: super::dataset::Common,
        /// The dataset, by id or name.
        dataset: String,
        /// The version number (the newest when unset).
        #[arg(long)]
        version: Option<i32>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// scratch:tiny, scratch:small, model:<id> or folder:<path>.
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        p: Option<usize>,
        #[arg(long)]
        k: Option<usize>,
        #[arg(long)]
        lr: Option<f64>,
        /// arcface, supcon or triplet.
        #[arg(long)]
        loss: Option<String>,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        wait: bool,
    },
    /// The runs, as JSON.
    List {
        #[command(flatten)]
        common: super::dataset::Common,
    },
    /// A run with its curve and checkpoints, as JSON.
    Show {
        #[command(flatten)]
        common: super::dataset::Common,
        run: i32,
    },
    /// Cancel a run (its last checkpoint is kept).
    Cancel {
        #[command(flatten)]
        common: super::dataset::Common,
        run: i32,
    },
    /// Make a finished run's model the active embedding model (every
    /// product is embedded again in the background).
    Use {
        #[command(flatten)]
        common: super::dataset::Common,
        run: i32,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let common = match &command {
        Command::Start { common, .. }
        | Command::List { common }
        | Command::Show { common, .. }
        | Command::Cancel { common, .. }
        | Command::Use { common, .. } => common.clone(),
    };
    let opened = common.open().await?;
    let ctx = opened.ctx();
    match command {
        Command::Start {
            dataset,
            version,
            name,
            config,
            base,
            epochs,
            p,
            k,
            lr,
            loss,
            seed,
            wait,
            ..
        } => {
            let mut settings: RunConfig = match config {
                Some(path) => serde_json::from_slice(
                    &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("{} is not a run's settings", path.display()))?,
                None => RunConfig::default(),
            };
            macro_rules! set {
                ($($field:ident),*) => { $( if let Some(v) = $field { settings.$field = v; } )* };
            }
            set!(base, epochs, p, k, lr, loss, seed);
            let dataset = crate::actions::datasets::find(ctx, &dataset)
                .await
                .map_err(action)?;
            let versions = db::datasets::versions(&opened.pool, dataset.id).await?;
            let chosen = match version {
                Some(n) => versions.iter().find(|v| v.version.number == n),
                None => versions.first(),
            }
            .context("the dataset has no such version (run `buybuddy dataset version` first)")?;
            let run = act::start(ctx, name.as_deref(), chosen.version.id, settings)
                .await
                .map_err(action)?;
            eprintln!(
                "run #{} {:?} queued (job {})",
                run.run.id,
                run.run.name,
                run.run.job_id.map(|j| j.to_string()).unwrap_or_default()
            );
            if wait {
                follow(ctx, run.run.id).await?;
            }
            let view = act::view(ctx, run.run.id).await.map_err(action)?;
            println!("{}", serde_json::to_string_pretty(&summary(&view))?);
        }
        Command::List { .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&db::training::list(&opened.pool, 500).await?)?
            );
        }
        Command::Show { run, .. } => {
            let view = act::view(ctx, run).await.map_err(action)?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        Command::Cancel { run, .. } => {
            let job = act::cancel(ctx, run).await.map_err(action)?;
            eprintln!("run #{run}: job {job} cancelled; its last checkpoint is kept");
        }
        Command::Use { run, .. } => {
            let (model, queued) = act::use_for_search(ctx, run).await.map_err(action)?;
            eprintln!(
                "{} is the active model; {queued} products are being embedded again",
                model.label()
            );
        }
    }
    Ok(())
}

/// The figures a script wants from a finished run.
fn summary(view: &act::RunView) -> serde_json::Value {
    let val: Vec<_> = view.metrics.iter().filter(|m| m.kind == "val").collect();
    json!({
        "run": view.run.run.id,
        "name": view.run.run.name,
        "status": view.run.status,
        "error": view.run.error_message,
        "steps": view.run.step,
        "baseline": view.run.run.baseline,
        "validation": val,
        "model": view.model.as_ref().map(|m| m.label()),
        "model_id": view.model.as_ref().map(|m| m.id),
    })
}

/// Prints new points until the run's job ends.
async fn follow(ctx: Ctx<'_>, id: i32) -> anyhow::Result<()> {
    let mut shown = 0;
    loop {
        let view = act::view(ctx, id).await.map_err(action)?;
        for m in view.metrics.iter().skip(shown) {
            match m.kind.as_str() {
                "train" => eprintln!(
                    "step {:>5}  loss {:.4}  lr {:.2e}  {:.1} images/s",
                    m.step,
                    m.loss.unwrap_or(f64::NAN),
                    m.lr.unwrap_or(f64::NAN),
                    m.images_per_s.unwrap_or(f64::NAN)
                ),
                _ => eprintln!(
                    "step {:>5}  validation: recall@1 {:.3}  recall@5 {:.3}  mAP@R {:.3}",
                    m.step,
                    m.recall_at_1.unwrap_or(f64::NAN),
                    m.recall_at_5.unwrap_or(f64::NAN),
                    m.map_at_r.unwrap_or(f64::NAN)
                ),
            }
        }
        shown = view.metrics.len();
        match view.run.status.as_deref() {
            Some("completed") => return Ok(()),
            Some(status @ ("failed" | "cancelled")) => anyhow::bail!(
                "run #{id} {status}: {}",
                view.run.error_message.unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
