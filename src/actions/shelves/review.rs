//! The review of real crops, one at a time: a crop beside the products
//! matching found for it (each with its frame nearest the crop); a person
//! confirms one, picks another, says the directory lacks it, or skips it.
//! Confirmed crops are real, labelled data.

use serde::Serialize;
use uuid::Uuid;

use crate::{
    actions::{ActionError, Ctx},
    db::{
        self,
        embeddings::{MatchedFrame, Model, ProductCard},
        shelves::{self as rows, ReviewCounts, ShelfBox, ShelfImage},
    },
};

/// A product matching suggested for a crop.
#[derive(Debug, Clone, Serialize)]
pub struct SuggestionView {
    pub rank: i16,
    pub product: ProductCard,
    pub similarity: f32,
    /// The product's frame nearest the crop.
    pub frame: Option<MatchedFrame>,
}

/// One crop to review, with what matching found.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    pub crop: ShelfBox,
    pub image: ShelfImage,
    /// The serving model, when one serves.
    pub model: Option<Model>,
    /// Empty when the crop has no vectors of the serving model yet.
    pub suggestions: Vec<SuggestionView>,
    pub counts: ReviewCounts,
}

/// What a person decided, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It is this product (its id or barcode).
    Confirm(String),
    Absent,
    Skip,
    Reopen,
}

impl Decision {
    /// Reads `confirm` (with a product), `absent`, `skip` or `reopen`.
    pub fn parse(action: &str, product: Option<&str>) -> Result<Self, ActionError> {
        let product = product.map(str::trim).filter(|p| !p.is_empty());
        match (action.trim(), product) {
            ("confirm", Some(p)) => Ok(Self::Confirm(p.to_owned())),
            ("confirm", None) => Err(ActionError::field(
                "product",
                "Say which product it is (an id or a barcode).",
            )),
            ("absent", _) => Ok(Self::Absent),
            ("skip", _) => Ok(Self::Skip),
            ("reopen", _) => Ok(Self::Reopen),
            (other, _) => Err(ActionError::field(
                "action",
                format!(
                    "{other:?} is not a review action; they are confirm, absent, skip and reopen."
                ),
            )),
        }
    }
}

/// A crop with what the serving model found for it.
pub async fn review_item(ctx: Ctx<'_>, box_id: i64) -> Result<ReviewItem, ActionError> {
    let crop = rows::get_box(ctx.pool, box_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no box #{box_id}.")))?;
    item_of(ctx, crop, None).await
}

async fn item_of(
    ctx: Ctx<'_>,
    crop: ShelfBox,
    scope: Option<i32>,
) -> Result<ReviewItem, ActionError> {
    let image = rows::image(ctx.pool, crop.image_id)
        .await?
        .ok_or_else(|| ActionError::NotFound("The crop's photo is gone.".into()))?;
    let model = db::embeddings::serving(ctx.pool).await?;
    let mut suggestions = Vec::new();
    if let Some(model) = &model {
        let found = rows::suggestions(ctx.pool, crop.id, model.id).await?;
        let ids: Vec<Uuid> = found.iter().map(|s| s.product_id).collect();
        let mut cards = db::embeddings::cards(ctx.pool, &ids).await?;
        let mut frames = match rows::crop_vector(ctx.pool, crop.id, model.id).await? {
            Some(vector) => db::embeddings::best_frames(ctx.pool, model, &vector, &ids).await?,
            None => Default::default(),
        };
        suggestions = found
            .into_iter()
            .filter_map(|s| {
                Some(SuggestionView {
                    rank: s.rank,
                    product: cards.remove(&s.product_id)?,
                    similarity: s.similarity,
                    frame: frames.remove(&s.product_id),
                })
            })
            .collect();
    }
    let counts = rows::review_counts(ctx.pool, scope).await?;
    Ok(ReviewItem {
        crop,
        image,
        model,
        suggestions,
        counts,
    })
}

/// The next crop to review (of one photo, or of all), and how far review is.
pub async fn next_to_review(
    ctx: Ctx<'_>,
    image_id: Option<i32>,
) -> Result<(Option<ReviewItem>, ReviewCounts), ActionError> {
    match rows::next_to_review(ctx.pool, image_id).await? {
        Some(crop) => {
            let item = item_of(ctx, crop, image_id).await?;
            let counts = item.counts;
            Ok((Some(item), counts))
        }
        None => Ok((None, rows::review_counts(ctx.pool, image_id).await?)),
    }
}

/// Records what a person decided about a crop.
pub async fn decide(
    ctx: Ctx<'_>,
    box_id: i64,
    decision: &Decision,
    user: Option<Uuid>,
) -> Result<ShelfBox, ActionError> {
    let crop = rows::get_box(ctx.pool, box_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no box #{box_id}.")))?;
    let decided = match decision {
        Decision::Confirm(given) => {
            let product = find_product(ctx, given).await?;
            let top = match db::embeddings::serving(ctx.pool).await? {
                Some(model) => rows::suggestions(ctx.pool, crop.id, model.id)
                    .await?
                    .first()
                    .map(|s| s.product_id),
                None => None,
            };
            rows::Decision::Confirm(product, top == Some(product))
        }
        Decision::Absent => rows::Decision::Absent,
        Decision::Skip => rows::Decision::Skip,
        Decision::Reopen => rows::Decision::Reopen,
    };
    if !rows::decide(ctx.pool, box_id, decided, user).await? {
        return Err(ActionError::NotFound(format!("There is no box #{box_id}.")));
    }
    rows::get_box(ctx.pool, box_id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no box #{box_id}.")))
}

/// A product by its id or its barcode.
async fn find_product(ctx: Ctx<'_>, given: &str) -> Result<Uuid, ActionError> {
    let found = match Uuid::parse_str(given) {
        Ok(id) => db::products::get(ctx.pool, id).await?.map(|_| id),
        Err(_) => db::products::by_barcode(ctx.pool, given)
            .await?
            .map(|(id, _)| id),
    };
    found.ok_or_else(|| {
        ActionError::field(
            "product",
            format!("No product of the directory has the id or barcode {given:?}."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_read_from_forms_and_requests() {
        assert_eq!(
            Decision::parse("confirm", Some(" 8690000000001 ")).unwrap(),
            Decision::Confirm("8690000000001".into())
        );
        assert!(matches!(
            Decision::parse("confirm", Some("  ")),
            Err(ActionError::Invalid(_))
        ));
        assert_eq!(Decision::parse("absent", None).unwrap(), Decision::Absent);
        assert_eq!(Decision::parse("skip", None).unwrap(), Decision::Skip);
        assert!(Decision::parse("approve", None).is_err());
    }
}
