//! The JSON API: the same actions as the pages, for scripts and other
//! services. A session (with its CSRF header) or an API token from
//! `buybuddy token create` (`Authorization: Bearer …`) signs requests in.
//! Errors come back as `{"error": {"status", "title", "message"}}`; invalid
//! metadata as 422 with `fields`, a message per field.

mod datasets;
mod jobs;
mod merchants;
mod products;
mod search;
mod shelves;
mod sync;
mod training;

use axum::Router;
use serde::Deserialize;

use super::AppState;

pub fn routes(upload_limit: axum::extract::DefaultBodyLimit) -> Router<AppState> {
    jobs::routes(upload_limit)
        .merge(datasets::routes())
        .merge(training::routes())
        .merge(products::routes())
        .merge(search::routes())
        .merge(shelves::routes(upload_limit))
        .merge(merchants::routes())
        .merge(sync::routes())
}

/// `?limit=` of a list: 50 by default, at most 500.
#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<i64>,
}

impl Limit {
    fn get(&self) -> i64 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }
}
