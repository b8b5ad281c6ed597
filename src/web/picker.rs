//! What the review screens (shelf crops, merchant lines) share: the product
//! picker (products whose barcode or name holds what was typed) and the
//! reading of their decision forms.

use axum::extract::{Path, Query, State};
use maud::Markup;
use serde::Deserialize;

use super::{AppError, AppState};
use crate::db;

#[derive(Debug, Deserialize, Default)]
pub struct PickerQuery {
    #[serde(default)]
    q: String,
}

/// `GET /fragments/.../{id}/products?q=`: at most 10 products.
pub async fn products(
    State(state): State<AppState>,
    Path(_id): Path<i64>,
    Query(query): Query<PickerQuery>,
) -> Result<Markup, AppError> {
    let q = query.q.trim();
    if q.is_empty() {
        return Ok(buybuddy_templates::picker::render_picked(&[]));
    }
    let filter = db::products::ListFilter {
        search: Some(q.to_owned()),
        ..Default::default()
    };
    let found = db::products::list(&state.pool, &filter, 10).await?;
    Ok(buybuddy_templates::picker::render_picked(
        &found
            .into_iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    p.barcode,
                    p.product_name.unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// A decision form's field: its last value that is not blank (a form may send
/// one name twice, as a picked product and a typed one).
pub fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
}
