//! The video job's stages, one function each, tied to the database, the job's
//! progress and storage: the worker crate does the pixel and network work.

use anyhow::anyhow;
use buybuddy_worker::{
    download::{self, DownloadError, Downloaded},
    gemini::{GeminiError, Hints, Metadata},
    media::decode::{self, DecodeError, Frame, VideoInfo},
    postprocess::{self, Processed},
    quality,
    storage::{Storage, StorageError},
};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use super::Video;
use crate::{
    db,
    jobs::{JobContext, JobError, Resources, context::Level},
    keys::JobMedia,
};

/// Uploads in flight at once.
const UPLOADS: usize = 8;

/// The prompt the segmenter gets when nothing names the product.
const DEFAULT_PROMPT: &str = "product";

/// What decoding (and Gemini, meanwhile) made of the video.
struct Read {
    info: VideoInfo,
    frames: Vec<Frame>,
    metadata: Option<Metadata>,
}

pub(super) async fn run(ctx: &JobContext, job: &Video, keys: &JobMedia) -> Result<Value, JobError> {
    let res = &*ctx.resources;
    let storage = res.storage()?;
    let scratch =
        tempfile::tempdir_in(&res.video.scratch).map_err(|e| JobError::Transient(e.into()))?;
    let video = download(ctx, res, job, &scratch).await?;
    let wanted = job.frames.unwrap_or(res.video.frames).max(1) as usize;
    let catalog_name = db::catalog::name_of(ctx.pool(), &job.barcode).await?;
    let read = decode_and_describe(ctx, res, job, &video, wanted, catalog_name.clone()).await?;
    drop(scratch);
    let prompt = prompt(ctx, res, read.metadata.as_ref(), catalog_name.as_deref()).await?;
    let sampled = wanted.min(read.info.frame_count);
    let masks = segment(ctx, res, &read.frames, &prompt).await?;
    let found = post_process(ctx, res, job, read.frames, masks, sampled).await?;
    upload(ctx, storage, keys, &found).await?;
    persist(
        ctx,
        storage,
        job,
        keys,
        &found,
        read.metadata,
        prompt,
        read.info,
    )
    .await
}

async fn download(
    ctx: &JobContext,
    res: &Resources,
    job: &Video,
    scratch: &tempfile::TempDir,
) -> Result<Downloaded, JobError> {
    ctx.stage("download", 2, &format!("Fetching {}", job.video_url))
        .await?;
    download::fetch(&job.video_url, scratch.path(), &res.video.limits, &res.s3)
        .await
        .map_err(download_error)
}

/// Decodes the sampled frames while Gemini reads the video: the two take a
/// similar time and neither waits for the other.
async fn decode_and_describe(
    ctx: &JobContext,
    res: &Resources,
    job: &Video,
    video: &Downloaded,
    wanted: usize,
    catalog_name: Option<String>,
) -> Result<Read, JobError> {
    let hints = Hints {
        barcode: job.barcode.clone(),
        catalog_name,
    };
    ctx.stage(
        "decode",
        12,
        &format!("Decoding {wanted} evenly spaced frames"),
    )
    .await?;
    let reading = async {
        match &res.gemini {
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

    let Some(gemini) = &res.gemini else {
        return Ok(Read {
            info,
            frames,
            metadata: None,
        });
    };
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
    Ok(Read {
        info,
        frames,
        metadata,
    })
}

/// The segmentation prompt: Gemini's, else the catalog name, else a default.
/// Without Gemini the metadata stage is announced as skipped, with the reason.
async fn prompt(
    ctx: &JobContext,
    res: &Resources,
    metadata: Option<&Metadata>,
    catalog_name: Option<&str>,
) -> Result<String, JobError> {
    let from_gemini = metadata.and_then(|found| found.grounding_prompt.clone());
    let prompt = match (from_gemini, catalog_name.map(str::trim)) {
        (Some(prompt), _) => prompt,
        (None, Some(name)) if !name.is_empty() => name.to_owned(),
        _ => DEFAULT_PROMPT.to_owned(),
    };
    if res.gemini.is_none() {
        let from = if prompt == DEFAULT_PROMPT {
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
    Ok(prompt)
}

async fn segment(
    ctx: &JobContext,
    res: &Resources,
    frames: &[Frame],
    prompt: &str,
) -> Result<Vec<image::GrayImage>, JobError> {
    let segmenter = res.segmenter()?;
    ctx.stage(
        "segment",
        30,
        &format!(
            "Finding the product in {} frames ({} segmenter)",
            frames.len(),
            segmenter.name()
        ),
    )
    .await?;
    let images: Vec<_> = frames.iter().map(|f| f.image.clone()).collect();
    let prompt = prompt.to_owned();
    tokio::task::spawn_blocking(move || segmenter.segment(&images, &prompt))
        .await
        .map_err(|e| JobError::Transient(e.into()))?
        .map_err(JobError::Transient)
}

/// Crops, pads and resizes every frame with a product; fails when none has one.
async fn post_process(
    ctx: &JobContext,
    res: &Resources,
    job: &Video,
    frames: Vec<Frame>,
    masks: Vec<image::GrayImage>,
    sampled: usize,
) -> Result<Vec<Found>, JobError> {
    ctx.stage(
        "post-process",
        50,
        "Cropping, padding and resizing to 518x518",
    )
    .await?;
    let options = postprocess::Options {
        background: job.background.unwrap_or(res.video.post.background),
        ..res.video.post.clone()
    };
    let processed = tokio::task::spawn_blocking(move || process_all(&frames, &masks, &options))
        .await
        .map_err(|e| JobError::Transient(e.into()))?;
    let with_mask: Vec<(usize, Processed)> = processed
        .into_iter()
        .filter_map(|(index, p)| p.map(|p| (index, p)))
        .collect();
    let empty = sampled - with_mask.len();
    let reviews = quality::review(
        &with_mask
            .iter()
            .map(|(_, p)| quality::Measured {
                placement: p.placement,
                sharpness: p.sharpness,
            })
            .collect::<Vec<_>>(),
    );
    let mut found = Vec::new();
    let mut rejected = Vec::new();
    let mut flagged = Vec::new();
    // A band across the frame is how the classic segmenter fails; from a
    // model it may be a product filmed close, for the reviewer to judge.
    let strict = res.segmenter()?.spanning_masks_fail();
    for ((index, processed), warnings) in with_mask.into_iter().zip(reviews) {
        if let Some(reason) = warnings.iter().find(|w| strict && w.rejects()) {
            rejected.push(format!("frame {index}: {}", reason.describe()));
        } else {
            if !warnings.is_empty() {
                let said: Vec<&str> = warnings.iter().map(|w| w.describe()).collect();
                flagged.push(format!("frame {index}: {}", said.join(", ")));
            }
            found.push(Found {
                index,
                processed,
                warnings,
            });
        }
    }
    if empty > 0 {
        ctx.event(
            Level::Warn,
            &format!("{empty} frames showed no product and were left out"),
        )
        .await?;
    }
    if !rejected.is_empty() {
        ctx.event(
            Level::Warn,
            &format!(
                "{} frames were left out because their mask is not a product: {}",
                rejected.len(),
                rejected.join("; ")
            ),
        )
        .await?;
    }
    if !flagged.is_empty() {
        ctx.event(
            Level::Warn,
            &format!(
                "{} frames kept with warnings for the reviewer: {}",
                flagged.len(),
                flagged.join("; ")
            ),
        )
        .await?;
    }
    if found.is_empty() {
        return Err(JobError::Permanent(anyhow!(
            "the product was not found in any of the {sampled} frames ({} without a product, {} whose mask is not a product); is it filmed standing clear of the frame's edges?",
            empty,
            rejected.len()
        )));
    }
    Ok(found)
}

/// A frame kept for the product, with what the reviewer should know about it.
pub(super) struct Found {
    pub index: usize,
    pub processed: Processed,
    pub warnings: Vec<quality::Warning>,
}

async fn upload(
    ctx: &JobContext,
    storage: &Storage,
    keys: &JobMedia,
    found: &[Found],
) -> Result<(), JobError> {
    ctx.stage(
        "upload",
        70,
        &format!("Storing {} frames and their masks", found.len()),
    )
    .await?;
    // Leftovers of an interrupted attempt would otherwise survive this one.
    for prefix in keys.prefixes() {
        storage
            .delete_prefix(&prefix)
            .await
            .map_err(storage_error)?;
    }
    let objects: Vec<(String, Bytes)> = found
        .iter()
        .flat_map(|f| {
            [
                (keys.frame(f.index), Bytes::from(f.processed.image.clone())),
                (keys.mask(f.index), Bytes::from(f.processed.mask.clone())),
            ]
        })
        .collect();
    let mut uploads = futures::stream::iter(
        objects
            .into_iter()
            .map(|(key, body)| async move { storage.put(&key, body, "image/png").await }),
    )
    .buffer_unordered(UPLOADS);
    while let Some(uploaded) = uploads.next().await {
        uploaded.map_err(storage_error)?;
    }
    Ok(())
}

/// Saves the product and its frames in one transaction, then removes the
/// frames the save replaced.
#[allow(clippy::too_many_arguments)]
async fn persist(
    ctx: &JobContext,
    storage: &Storage,
    job: &Video,
    keys: &JobMedia,
    found: &[Found],
    metadata: Option<Metadata>,
    prompt: String,
    info: VideoInfo,
) -> Result<Value, JobError> {
    ctx.stage("persist", 92, "Saving the product and its frames")
        .await?;
    let frames_url = storage.url(&keys.frames_prefix());
    let rows: Vec<db::frames::NewFrame> = found
        .iter()
        .map(|f| {
            let p = &f.processed;
            db::frames::NewFrame {
                frame_index: f.index as i32,
                storage_key: keys.frame(f.index),
                mask_key: keys.mask(f.index),
                width: postprocess::SIZE as i32,
                height: postprocess::SIZE as i32,
                mask_area: p.mask_area.min(i32::MAX as u64) as i32,
                bbox: [p.bbox.x, p.bbox.y, p.bbox.width, p.bbox.height].map(|v| v as i32),
                quality: json!({
                    "sharpness": p.sharpness,
                    "brightness": p.brightness,
                    "area_share": p.placement.area_share,
                    "border_share": p.placement.border_share,
                    "width_share": p.placement.width_share,
                    "height_share": p.placement.height_share,
                    "warnings": f.warnings,
                }),
            }
        })
        .collect();
    let saved = db::frames::save(
        ctx.pool(),
        &db::frames::ProductOfJob {
            job_id: ctx.job_id,
            barcode: job.barcode.clone(),
            video_id: job.video_id,
            grounding_prompt: metadata.as_ref().and_then(|m| m.grounding_prompt.clone()),
            metadata: metadata.clone(),
            frames_path: frames_url.clone(),
        },
        &rows,
    )
    .await?;
    // The save is durable: the frames it replaced can go.
    if let Err(error) = storage.delete(&saved.replaced).await {
        tracing::warn!(job.id = %ctx.job_id, %error, "removing replaced frames failed; they stay in storage");
    }
    // New frames want new vectors: the active model's embed job follows.
    let embed_job =
        crate::jobs::embed::queue_for_active(ctx.pool(), ctx.queue(), saved.product_id).await?;
    Ok(json!({
        "status": "completed",
        "embed_job": embed_job,
        "metadata": metadata,
        "grounding_prompt": prompt,
        "frame_count": rows.len(),
        "frames_url": frames_url,
        "product_id": saved.product_id,
        "video": info,
    }))
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

fn describe_metadata(found: &Metadata) -> String {
    let brand = found
        .brand_name
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    format!(
        "Gemini: {}{brand}; segmentation prompt {:?}; visibility {}/100",
        found.product_name.as_deref().unwrap_or("(no name)"),
        found.grounding_prompt.as_deref().unwrap_or_default(),
        found.visibility_score.unwrap_or_default()
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

fn storage_error(error: StorageError) -> JobError {
    JobError::Transient(anyhow!("storage: {error}"))
}
