//! `merchant_images`: fetches the images a merchant's lines link to (size and
//! time limits, retries, as video downloads are), stores them, and embeds
//! them with the serving model; each fetched line waits for its suggestions
//! again, now with its image. A link that cannot be fetched marks its line
//! `failed` with the reason (shown on the merchant's page) and the job goes
//! on; lines fetched by an earlier attempt are not fetched again.

use std::time::Duration;

use anyhow::anyhow;
use buybuddy_worker::{
    download::{self, Limits},
    embed::Subject,
    media::photo,
    retry::Backoff,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Job, JobContext, JobError, embed::embedder_for};
use crate::{db, keys};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantImages {
    pub merchant_id: i32,
}

/// The largest image fetched.
pub const MAX_IMAGE_BYTES: u64 = 20 << 20;

fn limits() -> Limits {
    Limits {
        max_bytes: MAX_IMAGE_BYTES,
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(20),
        attempts: 3,
        backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
    }
}

impl Job for MerchantImages {
    const KIND: &'static str = "merchant_images";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(6 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let model = db::embeddings::serving(pool).await?;
        let embedder = match &model {
            Some(model) => Some(embedder_for(ctx, model).await?),
            None => None,
        };
        let scratch = tempfile::tempdir_in(&ctx.resources.video.scratch)
            .map_err(|e| JobError::Transient(anyhow!(e)))?;
        let (mut stored, mut failed) = (0usize, 0usize);
        loop {
            let batch = db::merchants::images_to_fetch(pool, self.merchant_id, 20).await?;
            if batch.is_empty() {
                break;
            }
            for (line, url) in batch {
                let folder = scratch.path().join(line.to_string());
                let outcome = match fetch(&url, &folder, &ctx.resources.s3).await {
                    Ok(image) => {
                        let key = keys::merchant_image(self.merchant_id, line);
                        storage
                            .put(&key, Bytes::from(photo::jpeg(&image, 90)), "image/jpeg")
                            .await
                            .map_err(|e| JobError::Transient(anyhow!(e)))?;
                        let vector = match (&model, &embedder) {
                            (Some(model), Some(embedder)) => {
                                let embedder = embedder.clone();
                                let vector = tokio::task::spawn_blocking(move || {
                                    embedder.embed(&[Subject {
                                        image: &image,
                                        mask: None,
                                    }])
                                })
                                .await
                                .map_err(|e| JobError::Transient(anyhow!(e)))?
                                .map_err(JobError::Permanent)?;
                                vector.into_iter().next().map(|v| (model.id, model.dims, v))
                            }
                            _ => None,
                        };
                        stored += 1;
                        Ok((key, vector))
                    }
                    Err(e) if e.1 => return Err(JobError::Transient(anyhow!(e.0))),
                    Err(e) => {
                        failed += 1;
                        Err(e.0)
                    }
                };
                db::merchants::image_fetched(pool, line, outcome).await?;
                let _ = tokio::fs::remove_dir_all(&folder).await;
            }
            ctx.stage(
                "fetch",
                50,
                &format!("{stored} images stored, {failed} could not be fetched"),
            )
            .await?;
        }
        // The fetched lines wait for suggestions again, now with their images.
        if db::merchants::count_waiting(pool).await? > 0 {
            crate::queue::enqueue(
                pool,
                ctx.queue(),
                vec![crate::queue::Enqueue::from(
                    super::JobSpec::MerchantSuggest(super::merchant_suggest::MerchantSuggest {}),
                )],
            )
            .await?;
        }
        Ok(json!({"stored": stored, "failed": failed}))
    }
}

/// Downloads and decodes one image, upright, or says why not and whether
/// trying later could help.
async fn fetch(
    url: &str,
    folder: &std::path::Path,
    s3: &buybuddy_worker::storage::S3Settings,
) -> Result<image::RgbImage, (String, bool)> {
    tokio::fs::create_dir_all(folder)
        .await
        .map_err(|e| (e.to_string(), true))?;
    let downloaded = download::fetch(url, folder, &limits(), s3)
        .await
        .map_err(|e| match e {
            download::DownloadError::TooLarge { limit } => (
                format!(
                    "the image is larger than the limit of {}",
                    download::human_bytes(limit)
                ),
                false,
            ),
            // A link that stays unreachable fails its line, not the job.
            e => (e.to_string(), false),
        })?;
    let bytes = tokio::fs::read(&downloaded.path)
        .await
        .map_err(|e| (e.to_string(), true))?;
    let limits = photo::Limits {
        max_bytes: MAX_IMAGE_BYTES as usize,
        ..photo::Limits::default()
    };
    photo::decode(&bytes, &limits).map_err(|e| (e.to_string(), false))
}
