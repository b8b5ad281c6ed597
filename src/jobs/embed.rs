//! `embed`: one product's frames into vectors of one model, and the product's
//! prototype (their mean, re-normalised), written together. Queued when a
//! video job completes while a model is active, and by the backfill
//! (`buybuddy embed --all`, the Search page's button). Running it again
//! replaces what it wrote.

use std::{sync::Arc, time::Duration};

use anyhow::anyhow;
use buybuddy_worker::embed::{self, Embedder, Subject, Wanted};
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Job, JobContext, JobError, Summary};
use crate::db::{self, embeddings::Model};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    pub product_id: Uuid,
    /// The registry's model (`embedding_models.id`).
    pub model_id: i32,
}

/// Frames embedded per step (one progress report each).
const BATCH: usize = 8;

impl Job for Embed {
    const KIND: &'static str = "embed";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    fn summary(&self) -> Summary {
        Summary::default()
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let model = db::embeddings::get(pool, self.model_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(anyhow!("model #{} is not in the registry", self.model_id))
            })?;
        let frames = db::embeddings::frames_of(pool, self.product_id).await?;
        if frames.is_empty() {
            return Err(JobError::Permanent(anyhow!(
                "product {} has no frames to embed (process its video first)",
                self.product_id
            )));
        }
        ctx.stage("load", 5, &format!("Embedding with {}", model.label()))
            .await?;
        let embedder = embedder_for(ctx, &model).await?;
        ctx.stage("embed", 10, &format!("Embedding {} frames", frames.len()))
            .await?;
        let mut vectors = Vec::with_capacity(frames.len());
        for (done, chunk) in frames.chunks(BATCH).enumerate() {
            let images =
                futures::future::try_join_all(chunk.iter().map(|f| load_frame(storage, f))).await?;
            let embedder = embedder.clone();
            let batch = tokio::task::spawn_blocking(move || {
                let subjects: Vec<Subject<'_>> = images
                    .iter()
                    .map(|(image, mask)| Subject {
                        image,
                        mask: mask.as_ref(),
                    })
                    .collect();
                embedder.embed(&subjects)
            })
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))?
            .map_err(JobError::Permanent)?;
            if let Some(bad) = batch.iter().find(|v| v.len() != model.dims as usize) {
                return Err(JobError::Permanent(anyhow!(
                    "{} gave a {}-d vector; the registry says {}",
                    model.label(),
                    bad.len(),
                    model.dims
                )));
            }
            vectors.extend(batch);
            let share = ((done + 1) * BATCH).min(frames.len()) * 80 / frames.len();
            ctx.progress(10 + share as u8).await?;
        }
        let prototype = embed::prototype(&vectors).expect("at least one frame");
        ctx.stage("persist", 92, "Saving the vectors and the prototype")
            .await?;
        let rows: Vec<(i64, Vec<f32>)> = frames.iter().map(|f| f.id).zip(vectors).collect();
        match db::embeddings::save(pool, &model, self.product_id, &rows, &prototype).await {
            Ok(()) => {}
            Err(sqlx::Error::RowNotFound) => {
                return Err(JobError::Transient(anyhow!(
                    "the product's frames changed while they were embedded; embedding again"
                )));
            }
            Err(error) => return Err(error.into()),
        }
        let serving = db::embeddings::promote_if_complete(pool, model.id).await?;
        Ok(json!({
            "product_id": self.product_id,
            "model": model.label(),
            "model_id": model.id,
            "frames": rows.len(),
            "dims": model.dims,
            "serving": serving,
        }))
    }
}

/// A frame's image and mask from storage, decoded.
async fn load_frame(
    storage: &buybuddy_worker::storage::Storage,
    frame: &db::embeddings::FrameToEmbed,
) -> Result<(RgbImage, Option<GrayImage>), JobError> {
    let fetch = |key: String| async move {
        storage
            .get(&key)
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))
    };
    let image = fetch(frame.storage_key.clone()).await?;
    let mask = match &frame.mask_key {
        Some(key) => Some(fetch(key.clone()).await?),
        None => None,
    };
    let bad = |what: &str, e: image::ImageError| {
        JobError::Permanent(anyhow!(
            "{what} of frame {} is not an image: {e}",
            frame.frame_index
        ))
    };
    let image = image::load_from_memory(&image)
        .map_err(|e| bad("the image", e))?
        .to_rgb8();
    let mask = mask
        .map(|m| image::load_from_memory(&m).map(|m| m.to_luma8()))
        .transpose()
        .map_err(|e| bad("the mask", e))?;
    Ok((image, mask))
}

/// The process's embedder for a registry model (loading it if it must).
pub(super) async fn embedder_for(
    ctx: &JobContext,
    model: &Model,
) -> Result<Arc<dyn Embedder>, JobError> {
    let embedders = ctx.resources.embedders.clone();
    let wanted = crate::models::wanted(ctx.resources.storage.as_ref(), model)
        .await
        .map_err(|e| JobError::Transient(e.context(format!("fetching {}", model.label()))))?;
    tokio::task::spawn_blocking(move || embedders.get(&wanted))
        .await
        .map_err(|e| JobError::Transient(anyhow!(e)))?
        .map_err(|e| {
            JobError::Permanent(
                e.context(format!("this worker cannot embed with {}", model.label())),
            )
        })
}

/// What the registry row asks of an embedder.
pub fn wanted(model: &Model) -> Wanted {
    Wanted {
        kind: model.kind.clone(),
        name: model.name.clone(),
        weights_hash: model.weights_hash.clone(),
        path: model.path().map(Into::into),
    }
}

/// Queues an embed job with the active model for a product, if a model is
/// active; returns its id.
pub async fn queue_for_active(
    pool: &sqlx::PgPool,
    queue: &str,
    product_id: Uuid,
) -> anyhow::Result<Option<Uuid>> {
    let Some(model) = db::embeddings::active(pool).await? else {
        return Ok(None);
    };
    let ids = crate::queue::enqueue(
        pool,
        queue,
        vec![
            super::JobSpec::Embed(Embed {
                product_id,
                model_id: model.id,
            })
            .into(),
        ],
    )
    .await?;
    Ok(ids.into_iter().next())
}
