//! `/healthz`: 200 while the database answers, 503 otherwise.

use std::time::Duration;

use axum::{extract::State, http::StatusCode};

use super::AppState;

pub async fn check(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let ping = crate::db::ping(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out\n"),
    }
}
