//! The video job's stages, from a video to a product with its frames: the
//! worker crate's pieces tied to the database, the job's progress and storage.
//!
//! download -> decode -> metadata -> segment -> post-process -> upload -> persist.
//! Each stage is announced (stage, progress, event line) and is a point where a
//! cancel request stops the job. Whatever fails, the job's objects are deleted
//! and nothing but the failed job remains; the product row and its frames are
//! written together at the very end.

use std::{path::PathBuf, sync::Arc};

use anyhow::anyhow;
use buybuddy_worker::{
    download::{self, DownloadError},
    gemini::{Gemini, GeminiError, Hints, ProductMetadata},
    media::decode::{self, DecodeError, Frame, VideoInfo},
    postprocess::{self, Background, Processed},
    segment::Segmenter,
    storage::{S3Settings, Storage},
};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    config::{PipelineArgs, StorageArgs},
    db,
    jobs::{JobContext, JobError, context::Level},
};

/// Uploads in flight at once.
const UPLOADS: usize = 8;

/// Everything a worker needs to process videos.
pub struct Pipeline {
    pub storage: Storage,
    pub s3: S3Settings,
    pub segmenter: Arc<dyn Segmenter>,
    /// Reads catalog metadata from the video; the stage is skipped without it.
    pub gemini: Option<Gemini>,
    /// Frames sampled from each video unless a job asks otherwise.
    pub frames: u32,
    pub post: postprocess::Options,
    pub limits: download::Limits,
    /// Where downloads are written (removed when the job ends).
    pub scratch: PathBuf,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("storage", &self.storage.describe())
            .field("segmenter", &self.segmenter.name())
            .field("gemini", &self.gemini.as_ref().map(|g| &g.settings().model))
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

/// One video to process.
#[derive(Debug, Clone)]
pub struct Request {
    pub video_url: String,
    pub barcode: String,
    pub video_id: Option<i32>,
    pub frames: Option<u32>,
    pub background: Option<Background>,
}

impl Pipeline {
    pub async fn from_args(
        data_dir: &std::path::Path,
        storage: &StorageArgs,
        pipeline: &PipelineArgs,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            storage: storage.open(data_dir).await?,
            s3: storage.s3_settings(),
            segmenter: pipeline.segmenter.open()?,
            gemini: pipeline.gemini.client()?,
            frames: pipeline.frames,
            post: postprocess::Options {
                background: pipeline.background,
                ..postprocess::Options::default()
            },
            limits: download::Limits {
                max_bytes: pipeline.max_video_size,
                read_timeout: pipeline.download_timeout,
                ..download::Limits::default()
            },
            scratch: std::env::temp_dir(),
        })
    }

    /// Runs every stage; on failure the job's objects are gone again.
    pub async fn run(&self, ctx: &JobContext, request: &Request) -> Result<Value, JobError> {
        check_barcode(&request.barcode)?;
        let keys = Keys::new(&request.barcode, ctx.job_id);
        let outcome = self.stages(ctx, request, &keys).await;
        if outcome.is_err() {
            for prefix in [keys.frames_prefix(), keys.masks_prefix()] {
                if let Err(error) = self.storage.delete_prefix(&prefix).await {
                    tracing::error!(job.id = %ctx.job_id, %prefix, %error, "removing a failed job's objects failed");
                }
            }
        }
        outcome
    }

    async fn stages(
        &self,
        ctx: &JobContext,
        request: &Request,
        keys: &Keys,
    ) -> Result<Value, JobError> {
        let scratch =
            tempfile::tempdir_in(&self.scratch).map_err(|e| JobError::Transient(e.into()))?;

        ctx.stage("download", 2, &format!("Fetching {}", request.video_url))
            .await?;
        let video = download::fetch(&request.video_url, scratch.path(), &self.limits, &self.s3)
            .await
            .map_err(download_error)?;

        let wanted = request.frames.unwrap_or(self.frames).max(1) as usize;
        let catalog_name = db::catalog::name_of(ctx.pool(), &request.barcode).await?;
        let hints = Hints {
            barcode: request.barcode.clone(),
            catalog_name: catalog_name.clone(),
        };
        ctx.stage(
            "decode",
            12,
            &format!("Decoding {wanted} evenly spaced frames"),
        )
        .await?;
        // Gemini reads the video while it is decoded here: the two take a
        // similar time and neither waits for the other.
        let reading = async {
            match &self.gemini {
                Some(gemini) => {
                    let path = video.path.clone();
                    let mime = tokio::task::spawn_blocking(move || {
                        buybuddy_worker::media::video_mime_type(&path)
                    })
                    .await
                    .map_err(|e| GeminiError::Protocol(e.to_string()))??;
                    gemini
                        .describe_product(&video.path, mime, &hints)
                        .await
                        .map(Some)
                }
                None => Ok(None),
            }
        };
        let path = video.path.clone();
        let decoding = tokio::task::spawn_blocking(move || decode::sample_frames(&path, wanted));
        tokio::pin!(reading, decoding);
        let mut described = None;
        let decoded = loop {
            tokio::select! {
                decoded = &mut decoding => break decoded,
                answer = &mut reading, if described.is_none() => described = Some(answer),
            }
        };
        let (info, frames) = decoded
            .map_err(|e| JobError::Transient(e.into()))?
            .map_err(decode_error)?;
        ctx.event(Level::Info, &describe(&info, frames.len()))
            .await?;

        let metadata = match &self.gemini {
            Some(gemini) => {
                ctx.stage(
                    "metadata",
                    25,
                    &format!(
                        "Asking Gemini ({}) for the product's catalog metadata",
                        gemini.settings().model
                    ),
                )
                .await?;
                let answer = match described {
                    Some(answer) => answer,
                    None => reading.await,
                };
                let metadata = answer.map_err(gemini_error)?;
                if let Some(found) = &metadata {
                    ctx.event(Level::Info, &describe_metadata(found)).await?;
                }
                metadata
            }
            None => None,
        };
        drop(scratch);
        let prompt = match (&metadata, &catalog_name) {
            (Some(found), _) => found.grounding_prompt.clone(),
            (None, Some(name)) if !name.trim().is_empty() => name.trim().to_owned(),
            _ => "product".to_owned(),
        };
        if self.gemini.is_none() {
            let from = if prompt == "product" {
                "the default"
            } else {
                "the catalog name"
            };
            ctx.stage(
                "metadata",
                25,
                &format!(
                    "Skipped: GEMINI_API_KEY is not set on this worker; the segmentation prompt is {prompt:?} ({from})"
                ),
            )
            .await?;
        }

        ctx.stage(
            "segment",
            30,
            &format!(
                "Finding the product in {} frames ({} segmenter)",
                frames.len(),
                self.segmenter.name()
            ),
        )
        .await?;
        let segmenter = self.segmenter.clone();
        let images: Vec<_> = frames.iter().map(|f| f.image.clone()).collect();
        let segment_prompt = prompt.clone();
        let masks =
            tokio::task::spawn_blocking(move || segmenter.segment(&images, &segment_prompt))
                .await
                .map_err(|e| JobError::Transient(e.into()))?
                .map_err(JobError::Transient)?;

        ctx.stage(
            "post-process",
            50,
            "Cropping, padding and resizing to 518x518",
        )
        .await?;
        let options = postprocess::Options {
            background: request.background.unwrap_or(self.post.background),
            ..self.post.clone()
        };
        let processed = tokio::task::spawn_blocking(move || process_all(&frames, &masks, &options))
            .await
            .map_err(|e| JobError::Transient(e.into()))?;
        let found: Vec<(usize, Processed)> = processed
            .into_iter()
            .filter_map(|(index, p)| p.map(|p| (index, p)))
            .collect();
        if found.is_empty() {
            return Err(JobError::Permanent(anyhow!(
                "the product was not found in any of the {} frames (is it filmed in front of a plain background?)",
                wanted.min(info.frame_count)
            )));
        }
        let skipped = wanted.min(info.frame_count) - found.len();
        if skipped > 0 {
            ctx.event(
                Level::Warn,
                &format!("{skipped} frames showed no product and were left out"),
            )
            .await?;
        }

        ctx.stage(
            "upload",
            70,
            &format!("Storing {} frames and their masks", found.len()),
        )
        .await?;
        // Leftovers of an interrupted attempt would otherwise survive this one.
        for prefix in [keys.frames_prefix(), keys.masks_prefix()] {
            self.storage
                .delete_prefix(&prefix)
                .await
                .map_err(storage_error)?;
        }
        let objects = found
            .iter()
            .flat_map(|(index, p)| {
                [
                    (keys.frame(*index), Bytes::from(p.image.clone())),
                    (keys.mask(*index), Bytes::from(p.mask.clone())),
                ]
            })
            .collect();
        upload_all(&self.storage, objects)
            .await
            .map_err(storage_error)?;

        ctx.stage("persist", 92, "Saving the product and its frames")
            .await?;
        let frames_url = self.storage.url(&keys.frames_prefix());
        let rows: Vec<db::frames::NewFrame> = found
            .iter()
            .map(|(index, p)| db::frames::NewFrame {
                frame_index: *index as i32,
                storage_key: keys.frame(*index),
                mask_key: keys.mask(*index),
                width: postprocess::SIZE as i32,
                height: postprocess::SIZE as i32,
                mask_area: p.mask_area.min(i32::MAX as u64) as i32,
                bbox: [p.bbox.x, p.bbox.y, p.bbox.width, p.bbox.height].map(|v| v as i32),
                quality: json!({ "sharpness": p.sharpness, "brightness": p.brightness }),
            })
            .collect();
        let saved = db::frames::save(
            ctx.pool(),
            &db::frames::ProductOfJob {
                job_id: ctx.job_id,
                barcode: request.barcode.clone(),
                video_id: request.video_id,
                grounding_prompt: metadata.as_ref().map(|m| m.grounding_prompt.clone()),
                metadata: metadata.clone(),
                frames_path: frames_url.clone(),
            },
            &rows,
        )
        .await?;
        // The save is durable: the frames it replaced can go.
        if let Err(error) = self.storage.delete(&saved.replaced).await {
            tracing::warn!(job.id = %ctx.job_id, %error, "removing replaced frames failed; they stay in storage");
        }
        Ok(json!({
            "status": "completed",
            "metadata": metadata,
            "grounding_prompt": prompt,
            "frame_count": rows.len(),
            "frames_url": frames_url,
            "product_id": saved.product_id,
            "video": info,
        }))
    }
}

/// Stores PNG objects, a few at a time.
async fn upload_all(
    storage: &Storage,
    objects: Vec<(String, Bytes)>,
) -> Result<(), buybuddy_worker::storage::StorageError> {
    let mut uploads = futures::stream::iter(
        objects
            .into_iter()
            .map(|(key, body)| async move { storage.put(&key, body, "image/png").await }),
    )
    .buffer_unordered(UPLOADS);
    while let Some(uploaded) = uploads.next().await {
        uploaded?;
    }
    Ok(())
}

/// Post-processes frames on every core.
fn process_all(
    frames: &[Frame],
    masks: &[image::GrayImage],
    options: &postprocess::Options,
) -> Vec<(usize, Option<Processed>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = frames.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = frames
            .chunks(chunk)
            .zip(masks.chunks(chunk))
            .map(|(frames, masks)| {
                scope.spawn(move || {
                    frames
                        .iter()
                        .zip(masks)
                        .map(|(frame, mask)| {
                            (
                                frame.index,
                                postprocess::process(&frame.image, mask, options),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("post-processing does not panic"))
            .collect()
    })
}

/// The storage keys of a job's objects: the same on every attempt, so a retry
/// replaces rather than adds.
pub struct Keys {
    barcode: String,
    job: Uuid,
}

impl Keys {
    pub fn new(barcode: &str, job: Uuid) -> Self {
        Self {
            barcode: barcode.to_owned(),
            job,
        }
    }

    pub fn frames_prefix(&self) -> String {
        format!("frames/{}/{}/", self.barcode, self.job)
    }

    pub fn masks_prefix(&self) -> String {
        format!("masks/{}/{}/", self.barcode, self.job)
    }

    pub fn frame(&self, index: usize) -> String {
        format!("{}{index:04}.png", self.frames_prefix())
    }

    pub fn mask(&self, index: usize) -> String {
        format!("{}{index:04}.png", self.masks_prefix())
    }
}

/// Barcodes become part of storage keys: letters, digits, '-', '_' and '.' only.
pub fn check_barcode(barcode: &str) -> Result<(), JobError> {
    let fine = !barcode.is_empty()
        && barcode.len() <= 64
        && !barcode.starts_with('.')
        && barcode
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(JobError::Permanent(anyhow!(
            "{barcode:?} is not a barcode: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn describe(info: &VideoInfo, sampled: usize) -> String {
    let turn = if info.rotation == 0 {
        String::new()
    } else {
        format!(" (turned {}° to stand upright)", info.rotation)
    };
    format!(
        "Video: {} in {}, {}x{}{turn}, {} frames over {:.1} s; {sampled} sampled",
        info.codec, info.container, info.width, info.height, info.frame_count, info.duration_s
    )
}

fn describe_metadata(found: &ProductMetadata) -> String {
    let brand = found
        .brand_name
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    format!(
        "Gemini: {}{brand}; segmentation prompt {:?}; visibility {}/100",
        found.product_name, found.grounding_prompt, found.visibility_score
    )
}

fn gemini_error(error: GeminiError) -> JobError {
    let transient = error.is_transient();
    let error = anyhow!("Gemini: {error}");
    if transient {
        JobError::Transient(error)
    } else {
        JobError::Permanent(error)
    }
}

fn download_error(error: DownloadError) -> JobError {
    if error.is_permanent() {
        JobError::Permanent(error.into())
    } else {
        JobError::Transient(error.into())
    }
}

fn decode_error(error: DecodeError) -> JobError {
    match error {
        DecodeError::Io(_) => JobError::Transient(error.into()),
        _ => JobError::Permanent(error.into()),
    }
}

fn storage_error(error: buybuddy_worker::storage::StorageError) -> JobError {
    JobError::Transient(anyhow!("storage: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_per_job() {
        let job = Uuid::nil();
        let keys = Keys::new("8690000000001", job);
        assert_eq!(
            keys.frame(7),
            "frames/8690000000001/00000000-0000-0000-0000-000000000000/0007.png"
        );
        assert_eq!(
            keys.mask(7),
            "masks/8690000000001/00000000-0000-0000-0000-000000000000/0007.png"
        );
    }

    #[test]
    fn barcodes_must_be_safe_in_storage_keys() {
        assert!(check_barcode("8690000000001").is_ok());
        assert!(check_barcode("SKU-42_a.b").is_ok());
        for bad in ["", "../etc", "a/b", ".hidden", "x y", &"9".repeat(65)] {
            assert!(check_barcode(bad).is_err(), "{bad:?}");
        }
    }
}
