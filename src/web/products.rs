//! The products pages: list (filters, pages, bulk review, live), and one
//! product (metadata editor, frames, source video, approve / reject /
//! reprocess).

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use buybuddy_domain::{Barcode, ProductStatus};
use buybuddy_templates::{
    paths,
    products::{
        self, FrameTile, MetadataForm, ProductFilter, ProductRow, ProductView, ProductsList,
    },
};
use buybuddy_worker::quality;
use chrono::Utc;
use maud::Markup;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    AppError, AppState, Viewer,
    error::OwnBody,
    htmx::{HxRequest, go_to},
    paging,
};
use crate::{
    actions::{self, ActionError},
    db,
};

const PAGE: i64 = 50;

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    before: Option<String>,
}

impl ListQuery {
    /// The list's filter as the page shows it and as the database reads it.
    pub(super) fn filter(&self) -> Result<(ProductFilter, db::products::ListFilter), AppError> {
        let read = paging::Listing::read(
            self.status.as_deref(),
            &ProductStatus::names().collect::<Vec<_>>(),
            "product",
            self.q.as_deref(),
            self.before.as_deref(),
        )?;
        Ok((
            ProductFilter {
                status: read.status.clone(),
                q: read.q.clone(),
            },
            db::products::ListFilter {
                search: read.search(),
                status: read.status,
                before: read.before,
            },
        ))
    }
}

async fn list_view(state: &AppState, query: &ListQuery) -> Result<ProductsList, AppError> {
    let (shown, filter) = query.filter()?;
    let mut rows = db::products::list(&state.pool, &filter, PAGE + 1).await?;
    let next = paging::cut(&mut rows, PAGE, |p| (p.created_at, p.id));
    Ok(ProductsList {
        filter: shown,
        rows: rows
            .into_iter()
            .map(|p| ProductRow {
                id: p.id.to_string(),
                barcode: p.barcode,
                name: p.product_name,
                brand: p.brand_name,
                status: p.status,
                frame_count: p.frame_count,
                thumbnail_url: p.thumbnail_key.as_deref().map(paths::media),
                updated_at: p.updated_at,
            })
            .collect(),
        next,
        paged: filter.before.is_some(),
        now: Utc::now(),
        notice: None,
    })
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    Ok(products::page(&viewer.0, &list_view(&state, &query).await?))
}

pub async fn list_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    Ok(products::render_list(
        &viewer.0,
        &list_view(&state, &query).await?,
    ))
}

/// A bulk action from the list: `action` and the ticked `ids`.
pub async fn bulk(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    let ids: Vec<Uuid> = fields
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| AppError::BadRequest("A selected product is not a product id.".into()))?;
    let reason = field("reason").filter(|r| !r.is_empty());
    let mut list = list_view(&state, &ListQuery::default()).await?;
    let ctx = state.actions();
    let email = &viewer.0.email;
    let verdict = match field("action") {
        Some("approve") => Some(ProductStatus::Approved),
        Some("reject") => Some(ProductStatus::Rejected),
        Some("reprocess") => None,
        _ => {
            return Err(AppError::BadRequest(
                "Choose approve, reject or reprocess.".into(),
            ));
        }
    };
    let outcome = match verdict {
        Some(verdict) => actions::products::review(ctx, &ids, verdict, reason, email)
            .await
            .map(|n| match verdict {
                ProductStatus::Approved => format!("Approved {n} products."),
                _ => format!("Rejected {n} products."),
            }),
        None if ids.is_empty() => Err(ActionError::field(
            "ids",
            "Select at least one product first.",
        )),
        None => actions::products::reprocess(ctx, &ids).await.map(|done| {
            let (queued, missing) = (done.jobs.len(), done.without_video.len());
            if missing > 0 {
                format!("Queued {queued} jobs; {missing} products have no known video.")
            } else {
                format!("Queued {queued} jobs.")
            }
        }),
    };
    // A selection or a reason that is missing is said above the list.
    let notice = match outcome {
        Ok(notice) => notice,
        Err(ActionError::Invalid(errors)) => errors.into_values().collect::<Vec<_>>().join(" "),
        Err(other) => return Err(other.into()),
    };
    // The list is read after the change, so it shows it.
    list = ProductsList {
        notice: Some(notice),
        ..list_view(&state, &ListQuery::default())
            .await
            .unwrap_or(list)
    };
    Ok(products::page(&viewer.0, &list).into_response())
}

async fn product_view(
    state: &AppState,
    id: Uuid,
) -> Result<(ProductView, db::products::Product), AppError> {
    let product = db::products::get(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no product {id}.")))?;
    let frames = db::frames::for_product(&state.pool, id).await?;
    let last_job = db::jobs::last_video_job(&state.pool, &product.barcode).await?;
    let video_url = last_job
        .as_ref()
        .and_then(|(_, _, url)| url.as_deref())
        .and_then(|url| playable(state, url));
    let view = ProductView {
        id: product.id.to_string(),
        barcode: product.barcode.clone(),
        barcode_kind: Barcode::parse(&product.barcode)
            .map_or("internal code", |b| b.kind().label())
            .to_owned(),
        status: product.status.clone(),
        review_note: product.review_note.clone(),
        reviewed: product
            .reviewed_at
            .map(|at| (at, product.reviewed_by.clone())),
        form: MetadataForm::from(&actions::metadata::of(&product)),
        errors: BTreeMap::new(),
        notice: None,
        frames: frames
            .iter()
            .map(|f| FrameTile {
                index: f.frame_index,
                url: paths::media(&f.storage_key),
                mask_url: f.mask_key.as_deref().map(paths::media),
                warnings: frame_warnings(&f.quality),
            })
            .collect(),
        video_url,
        last_job: last_job.map(|(id, status, _)| (id.to_string(), status)),
        now: Utc::now(),
    };
    Ok((view, product))
}

/// What the video job warned about a frame, in a reviewer's words.
fn frame_warnings(quality: &serde_json::Value) -> Vec<String> {
    let warnings: Vec<quality::Warning> = quality
        .get("warnings")
        .and_then(|w| serde_json::from_value(w.clone()).ok())
        .unwrap_or_default();
    warnings.iter().map(|w| w.describe().to_owned()).collect()
}

/// A URL the browser can play: web addresses as they are, objects of this
/// platform's storage through `/media`.
fn playable(state: &AppState, url: &str) -> Option<String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Some(url.to_owned());
    }
    let root = state.storage.url("");
    url.strip_prefix(&root).map(paths::media)
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
) -> Result<Markup, AppError> {
    Ok(products::product_page(
        &viewer.0,
        &product_view(&state, id).await?.0,
    ))
}

pub async fn review_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
) -> Result<Markup, AppError> {
    Ok(products::render_review(
        &viewer.0,
        &product_view(&state, id).await?.0,
    ))
}

pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<Uuid>,
    Form(fields): Form<MetadataForm>,
) -> Result<Response, AppError> {
    let (mut view, _) = product_view(&state, id).await?;
    let status = match actions::products::save_metadata(state.actions(), id, &fields).await {
        Ok(()) => {
            let (saved, _) = product_view(&state, id).await?;
            view = ProductView {
                notice: Some("Saved.".into()),
                ..saved
            };
            StatusCode::OK
        }
        Err(ActionError::Invalid(errors)) => {
            // What was typed stays, with a message next to each bad field.
            view.form = fields;
            view.errors = errors;
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(other) => return Err(other.into()),
    };
    let markup = if htmx.0 {
        products::render_editor(&viewer.0, &view)
    } else {
        products::product_page(&viewer.0, &view)
    };
    let mut response = (status, markup).into_response();
    response.extensions_mut().insert(OwnBody);
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct Reason {
    #[serde(default)]
    reason: String,
}

pub async fn approve(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let ctx = state.actions();
    actions::products::review_one(ctx, id, ProductStatus::Approved, None, &viewer.0.email).await?;
    Ok(go_to(&paths::with_id(paths::PRODUCT, id), htmx))
}

pub async fn reject(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<Uuid>,
    Form(form): Form<Reason>,
) -> Result<Response, AppError> {
    let ctx = state.actions();
    let email = &viewer.0.email;
    match actions::products::review_one(ctx, id, ProductStatus::Rejected, Some(&form.reason), email)
        .await
    {
        Ok(()) => Ok(go_to(&paths::with_id(paths::PRODUCT, id), htmx)),
        // A page form has no field to show it at: say it plainly.
        Err(ActionError::Invalid(errors)) => Err(AppError::BadRequest(
            errors.into_values().collect::<Vec<_>>().join(" "),
        )),
        Err(other) => Err(other.into()),
    }
}

pub async fn reprocess_one(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    actions::products::reprocess_one(state.actions(), id).await?;
    Ok(go_to(&paths::with_id(paths::PRODUCT, id), htmx))
}
