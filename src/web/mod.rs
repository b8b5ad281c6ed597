//! The web server: pages (Maud + HTMX), the JSON API, live updates over
//! Server-Sent Events, health and static assets, all from one binary.

mod api;
mod assets;
mod cache;
mod dashboard;
pub(crate) mod datasets;
pub mod error;
mod events;
mod health;
pub mod htmx;
mod jobs;
mod login;
mod media;
mod merchants;
mod paging;
mod picker;
mod products;
mod search;
pub mod session;
mod shelves;
mod sync;
mod training;
mod upload;

use std::sync::Arc;

use axum::{
    Router, middleware,
    routing::{get, post},
};
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
    /// Largest video accepted as an upload, in bytes.
    pub max_upload: u64,
    /// The Buybuddy catalog, when its API is configured.
    pub catalog: Option<Arc<buybuddy_worker::buybuddy::Buybuddy>>,
    /// What new jobs from the pages and the API may name (sources, buckets, probe kinds).
    pub intake: crate::actions::Intake,
    /// The dashboard's figures, shared by everyone viewing it.
    pub dashboard: DashboardFigures,
    /// What embeds search photos: the serving model, loaded on first use.
    pub embedders: Arc<buybuddy_worker::embed::Embedders>,
}

/// The dashboard's figures, kept until the database announces a change.
pub struct DashboardFigures(cache::Cached<dashboard::Figures>);

impl Default for DashboardFigures {
    fn default() -> Self {
        Self(cache::Cached::new(dashboard::MAX_AGE))
    }
}

impl std::ops::Deref for DashboardFigures {
    type Target = cache::Cached<dashboard::Figures>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl App {
    /// What actions work with, for requests from the web and the API.
    pub fn actions(&self) -> crate::actions::Ctx<'_> {
        crate::actions::Ctx {
            pool: &self.pool,
            queue: &self.queue,
            storage: &self.storage,
            intake: &self.intake,
        }
    }
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
    // Uploads are streamed to disk under `max_upload`; the request may be a
    // little larger (the other fields, the multipart framing).
    let upload_limit = axum::extract::DefaultBodyLimit::max(
        usize::try_from(state.max_upload.saturating_add(16 << 20)).unwrap_or(usize::MAX),
    );
    Router::new()
        .route(paths::DASHBOARD, get(dashboard::page))
        .route(paths::DASHBOARD_JOBS, get(dashboard::jobs_panel))
        .route(paths::EVENTS, get(events::stream))
        .route(paths::HEALTHZ, get(health::check))
        .route(paths::LOGIN, get(login::page).post(login::submit))
        .route(
            paths::JOBS,
            get(jobs::page).post(jobs::create).layer(upload_limit),
        )
        .route(paths::JOBS_LIST, get(jobs::list_fragment))
        .route(paths::JOB, get(jobs::show))
        .route(paths::JOB_LIVE, get(jobs::live))
        .route(paths::JOB_CANCEL, post(jobs::cancel))
        .route(paths::JOB_RETRY, post(jobs::retry))
        .route(paths::PRODUCTS, get(products::page))
        .route(paths::PRODUCTS_LIST, get(products::list_fragment))
        .route(paths::PRODUCTS_BULK, post(products::bulk))
        .route(paths::PRODUCT, get(products::show).post(products::save))
        .route(paths::PRODUCT_REVIEW, get(products::review_fragment))
        .route(paths::PRODUCT_APPROVE, post(products::approve))
        .route(paths::PRODUCT_REJECT, post(products::reject))
        .route(paths::PRODUCT_REPROCESS, post(products::reprocess_one))
        .route(
            paths::SEARCH,
            get(search::page)
                .post(search::submit)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::actions::search::MAX_IMAGE_BYTES + (1 << 20),
                )),
        )
        .route(paths::SEARCH_DUPLICATES, get(search::duplicates))
        .route(paths::SEARCH_BACKFILL, post(search::backfill))
        .route(paths::MODEL_ACTIVATE, post(search::activate))
        .route(paths::PRODUCT_SIMILAR, get(search::similar_panel))
        .route(paths::DATASETS, get(datasets::list).post(datasets::create))
        .route(paths::DATASET, get(datasets::show).post(datasets::save))
        .route(paths::DATASET_PREVIEW, post(datasets::preview))
        .route(paths::DATASET_VERSIONS, post(datasets::generate))
        .route(
            paths::DATASET_VERSIONS_LIST,
            get(datasets::versions_fragment),
        )
        .route(paths::DATASET_VERSION_RENDER, post(datasets::render_again))
        .route(paths::DATASET_EXPORTS, post(datasets::export))
        .route(paths::DATASET_DOWNLOAD, get(datasets::download))
        .route(
            paths::DATASET_BACKGROUNDS,
            post(datasets::upload_background).layer(axum::extract::DefaultBodyLimit::max(
                crate::actions::datasets::MAX_BACKGROUND_BYTES + (1 << 20),
            )),
        )
        .route(paths::TRAINING, get(training::list).post(training::start))
        .route(paths::TRAINING_RUN, get(training::show))
        .route(paths::TRAINING_RUN_LIVE, get(training::live))
        .route(paths::TRAINING_RUN_CANCEL, post(training::cancel))
        .route(paths::TRAINING_RUN_USE, post(training::use_for_search))
        .route(
            paths::SHELVES,
            get(shelves::list).post(shelves::upload).layer(upload_limit),
        )
        .route(paths::SHELF, get(shelves::show))
        .route(paths::SHELF_DELETE, post(shelves::delete))
        .route(paths::SHELF_BOXES, post(shelves::add_box))
        .route(paths::SHELF_PROPOSE, post(shelves::propose))
        .route(paths::SHELF_BOX, post(shelves::move_box))
        .route(paths::SHELF_BOX_DELETE, post(shelves::delete_box))
        .route(paths::SHELVES_MATCH, post(shelves::match_crops))
        .route(paths::SHELF_REVIEW, get(shelves::review))
        .route(paths::SHELF_REVIEW_DECIDE, post(shelves::decide))
        .route(paths::SHELF_PRODUCT_PICKER, get(picker::products))
        .route(paths::COVERAGE, get(shelves::coverage))
        .route(
            paths::MERCHANTS,
            get(merchants::list).post(merchants::create),
        )
        .route(paths::MERCHANT, get(merchants::show))
        .route(
            paths::MERCHANT_IMPORT,
            post(merchants::upload).layer(axum::extract::DefaultBodyLimit::max(
                crate::actions::merchants::MAX_LIST_BYTES + (1 << 20),
            )),
        )
        .route(paths::MERCHANT_IMPORT_MAP, post(merchants::map))
        .route(paths::MERCHANT_REVIEW, get(merchants::review))
        .route(paths::MERCHANT_BULK, post(merchants::bulk))
        .route(paths::MERCHANT_SUGGEST, post(merchants::suggest))
        .route(paths::MERCHANT_EXPORT, get(merchants::export))
        .route(paths::MERCHANT_LINE_DECIDE, post(merchants::decide))
        .route(paths::MERCHANT_PICKER, get(picker::products))
        .route(paths::SYNC, get(sync::page).post(sync::run))
        .route(paths::SYNC_ENQUEUE, post(sync::enqueue))
        .route(paths::LOGOUT, post(login::logout))
        .route(&format!("{}/{{name}}", paths::STATIC), get(assets::serve))
        .route(&format!("{}/{{*key}}", paths::MEDIA), get(media::serve))
        .merge(api::routes(upload_limit))
        .fallback(|| async { AppError::NotFound("There is no page at this address.".into()) })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_viewer,
        ))
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
    // The peer's address feeds the sign-in rate limit.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The signed-in person's id (a session's or an API token's), for what
/// records who did it.
pub struct UserId(pub uuid::Uuid);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for UserId {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<crate::db::users::Viewer>()
            .map(|v| Self(v.user_id))
            .ok_or_else(|| AppError::Unauthorized("Sign in first.".into()))
    }
}

/// The signed-in person, as pages need them: for the layout (email, CSRF token).
pub struct Viewer(pub buybuddy_templates::layout::Viewer);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, AppError> {
        let viewer = parts
            .extensions
            .get::<crate::db::users::Viewer>()
            .ok_or_else(|| AppError::Unauthorized("Sign in first.".into()))?;
        Ok(Self(buybuddy_templates::layout::Viewer {
            email: viewer.email.clone(),
            // Token requests never render pages; an empty token refuses any form.
            csrf_token: viewer.csrf_token.clone().unwrap_or_default(),
        }))
    }
}
