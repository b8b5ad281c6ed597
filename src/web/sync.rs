//! The Sync page: run a catalog sync, see what is not processed, queue it.

use axum::{
    Form,
    extract::State,
    response::{IntoResponse, Response},
};
use buybuddy_templates::sync::{self, Pending, SyncView};
use chrono::Utc;
use maud::Markup;

use super::{AppError, AppState, Viewer};
use crate::db;

async fn view(
    state: &AppState,
    notice: Option<String>,
    error: Option<String>,
) -> Result<SyncView, AppError> {
    let barcodes = db::catalog::barcodes(&state.pool).await?;
    let pending = db::catalog::unprocessed(&state.pool, &barcodes).await?;
    Ok(SyncView {
        api_url: state.catalog.as_ref().map(|c| c.base_url().to_owned()),
        catalog_size: barcodes.len() as i64,
        last_synced: db::catalog::last_synced(&state.pool).await?,
        pending: pending
            .into_iter()
            .map(|u| Pending {
                barcode: u.barcode,
                name: u.name,
                video_url: u.video_url,
                in_progress: u.in_progress,
                last_failed: u.last_failed,
            })
            .collect(),
        notice,
        error,
        now: Utc::now(),
    })
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Markup, AppError> {
    Ok(sync::page(&viewer.0, &view(&state, None, None).await?))
}

/// Lists the whole catalog and stores it (nothing is queued).
pub async fn run(State(state): State<AppState>, viewer: Viewer) -> Result<Response, AppError> {
    let Some(client) = state.catalog.clone() else {
        return Err(AppError::Conflict(
            "The Buybuddy API is not configured on this server.".into(),
        ));
    };
    let (notice, error) = match crate::actions::sync::sync(
        &state.pool,
        &client,
        &state.queue,
        false,
        |_, _| {},
    )
    .await
    {
        Ok(report) => (
            Some(format!(
                "Listed {} products in {} pages: {} new, {} changed.",
                report.listed, report.pages, report.stored.new, report.stored.changed
            )),
            None,
        ),
        // The API's refusal is shown on the page, not as an error page.
        Err(error) => (None, Some(format!("The sync failed: {error:#}"))),
    };
    Ok(sync::page(&viewer.0, &view(&state, notice, error).await?).into_response())
}

/// Queues the selected unprocessed products, or all of them.
pub async fn enqueue(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let all = fields.iter().any(|(k, v)| k == "all" && v == "1");
    let barcodes: Vec<String> = if all {
        db::catalog::barcodes(&state.pool).await?
    } else {
        fields
            .into_iter()
            .filter(|(k, _)| k == "barcodes")
            .map(|(_, v)| v)
            .collect()
    };
    let notice = if barcodes.is_empty() {
        "Select at least one product first.".to_owned()
    } else {
        let (_, queued) =
            crate::actions::sync::enqueue_unprocessed(&state.pool, &state.queue, &barcodes)
                .await
                .map_err(AppError::Internal)?;
        format!("Queued {} video jobs.", queued.len())
    };
    Ok(sync::page(&viewer.0, &view(&state, Some(notice), None).await?).into_response())
}
