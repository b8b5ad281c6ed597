//! `video`: one product video and its barcode in; the product with its 518x518
//! frames and masks out.
//!
//! download -> decode (while Gemini reads the video) -> metadata -> segment ->
//! post-process -> upload -> persist, one function per stage in [`stages`].
//! Each stage is announced (stage, progress, event line) and is a point where a
//! cancel request stops the job. Whatever fails, the job's objects are deleted
//! and nothing but the failed job remains; the product row and its frames are
//! written together at the very end.

mod stages;

use std::time::Duration;

use buybuddy_domain::Barcode;
use buybuddy_worker::postprocess::Background;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Job, JobContext, JobError, Summary};
use crate::keys;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// `http(s)://...`, `s3://bucket/key`, an object this platform stored
    /// (an upload), or a path on the worker's disk (queued from the CLI only).
    pub video_url: String,
    pub barcode: String,
    #[serde(default)]
    pub video_id: Option<i32>,
    /// Frames to sample (the worker's setting when unset).
    #[serde(default)]
    pub frames: Option<u32>,
    /// Background of the images (the worker's setting when unset).
    #[serde(default)]
    pub background: Option<Background>,
}

impl Job for Video {
    const KIND: &'static str = "video";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    fn summary(&self) -> Summary {
        Summary {
            barcode: Some(self.barcode.clone()),
            video_url: Some(self.video_url.clone()),
            video_id: self.video_id,
        }
    }

    /// Runs every stage; on failure the job's objects are gone again.
    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let barcode = Barcode::parse(&self.barcode).map_err(|e| JobError::Permanent(e.into()))?;
        ctx.resources.segmenter()?;
        let storage = ctx.resources.storage()?;
        let keys = keys::JobMedia::new(&barcode, ctx.job_id);
        let outcome = stages::run(ctx, self, &keys).await;
        if outcome.is_err() {
            for prefix in keys.prefixes() {
                if let Err(error) = storage.delete_prefix(&prefix).await {
                    tracing::error!(job.id = %ctx.job_id, %prefix, %error, "removing a failed job's objects failed");
                }
            }
        }
        outcome
    }
}
