//! The dashboard page and its live jobs panel.

use std::sync::Arc;

use axum::extract::State;
use buybuddy_domain::{JobStatus, ProductStatus};
use buybuddy_templates::{
    dashboard::{self, Dashboard, JobLine, JobsPanel, ProductCard, StatusCount},
    paths,
};
use maud::Markup;

use super::{AppError, AppState};
use crate::db;

/// What the dashboard shows, shared by everyone viewing it (see `Cached`).
pub struct Figures {
    products: Vec<(String, i64)>,
    latest_products: Vec<db::products::Listed>,
    jobs: Vec<(String, i64)>,
    latest_jobs: Vec<db::jobs::Job>,
    throughput: Vec<(chrono::DateTime<chrono::Utc>, i64, i64)>,
}

/// How long figures are kept at most, even with no change announced.
pub const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

async fn figures(state: &AppState) -> Result<Arc<Figures>, AppError> {
    state
        .dashboard
        .get(
            || state.hub.generation(),
            || async {
                Ok::<_, AppError>(Figures {
                    products: db::products::count_by_status(&state.pool).await?,
                    latest_products: db::products::latest(&state.pool, 8).await?,
                    jobs: db::jobs::count_by_status(&state.pool).await?,
                    latest_jobs: db::jobs::latest(&state.pool, 10).await?,
                    throughput: db::jobs::throughput_24h(&state.pool).await?,
                })
            },
        )
        .await
}

pub async fn page(
    State(state): State<AppState>,
    viewer: super::Viewer,
) -> Result<Markup, AppError> {
    let figures = figures(&state).await?;
    Ok(dashboard::page(
        &viewer.0,
        &Dashboard {
            products: with_all(
                &ProductStatus::names().collect::<Vec<_>>(),
                &figures.products,
            ),
            latest_products: figures
                .latest_products
                .iter()
                .map(|p| ProductCard {
                    barcode: p.barcode.clone(),
                    name: p.product_name.clone(),
                    status: p.status.clone(),
                    frame_count: p.frame_count,
                    thumbnail_url: p.thumbnail_key.as_deref().map(paths::media),
                })
                .collect(),
            jobs: jobs_view(&figures),
        },
    ))
}

pub async fn jobs_panel(State(state): State<AppState>) -> Result<Markup, AppError> {
    Ok(dashboard::render_jobs_panel(&jobs_view(
        &*figures(&state).await?,
    )))
}

fn jobs_view(figures: &Figures) -> JobsPanel {
    JobsPanel {
        counts: with_all(&JobStatus::names().collect::<Vec<_>>(), &figures.jobs),
        latest: figures
            .latest_jobs
            .iter()
            .map(|job| JobLine {
                id: job.id.to_string(),
                kind: job.kind.clone(),
                barcode: job.barcode.clone(),
                status: job.status.clone(),
                progress: job.progress,
                stage: job.stage.clone(),
                error: job.error_message.clone(),
                created_at: job.created_at,
            })
            .collect(),
        throughput: figures.throughput.clone(),
        now: chrono::Utc::now(),
    }
}

/// Counts for every status, in the given order, zero where the database had none.
fn with_all(statuses: &[&str], counts: &[(String, i64)]) -> Vec<StatusCount> {
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
