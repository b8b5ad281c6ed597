//! The products pages: list (filters, pages, bulk review, live), and one
//! product (metadata editor, frames, source video, approve / reject /
//! reprocess).

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use buybuddy_templates::{
    paths,
    products::{
        self, FrameTile, MetadataForm, ProductFilter, ProductRow, ProductView, ProductsList,
    },
};
use chrono::{DateTime, Utc};
use maud::Markup;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{AppError, AppState, Viewer, error::OwnBody, jobs::go_to};
use crate::{
    db,
    jobs::{JobSpec, video::Video},
    queue::{self, Enqueue},
};

const PAGE: i64 = 50;
const MAX_TEXT: usize = 200;
const MAX_PROMPT: usize = 80;
const MAX_CLAIMS: usize = 40;
const MAX_FACTS: usize = 60;

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    before: Option<String>,
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let bad =
        || AppError::BadRequest("That page link is broken; start from the first page.".into());
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| bad())?).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

async fn list_view(state: &AppState, query: &ListQuery) -> Result<ProductsList, AppError> {
    let status = query.status.clone().filter(|s| !s.is_empty());
    if let Some(status) = &status
        && !products::STATUSES.contains(&status.as_str())
    {
        return Err(AppError::BadRequest(format!(
            "{status:?} is not a product status."
        )));
    }
    let q = query.q.clone().unwrap_or_default().trim().to_owned();
    let before = query.before.as_deref().map(parse_cursor).transpose()?;
    let filter = db::products::ListFilter {
        status: status.clone(),
        search: Some(q.clone()).filter(|q| !q.is_empty()),
        before,
    };
    let mut rows = db::products::list(&state.pool, &filter, PAGE + 1).await?;
    let next = (rows.len() as i64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        let last = rows.last().expect("a full page");
        format!("{}_{}", last.created_at.timestamp_micros(), last.id)
    });
    Ok(ProductsList {
        filter: ProductFilter { status, q },
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
        paged: before.is_some(),
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
    let notice = if ids.is_empty() {
        "Select at least one product first.".to_owned()
    } else {
        match field("action") {
            Some("approve") => {
                let n =
                    db::products::review(&state.pool, &ids, "approved", reason, &viewer.0.email)
                        .await?;
                format!("Approved {n} products.")
            }
            Some("reject") => match reason {
                None => "Give a reason for rejecting; nothing was changed.".to_owned(),
                Some(reason) => {
                    let n = db::products::review(
                        &state.pool,
                        &ids,
                        "rejected",
                        Some(reason),
                        &viewer.0.email,
                    )
                    .await?;
                    format!("Rejected {n} products.")
                }
            },
            Some("reprocess") => {
                let (queued, missing) = reprocess(&state, &ids).await?;
                if missing > 0 {
                    format!("Queued {queued} jobs; {missing} products have no known video.")
                } else {
                    format!("Queued {queued} jobs.")
                }
            }
            _ => {
                return Err(AppError::BadRequest(
                    "Choose approve, reject or reprocess.".into(),
                ));
            }
        }
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

/// Queues a video job per product from its newest known video; returns how
/// many were queued and how many had no video.
async fn reprocess(state: &AppState, ids: &[Uuid]) -> Result<(usize, usize), AppError> {
    let found = db::products::videos(&state.pool, ids).await?;
    let mut jobs = Vec::new();
    let mut missing = 0;
    for (_, barcode, url, video_id) in found {
        match url {
            Some(video_url) => jobs.push(Enqueue::from(JobSpec::Video(Video {
                video_url,
                barcode,
                video_id,
                frames: None,
                background: None,
            }))),
            None => missing += 1,
        }
    }
    let queued = jobs.len();
    queue::enqueue(&state.pool, &state.queue, jobs).await?;
    Ok((queued, missing))
}

fn form_of(p: &db::products::Product) -> MetadataForm {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let facts = p
        .nutrition_facts
        .as_ref()
        .and_then(Value::as_object)
        .map(|facts| {
            facts
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    MetadataForm {
        brand_name: text(&p.brand_name),
        sub_brand: text(&p.sub_brand),
        product_name: text(&p.product_name),
        variant_flavor: text(&p.variant_flavor),
        category: text(&p.category),
        container_type: text(&p.container_type),
        net_quantity: text(&p.net_quantity),
        nutrition_facts: facts,
        claims: p.claims.clone().unwrap_or_default().join("\n"),
        grounding_prompt: text(&p.grounding_prompt),
        visibility_score: p
            .visibility_score
            .map(|v| v.to_string())
            .unwrap_or_default(),
    }
}

async fn product_view(
    state: &AppState,
    id: Uuid,
) -> Result<(ProductView, db::products::Product), AppError> {
    let product = db::products::get(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no product {id}.")))?;
    let frames = db::frames::for_product(&state.pool, id).await?;
    let last_job: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, status, video_url FROM jobs WHERE barcode = $1 AND kind = 'video'
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(&product.barcode)
    .fetch_optional(&state.pool)
    .await?;
    let video_url = last_job
        .as_ref()
        .and_then(|(_, _, url)| url.as_deref())
        .and_then(|url| playable(state, url));
    let view = ProductView {
        id: product.id.to_string(),
        barcode: product.barcode.clone(),
        status: product.status.clone(),
        review_note: product.review_note.clone(),
        reviewed: product
            .reviewed_at
            .map(|at| (at, product.reviewed_by.clone())),
        form: form_of(&product),
        errors: BTreeMap::new(),
        notice: None,
        frames: frames
            .iter()
            .map(|f| FrameTile {
                index: f.frame_index,
                url: paths::media(&f.storage_key),
                mask_url: f.mask_key.as_deref().map(paths::media),
            })
            .collect(),
        video_url,
        last_job: last_job.map(|(id, status, _)| (id.to_string(), status)),
        now: Utc::now(),
    };
    Ok((view, product))
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

/// The editor's fields as posted.
#[derive(Debug, Deserialize, Default)]
pub struct EditorFields {
    #[serde(default)]
    brand_name: String,
    #[serde(default)]
    sub_brand: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    variant_flavor: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    container_type: String,
    #[serde(default)]
    net_quantity: String,
    #[serde(default)]
    nutrition_facts: String,
    #[serde(default)]
    claims: String,
    #[serde(default)]
    grounding_prompt: String,
    #[serde(default)]
    visibility_score: String,
}

impl EditorFields {
    fn form(&self) -> MetadataForm {
        MetadataForm {
            brand_name: self.brand_name.clone(),
            sub_brand: self.sub_brand.clone(),
            product_name: self.product_name.clone(),
            variant_flavor: self.variant_flavor.clone(),
            category: self.category.clone(),
            container_type: self.container_type.clone(),
            net_quantity: self.net_quantity.clone(),
            nutrition_facts: self.nutrition_facts.clone(),
            claims: self.claims.clone(),
            grounding_prompt: self.grounding_prompt.clone(),
            visibility_score: self.visibility_score.clone(),
        }
    }
}

/// Checks the typed metadata field by field.
pub fn validate(
    fields: &EditorFields,
) -> Result<db::products::Metadata, BTreeMap<&'static str, String>> {
    let mut errors = BTreeMap::new();
    let mut text = |name: &'static str, value: &str, max: usize| {
        let cleaned = value.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars = cleaned.chars().count();
        if chars > max {
            errors.insert(name, format!("At most {max} characters; this has {chars}."));
        }
        (!cleaned.is_empty()).then_some(cleaned)
    };
    let mut metadata = db::products::Metadata {
        brand_name: text("brand_name", &fields.brand_name, MAX_TEXT),
        sub_brand: text("sub_brand", &fields.sub_brand, MAX_TEXT),
        product_name: text("product_name", &fields.product_name, MAX_TEXT),
        variant_flavor: text("variant_flavor", &fields.variant_flavor, MAX_TEXT),
        category: text("category", &fields.category, MAX_TEXT),
        container_type: text("container_type", &fields.container_type, MAX_TEXT),
        net_quantity: text("net_quantity", &fields.net_quantity, MAX_TEXT),
        grounding_prompt: text("grounding_prompt", &fields.grounding_prompt, MAX_PROMPT),
        ..Default::default()
    };
    if metadata.product_name.is_none() {
        errors.insert("product_name", "A product needs a name.".into());
    }
    let score = fields.visibility_score.trim();
    if !score.is_empty() {
        match score.parse::<i32>() {
            Ok(v) if (0..=100).contains(&v) => metadata.visibility_score = Some(v),
            _ => {
                errors.insert(
                    "visibility_score",
                    format!("A whole number from 0 to 100, not {score:?}."),
                );
            }
        }
    }
    let mut facts = Map::new();
    for (n, line) in fields.nutrition_facts.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                let value = value.trim();
                let value = value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(value.to_owned()));
                facts.insert(name.trim().to_owned(), value);
            }
            _ => {
                errors.insert(
                    "nutrition_facts",
                    format!(
                        "Line {} should read name: value (e.g. sugars: 10.6 g).",
                        n + 1
                    ),
                );
                break;
            }
        }
    }
    if facts.len() > MAX_FACTS {
        errors.insert("nutrition_facts", format!("At most {MAX_FACTS} facts."));
    }
    metadata.nutrition_facts = facts;
    let claims: Vec<String> = fields
        .claims
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    if claims.len() > MAX_CLAIMS {
        errors.insert("claims", format!("At most {MAX_CLAIMS} claims."));
    } else if let Some(long) = claims.iter().find(|c| c.chars().count() > MAX_TEXT) {
        errors.insert(
            "claims",
            format!(
                "A claim has at most {MAX_TEXT} characters: {:?}…",
                long.chars().take(30).collect::<String>()
            ),
        );
    }
    metadata.claims = claims;
    if errors.is_empty() {
        Ok(metadata)
    } else {
        Err(errors)
    }
}

pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(fields): Form<EditorFields>,
) -> Result<Response, AppError> {
    let htmx = headers.contains_key("hx-request");
    let (mut view, _) = product_view(&state, id).await?;
    let status = match validate(&fields) {
        Ok(metadata) => {
            db::products::update_metadata(&state.pool, id, &metadata).await?;
            let (saved, _) = product_view(&state, id).await?;
            view = ProductView {
                notice: Some("Saved.".into()),
                ..saved
            };
            StatusCode::OK
        }
        Err(errors) => {
            // What was typed stays, with a message next to each bad field.
            view.form = fields.form();
            view.errors = errors;
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    let markup = if htmx {
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
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    review_one(&state, &viewer, id, "approved", None).await?;
    Ok(go_to(
        &paths::with_id(paths::PRODUCT, id),
        headers.contains_key("hx-request"),
    ))
}

pub async fn reject(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Form(form): Form<Reason>,
) -> Result<Response, AppError> {
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(AppError::BadRequest(
            "Give a reason for rejecting the product.".into(),
        ));
    }
    review_one(&state, &viewer, id, "rejected", Some(reason)).await?;
    Ok(go_to(
        &paths::with_id(paths::PRODUCT, id),
        headers.contains_key("hx-request"),
    ))
}

async fn review_one(
    state: &AppState,
    viewer: &Viewer,
    id: Uuid,
    status: &str,
    reason: Option<&str>,
) -> Result<(), AppError> {
    if db::products::review(&state.pool, &[id], status, reason, &viewer.0.email).await? == 0 {
        return Err(AppError::NotFound(format!("There is no product {id}.")));
    }
    Ok(())
}

pub async fn reprocess_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let (queued, _) = reprocess(&state, &[id]).await?;
    if queued == 0 {
        return Err(AppError::Conflict(
            "This product's video is not known: start a job with its video on the Jobs page."
                .into(),
        ));
    }
    Ok(go_to(
        &paths::with_id(paths::PRODUCT, id),
        headers.contains_key("hx-request"),
    ))
}
