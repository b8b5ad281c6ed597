//! Merchants: add one, import its list (multipart, with a column mapping),
//! the lines and the next one to review with its suggestions, decisions,
//! bulk acceptance of exact barcode matches, suggestions again, and the
//! export: the same actions as the Merchants pages.

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Multipart, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Limit;
use crate::{
    actions::{
        ActionError,
        merchants::{self as act, BadLines, Choice, Imported},
    },
    db::{self, merchants::LineFilter},
    web::{AppError, AppState, UserId},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_MERCHANTS, get(list).post(create))
        .route(paths::API_MERCHANT, get(show))
        .route(
            paths::API_MERCHANT_IMPORTS,
            post(import).layer(axum::extract::DefaultBodyLimit::max(
                act::MAX_LIST_BYTES + (1 << 20),
            )),
        )
        .route(paths::API_MERCHANT_LINES, get(lines))
        .route(paths::API_MERCHANT_REVIEW, get(next))
        .route(paths::API_MERCHANT_BULK, post(bulk))
        .route(paths::API_MERCHANT_SUGGEST, post(suggest))
        .route(paths::API_MERCHANT_EXPORT, get(export))
        .route(paths::API_MERCHANT_LINE, get(line))
        .route(paths::API_MERCHANT_LINE_DECIDE, post(decide))
}

fn json_body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("The body is not the JSON expected: {e}.")))
}

/// `GET /api/merchants`
async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let merchants: Vec<Value> = db::merchants::list(&state.pool)
        .await?
        .into_iter()
        .map(|(m, p)| json!({"merchant": m, "progress": p}))
        .collect();
    Ok(Json(json!({ "merchants": merchants })))
}

#[derive(Debug, Deserialize, Default)]
struct NewMerchant {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
}

/// `POST /api/merchants`: `{"code", "name"}`.
async fn create(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let body: NewMerchant = json_body(&bytes)?;
    let merchant = act::create(state.actions(), &body.code, &body.name).await?;
    Ok((StatusCode::CREATED, Json(json!(merchant))))
}

/// `GET /api/merchants/{id}` (an id or a code): with its progress and imports.
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let m = act::find(state.actions(), &id).await?;
    Ok(Json(json!({
        "merchant": m,
        "progress": db::merchants::progress(&state.pool, m.id).await?,
        "imports": db::merchants::imports(&state.pool, m.id, 20).await?,
        "exact_matches": db::merchants::exact_matches(&state.pool, m.id).await?.len(),
    })))
}

/// `POST /api/merchants/{id}/imports`: multipart `file`, and optionally
/// `mapping` (JSON: field to header; the merchant's last mapping and the
/// header names otherwise) and `bad_lines` (`refuse`, the default, or
/// `import_good`). 201 with the import's report, or 422 with the bad lines
/// when nothing was imported.
async fn import(
    State(state): State<AppState>,
    UserId(user): UserId,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let merchant = act::find(state.actions(), &id).await?;
    let mut file = None;
    let mut mapping_text = None;
    let mut bad_lines = BadLines::Refuse;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
    {
        match field.name().unwrap_or_default() {
            "file" => {
                let name = field.file_name().unwrap_or("list.csv").to_owned();
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::BadRequest(format!("The upload broke off: {e}.")))?;
                file = Some((name, bytes));
            }
            "mapping" => mapping_text = Some(field.text().await.unwrap_or_default()),
            "bad_lines" => {
                bad_lines = match field.text().await.unwrap_or_default().trim() {
                    "import_good" => BadLines::ImportGood,
                    "refuse" | "" => BadLines::Refuse,
                    other => {
                        return Err(ActionError::field(
                            "bad_lines",
                            format!("{other:?}: bad_lines is refuse or import_good."),
                        )
                        .into());
                    }
                }
            }
            _ => {}
        }
    }
    let (name, bytes) =
        file.ok_or_else(|| ActionError::field("file", "Send the list as `file`."))?;
    let table = act::read_list(&bytes)?;
    let mapping = match mapping_text.filter(|t| !t.trim().is_empty()) {
        Some(text) => {
            let fields: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
                ActionError::field(
                    "mapping",
                    format!("The mapping is not a JSON object of field to header: {e}."),
                )
            })?;
            act::mapping_from(&fields)?
        }
        None => act::offered_mapping(&merchant, &table),
    };
    let outcome = act::import(
        state.actions(),
        &merchant,
        &name,
        &table,
        &mapping,
        bad_lines,
        Some(user),
    )
    .await?;
    let status = match outcome {
        Imported::Imported { .. } => StatusCode::CREATED,
        Imported::BadLines { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut response =
        (status, Json(json!({"mapping": mapping, "result": outcome}))).into_response();
    // A 422 here carries the bad lines, not an error message to wrap.
    response.extensions_mut().insert(crate::web::error::OwnBody);
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct LinesQuery {
    filter: Option<String>,
    offset: Option<i64>,
}

fn filter(text: Option<&str>) -> Result<LineFilter, AppError> {
    match text {
        None | Some("") => Ok(LineFilter::default()),
        Some(t) => LineFilter::parse(t).ok_or_else(|| {
            AppError::BadRequest(format!(
                "{t:?} is not a filter; filters are unassigned, low_confidence, conflicts and all."
            ))
        }),
    }
}

/// `GET /api/merchants/{id}/lines?filter=&limit=&offset=`
async fn lines(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinesQuery>,
    Query(limit): Query<Limit>,
) -> Result<Json<Value>, AppError> {
    let m = act::find(state.actions(), &id).await?;
    let f = filter(q.filter.as_deref())?;
    let confident = act::score::CONFIDENT;
    Ok(Json(json!({
        "total": db::merchants::count_lines(&state.pool, m.id, f, confident).await?,
        "lines": db::merchants::lines(&state.pool, m.id, f, confident, limit.get(), q.offset.unwrap_or(0).max(0)).await?,
    })))
}

/// `GET /api/merchants/{id}/review?filter=`: the next line with its
/// suggestions (and the parts of their scores), and how many are left.
async fn next(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LinesQuery>,
) -> Result<Json<Value>, AppError> {
    let m = act::find(state.actions(), &id).await?;
    let (line, left) = act::next_line(state.actions(), m.id, filter(q.filter.as_deref())?).await?;
    Ok(Json(json!({"next": line, "left": left})))
}

/// `GET /api/merchants/lines/{id}`: a line with its suggestions and history.
async fn line(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, AppError> {
    Ok(Json(json!(act::line_view(state.actions(), id).await?)))
}

#[derive(Debug, Deserialize, Default)]
struct DecideBody {
    #[serde(default)]
    action: String,
    product: Option<String>,
}

/// `POST /api/merchants/lines/{id}/decide`: `{"action": "assign", "product":
/// id or barcode}`, or `absent`, `skip`, `clear`.
async fn decide(
    State(state): State<AppState>,
    UserId(user): UserId,
    Path(id): Path<i64>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let body: DecideBody = json_body(&bytes)?;
    let choice = Choice::parse(&body.action, body.product.as_deref())?;
    Ok(Json(json!(
        act::decide(state.actions(), id, &choice, "api", Some(user)).await?
    )))
}

#[derive(Debug, Deserialize, Default)]
struct BulkBody {
    #[serde(default)]
    confirm: bool,
}

/// `POST /api/merchants/{id}/bulk`: `{"confirm": false}` counts the exact
/// barcode matches whose names agree; `{"confirm": true}` accepts them.
async fn bulk(
    State(state): State<AppState>,
    UserId(user): UserId,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let body: BulkBody = json_body(&bytes)?;
    let m = act::find(state.actions(), &id).await?;
    let n = act::bulk_accept(state.actions(), m.id, body.confirm, Some(user)).await?;
    Ok(Json(json!({"lines": n, "accepted": body.confirm})))
}

/// `POST /api/merchants/{id}/suggest`: every line suggested again.
async fn suggest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let m = act::find(state.actions(), &id).await?;
    let job = act::suggest_again(state.actions(), &m).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job_id": job, "job_url": paths::with_id(paths::API_JOB, job)})),
    ))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

/// `GET /api/merchants/{id}/export?format=csv|json`
async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let m = act::find(state.actions(), &id).await?;
    let (content_type, bytes) =
        act::export(state.actions(), &m, q.format.as_deref().unwrap_or("json")).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
