//! `buybuddy embed`, `models` and `search`: vectors, the model registry and
//! similarity search from the command line (the same actions as the Search
//! page and the API).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use super::action;
use crate::{
    actions::search::{self, SearchRequest},
    config::{DbArgs, EmbedArgs as ModelArgs},
    db,
    jobs::{JobSpec, embed::Embed},
    queue::{self, DEFAULT_QUEUE},
};

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,
    /// Every product with frames that lacks the model's vectors.
    #[arg(long, conflicts_with = "product")]
    all: bool,
    /// These products (repeatable), embedded again even if they have vectors.
    #[arg(long)]
    product: Vec<Uuid>,
    /// The model, by id or name (the active one when unset).
    #[arg(long)]
    model: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ModelsCommand {
    /// The registered models with how many products each covers.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Make a model the active one and queue its backfill; searches move to
    /// it once every product has its vectors.
    Activate {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
        queue: String,
        /// The model, by id or name.
        model: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    storage: crate::config::StorageArgs,
    #[command(flatten)]
    models: ModelArgs,
    /// A photo to search with.
    #[arg(long, conflicts_with = "product", required_unless_present = "product")]
    image: Option<PathBuf>,
    /// A product to find the like of.
    #[arg(long)]
    product: Option<Uuid>,
    /// How many products.
    #[arg(long, default_value_t = search::DEFAULT_K)]
    k: i64,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    category: Option<String>,
}

pub async fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let (_, pool) = super::open_database(&args.db, &[]).await?;
    let model = match &args.model {
        Some(name) => Some(
            db::embeddings::find(&pool, name)
                .await?
                .with_context(|| format!("there is no model {name:?}"))?,
        ),
        None => None,
    };
    if args.all || args.product.is_empty() {
        anyhow::ensure!(
            args.all,
            "say which products: --all (those without vectors) or --product ID"
        );
        let (model, queued) = search::backfill(&pool, &args.queue, model.map(|m| m.id))
            .await
            .map_err(action)?;
        println!("queued {queued} embed jobs with {}", model.label());
        return Ok(());
    }
    let model = match model {
        Some(model) => model,
        None => db::embeddings::active(&pool)
            .await?
            .context("no embedding model is active: start a worker first")?,
    };
    let jobs = args
        .product
        .iter()
        .map(|&product_id| {
            JobSpec::Embed(Embed {
                product_id,
                model_id: model.id,
            })
            .into()
        })
        .collect();
    let ids = queue::enqueue(&pool, &args.queue, jobs).await?;
    for id in &ids {
        println!("{id}");
    }
    eprintln!("queued {} embed jobs with {}", ids.len(), model.label());
    Ok(())
}

pub async fn models(command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::List { db } => {
            let (_, pool) = super::open_database(&db, &[]).await?;
            let models = db::embeddings::list(&pool).await?;
            println!("{}", serde_json::to_string_pretty(&models)?);
        }
        ModelsCommand::Activate { db, queue, model } => {
            let (_, pool) = super::open_database(&db, &[]).await?;
            let (model, queued) = search::activate(&pool, &queue, &model)
                .await
                .map_err(action)?;
            println!(
                "{} is active{}; queued {queued} embed jobs",
                model.label(),
                if model.serving {
                    " and serving"
                } else {
                    " (searches move to it once every product has its vectors)"
                }
            );
        }
    }
    Ok(())
}

pub async fn run_search(args: SearchArgs) -> anyhow::Result<()> {
    let (_, pool) = super::open_database(&args.db, &[]).await?;
    let request = SearchRequest::new(Some(args.k), args.status, args.category).map_err(action)?;
    let answer = match (&args.image, args.product) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let embedders = args.models.open()?;
            let storage = args.storage.open(&args.db.data_dir).await?;
            search::similar_to_image(&pool, Some(&storage), &embedders, &bytes, request).await
        }
        (None, Some(product)) => search::similar_to_product(&pool, product, request).await,
        (None, None) => unreachable!("clap requires one"),
    }
    .map_err(action)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "model": answer.model.label(),
            "hits": answer.hits,
        }))?
    );
    Ok(())
}
