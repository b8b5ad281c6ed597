//! `match_shelf`: embeds the real crops of a batch of shelf photos with one
//! model (the serving model when queued) and records, for each crop, the
//! products nearest it by prototype (the suggestions a person reviews) and the
//! filmed frame nearest it of any product (for coverage). Crops that already
//! have vectors of the model are left alone, so a retry does only what is
//! missing; a crop moved meanwhile lost its vectors and is matched anew.

use std::time::Duration;

use anyhow::anyhow;
use buybuddy_worker::{embed::Subject, postprocess, segment::BoundingBox};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Job, JobContext, JobError, embed::embedder_for};
use crate::db::{
    self,
    embeddings::Filter,
    shelves::{CropToMatch, Found},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchShelf {
    pub image_ids: Vec<i32>,
    /// The registry's model (`embedding_models.id`).
    pub model_id: i32,
}

/// How many products each crop is matched to.
pub const SUGGESTIONS: i64 = 5;
/// The margin around a box in its crop, as frames have around the product.
pub const CROP_MARGIN: f32 = 0.08;
/// Crops embedded per step.
const BATCH: usize = 16;

impl Job for MatchShelf {
    const KIND: &'static str = "match_shelf";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(2 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let model = db::embeddings::get(pool, self.model_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(anyhow!("model #{} is not in the registry", self.model_id))
            })?;
        ctx.stage("load", 2, &format!("Matching with {}", model.label()))
            .await?;
        let embedder = embedder_for(ctx, &model).await?;
        let (mut crops, mut images) = (0usize, 0usize);
        for (done, &image_id) in self.image_ids.iter().enumerate() {
            let todo = db::shelves::crops_to_match(pool, image_id, model.id).await?;
            if !todo.is_empty() {
                images += 1;
            }
            for chunk in todo.chunks(BATCH) {
                let loaded = futures::future::try_join_all(chunk.iter().map(|crop| async move {
                    let bytes = storage.get(&crop.crop_key).await.map_err(|e| {
                        JobError::Transient(anyhow!("crop of box {}: {e}", crop.id))
                    })?;
                    Ok::<_, JobError>((crop.clone(), bytes))
                }))
                .await?;
                let embedder = embedder.clone();
                let vectors = tokio::task::spawn_blocking(move || embed_crops(&*embedder, &loaded))
                    .await
                    .map_err(|e| JobError::Transient(anyhow!(e)))?
                    .map_err(JobError::Permanent)?;
                let mut found = Vec::with_capacity(vectors.len());
                for (crop, embedding) in chunk.iter().zip(vectors) {
                    if embedding.len() != model.dims as usize {
                        return Err(JobError::Permanent(anyhow!(
                            "{} gave a {}-d vector; the registry says {}",
                            model.label(),
                            embedding.len(),
                            model.dims
                        )));
                    }
                    let near = db::embeddings::nearest_products(
                        pool,
                        &model,
                        &embedding,
                        SUGGESTIONS,
                        &Filter::default(),
                    )
                    .await?;
                    let gallery = db::embeddings::nearest_frame(pool, &model, &embedding).await?;
                    found.push(Found {
                        box_id: crop.id,
                        embedding,
                        gallery,
                        suggestions: near
                            .into_iter()
                            .map(|n| (n.product_id, n.similarity))
                            .collect(),
                    });
                }
                db::shelves::save_matches(pool, &model, &found).await?;
                crops += found.len();
            }
            let share = (done + 1) * 96 / self.image_ids.len().max(1);
            ctx.stage(
                "match",
                (2 + share).min(99) as u8,
                &format!(
                    "Photo {} of {}: {crops} crops matched so far",
                    done + 1,
                    self.image_ids.len()
                ),
            )
            .await?;
        }
        Ok(json!({
            "model": model.label(),
            "model_id": model.id,
            "images": self.image_ids.len(),
            "images_with_new_crops": images,
            "crops": crops,
        }))
    }
}

/// Decodes crops and embeds them, each with its box as the mask.
fn embed_crops(
    embedder: &dyn buybuddy_worker::embed::Embedder,
    loaded: &[(CropToMatch, bytes::Bytes)],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut images = Vec::with_capacity(loaded.len());
    for (crop, bytes) in loaded {
        let image = image::load_from_memory(bytes)
            .map_err(|e| anyhow!("the crop of box {} is not an image: {e}", crop.id))?
            .to_rgb8();
        let mask = postprocess::crop_mask(&bounding_box(crop), CROP_MARGIN);
        images.push((image, mask));
    }
    let subjects: Vec<Subject<'_>> = images
        .iter()
        .map(|(image, mask)| Subject {
            image,
            mask: Some(mask),
        })
        .collect();
    embedder.embed(&subjects)
}

fn bounding_box(crop: &CropToMatch) -> BoundingBox {
    BoundingBox {
        x: crop.x as u32,
        y: crop.y as u32,
        width: crop.width as u32,
        height: crop.height as u32,
    }
}
