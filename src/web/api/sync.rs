//! The Buybuddy catalog: what is not processed yet, run a sync, queue jobs.

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    db,
    web::{AppError, AppState},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_SYNC, get(show).post(run))
        .route(paths::API_SYNC_ENQUEUE, post(enqueue))
}

/// The stored catalog: its size, when it was last synced, and the products
/// not processed yet.
async fn show(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let barcodes = db::catalog::barcodes(&state.pool).await?;
    let unprocessed = db::catalog::unprocessed(&state.pool, &barcodes).await?;
    Ok(Json(json!({
        "configured": state.catalog.is_some(),
        "catalog_size": barcodes.len(),
        "last_synced": db::catalog::last_synced(&state.pool).await?,
        "unprocessed": unprocessed,
    })))
}

/// Lists the whole catalog and stores it; nothing is queued.
async fn run(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let Some(client) = state.catalog.clone() else {
        return Err(AppError::Conflict(
            "The Buybuddy API is not configured on this server.".into(),
        ));
    };
    let report = crate::actions::sync::sync(&state.pool, &client, &state.queue, false, |_, _| {})
        .await
        .map_err(|e| AppError::Unavailable(format!("The sync failed: {e:#}")))?;
    Ok(Json(json!({ "report": report })))
}

#[derive(Debug, Deserialize)]
struct Enqueue {
    #[serde(default)]
    barcodes: Vec<String>,
    #[serde(default)]
    all: bool,
}

/// `{"barcodes": [...]}` or `{"all": true}`: queues a video job for each
/// unprocessed one that has none queued or running.
async fn enqueue(
    State(state): State<AppState>,
    Json(request): Json<Enqueue>,
) -> Result<Json<Value>, AppError> {
    let barcodes = if request.all {
        db::catalog::barcodes(&state.pool).await?
    } else if request.barcodes.is_empty() {
        return Err(AppError::BadRequest(
            "Name barcodes, or ask for all: {\"all\": true}.".into(),
        ));
    } else {
        request.barcodes
    };
    let (_, queued) =
        crate::actions::sync::enqueue_unprocessed(&state.pool, &state.queue, &barcodes)
            .await
            .map_err(AppError::Internal)?;
    let jobs: Vec<Value> = queued
        .into_iter()
        .map(|(barcode, id)| json!({ "barcode": barcode, "job_id": id }))
        .collect();
    Ok(Json(json!({ "queued": jobs })))
}
