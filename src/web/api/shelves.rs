//! Shelf photos: upload (multipart, with label files or a ZIP), list, a photo
//! with its boxes, add, move and delete boxes, match crops, the review queue
//! and decisions, and the coverage figures: the same actions as the pages.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Multipart, Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Limit;
use crate::{
    actions::{
        ActionError,
        shelves::{self as act, BoxInput, Decision, ReviewItem},
    },
    db,
    web::{AppError, AppState, UserId, shelves::UploadRequest},
};

pub fn routes(upload_limit: axum::extract::DefaultBodyLimit) -> Router<AppState> {
    Router::new()
        .route(
            paths::API_SHELVES,
            get(list).post(upload).layer(upload_limit),
        )
        .route(paths::API_SHELF, get(show).delete(delete))
        .route(paths::API_SHELF_BOXES, post(add_boxes))
        .route(paths::API_SHELF_PROPOSE, post(propose))
        .route(
            paths::API_SHELF_BOX,
            get(show_box).put(move_box).delete(delete_box),
        )
        .route(paths::API_SHELF_BOX_REVIEW, post(decide))
        .route(paths::API_SHELVES_MATCH, post(match_crops))
        .route(paths::API_SHELVES_REVIEW, get(next))
        .route(paths::API_COVERAGE, get(coverage))
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("The body is not the JSON expected: {e}.")))
}

#[derive(Debug, Deserialize)]
struct Offset {
    offset: Option<i64>,
}

/// `GET /api/shelves?limit=&offset=`
async fn list(
    State(state): State<AppState>,
    Query(limit): Query<Limit>,
    Query(offset): Query<Offset>,
) -> Result<Json<Value>, AppError> {
    let rows =
        db::shelves::list_images(&state.pool, limit.get(), offset.offset.unwrap_or(0).max(0))
            .await?;
    Ok(Json(json!({
        "total": db::shelves::count_images(&state.pool).await?,
        "images": rows,
    })))
}

/// `POST /api/shelves`: multipart `files` (photos, label files, ZIPs) and
/// optional `store`, `aisle`, `taken_on`, `notes`.
async fn upload(
    State(state): State<AppState>,
    UserId(user): UserId,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let request = UploadRequest::read(&mut multipart, state.max_upload).await?;
    if !request.errors.is_empty() {
        return Err(ActionError::Invalid(request.errors).into());
    }
    let report = act::upload(state.actions(), request.sent(), &request.place, Some(user)).await?;
    Ok((StatusCode::CREATED, Json(json!(report))))
}

/// `GET /api/shelves/{id}`: the photo with its boxes.
async fn show(State(state): State<AppState>, Path(id): Path<i32>) -> Result<Json<Value>, AppError> {
    Ok(Json(json!(act::image(state.actions(), id).await?)))
}

/// `DELETE /api/shelves/{id}`
async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<StatusCode, AppError> {
    act::delete_image(state.actions(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct NewBoxes {
    boxes: Vec<BoxInput>,
    /// A class name or note kept with the boxes.
    label: Option<String>,
}

/// `POST /api/shelves/{id}/boxes`: `{"boxes": [{"x", "y", "width", "height"}], "label"?}`.
async fn add_boxes(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let input: NewBoxes = json_body(&bytes)?;
    let added = act::add_boxes(
        state.actions(),
        id,
        &input.boxes,
        "drawn",
        input.label.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "boxes": added }))))
}

#[derive(Debug, Deserialize, Default)]
struct ProposeBody {
    #[serde(default)]
    prompts: Vec<String>,
    min_score: Option<f32>,
}

/// `POST /api/shelves/{id}/propose`: `{"prompts"?: ["product"], "min_score"?: 0.3}`.
async fn propose(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let body: ProposeBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ProposeBody::default()
    } else {
        json_body(&bytes)?
    };
    let job = act::propose(
        state.actions(),
        id,
        &body.prompts.join("\n"),
        body.min_score,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": job, "job_url": paths::with_id(paths::API_JOB, job)})),
    ))
}

fn item_json(item: &ReviewItem) -> Value {
    json!({
        "box": item.crop,
        "crop_url": paths::media(&item.crop.crop_key),
        "image": item.image,
        "model": item.model.as_ref().map(|m| m.label()),
        "suggestions": item.suggestions,
        "counts": item.counts,
    })
}

/// `GET /api/shelves/boxes/{id}`: a box with what matching found for it.
async fn show_box(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(item_json(
        &act::review_item(state.actions(), id).await?,
    )))
}

/// `PUT /api/shelves/boxes/{id}`: `{"x", "y", "width", "height"}`.
async fn move_box(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let to: BoxInput = json_body(&bytes)?;
    Ok(Json(json!(act::move_box(state.actions(), id, &to).await?)))
}

/// `DELETE /api/shelves/boxes/{id}`
async fn delete_box(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    act::delete_box(state.actions(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ReviewBody {
    action: String,
    product: Option<String>,
}

/// `POST /api/shelves/boxes/{id}/review`: `{"action": "confirm", "product":
/// id or barcode}`, `{"action": "absent" | "skip" | "reopen"}`.
async fn decide(
    State(state): State<AppState>,
    UserId(user): UserId,
    Path(id): Path<i64>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let body: ReviewBody = json_body(&bytes)?;
    let decision = Decision::parse(&body.action, body.product.as_deref())?;
    Ok(Json(json!(
        act::decide(state.actions(), id, &decision, Some(user)).await?
    )))
}

#[derive(Debug, Deserialize, Default)]
struct MatchBody {
    image_ids: Option<Vec<i32>>,
}

/// `POST /api/shelves/match`: `{"image_ids"?: [...]}` (every photo with
/// unmatched crops when absent).
async fn match_crops(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let body: MatchBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        MatchBody::default()
    } else {
        json_body(&bytes)?
    };
    let (model, job, images) = act::match_crops(state.actions(), body.image_ids).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "job_id": job,
            "job_url": paths::with_id(paths::API_JOB, job),
            "model": model.label(),
            "images": images,
        })),
    ))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    image: Option<i32>,
}

/// `GET /api/shelves/review?image=`: the next crop to review and the counts.
async fn next(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
) -> Result<Json<Value>, AppError> {
    let (item, counts) = act::next_to_review(state.actions(), query.image).await?;
    Ok(Json(json!({
        "next": item.as_ref().map(item_json),
        "counts": counts,
    })))
}

/// `GET /api/coverage`: the per-product figures (worst first, each with its
/// verdict), the categories, and the confused crops.
async fn coverage(
    State(state): State<AppState>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(json!(
        act::coverage(state.actions(), limit.get()).await?
    )))
}
