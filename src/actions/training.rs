//! Training runs: start one on a dataset version (checked here, so the page,
//! the API and the CLI refuse the same things before a worker is involved),
//! read a run with its curve and checkpoints, cancel it, and make its model
//! the one search uses.

use serde::Serialize;
use uuid::Uuid;

use super::{ActionError, Ctx};
use crate::{
    db::{
        self,
        embeddings::Model,
        training::{Checkpoint, Listed, Metric},
    },
    jobs::{self, JobSpec},
    queue::{self, Enqueue},
    training::{BaseChoice, RunConfig},
};

/// A run as its page and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: Listed,
    pub metrics: Vec<Metric>,
    pub checkpoints: Vec<Checkpoint>,
    pub model: Option<Model>,
    /// The evaluation protocol in a sentence.
    pub protocol: String,
}

/// Starts a run: checks the settings and the version, records the run and
/// queues its `train` job.
pub async fn start(
    ctx: Ctx<'_>,
    name: Option<&str>,
    version_id: i32,
    config: RunConfig,
) -> Result<Listed, ActionError> {
    let base = config
        .check()
        .map_err(|(field, message)| ActionError::field(field, message))?;
    if let BaseChoice::Model(id) = base {
        let model = db::embeddings::get(ctx.pool, id)
            .await?
            .ok_or_else(|| ActionError::field("base", format!("There is no model #{id}.")))?;
        if model.kind != "dinov2" {
            return Err(ActionError::field(
                "base",
                format!(
                    "{} is not a DINOv2 model; train from a DINOv2 model or from scratch.",
                    model.label()
                ),
            ));
        }
    }
    let version = db::datasets::version(ctx.pool, version_id)
        .await?
        .ok_or_else(|| {
            ActionError::NotFound(format!("There is no dataset version #{version_id}."))
        })?;
    if version.task != "recognition" {
        return Err(ActionError::Conflict(format!(
            "Version {} is a {} version; training needs a recognition dataset (one product per \
             image, split by product).",
            version.number, version.task
        )));
    }
    let state = db::datasets::version_state(ctx.pool, version_id)
        .await?
        .ok_or_else(|| {
            ActionError::NotFound(format!("There is no dataset version #{version_id}."))
        })?;
    if state.rendered < state.images {
        return Err(ActionError::Conflict(format!(
            "Version {} is still rendering ({} of {} images); start the run when it is done.",
            version.number, state.rendered, state.images
        )));
    }
    let counts = db::training::frames_per_product(ctx.pool, version_id).await?;
    let of = |split: &'static str| counts.iter().filter(move |c| c.0 == split);
    let train_products = of("train").count();
    if train_products < 2 {
        return Err(ActionError::Conflict(format!(
            "Version {} has {train_products} product{} in its train split; training needs at \
             least 2.",
            version.number,
            if train_products == 1 { "" } else { "s" }
        )));
    }
    if let Some(short) = of("train").find(|c| (c.2 as usize) < config.k) {
        return Err(ActionError::field(
            "k",
            format!(
                "Product {} has {} training images; K ({}) frames of each go into a batch. \
                 Lower K or add frames.",
                short.1, short.2, config.k
            ),
        ));
    }
    let val_products = of("val").count();
    if val_products < 2 {
        return Err(ActionError::Conflict(format!(
            "Version {} has {val_products} product{} in its validation split; validation needs \
             at least 2 (raise the val ratio of the dataset).",
            version.number,
            if val_products == 1 { "" } else { "s" }
        )));
    }
    let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => name.to_owned(),
        None => db::training::next_name(ctx.pool, version_id).await?,
    };
    let config_json = serde_json::to_value(&config).map_err(anyhow::Error::from)?;
    let run = db::training::create(ctx.pool, &name, version_id, &config_json)
        .await?
        .ok_or_else(|| {
            ActionError::field("name", format!("A run named {name:?} already exists."))
        })?;
    let ids = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::Train(jobs::train::Train {
            run_id: run.id,
        }))],
    )
    .await?;
    db::training::set_job(ctx.pool, run.id, ids[0]).await?;
    db::training::listed(ctx.pool, run.id)
        .await?
        .ok_or_else(|| ActionError::NotFound("The run is gone.".to_owned()))
}

pub async fn view(ctx: Ctx<'_>, id: i32) -> Result<RunView, ActionError> {
    let run = db::training::listed(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no training run #{id}.")))?;
    let model = match run.run.model_id {
        Some(model) => db::embeddings::get(ctx.pool, model).await?,
        None => None,
    };
    let window = run
        .run
        .config
        .get("window")
        .and_then(|w| w.as_u64())
        .unwrap_or(1) as u32;
    Ok(RunView {
        metrics: db::training::metrics(ctx.pool, id).await?,
        checkpoints: db::training::checkpoints(ctx.pool, id).await?,
        model,
        protocol: buybuddy_dataset::retrieval::describe(window),
        run,
    })
}

/// Stops a run; its last checkpoint stays.
pub async fn cancel(ctx: Ctx<'_>, id: i32) -> Result<Uuid, ActionError> {
    let run = db::training::get(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no training run #{id}.")))?;
    let job = run
        .job_id
        .ok_or_else(|| ActionError::Conflict("The run has no job.".to_owned()))?;
    super::jobs::cancel(ctx, job).await?;
    Ok(job)
}

/// Makes the run's model the active embedding model: every product is
/// embedded again in the background while search keeps answering from the
/// model before. Returns the model and the jobs queued.
pub async fn use_for_search(ctx: Ctx<'_>, id: i32) -> Result<(Model, usize), ActionError> {
    let run = db::training::get(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no training run #{id}.")))?;
    let model = run.model_id.ok_or_else(|| {
        ActionError::Conflict(
            "The run has not registered a model yet (it does when it finishes).".to_owned(),
        )
    })?;
    super::search::activate(ctx.pool, ctx.queue, &model.to_string()).await
}
