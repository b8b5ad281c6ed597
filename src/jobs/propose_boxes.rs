//! `propose_boxes`: SAM 3 finds the products on a shelf photo from text
//! prompts ("product", or the names a person expects on that shelf) and each
//! instance becomes a `proposed` box, labelled with its prompt, for people to
//! keep, move or delete. Instances that overlap each other or a box already on
//! the photo by more than half are proposed once, so running it again adds
//! nothing new. Needs a worker with SAM 3; the classic segmenter cannot tell
//! instances apart and says so.

use std::time::Duration;

use anyhow::anyhow;
use buybuddy_worker::{media::photo, segment::BoundingBox};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Job, JobContext, JobError};
use crate::{
    actions::{
        Ctx, Intake,
        shelves::{self as act, BoxInput, MIN_BOX_SIDE, PHOTO_LIMITS},
    },
    db,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposeBoxes {
    /// The photos (one, from the page).
    pub image_ids: Vec<i32>,
    pub prompts: Vec<String>,
    /// Instances scoring below this are left out (SAM 3's own
    /// post-processing keeps those above 0.3).
    pub min_score: f32,
}

/// Two boxes overlapping more than this (intersection over union) are one.
const SAME_BOX: f64 = 0.5;

impl Job for ProposeBoxes {
    const KIND: &'static str = "propose_boxes";

    fn default_max_attempts(&self) -> u32 {
        2
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let storage = ctx.resources.storage()?;
        let segmenter = ctx.resources.segmenter()?;
        let intake = Intake::default();
        let actions = Ctx {
            pool: ctx.pool(),
            queue: ctx.queue(),
            storage,
            intake: &intake,
        };
        let mut proposed = 0;
        for (done, &image_id) in self.image_ids.iter().enumerate() {
            let Some(image) = db::shelves::image(ctx.pool(), image_id).await? else {
                continue;
            };
            let bytes = storage
                .get(&image.storage_key)
                .await
                .map_err(|e| JobError::Transient(anyhow!(e)))?;
            let existing: Vec<BoundingBox> = db::shelves::boxes_of(ctx.pool(), image_id)
                .await?
                .iter()
                .map(|b| BoundingBox {
                    x: b.x as u32,
                    y: b.y as u32,
                    width: b.width as u32,
                    height: b.height as u32,
                })
                .collect();
            let prompts = self.prompts.clone();
            let min_score = self.min_score;
            let segmenter = segmenter.clone();
            let found = tokio::task::spawn_blocking(move || {
                let photo = photo::decode(&bytes, &PHOTO_LIMITS)?;
                let mut found = Vec::new();
                for prompt in &prompts {
                    let Some(instances) = segmenter.instances(&photo, prompt, min_score)? else {
                        anyhow::bail!(
                            "this worker's segmenter ({}) cannot tell products apart; boxes are \
                             proposed by a worker with SAM 3 (SAM3_MODEL_PATH)",
                            segmenter.name()
                        );
                    };
                    found.extend(instances.into_iter().map(|i| (i, prompt.clone())));
                }
                Ok(found)
            })
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))?
            .map_err(JobError::Permanent)?;
            let kept = keep(found, existing);
            ctx.stage(
                "propose",
                ((done + 1) * 90 / self.image_ids.len().max(1)) as u8,
                &format!("Photo #{image_id}: {} boxes proposed", kept.len()),
            )
            .await?;
            for (prompt, boxes) in by_prompt(&kept) {
                act::add_boxes(actions, image_id, &boxes, "proposed", Some(&prompt))
                    .await
                    .map_err(|e| JobError::Permanent(anyhow!("{e}")))?;
                proposed += boxes.len();
            }
        }
        Ok(json!({"images": self.image_ids.len(), "proposed": proposed}))
    }
}

fn iou(a: &BoundingBox, b: &BoundingBox) -> f64 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.width).min(b.x + b.width);
    let y1 = (a.y + a.height).min(b.y + b.height);
    let inter = f64::from(x1.saturating_sub(x0)) * f64::from(y1.saturating_sub(y0));
    let union =
        f64::from(a.width) * f64::from(a.height) + f64::from(b.width) * f64::from(b.height) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// The instances worth proposing, best first: big enough, and each overlapping
/// neither a better one nor a box already there.
fn keep(
    mut found: Vec<(buybuddy_worker::segment::Instance, String)>,
    existing: Vec<BoundingBox>,
) -> Vec<(BoundingBox, String)> {
    found.sort_by(|a, b| b.0.score.total_cmp(&a.0.score));
    let mut taken = existing;
    let mut kept = Vec::new();
    for (instance, prompt) in found {
        let b = instance.bbox;
        if b.width < MIN_BOX_SIDE as u32 || b.height < MIN_BOX_SIDE as u32 {
            continue;
        }
        if taken.iter().any(|t| iou(t, &b) > SAME_BOX) {
            continue;
        }
        taken.push(b);
        kept.push((b, prompt));
    }
    kept.truncate(act::MAX_BOXES / 2);
    kept
}

fn by_prompt(kept: &[(BoundingBox, String)]) -> Vec<(String, Vec<BoxInput>)> {
    let mut groups: Vec<(String, Vec<BoxInput>)> = Vec::new();
    for (b, prompt) in kept {
        let input = BoxInput {
            x: i64::from(b.x),
            y: i64::from(b.y),
            width: i64::from(b.width),
            height: i64::from(b.height),
        };
        match groups.iter_mut().find(|(p, _)| p == prompt) {
            Some((_, list)) => list.push(input),
            None => groups.push((prompt.clone(), vec![input])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use buybuddy_worker::segment::Instance;

    fn at(x: u32, y: u32, w: u32, h: u32, score: f32) -> Instance {
        Instance {
            score,
            bbox: BoundingBox {
                x,
                y,
                width: w,
                height: h,
            },
        }
    }

    #[test]
    fn overlapping_instances_are_proposed_once_and_existing_boxes_not_again() {
        let existing = vec![BoundingBox {
            x: 0,
            y: 0,
            width: 100,
            height: 100,
        }];
        let found = vec![
            (at(200, 0, 100, 100, 0.6), "cola".to_owned()),
            (at(205, 5, 100, 100, 0.9), "product".to_owned()),
            (at(2, 2, 100, 100, 0.8), "product".to_owned()),
            (at(400, 0, 3, 100, 0.7), "product".to_owned()),
            (at(500, 0, 50, 80, 0.4), "cola".to_owned()),
        ];
        let kept = keep(found, existing);
        let boxes: Vec<(u32, &str)> = kept.iter().map(|(b, p)| (b.x, p.as_str())).collect();
        assert_eq!(boxes, [(205, "product"), (500, "cola")]);
        let groups = by_prompt(&kept);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].1[0].width, 50);
    }
}
