//! Jobs: create a video job (from an address, an uploaded file or the synced
//! catalog), create any job from its queued form, retry, cancel.

use std::path::PathBuf;

use anyhow::anyhow;
use buybuddy_domain::{Barcode, JobStatus};
use uuid::Uuid;

use super::{ActionError, Ctx, FieldErrors, Intake};
use crate::{
    db::{self, jobs::Cancel},
    jobs::{JobSpec, PROBE_KINDS, video::Video},
    keys,
    queue::{self, Enqueue},
};

/// Where a new job's video comes from.
#[derive(Debug, Clone)]
pub enum VideoSource {
    /// An address: `http(s)://` or `s3://` (and, from the CLI, a local path).
    Url(String),
    /// A file the client sent, now in a temporary file; stored under a key the
    /// server chooses before the job is queued.
    Upload { file: PathBuf, name: String },
    /// The synced catalog's video of the barcode.
    Catalog,
}

/// A video job to create.
#[derive(Debug, Clone)]
pub struct NewVideoJob {
    /// As typed; read with [`Barcode::parse`].
    pub barcode: String,
    pub source: VideoSource,
    pub video_id: Option<i32>,
    pub max_attempts: Option<u32>,
}

/// The message for an address the intake does not take.
pub const REMOTE_ONLY: &str = "Give an http(s):// or s3:// address (or upload the file below).";

/// Checks what can be checked without the database or storage: the barcode
/// and the address. Every problem is reported, each at its field.
pub fn check_video_job(intake: &Intake, job: &NewVideoJob) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(error) = Barcode::parse(&job.barcode) {
        errors.insert("barcode", error.to_string());
    }
    if let VideoSource::Url(url) = &job.source
        && let Err(message) = check_address(intake, url)
    {
        errors.insert("video_url", message);
    }
    if job.max_attempts == Some(0) {
        errors.insert("max_attempts", "max_attempts must be at least 1.".into());
    }
    errors
}

/// Whether an address may be a video source for this intake.
fn check_address(intake: &Intake, url: &str) -> Result<(), String> {
    if let Some(rest) = url.strip_prefix("http://").or(url.strip_prefix("https://")) {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        return if host.is_empty() {
            Err(format!("{url:?} names no host."))
        } else {
            Ok(())
        };
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || key.is_empty() {
            return Err(format!("{url:?} is not an s3://bucket/key address."));
        }
        if !intake.bucket_allowed(bucket) {
            let allowed = intake.buckets.as_deref().unwrap_or_default();
            return Err(if allowed.is_empty() {
                format!(
                    "This server reads no S3 bucket for jobs (set BUYBUDDY_S3_ALLOWED_BUCKETS); {bucket:?} is refused."
                )
            } else {
                format!(
                    "The bucket {bucket:?} is not one this server reads videos from ({}).",
                    allowed.join(", ")
                )
            });
        }
        return Ok(());
    }
    if intake.local_paths && (!url.contains("://") || url.starts_with("file://")) {
        return Ok(());
    }
    Err(REMOTE_ONLY.to_owned())
}

/// Creates a video job: checks it, resolves its source (storing an upload,
/// looking up the catalog), and queues it. Returns the job's id.
pub async fn create_video_job(ctx: Ctx<'_>, job: NewVideoJob) -> Result<Uuid, ActionError> {
    let errors = check_video_job(ctx.intake, &job);
    if !errors.is_empty() {
        return Err(ActionError::Invalid(errors));
    }
    let barcode = parse_barcode(&job.barcode)?;
    let video_url = match job.source {
        VideoSource::Url(url) => url,
        VideoSource::Catalog => db::catalog::video_of(ctx.pool, barcode.as_str())
            .await?
            .ok_or_else(|| {
                ActionError::field(
                    "video_url",
                    "Give a video URL or a file: this barcode is not in the synced catalog.",
                )
            })?,
        VideoSource::Upload { file, name } => {
            let key = keys::upload(&name);
            ctx.storage
                .put_file(&key, &file, "application/octet-stream")
                .await
                .map_err(|e| anyhow!("storing the upload: {e}"))?;
            ctx.storage.url(&key)
        }
    };
    let spec = JobSpec::Video(Video {
        video_url,
        barcode: barcode.into_string(),
        video_id: job.video_id,
        frames: None,
        background: None,
    });
    enqueue_one(ctx, spec, job.max_attempts).await
}

/// Creates a job from its queued form (`{"kind": ..., ...}`), as the API and
/// `buybuddy jobs push` take it. Video jobs go through [`create_video_job`]'s
/// checks; probe kinds need an intake that allows them.
pub async fn create(
    ctx: Ctx<'_>,
    spec: JobSpec,
    max_attempts: Option<u32>,
) -> Result<Uuid, ActionError> {
    if spec.is_probe() && !ctx.intake.probes {
        return Err(ActionError::Refused(format!(
            "{:?} is a probe job for testing the queue ({}); this server does not accept them \
             (start it with --enable-probe-jobs).",
            spec.kind(),
            PROBE_KINDS.join(", ")
        )));
    }
    if max_attempts == Some(0) {
        return Err(ActionError::field(
            "max_attempts",
            "max_attempts must be at least 1.",
        ));
    }
    match spec {
        JobSpec::Video(video) => {
            // The checks of the form, keeping the job's own frame count and background.
            let check = NewVideoJob {
                barcode: video.barcode.clone(),
                source: VideoSource::Url(video.video_url.clone()),
                video_id: video.video_id,
                max_attempts,
            };
            let errors = check_video_job(ctx.intake, &check);
            if !errors.is_empty() {
                return Err(ActionError::Invalid(errors));
            }
            let barcode = parse_barcode(&video.barcode)?;
            let spec = JobSpec::Video(Video {
                barcode: barcode.into_string(),
                ..video
            });
            enqueue_one(ctx, spec, max_attempts).await
        }
        other => enqueue_one(ctx, other, max_attempts).await,
    }
}

fn parse_barcode(text: &str) -> Result<Barcode, ActionError> {
    Barcode::parse(text).map_err(|e| ActionError::field("barcode", e.to_string()))
}

async fn enqueue_one(
    ctx: Ctx<'_>,
    spec: JobSpec,
    max_attempts: Option<u32>,
) -> Result<Uuid, ActionError> {
    let ids = queue::enqueue(ctx.pool, ctx.queue, vec![Enqueue { spec, max_attempts }]).await?;
    Ok(ids[0])
}

/// Queues a failed or cancelled job again, once, as a new job that points back
/// to it. Returns the new job's id.
pub async fn retry(ctx: Ctx<'_>, id: Uuid) -> Result<Uuid, ActionError> {
    let mut tx = ctx.pool.begin().await?;
    let (status, payload) = db::jobs::lock_for_retry(&mut *tx, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no job {id}.")))?;
    let can_retry = status.parse::<JobStatus>().is_ok_and(JobStatus::can_retry);
    if !can_retry {
        return Err(ActionError::Conflict(format!(
            "Only failed or cancelled jobs can be retried; this one is {status}."
        )));
    }
    if let Some(retry) = db::jobs::retried_as(&mut *tx, id).await? {
        return Err(ActionError::Conflict(format!(
            "This job was already retried as {retry}."
        )));
    }
    let spec: JobSpec = serde_json::from_value(payload)
        .map_err(|e| anyhow!("job {id} has an unreadable payload: {e}"))?;
    let new = queue::enqueue_in(&mut tx, ctx.queue, vec![Enqueue::from(spec)]).await?[0];
    db::jobs::set_retry_of(&mut *tx, new, id).await?;
    tx.commit().await?;
    Ok(new)
}

/// Cancels a job that has not started, or asks a running one to stop at its
/// next stage. A job that already ended is left as it is and said so.
pub async fn cancel(ctx: Ctx<'_>, id: Uuid) -> Result<Cancel, ActionError> {
    match db::jobs::cancel(ctx.pool, id).await? {
        Cancel::NotFound => Err(ActionError::NotFound(format!("There is no job {id}."))),
        outcome => Ok(outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(barcode: &str, url: &str) -> NewVideoJob {
        NewVideoJob {
            barcode: barcode.into(),
            source: VideoSource::Url(url.into()),
            video_id: None,
            max_attempts: None,
        }
    }

    #[test]
    fn the_web_names_only_remote_videos_in_allowed_buckets() {
        let web = Intake::remote(vec!["media".into()], false);
        assert!(
            check_video_job(&web, &job("8690000000001", "https://cdn.example/v.mp4")).is_empty()
        );
        assert!(check_video_job(&web, &job("8690000000001", "s3://media/videos/v.mp4")).is_empty());
        for (url, says) in [
            (
                "/var/lib/worker/secret.mp4",
                "Give an http(s):// or s3:// address",
            ),
            ("file:///etc/passwd", "Give an http(s):// or s3:// address"),
            (
                "ftp://files.example/v.mp4",
                "Give an http(s):// or s3:// address",
            ),
            ("s3://other-bucket/v.mp4", "not one this server reads"),
            ("s3://media", "not an s3://bucket/key address"),
            ("https://", "names no host"),
        ] {
            let errors = check_video_job(&web, &job("8690000000001", url));
            assert!(errors["video_url"].contains(says), "{url}: {errors:?}");
        }
        let no_buckets = Intake::remote(Vec::new(), false);
        let errors = check_video_job(&no_buckets, &job("1", "s3://media/v.mp4"));
        assert!(
            errors["video_url"].contains("BUYBUDDY_S3_ALLOWED_BUCKETS"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_command_line_may_name_local_files_and_any_bucket() {
        let cli = Intake::command_line();
        for url in [
            "/tmp/v.mp4",
            "clip.mp4",
            "file:///tmp/v.mp4",
            "s3://any/v.mp4",
        ] {
            assert!(check_video_job(&cli, &job("1", url)).is_empty(), "{url}");
        }
        assert!(check_video_job(&cli, &job("1", "ftp://x/v.mp4")).contains_key("video_url"));
    }

    #[test]
    fn every_problem_is_reported_at_its_field() {
        let web = Intake::remote(Vec::new(), false);
        let errors = check_video_job(&web, &job("../etc", "/etc/passwd"));
        assert!(errors["barcode"].contains("is not a barcode"), "{errors:?}");
        assert!(errors.contains_key("video_url"), "{errors:?}");
    }
}
