//! `augment`: renders a dataset version's images into the version's own
//! storage folder (frames as filmed, augmented draws, shelf composites) and
//! records each image's labels. Keys are deterministic, so a retry overwrites
//! what a failed attempt wrote; images already rendered are not rendered again.

use std::{collections::HashMap, time::Duration};

use anyhow::anyhow;
use buybuddy_dataset::{
    augment::decode_background,
    export::Object,
    render::{self, Source},
};
use buybuddy_worker::storage::{Storage, StorageError};
use bytes::Bytes;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Job, JobContext, JobError};
use crate::db::{
    self,
    datasets::{ItemRow, RenderSettings, Version},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub version_id: i32,
}

/// Images rendered per step (one progress report and one database write each).
const BATCH: i64 = 32;

impl Job for Augment {
    const KIND: &'static str = "augment";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(6 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let state = db::datasets::version_state(pool, self.version_id)
            .await?
            .ok_or_else(|| {
                JobError::Permanent(anyhow!("dataset version #{} is gone", self.version_id))
            })?;
        let settings = std::sync::Arc::new(settings_of(storage, &state.version).await?);
        let total = state.images.max(1);
        let mut rendered = state.rendered;
        ctx.stage(
            "render",
            1,
            &format!(
                "Rendering {} of {} images ({} already rendered)",
                state.images - state.rendered,
                state.images,
                state.rendered
            ),
        )
        .await?;
        let mut newly = 0;
        loop {
            let rows = db::datasets::unrendered(pool, self.version_id, BATCH).await?;
            if rows.is_empty() {
                break;
            }
            let sources = load_sources(storage, &rows).await?;
            let work_settings = settings.clone();
            let done =
                tokio::task::spawn_blocking(move || render_rows(&rows, &sources, &work_settings))
                    .await
                    .map_err(|e| JobError::Transient(anyhow!(e)))??;
            futures::future::try_join_all(done.iter().map(|(key, png, ..)| async move {
                storage
                    .put(key, png.clone(), "image/png")
                    .await
                    .map_err(|e| JobError::Transient(anyhow!(e)))
            }))
            .await?;
            let marks: Vec<(i32, u32, u32, Vec<Object>)> = done
                .into_iter()
                .map(|(_, _, ordinal, w, h, objects)| (ordinal, w, h, objects))
                .collect();
            rendered += marks.len() as i64;
            newly += marks.len();
            db::datasets::mark_rendered(pool, self.version_id, &marks).await?;
            ctx.progress((1 + rendered * 98 / total) as u8).await?;
        }
        ctx.stage("done", 100, "Every image is rendered").await?;
        Ok(json!({
            "version_id": self.version_id,
            "images": state.images,
            "rendered_now": newly,
        }))
    }
}

/// A version's render settings and its decoded background images.
pub async fn settings_of(
    storage: &Storage,
    version: &Version,
) -> Result<render::Settings, JobError> {
    let stored: RenderSettings =
        serde_json::from_value(version.config.get("render").cloned().unwrap_or(Value::Null))
            .unwrap_or_default();
    let keys: Vec<String> = version
        .config
        .get("backgrounds")
        .and_then(|b| serde_json::from_value(b.clone()).ok())
        .unwrap_or_default();
    Ok(render::Settings {
        augment: stored.augment,
        shelf: stored.shelf,
        backgrounds: load_backgrounds(storage, &keys).await?,
    })
}

/// Uploaded background images from storage, decoded.
pub async fn load_backgrounds(
    storage: &Storage,
    keys: &[String],
) -> Result<Vec<RgbImage>, JobError> {
    let mut backgrounds = Vec::with_capacity(keys.len());
    for key in keys {
        let bytes = fetch(storage, key).await?;
        backgrounds.push(
            decode_background(&bytes).map_err(|e| {
                JobError::Permanent(anyhow!("background {key} cannot be used: {e}"))
            })?,
        );
    }
    Ok(backgrounds)
}

async fn fetch(storage: &Storage, key: &str) -> Result<Bytes, JobError> {
    storage.get(key).await.map_err(|e| match e {
        StorageError::NotFound(_) => JobError::Permanent(anyhow!(
            "{key} is no longer in storage (was the product reprocessed or deleted after the \
             version was made? generate a new version)"
        )),
        e => JobError::Transient(anyhow!(e)),
    })
}

/// A frame's image and mask, decoded.
pub type Loaded = (RgbImage, Option<GrayImage>);

/// Loads every source image (with its mask) a batch of items needs, each
/// once, by its storage key.
pub async fn load_sources(
    storage: &Storage,
    rows: &[ItemRow],
) -> Result<HashMap<String, Loaded>, JobError> {
    let mut wanted: HashMap<String, Option<String>> = HashMap::new();
    for row in rows {
        for s in row.sources.iter() {
            wanted
                .entry(s.image.clone())
                .or_insert_with(|| s.mask.clone());
        }
    }
    let loaded =
        futures::future::try_join_all(wanted.into_iter().map(|(image, mask)| async move {
            let image_bytes = fetch(storage, &image).await?;
            let mask_bytes = match &mask {
                Some(key) => Some(fetch(storage, key).await?),
                None => None,
            };
            let decoded = tokio::task::spawn_blocking(move || decode(&image_bytes, mask_bytes))
                .await
                .map_err(|e| JobError::Transient(anyhow!(e)))?
                .map_err(|e| JobError::Permanent(anyhow!("frame {image}: {e}")))?;
            Ok::<_, JobError>((image, decoded))
        }))
        .await?;
    Ok(loaded.into_iter().collect())
}

fn decode(image: &[u8], mask: Option<Bytes>) -> Result<Loaded, image::ImageError> {
    let image = image::load_from_memory(image)?.to_rgb8();
    let mask = mask
        .map(|m| image::load_from_memory(&m).map(|m| m.to_luma8()))
        .transpose()?;
    Ok((image, mask))
}

/// What one rendered item leaves: its key, PNG, ordinal, size and labels.
type Done = (String, Bytes, i32, u32, u32, Vec<Object>);

/// Renders a batch on every core.
fn render_rows(
    rows: &[ItemRow],
    sources: &HashMap<String, Loaded>,
    settings: &render::Settings,
) -> Result<Vec<Done>, JobError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(rows.len().max(1));
    let per = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per.max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|row| render_row(row, sources, settings))
                        .collect::<Result<Vec<_>, JobError>>()
                })
            })
            .collect();
        let mut done = Vec::with_capacity(rows.len());
        for handle in handles {
            done.extend(
                handle
                    .join()
                    .map_err(|_| JobError::Permanent(anyhow!("rendering an image panicked")))??,
            );
        }
        Ok(done)
    })
}

fn render_row(
    row: &ItemRow,
    sources: &HashMap<String, Loaded>,
    settings: &render::Settings,
) -> Result<Done, JobError> {
    let inputs: Vec<Source<'_>> = row
        .sources
        .iter()
        .map(|s| {
            let (image, mask) = sources
                .get(&s.image)
                .ok_or_else(|| JobError::Permanent(anyhow!("{} was not loaded", s.image)))?;
            Ok(Source {
                image,
                mask: mask.as_ref(),
                class: s.class,
            })
        })
        .collect::<Result<_, JobError>>()?;
    let rendered = render::render(row.kind(), &inputs, row.seed as u64, settings);
    let (w, h) = rendered.image.dimensions();
    Ok((
        row.image_key.clone(),
        Bytes::from(render::png(&rendered.image)),
        row.ordinal,
        w,
        h,
        rendered.objects,
    ))
}
