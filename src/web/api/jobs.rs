//! Jobs: list (filters and pages as on the Jobs page), create, read (with the
//! event log), cancel, retry.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Limit;
use crate::{
    db::{self, jobs::Cancel},
    jobs::JobSpec,
    queue::{self, Enqueue},
    web::{AppError, AppState, jobs::ListQuery, paging},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_JOBS, get(list).post(create))
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

async fn create(
    State(state): State<AppState>,
    Json(request): Json<NewJob>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let spec: JobSpec = serde_json::from_value(request.spec)
        .map_err(|e| AppError::BadRequest(format!("Not a job this platform knows: {e}.")))?;
    if request.max_attempts == Some(0) {
        return Err(AppError::BadRequest(
            "max_attempts must be at least 1.".into(),
        ));
    }
    let ids = queue::enqueue(
        &state.pool,
        &state.queue,
        vec![Enqueue {
            max_attempts: request.max_attempts,
            ..Enqueue::from(spec)
        }],
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": ids[0] }))))
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
    match db::jobs::cancel(&state.pool, id).await? {
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
    let new = crate::web::jobs::retry_job(&state, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": new, "retry_of": id })),
    ))
}
