//! Search and models: products like a product, like a photo (the request
//! body, a multipart `image` field, or a frame of this platform by its
//! `/media/...` URL), possible duplicates; the model registry, making a model
//! active, and the backfill.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequest, Multipart, Path, Query, Request, State},
    http::header,
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    actions::{
        ActionError,
        search::{self, Answer, SearchRequest},
    },
    db,
    web::{AppError, AppState},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_PRODUCT_SIMILAR, get(similar))
        .route(
            paths::API_SEARCH,
            post(by_image).layer(axum::extract::DefaultBodyLimit::max(
                search::MAX_IMAGE_BYTES + (1 << 20),
            )),
        )
        .route(paths::API_SEARCH_DUPLICATES, get(duplicates))
        .route(paths::API_MODELS, get(models))
        .route(paths::API_MODEL_ACTIVATE, post(activate))
        .route(paths::API_EMBED, post(backfill))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    k: Option<i64>,
    status: Option<String>,
    category: Option<String>,
}

impl SearchQuery {
    fn request(self) -> Result<SearchRequest, ActionError> {
        SearchRequest::new(self.k, self.status, self.category)
    }
}

fn answer_json(answer: Answer) -> Json<Value> {
    let hits: Vec<Value> = answer
        .hits
        .into_iter()
        .map(|hit| {
            json!({
                "product": hit.product,
                "similarity": hit.similarity,
                "frame": hit.frame.map(|f| json!({
                    "id": f.frame_id,
                    "index": f.frame_index,
                    "url": paths::media(&f.storage_key),
                    "similarity": f.similarity,
                })),
            })
        })
        .collect();
    Json(json!({
        "model": {"id": answer.model.id, "name": answer.model.name, "kind": answer.model.kind, "dims": answer.model.dims},
        "results": hits,
    }))
}

/// `GET /api/products/{id}/similar?k=&status=&category=`.
async fn similar(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, AppError> {
    let answer = search::similar_to_product(&state.pool, id, query.request()?).await?;
    Ok(answer_json(answer))
}

#[derive(Debug, Deserialize)]
struct Linked {
    /// A frame or mask of this platform: `/media/<key>` (or the whole URL).
    image_url: String,
}

/// `POST /api/search?k=&status=&category=` with the photo as the body
/// (`image/*`), as a multipart `image` field, or JSON `{"image_url": ...}`
/// naming one of this platform's images.
async fn by_image(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
    request: Request,
) -> Result<Json<Value>, AppError> {
    let request_settings = query.request()?;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes: Vec<u8> = if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let mut image = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?
        {
            if field.name() == Some("image") {
                image = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?
                    .to_vec();
            }
        }
        image
    } else if content_type.starts_with("application/json") {
        let Json(linked) = Json::<Linked>::from_request(request, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let key = media_key(&linked.image_url).ok_or_else(|| {
            ActionError::field(
                "image_url",
                "Give an image of this platform (a /media/... URL), or send the photo itself.",
            )
        })?;
        state
            .storage
            .get(&key)
            .await
            .map_err(|_| {
                ActionError::field(
                    "image_url",
                    format!("There is no image at {}.", linked.image_url),
                )
            })?
            .to_vec()
    } else {
        Bytes::from_request(request, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?
            .to_vec()
    };
    let answer = search::similar_to_image(
        &state.pool,
        Some(&state.storage),
        &state.embedders,
        &bytes,
        request_settings,
    )
    .await?;
    Ok(answer_json(answer))
}

/// The storage key of a `/media/<key>` URL (absolute or not).
fn media_key(url: &str) -> Option<String> {
    let path = match url.find("://") {
        Some(scheme) => {
            let rest = &url[scheme + 3..];
            &rest[rest.find('/')?..]
        }
        None => url,
    };
    let key = path.strip_prefix(paths::MEDIA)?.strip_prefix('/')?;
    (!key.is_empty() && !key.split('/').any(|part| part == ".." || part.is_empty()))
        .then(|| key.to_owned())
}

#[derive(Debug, Deserialize)]
struct DuplicateQuery {
    threshold: Option<f32>,
    limit: Option<i64>,
}

/// `GET /api/search/duplicates?threshold=&limit=`.
async fn duplicates(
    State(state): State<AppState>,
    Query(query): Query<DuplicateQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let (model, threshold, pairs) = search::duplicates(&state.pool, query.threshold, limit).await?;
    Ok(Json(json!({
        "model": model.label(),
        "threshold": threshold,
        "pairs": pairs,
    })))
}

/// `GET /api/models`.
async fn models(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    Ok(Json(
        json!({ "models": db::embeddings::list(&state.pool).await? }),
    ))
}

/// `POST /api/models/{id}/activate`.
async fn activate(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, AppError> {
    let (model, queued) = search::activate(&state.pool, &state.queue, &id.to_string()).await?;
    Ok(Json(json!({ "model": model, "queued": queued })))
}

#[derive(Debug, Deserialize, Default)]
struct Backfill {
    model_id: Option<i32>,
}

/// `POST /api/embed` (`{"model_id": ...}`, the active model when absent):
/// queues embed jobs for every product without that model's vectors.
async fn backfill(
    State(state): State<AppState>,
    body: Option<Json<Backfill>>,
) -> Result<Json<Value>, AppError> {
    let model_id = body.and_then(|Json(b)| b.model_id);
    let (model, queued) = search::backfill(&state.pool, &state.queue, model_id).await?;
    Ok(Json(
        json!({ "model": model.label(), "model_id": model.id, "queued": queued }),
    ))
}

#[cfg(test)]
mod tests {
    use super::media_key;

    #[test]
    fn media_urls_name_their_key() {
        assert_eq!(media_key("/media/a/b.png").as_deref(), Some("a/b.png"));
        assert_eq!(
            media_key("http://h:1/media/a/b.png").as_deref(),
            Some("a/b.png")
        );
        assert_eq!(media_key("/media/../x"), None);
        assert_eq!(media_key("/other/a.png"), None);
        assert_eq!(media_key("/media/"), None);
    }
}
