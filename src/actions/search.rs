//! Similarity search and the embedding models: products like a product, like
//! a photo, pairs that may be duplicates; which model is active, and the
//! backfill that gives every product its vectors. Searches answer from the
//! serving model (see `db::embeddings`); a photo is embedded in this process
//! with that model.

use std::sync::Arc;

use anyhow::anyhow;
use buybuddy_worker::embed::{Embedders, Subject};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::ActionError;
use crate::{
    db::{
        self,
        embeddings::{Filter, MatchedFrame, Model, ProductCard},
    },
    jobs::{JobSpec, embed::Embed},
    queue::{self, Enqueue},
};

/// Results per search unless asked otherwise, and the most asked for.
pub const DEFAULT_K: i64 = 12;
pub const MAX_K: i64 = 100;

/// The largest photo accepted, in bytes and in pixels per side.
pub const MAX_IMAGE_BYTES: usize = 20 << 20;
pub const MAX_IMAGE_SIDE: u32 = 12_000;

/// One product found.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub product: ProductCard,
    /// Cosine similarity of the query and the product's prototype.
    pub similarity: f32,
    /// The product's frame nearest the query.
    pub frame: Option<MatchedFrame>,
}

/// What a search found, and with which model.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub model: Model,
    pub hits: Vec<Hit>,
}

/// What to search near.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub k: i64,
    pub filter: Filter,
}

impl SearchRequest {
    /// Checks `k` and tidies the filters (blank means none).
    pub fn new(
        k: Option<i64>,
        status: Option<String>,
        category: Option<String>,
    ) -> Result<Self, ActionError> {
        let k = k.unwrap_or(DEFAULT_K);
        if !(1..=MAX_K).contains(&k) {
            return Err(ActionError::field(
                "k",
                format!("k must be between 1 and {MAX_K}."),
            ));
        }
        let blank = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let status = blank(status);
        if let Some(status) = &status
            && status.parse::<buybuddy_domain::ProductStatus>().is_err()
        {
            return Err(ActionError::field(
                "status",
                format!("{status:?} is not a product status."),
            ));
        }
        Ok(Self {
            k,
            filter: Filter {
                status,
                category: blank(category),
                except: None,
            },
        })
    }
}

/// The serving model, or why there is none.
pub async fn serving_model(pool: &PgPool) -> Result<Model, ActionError> {
    db::embeddings::serving(pool).await?.ok_or_else(|| {
        ActionError::Unavailable(
            "No embedding model serves searches yet: start a worker (it registers the classic \
             descriptor) and let it embed the products."
                .to_owned(),
        )
    })
}

/// Products like a product (itself left out).
pub async fn similar_to_product(
    pool: &PgPool,
    product_id: Uuid,
    request: SearchRequest,
) -> Result<Answer, ActionError> {
    if db::products::get(pool, product_id).await?.is_none() {
        return Err(ActionError::NotFound(format!(
            "There is no product {product_id}."
        )));
    }
    let model = serving_model(pool).await?;
    let Some(query) = db::embeddings::prototype_of(pool, &model, product_id).await? else {
        return Err(ActionError::Conflict(format!(
            "This product has no vectors of {} yet: it has no frames, or its embed job has not run.",
            model.label()
        )));
    };
    let mut request = request;
    request.filter.except = Some(product_id);
    answer(pool, model, &query, &request).await
}

/// Products like a photo (the bytes of a PNG, JPEG or WebP... file).
pub async fn similar_to_image(
    pool: &PgPool,
    storage: Option<&buybuddy_worker::storage::Storage>,
    embedders: &Arc<Embedders>,
    bytes: &[u8],
    request: SearchRequest,
) -> Result<Answer, ActionError> {
    let image = read_image(bytes)?;
    let model = serving_model(pool).await?;
    let embedders = embedders.clone();
    let wanted = crate::models::wanted(storage, &model).await.map_err(|e| {
        ActionError::Unavailable(format!(
            "This server cannot embed with {}: {e:#}",
            model.label()
        ))
    })?;
    let label = model.label();
    let vector = tokio::task::spawn_blocking(move || {
        let embedder = embedders.get(&wanted).map_err(|e| {
            ActionError::Unavailable(format!("This server cannot embed with {label}: {e:#}"))
        })?;
        let mut vectors = embedder
            .embed(&[Subject {
                image: &image,
                mask: None,
            }])
            .map_err(|e| ActionError::Internal(e.context("embedding the photo")))?;
        Ok::<_, ActionError>(vectors.pop().unwrap_or_default())
    })
    .await
    .map_err(|e| ActionError::Internal(anyhow!(e)))??;
    if vector.len() != model.dims as usize {
        return Err(ActionError::Internal(anyhow!(
            "{} gave a {}-d vector; the registry says {}",
            model.label(),
            vector.len(),
            model.dims
        )));
    }
    answer(pool, model, &vector, &request).await
}

/// Decodes a photo upright, refusing what is not one, is damaged, or is too
/// large.
pub fn read_image(bytes: &[u8]) -> Result<image::RgbImage, ActionError> {
    use buybuddy_worker::media::photo::{self, Limits, PhotoError};
    let limits = Limits {
        max_bytes: MAX_IMAGE_BYTES,
        max_side: MAX_IMAGE_SIDE,
        ..Limits::default()
    };
    photo::decode(bytes, &limits).map_err(|e| {
        ActionError::field(
            "image",
            match e {
                PhotoError::Empty => "Choose a photo to search with.".to_owned(),
                e => format!("{}.", super::capitalised(&e.to_string())),
            },
        )
    })
}

async fn answer(
    pool: &PgPool,
    model: Model,
    query: &[f32],
    request: &SearchRequest,
) -> Result<Answer, ActionError> {
    let near =
        db::embeddings::nearest_products(pool, &model, query, request.k, &request.filter).await?;
    let ids: Vec<Uuid> = near.iter().map(|n| n.product_id).collect();
    let mut frames = db::embeddings::best_frames(pool, &model, query, &ids).await?;
    let mut cards = db::embeddings::cards(pool, &ids).await?;
    let hits = near
        .into_iter()
        .filter_map(|n| {
            Some(Hit {
                product: cards.remove(&n.product_id)?,
                similarity: n.similarity,
                frame: frames.remove(&n.product_id),
            })
        })
        .collect();
    Ok(Answer { model, hits })
}

/// Pairs of products whose prototypes are at least this similar.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub a: ProductCard,
    pub b: ProductCard,
    pub similarity: f32,
}

/// The similarity above which two products are listed as possible
/// duplicates, by the kind of model (the classic descriptor's vectors are
/// closer together than a network's).
pub fn duplicate_threshold(model: &Model) -> f32 {
    if model.kind == "classic" { 0.97 } else { 0.92 }
}

pub async fn duplicates(
    pool: &PgPool,
    threshold: Option<f32>,
    limit: i64,
) -> Result<(Model, f32, Vec<Duplicate>), ActionError> {
    let model = serving_model(pool).await?;
    let threshold = threshold.unwrap_or_else(|| duplicate_threshold(&model));
    if !(-1.0..=1.0).contains(&threshold) {
        return Err(ActionError::field(
            "threshold",
            "The threshold is a similarity between -1 and 1.",
        ));
    }
    let pairs = db::embeddings::close_pairs(pool, &model, threshold, limit).await?;
    let ids: Vec<Uuid> = pairs.iter().flat_map(|p| [p.a, p.b]).collect();
    let cards = db::embeddings::cards(pool, &ids).await?;
    let found = pairs
        .into_iter()
        .filter_map(|p| {
            Some(Duplicate {
                a: cards.get(&p.a)?.clone(),
                b: cards.get(&p.b)?.clone(),
                similarity: p.similarity,
            })
        })
        .collect();
    Ok((model, threshold, found))
}

/// Queues an embed job of `model` (the active one when unset) for every
/// product with frames that lacks its vectors. Returns the model and how many
/// jobs were queued; products whose embed job is already waiting are skipped.
pub async fn backfill(
    pool: &PgPool,
    queue_name: &str,
    model: Option<i32>,
) -> Result<(Model, usize), ActionError> {
    let model = match model {
        Some(id) => db::embeddings::get(pool, id)
            .await?
            .ok_or_else(|| ActionError::NotFound(format!("There is no model #{id}.")))?,
        None => db::embeddings::active(pool).await?.ok_or_else(|| {
            ActionError::Unavailable(
                "No embedding model is active: start a worker first.".to_owned(),
            )
        })?,
    };
    let missing = db::embeddings::products_missing(pool, model.id).await?;
    let waiting = db::embeddings::products_waiting(pool, model.id).await?;
    let jobs: Vec<Enqueue> = missing
        .into_iter()
        .filter(|id| !waiting.contains(id))
        .map(|product_id| {
            JobSpec::Embed(Embed {
                product_id,
                model_id: model.id,
            })
            .into()
        })
        .collect();
    let queued = jobs.len();
    queue::enqueue(pool, queue_name, jobs).await?;
    Ok((model, queued))
}

/// Makes a model the active one and queues the backfill for it; searches
/// keep answering from the model before until it covers every product.
pub async fn activate(
    pool: &PgPool,
    queue_name: &str,
    id_or_name: &str,
) -> Result<(Model, usize), ActionError> {
    let model = db::embeddings::find(pool, id_or_name)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no model {id_or_name:?}.")))?;
    let model = db::embeddings::activate(pool, model.id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no model {id_or_name:?}.")))?;
    let (model, queued) = backfill(pool, queue_name, Some(model.id)).await?;
    Ok((model, queued))
}
