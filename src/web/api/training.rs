//! Training runs: start one, list them, read one with its curve and
//! checkpoints, cancel it, and make its model the search model: the same
//! actions as the Training pages.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    actions::training as act,
    db,
    training::RunConfig,
    web::{AppError, AppState},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_TRAINING, get(list).post(start))
        .route(paths::API_TRAINING_RUN, get(show))
        .route(paths::API_TRAINING_RUN_CANCEL, post(cancel))
        .route(paths::API_TRAINING_RUN_USE, post(use_for_search))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    name: Option<String>,
    version_id: i32,
    #[serde(default)]
    config: RunConfig,
}

/// `POST /api/training`: `{"version_id": 3, "name": "...", "config": {...}}`;
/// settings left out take their defaults.
async fn start(State(state): State<AppState>, bytes: Bytes) -> Result<Json<Value>, AppError> {
    let input: Start = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::BadRequest(format!("The body is not the JSON expected: {e}.")))?;
    let run = act::start(
        state.actions(),
        input.name.as_deref(),
        input.version_id,
        input.config,
    )
    .await?;
    Ok(Json(json!({ "run": run })))
}

/// `GET /api/training`
async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let runs = db::training::list(&state.pool, 500).await?;
    Ok(Json(json!({ "runs": runs })))
}

/// `GET /api/training/{id}`: the run, its points, checkpoints and model.
async fn show(State(state): State<AppState>, Path(id): Path<i32>) -> Result<Json<Value>, AppError> {
    let run = act::view(state.actions(), id).await?;
    Ok(Json(json!({ "run": run })))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, AppError> {
    let job = act::cancel(state.actions(), id).await?;
    Ok(Json(
        json!({ "run_id": id, "job_id": job, "cancelled": true }),
    ))
}

async fn use_for_search(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, AppError> {
    let (model, queued) = act::use_for_search(state.actions(), id).await?;
    Ok(Json(json!({ "model": model, "queued": queued })))
}
