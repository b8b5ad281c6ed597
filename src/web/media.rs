//! `/media/{key}`: stored objects (frames, masks, uploaded videos), from
//! whichever storage the server is configured with.

use axum::{
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use buybuddy_worker::storage::StorageError;

use super::{AppError, AppState};

pub async fn serve(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let body = state.storage.get(&key).await.map_err(|error| match error {
        StorageError::NotFound(_) | StorageError::BadKey(_) => {
            AppError::NotFound(format!("Nothing is stored at {key}."))
        }
        other => AppError::Internal(other.into()),
    })?;
    let content_type = match key.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    // Keys are deterministic per job, but a retried job rewrites them: cache briefly.
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        body,
    )
        .into_response())
}
