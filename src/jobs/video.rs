//! `video`: one product video and its barcode in; the product with its 518x518
//! frames and masks out. The stages live in `crate::pipeline`.

use std::time::Duration;

use anyhow::anyhow;
use buybuddy_worker::postprocess::Background;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Job, JobContext, JobError};
use crate::pipeline::Request;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Video {
    /// `http(s)://...`, `s3://bucket/key`, or a path on the worker's disk.
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

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pipeline = ctx.settings.pipeline.clone().ok_or_else(|| {
            JobError::Permanent(anyhow!("this worker is not set up to process videos"))
        })?;
        pipeline
            .run(
                ctx,
                &Request {
                    video_url: self.video_url.clone(),
                    barcode: self.barcode.clone(),
                    video_id: self.video_id,
                    frames: self.frames,
                    background: self.background,
                },
            )
            .await
    }
}
