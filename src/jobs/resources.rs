//! What a worker process holds for its jobs, made once at start and shared by
//! every attempt: object storage, the external clients, the segmenter, and the
//! settings of the video job. A kind takes what it needs through the accessors,
//! which say clearly when this worker lacks it, so a new kind adds a field here
//! rather than a flag to every other kind.
//!
//! The SAM 3 segmenter is loaded at start on purpose, not on first use: a broken
//! export then stops the worker with the reason before it takes any job.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, anyhow};
use buybuddy_worker::{
    download,
    gemini::Gemini,
    postprocess,
    segment::Segmenter,
    storage::{S3Settings, Storage},
};

use super::JobError;
use crate::config::{PipelineArgs, StorageArgs};

/// The worker process's shared parts.
#[derive(Default)]
pub struct Resources {
    /// Frames, masks and uploads; absent on queue-only workers (tests).
    pub storage: Option<Storage>,
    /// How `s3://` sources are read (endpoint, addressing).
    pub s3: S3Settings,
    /// Reads catalog metadata from videos; the metadata stage is skipped without it.
    pub gemini: Option<Gemini>,
    /// Finds the product in frames; absent on queue-only workers.
    pub segmenter: Option<Arc<dyn Segmenter>>,
    /// What turns frames into vectors: the classic descriptor, the
    /// configured model, registry models loaded on demand.
    pub embedders: Arc<buybuddy_worker::embed::Embedders>,
    /// How videos become frames.
    pub video: VideoSettings,
    /// Whether `crash` jobs may take this worker down (off unless asked for).
    pub enable_crash_jobs: bool,
}

/// The video job's settings on this worker.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// Frames sampled from each video unless a job asks otherwise.
    pub frames: u32,
    pub post: postprocess::Options,
    pub limits: download::Limits,
    /// Where downloads are written (removed when the job ends).
    pub scratch: PathBuf,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            frames: 24,
            post: postprocess::Options::default(),
            limits: download::Limits::default(),
            scratch: std::env::temp_dir(),
        }
    }
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("storage", &self.storage.as_ref().map(Storage::describe))
            .field("segmenter", &self.segmenter.as_ref().map(|s| s.name()))
            .field("gemini", &self.gemini.as_ref().map(|g| &g.settings().model))
            .field("video", &self.video)
            .finish_non_exhaustive()
    }
}

impl Resources {
    /// Opens storage, the Gemini client and the segmenter as configured.
    pub async fn from_args(
        data_dir: &std::path::Path,
        storage: &StorageArgs,
        pipeline: &PipelineArgs,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            storage: Some(storage.open(data_dir).await?),
            s3: storage.s3_settings(),
            gemini: pipeline.gemini.client()?,
            segmenter: Some(pipeline.segmenter.open()?),
            embedders: pipeline.embed.open()?,
            video: VideoSettings {
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
            },
            enable_crash_jobs: false,
        })
    }

    /// Asks Gemini for the configured model before the first job, so a wrong
    /// key or an unknown or retired model stops the process at start instead
    /// of failing every job. A Gemini that cannot be reached just now is only
    /// a warning: jobs retry it.
    pub async fn check_gemini(&self) -> anyhow::Result<()> {
        let Some(gemini) = &self.gemini else {
            return Ok(());
        };
        match gemini.check_model().await {
            Ok(()) => Ok(()),
            Err(error) if error.is_transient() => {
                tracing::warn!(
                    model = %gemini.settings().model,
                    %error,
                    "Gemini could not be asked about the model; jobs will try again"
                );
                Ok(())
            }
            Err(error) => Err(anyhow!(error))
                .context("checking the Gemini model (GEMINI_MODEL, GEMINI_API_KEY)"),
        }
    }

    /// Object storage, or a clear refusal on a worker without it.
    pub fn storage(&self) -> Result<&Storage, JobError> {
        self.storage.as_ref().ok_or_else(|| {
            JobError::Permanent(anyhow!("this worker has no object storage configured"))
        })
    }

    /// Registers the embedders this process holds (the classic descriptor,
    /// the configured model), so jobs and searches can name them; on a new
    /// database the classic descriptor becomes the active model.
    pub async fn register_models(&self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        for info in self.embedders.loaded() {
            let model = crate::db::embeddings::register(pool, &info, info.kind == "classic")
                .await
                .with_context(|| format!("registering the embedding model {}", info.name))?;
            tracing::info!(model = %model.label(), active = model.active, serving = model.serving, "embedding model registered");
        }
        Ok(())
    }

    /// The segmenter, or a clear refusal on a worker without one.
    pub fn segmenter(&self) -> Result<Arc<dyn Segmenter>, JobError> {
        self.segmenter.clone().ok_or_else(|| {
            JobError::Permanent(anyhow!("this worker is not set up to process videos"))
        })
    }
}
