//! Products: review (approve, reject with a reason), reprocess from the newest
//! known video, and edit metadata (the editor's form or a JSON patch).

use buybuddy_domain::ProductStatus;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    ActionError, Ctx,
    metadata::{self, MetadataForm},
};
use crate::{
    db,
    jobs::{JobSpec, video::Video},
    queue::{self, Enqueue},
};

/// The message when a rejection comes without a reason.
pub const REASON_NEEDED: &str = "Give a reason for rejecting; nothing was changed.";

/// Approves or rejects products; a rejection needs a reason. Returns how many
/// products changed.
pub async fn review(
    ctx: Ctx<'_>,
    ids: &[Uuid],
    verdict: ProductStatus,
    reason: Option<&str>,
    by: &str,
) -> Result<u64, ActionError> {
    if !ProductStatus::VERDICTS.contains(&verdict) {
        return Err(ActionError::field(
            "action",
            format!("A review approves or rejects; {verdict} is not a verdict."),
        ));
    }
    if ids.is_empty() {
        return Err(ActionError::field(
            "ids",
            "Select at least one product first.",
        ));
    }
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if verdict == ProductStatus::Rejected && reason.is_none() {
        return Err(ActionError::field("reason", REASON_NEEDED));
    }
    Ok(db::products::review(ctx.pool, ids, verdict.as_str(), reason, by).await?)
}

/// Reviews one product; a product that does not exist is an error.
pub async fn review_one(
    ctx: Ctx<'_>,
    id: Uuid,
    verdict: ProductStatus,
    reason: Option<&str>,
    by: &str,
) -> Result<(), ActionError> {
    if review(ctx, &[id], verdict, reason, by).await? == 0 {
        return Err(ActionError::NotFound(format!("There is no product {id}.")));
    }
    Ok(())
}

/// What a reprocess queued.
#[derive(Debug, Clone, Default)]
pub struct Reprocessed {
    /// The jobs queued, one per product with a known video.
    pub jobs: Vec<Uuid>,
    /// The products whose video is not known.
    pub without_video: Vec<Uuid>,
}

/// Queues a video job per product from its newest known video.
pub async fn reprocess(ctx: Ctx<'_>, ids: &[Uuid]) -> Result<Reprocessed, ActionError> {
    let found = db::products::videos(ctx.pool, ids).await?;
    let mut specs = Vec::new();
    let mut without_video = Vec::new();
    for (id, barcode, url, video_id) in found {
        match url {
            Some(video_url) => specs.push(Enqueue::from(JobSpec::Video(Video {
                video_url,
                barcode,
                video_id,
                frames: None,
                background: None,
            }))),
            None => without_video.push(id),
        }
    }
    let jobs = queue::enqueue(ctx.pool, ctx.queue, specs).await?;
    Ok(Reprocessed {
        jobs,
        without_video,
    })
}

/// Reprocesses one product; returns the job queued.
pub async fn reprocess_one(ctx: Ctx<'_>, id: Uuid) -> Result<Uuid, ActionError> {
    if db::products::get(ctx.pool, id).await?.is_none() {
        return Err(ActionError::NotFound(format!("There is no product {id}.")));
    }
    reprocess(ctx, &[id])
        .await?
        .jobs
        .first()
        .copied()
        .ok_or_else(|| {
            ActionError::Conflict(
                "This product's video is not known: start a job with its video.".into(),
            )
        })
}

/// Saves the editor's form; invalid fields change nothing.
pub async fn save_metadata(
    ctx: Ctx<'_>,
    id: Uuid,
    fields: &MetadataForm,
) -> Result<(), ActionError> {
    let metadata = metadata::from_form(fields).map_err(ActionError::Invalid)?;
    if !db::products::update_metadata(ctx.pool, id, &metadata).await? {
        return Err(ActionError::NotFound(format!("There is no product {id}.")));
    }
    Ok(())
}

/// Changes the metadata fields a JSON object names (null clears one); the
/// others stay. Invalid values change nothing.
pub async fn patch_metadata(
    ctx: Ctx<'_>,
    id: Uuid,
    patch: &Map<String, Value>,
) -> Result<(), ActionError> {
    let mut tx = ctx.pool.begin().await?;
    let product = db::products::get_for_update(&mut *tx, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no product {id}.")))?;
    let changed = metadata::patch(metadata::of(&product), patch).map_err(ActionError::Invalid)?;
    db::products::update_metadata(&mut *tx, id, &changed).await?;
    tx.commit().await?;
    Ok(())
}
