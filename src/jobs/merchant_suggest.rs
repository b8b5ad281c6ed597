//! `merchant_suggest`: suggestions for every merchant line waiting for them,
//! 500 lines at a time. The candidates come from `sql/merchant_candidates.sql`
//! (same barcode, nearest names by trigram) and from the vector index (the
//! products nearest the line's image, by the serving model); every candidate
//! is weighed (`actions::merchants::score`) and the best five are kept with
//! the parts of their score. A line changed by an import, or whose image was
//! just fetched, waits again; running the job again is harmless.

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Job, JobContext, JobError};
use crate::{
    actions::merchants::score::{self, Signals},
    db::{
        self,
        embeddings::{Filter, Model},
        merchants::{NewSuggestions, Stored},
    },
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MerchantSuggest {}

/// Suggestions kept per line.
pub const KEPT: usize = 5;
/// Products taken from the vector index per line with an image.
const BY_IMAGE: i64 = 10;
/// Lines per round (as `sql/merchant_candidates.sql` takes them).
const ROUND: i64 = 500;

impl Job for MerchantSuggest {
    const KIND: &'static str = "merchant_suggest";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(6 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let model = db::embeddings::serving(pool).await?;
        let total = db::merchants::count_waiting(pool).await?.max(1);
        let mut done = 0i64;
        ctx.stage(
            "suggest",
            1,
            &format!("Suggesting products for {total} lines"),
        )
        .await?;
        loop {
            let lines = round(pool, model.as_ref()).await?;
            if lines == 0 {
                break;
            }
            done += lines as i64;
            let share = (done * 98 / total).clamp(1, 99) as u8;
            ctx.stage(
                "suggest",
                share,
                &format!("{done} of {total} lines have their suggestions"),
            )
            .await?;
        }
        Ok(json!({"lines": done, "model": model.map(|m| m.label())}))
    }
}

/// One round: the next waiting lines' candidates from SQL and from the
/// vector index, weighed, the best kept. Returns how many lines it took (0
/// when none waits).
pub async fn round(pool: &sqlx::PgPool, model: Option<&Model>) -> sqlx::Result<usize> {
    let started = db::merchants::now(pool).await?;
    let waiting = db::merchants::waiting(pool, model.map(|m| m.id), ROUND).await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    let mut pairs: HashMap<(i64, Uuid), Signals> = HashMap::new();
    for (line, product, _, signals) in db::merchants::candidates(pool).await? {
        pairs.insert((line, product), signals);
    }
    // The products nearest each line's image.
    let mut by_image = Vec::new();
    if let Some(model) = model {
        for (line, vector) in &waiting {
            let Some(vector) = vector else { continue };
            let near =
                db::embeddings::nearest_products(pool, model, vector, BY_IMAGE, &Filter::default())
                    .await?;
            by_image.extend(
                near.into_iter()
                    .map(|n| (*line, n.product_id))
                    .filter(|pair| !pairs.contains_key(pair)),
            );
        }
    }
    for (line, product, signals) in
        db::merchants::signals(pool, &by_image, model.map(|m| m.id)).await?
    {
        pairs.insert((line, product), signals);
    }
    let made = rank(&waiting.iter().map(|(l, _)| *l).collect::<Vec<_>>(), pairs);
    db::merchants::save_suggestions(pool, &made, started).await?;
    Ok(waiting.len())
}

/// Each line's candidates weighed and the best kept, best first (ties by
/// product id, so the order is the same every time).
pub fn rank(lines: &[i64], pairs: HashMap<(i64, Uuid), Signals>) -> Vec<NewSuggestions> {
    let mut by_line: HashMap<i64, Vec<(Uuid, f32, Stored, bool)>> = HashMap::new();
    for ((line, product), signals) in pairs {
        let (total, parts) = score::score(&signals);
        let exact = score::barcode_and_name_agree(&signals);
        by_line
            .entry(line)
            .or_default()
            .push((product, total, Stored { signals, parts }, exact));
    }
    lines
        .iter()
        .map(|&line| {
            let mut ranked = by_line.remove(&line).unwrap_or_default();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(KEPT);
            NewSuggestions { line, ranked }
        })
        .collect()
}
