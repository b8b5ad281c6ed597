//! The web server: pages (Maud + HTMX), the JSON API, live updates over
//! Server-Sent Events, health and static assets, all from one binary.

mod api;
mod assets;
mod dashboard;
pub mod error;
mod events;
mod health;
mod media;

use std::sync::Arc;

use axum::{Router, middleware, routing::get};
use buybuddy_templates::paths;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::realtime::Hub;

pub use error::AppError;

/// Everything request handlers share.
pub struct App {
    /// The database, which holds everything durable.
    pub pool: PgPool,
    /// Fan-out of the database's change notifications.
    pub hub: Hub,
    /// The queue new jobs go to.
    pub queue: String,
    /// Where frames, masks and uploads are stored.
    pub storage: buybuddy_worker::storage::Storage,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(paths::DASHBOARD, get(dashboard::page))
        .route(paths::DASHBOARD_JOBS, get(dashboard::jobs_panel))
        .route(paths::EVENTS, get(events::stream))
        .route(paths::HEALTHZ, get(health::check))
        .route(&format!("{}/{{name}}", paths::STATIC), get(assets::serve))
        .route(&format!("{}/{{*key}}", paths::MEDIA), get(media::serve))
        .merge(api::routes())
        .fallback(|| async { AppError::NotFound("There is no page at this address.".into()) })
        .layer(middleware::from_fn(error::render_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` fires, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
