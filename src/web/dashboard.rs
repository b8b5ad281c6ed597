//! The dashboard page and its live jobs panel.

use axum::extract::State;
use buybuddy_templates::{
    dashboard::{self, Dashboard, JobLine, JobsPanel, ProductCard, StatusCount},
    paths,
};
use maud::Markup;

use super::{AppError, AppState};
use crate::db;

pub async fn page(
    State(state): State<AppState>,
    viewer: super::Viewer,
) -> Result<Markup, AppError> {
    let products = db::products::count_by_status(&state.pool).await?;
    let latest = db::products::latest(&state.pool, 8).await?;
    Ok(dashboard::page(
        &viewer.0,
        &Dashboard {
            products: with_all(db::products::STATUSES, products),
            latest_products: latest
                .into_iter()
                .map(|p| ProductCard {
                    barcode: p.barcode,
                    name: p.product_name,
                    status: p.status,
                    frame_count: p.frame_count,
                    thumbnail_url: p.thumbnail_key.as_deref().map(paths::media),
                })
                .collect(),
            jobs: jobs_view(&state).await?,
        },
    ))
}

pub async fn jobs_panel(State(state): State<AppState>) -> Result<Markup, AppError> {
    Ok(dashboard::render_jobs_panel(&jobs_view(&state).await?))
}

async fn jobs_view(state: &AppState) -> Result<JobsPanel, AppError> {
    let counts = db::jobs::count_by_status(&state.pool).await?;
    let latest = db::jobs::latest(&state.pool, 10).await?;
    Ok(JobsPanel {
        counts: with_all(db::jobs::STATUSES, counts),
        latest: latest
            .into_iter()
            .map(|job| JobLine {
                id: job.id.to_string(),
                kind: job.kind,
                barcode: job.barcode,
                status: job.status,
                progress: job.progress,
                stage: job.stage,
                error: job.error_message,
                created_at: job.created_at,
            })
            .collect(),
        throughput: db::jobs::throughput_24h(&state.pool).await?,
        now: chrono::Utc::now(),
    })
}

/// Counts for every status, in the given order, zero where the database had none.
fn with_all(statuses: &[&str], counts: Vec<(String, i64)>) -> Vec<StatusCount> {
    statuses
        .iter()
        .map(|status| StatusCount {
            status: (*status).to_owned(),
            count: counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n),
        })
        .collect()
}
