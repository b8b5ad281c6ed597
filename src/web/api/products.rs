//! Products: list (filters and pages as on the Products page), read (with
//! frames), edit metadata, approve, reject, reprocess, and the same review
//! actions on many at once.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Limit;
use buybuddy_domain::ProductStatus;

use crate::{
    actions::{self, ActionError},
    db,
    web::{AppError, AppState, Viewer, error::OwnBody, paging, products::ListQuery},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_PRODUCTS, get(list))
        .route(paths::API_PRODUCTS_REVIEW, post(review_many))
        .route(paths::API_PRODUCT, get(show).patch(edit))
        .route(paths::API_PRODUCT_APPROVE, post(approve))
        .route(paths::API_PRODUCT_REJECT, post(reject))
        .route(paths::API_PRODUCT_REPROCESS, post(reprocess_one))
}

/// Newest first; `?status=`, `?q=` (part of a barcode or name), `?before=`
/// (the `next` of the previous page) and `?limit=`.
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, AppError> {
    let (_, filter) = query.filter()?;
    let limit = limit.get();
    let mut rows = db::products::list(&state.pool, &filter, limit + 1).await?;
    let next = paging::cut(&mut rows, limit, |p| (p.created_at, p.id));
    let products: Vec<Value> = rows
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id,
                "barcode": p.barcode,
                "product_name": p.product_name,
                "brand_name": p.brand_name,
                "status": p.status,
                "frame_count": p.frame_count,
                "thumbnail_url": p.thumbnail_key.as_deref().map(paths::media),
                "created_at": p.created_at,
                "updated_at": p.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({ "products": products, "next": next })))
}

async fn product_json(state: &AppState, id: Uuid) -> Result<Value, AppError> {
    let product = db::products::get(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no product {id}.")))?;
    let frames: Vec<Value> = db::frames::for_product(&state.pool, id)
        .await?
        .into_iter()
        .map(|f| {
            json!({
                "index": f.frame_index,
                "url": paths::media(&f.storage_key),
                "mask_url": f.mask_key.as_deref().map(paths::media),
                "width": f.width,
                "height": f.height,
                "bbox": [f.bbox_x, f.bbox_y, f.bbox_w, f.bbox_h],
            })
        })
        .collect();
    Ok(json!({ "product": product, "frames": frames }))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(product_json(&state, id).await?))
}

/// Changes the metadata fields the body names (null clears one); the others
/// stay. Invalid values change nothing and come back as 422 with a message
/// per field.
async fn edit(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Response, AppError> {
    match actions::products::patch_metadata(state.actions(), id, &body).await {
        Ok(()) => Ok(Json(product_json(&state, id).await?).into_response()),
        Err(ActionError::Invalid(fields)) => {
            // Shaped like every API error, with the messages by field.
            let mut response = (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": {
                    "status": 422,
                    "title": "Invalid metadata",
                    "message": "Some fields are not valid; nothing was changed.",
                    "fields": fields,
                }})),
            )
                .into_response();
            response.extensions_mut().insert(OwnBody);
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct Reason {
    reason: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
    body: Option<Json<Reason>>,
) -> Result<Json<Value>, AppError> {
    let reason = body.and_then(|b| b.0.reason);
    let ctx = state.actions();
    let email = &viewer.0.email;
    actions::products::review_one(ctx, id, ProductStatus::Approved, reason.as_deref(), email)
        .await
        .map_err(bad_request)?;
    Ok(Json(product_json(&state, id).await?))
}

async fn reject(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
    body: Option<Json<Reason>>,
) -> Result<Json<Value>, AppError> {
    let reason = body.and_then(|b| b.0.reason);
    let ctx = state.actions();
    let email = &viewer.0.email;
    actions::products::review_one(ctx, id, ProductStatus::Rejected, reason.as_deref(), email)
        .await
        .map_err(bad_request)?;
    Ok(Json(product_json(&state, id).await?))
}

async fn reprocess_one(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let job = actions::products::reprocess_one(state.actions(), id).await?;
    Ok((StatusCode::CREATED, Json(json!({ "job_id": job }))))
}

#[derive(Debug, Deserialize)]
struct Review {
    action: String,
    ids: Vec<Uuid>,
    reason: Option<String>,
}

/// `{"action": "approve" | "reject" | "reprocess", "ids": [...], "reason": "…"}`
/// (a reason is needed to reject).
async fn review_many(
    State(state): State<AppState>,
    viewer: Viewer,
    Json(review): Json<Review>,
) -> Result<Json<Value>, AppError> {
    let ctx = state.actions();
    let email = &viewer.0.email;
    let reason = review.reason.as_deref();
    let verdict = match review.action.as_str() {
        "approve" => ProductStatus::Approved,
        "reject" => ProductStatus::Rejected,
        "reprocess" => {
            if review.ids.is_empty() {
                return Err(AppError::BadRequest("Name at least one product id.".into()));
            }
            let queued = actions::products::reprocess(ctx, &review.ids).await?;
            return Ok(Json(json!({
                "jobs": queued.jobs,
                "without_video": queued.without_video,
            })));
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "{other:?} is not an action: approve, reject or reprocess."
            )));
        }
    };
    let changed = actions::products::review(ctx, &review.ids, verdict, reason, email)
        .await
        .map_err(bad_request)?;
    Ok(Json(json!({ "changed": changed })))
}

/// A review's missing selection or reason is a 400 here, as it always was.
fn bad_request(error: ActionError) -> AppError {
    match error {
        ActionError::Invalid(fields) => {
            AppError::BadRequest(fields.into_values().collect::<Vec<_>>().join(" "))
        }
        other => other.into(),
    }
}
