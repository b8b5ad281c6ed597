//! The JSON API for jobs: list them, create one, read one (with its event log),
//! cancel one.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{AppError, AppState};
use crate::{
    db::{self, jobs::Cancel},
    jobs::JobSpec,
    queue::{self, Enqueue},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_JOBS, get(list).post(create))
        .route(paths::API_JOB, get(show))
        .route(paths::API_JOB_CANCEL, post(cancel))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

/// The newest jobs, newest first (`?limit=`, 50 by default, at most 500).
async fn list(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let jobs = db::jobs::latest(&state.pool, limit).await?;
    Ok(Json(json!({ "jobs": jobs })))
}

#[derive(Deserialize)]
struct NewJob {
    #[serde(flatten)]
    spec: Value,
    max_attempts: Option<u32>,
}

#[derive(Serialize)]
struct Created {
    id: Uuid,
}

async fn create(
    State(state): State<AppState>,
    Json(request): Json<NewJob>,
) -> Result<(StatusCode, Json<Created>), AppError> {
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
    Ok((StatusCode::CREATED, Json(Created { id: ids[0] })))
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
