//! The Search page: a photo (uploaded or dropped) or a product in, the nearest
//! products out; the models with their coverage and the backfill and
//! activate buttons; possible duplicates; the product page's "similar
//! products" panel.

use axum::{
    extract::{Multipart, Path, Query, State},
    response::{IntoResponse, Response},
};
use buybuddy_templates::{
    paths,
    search::{self, DuplicateView, HitView, ModelView, Results, SearchForm, SearchPage},
};
use maud::Markup;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    AppError, AppState, Viewer,
    htmx::{HxRequest, go_to},
};
use crate::{
    actions::{
        ActionError,
        search::{self as act, Answer, SearchRequest},
    },
    db,
};

#[derive(Debug, Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    product: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    k: Option<i64>,
    notice: Option<String>,
}

impl SearchQuery {
    fn form(&self) -> SearchForm {
        SearchForm {
            product: self.product.clone(),
            status: self.status.clone(),
            category: self.category.clone(),
            k: self.k.unwrap_or(act::DEFAULT_K),
        }
    }

    fn request(&self) -> Result<SearchRequest, ActionError> {
        SearchRequest::new(
            self.k,
            Some(self.status.clone()),
            Some(self.category.clone()),
        )
    }
}

/// `GET /search`: the page; with `?product=` (an id or a barcode) it shows
/// that product's nearest.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<SearchQuery>,
) -> Result<Markup, AppError> {
    let results = if query.product.trim().is_empty() {
        Results::default()
    } else {
        by_product(&state, &query).await?
    };
    let models = models(&state).await?;
    Ok(search::page(
        &viewer.0,
        &SearchPage {
            form: query.form(),
            results,
            models,
            notice: query.notice.clone(),
        },
    ))
}

/// `POST /search` (multipart): a photo, or else the product field.
pub async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    mut multipart: Multipart,
) -> Result<Markup, AppError> {
    let mut query = SearchQuery::default();
    let mut image: Vec<u8> = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
        match name.as_str() {
            "image" => image = bytes.to_vec(),
            "product" => query.product = text(),
            "status" => query.status = text(),
            "category" => query.category = text(),
            "k" => query.k = text().parse().ok(),
            _ => {}
        }
    }
    let results = if !image.is_empty() || query.product.is_empty() {
        match query.request() {
            Ok(request) => shown(
                "the photo",
                act::similar_to_image(
                    &state.pool,
                    Some(&state.storage),
                    &state.embedders,
                    &image,
                    request,
                )
                .await,
            )?,
            Err(error) => failed(error)?,
        }
    } else {
        by_product(&state, &query).await?
    };
    let models = models(&state).await?;
    Ok(search::page(
        &viewer.0,
        &SearchPage {
            form: query.form(),
            results,
            models,
            notice: None,
        },
    ))
}

async fn by_product(state: &AppState, query: &SearchQuery) -> Result<Results, AppError> {
    let given = query.product.trim();
    let id = match given.parse::<Uuid>() {
        Ok(id) => Some(id),
        Err(_) => db::products::by_barcode(&state.pool, given)
            .await?
            .map(|(id, _)| id),
    };
    let Some(id) = id else {
        return failed(ActionError::NotFound(format!(
            "No product has the id or barcode {given:?}."
        )));
    };
    let request = match query.request() {
        Ok(request) => request,
        Err(error) => return failed(error),
    };
    shown(
        &format!("product {given}"),
        act::similar_to_product(&state.pool, id, request).await,
    )
}

/// Results, or the reason there are none for input or state problems (the
/// page shows them); server errors stay errors.
fn shown(query: &str, answer: Result<Answer, ActionError>) -> Result<Results, AppError> {
    match answer {
        Ok(answer) => Ok(Results {
            query: Some(query.to_owned()),
            model: Some(answer.model.label()),
            hits: hits(&answer),
            error: None,
        }),
        Err(error) => failed(error),
    }
}

fn failed(error: ActionError) -> Result<Results, AppError> {
    match error {
        ActionError::Internal(error) => Err(AppError::Internal(error)),
        other => Ok(Results {
            error: Some(other.to_string()),
            ..Results::default()
        }),
    }
}

pub fn hits(answer: &Answer) -> Vec<HitView> {
    answer
        .hits
        .iter()
        .map(|hit| HitView {
            product_id: hit.product.id.to_string(),
            title: hit
                .product
                .product_name
                .clone()
                .unwrap_or_else(|| hit.product.barcode.clone()),
            barcode: hit.product.barcode.clone(),
            status: hit.product.status.clone(),
            similarity: hit.similarity,
            frame: hit
                .frame
                .as_ref()
                .map(|f| (paths::media(&f.storage_key), f.frame_index, f.similarity)),
        })
        .collect()
}

async fn models(state: &AppState) -> Result<Vec<ModelView>, AppError> {
    Ok(db::embeddings::list(&state.pool)
        .await?
        .into_iter()
        .map(|m| ModelView {
            id: m.model.id,
            label: m.model.label(),
            active: m.model.active,
            serving: m.model.serving,
            products_embedded: m.products_embedded,
            products_with_frames: m.products_with_frames,
            frame_vectors: m.frame_vectors,
        })
        .collect())
}

/// `GET /fragments/search/duplicates`.
pub async fn duplicates(State(state): State<AppState>) -> Result<Markup, AppError> {
    match act::duplicates(&state.pool, None, 50).await {
        Ok((model, threshold, pairs)) => {
            let name = |c: &db::embeddings::ProductCard| {
                (
                    c.id.to_string(),
                    c.product_name.clone().unwrap_or_else(|| c.barcode.clone()),
                )
            };
            let pairs: Vec<DuplicateView> = pairs
                .iter()
                .map(|d| DuplicateView {
                    a: name(&d.a),
                    b: name(&d.b),
                    similarity: d.similarity,
                })
                .collect();
            Ok(search::render_duplicates(&model.label(), threshold, &pairs))
        }
        Err(ActionError::Unavailable(message)) => Ok(maud::html! { p.muted { (message) } }),
        Err(error) => Err(error.into()),
    }
}

/// `GET /fragments/products/{id}/similar`.
pub async fn similar_panel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Markup, AppError> {
    let request = SearchRequest::new(Some(6), None, None)?;
    Ok(
        match act::similar_to_product(&state.pool, id, request).await {
            Ok(answer) => search::render_similar(Some(&answer.model.label()), &hits(&answer), None),
            Err(ActionError::Internal(error)) => return Err(AppError::Internal(error)),
            Err(other) => search::render_similar(None, &[], Some(&other.to_string())),
        },
    )
}

/// `POST /search/backfill`: queues embed jobs for the products without vectors.
pub async fn backfill(
    State(state): State<AppState>,
    htmx: HxRequest,
) -> Result<Response, AppError> {
    let (model, queued) = act::backfill(&state.pool, &state.queue, None).await?;
    let notice = format!("Queued {queued} embed jobs with {}.", model.label());
    Ok(back(&notice, htmx))
}

/// `POST /models/{id}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    let (model, queued) = act::activate(&state.pool, &state.queue, &id.to_string()).await?;
    let notice = format!(
        "{} is active; {queued} embed jobs queued.{}",
        model.label(),
        if model.serving {
            ""
        } else {
            " Searches move to it once every product has its vectors."
        }
    );
    Ok(back(&notice, htmx))
}

fn back(notice: &str, htmx: HxRequest) -> Response {
    go_to(
        &format!(
            "{}?notice={}",
            paths::SEARCH,
            buybuddy_templates::format::encode(notice)
        ),
        htmx,
    )
    .into_response()
}
