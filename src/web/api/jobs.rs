//! Jobs: list (filters and pages as on the Jobs page), create, read (with the
//! event log), cancel, retry.
//!
//! `POST /api/jobs` takes JSON (`{"kind": "video", "barcode": ..., "video_url":
//! ...}`; without `video_url`, the synced catalog's video) or a multipart form
//! with a `video` file, and checks exactly what the Jobs page checks: an
//! `http(s)://` or `s3://` address in an allowed bucket, or an upload; probe
//! kinds only on a server started with `--enable-probe-jobs`.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State},
    http::{StatusCode, header},
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Limit;
use crate::{
    actions::{
        self,
        jobs::{NewVideoJob, VideoSource},
    },
    db::{self, jobs::Cancel},
    jobs::JobSpec,
    web::{AppError, AppState, jobs::ListQuery, paging, upload::JobForm},
};

/// Largest JSON body of a new job.
const MAX_JSON_BYTES: usize = 1 << 20;

pub fn routes(upload_limit: DefaultBodyLimit) -> Router<AppState> {
    Router::new()
        .route(paths::API_JOBS, get(list).post(create).layer(upload_limit))
        .route(paths::API_JOB, get(show))
        .route(paths::API_JOB_CANCEL, post(cancel))
        .route(paths::API_JOB_RETRY, post(retry))
}

/// Newest first; `?status=`, `?q=` (part of a barcode), `?before=` (the
/// `next` of the previous page) and `?limit=`.
async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, AppError> {
    let (_, filter) = query.filter()?;
    let limit = limit.get();
    let mut jobs = db::jobs::list(&state.pool, &filter, limit + 1).await?;
    let next = paging::cut(&mut jobs, limit, |j| (j.created_at, j.id));
    Ok(Json(json!({ "jobs": jobs, "next": next })))
}

#[derive(Deserialize)]
struct NewJob {
    #[serde(flatten)]
    spec: Value,
    max_attempts: Option<u32>,
}

/// A video job as JSON: the catalog's video when no address is given.
#[derive(Deserialize)]
struct NewVideo {
    barcode: String,
    video_url: Option<String>,
    video_id: Option<i32>,
}

async fn create(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let id = if multipart {
        let mut form = Multipart::from_request(request, &state)
            .await
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?;
        let read = JobForm::read(&mut form, state.max_upload).await?;
        if !read.errors.is_empty() {
            return Err(AppError::Invalid(read.errors));
        }
        actions::jobs::create_video_job(state.actions(), read.job()).await?
    } else {
        // The route takes uploads of gigabytes; a JSON job is small.
        let body = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|e| AppError::BadRequest(format!("The request could not be read: {e}.")))?;
        let request: NewJob = serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("Not a job this platform knows: {e}.")))?;
        create_from_json(&state, request).await?
    };
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn create_from_json(state: &AppState, request: NewJob) -> Result<Uuid, AppError> {
    let simple_video = request.spec.get("kind").and_then(Value::as_str) == Some("video")
        && request.spec.get("frames").is_none()
        && request.spec.get("background").is_none();
    if simple_video {
        let video: NewVideo = serde_json::from_value(request.spec)
            .map_err(|e| AppError::BadRequest(format!("Not a video job: {e}.")))?;
        let job = NewVideoJob {
            barcode: video.barcode,
            source: video
                .video_url
                .map_or(VideoSource::Catalog, VideoSource::Url),
            video_id: video.video_id,
            max_attempts: request.max_attempts,
        };
        return Ok(actions::jobs::create_video_job(state.actions(), job).await?);
    }
    let spec: JobSpec = serde_json::from_value(request.spec)
        .map_err(|e| AppError::BadRequest(format!("Not a job this platform knows: {e}.")))?;
    Ok(actions::jobs::create(state.actions(), spec, request.max_attempts).await?)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, AppError> {
    let job = db::jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No job {id}.")))?;
    let events = db::job_events::for_job(&state.pool, id).await?;
    Ok(Json(json!({ "job": job, "events": events })))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<Value>, AppError> {
    match actions::jobs::cancel(state.actions(), id).await? {
        Cancel::Cancelled => Ok(Json(json!({ "result": "cancelled" }))),
        Cancel::Requested => Ok(Json(json!({ "result": "requested" }))),
        Cancel::AlreadyEnded(status) => Err(AppError::Conflict(format!(
            "The job already ended ({status})."
        ))),
        Cancel::NotFound => Err(AppError::NotFound(format!("No job {id}."))),
    }
}

/// Queues a failed or cancelled job again, once: the new job points back.
async fn retry(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let new = actions::jobs::retry(state.actions(), id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": new, "retry_of": id })),
    ))
}
