//! Datasets: create and list them, change their settings, preview the
//! augmentation, generate versions, export a version and download the
//! archive (streamed), and upload background images: the same actions as
//! the Datasets pages.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Multipart, Path, Query, State},
    routing::{get, post},
};
use buybuddy_templates::paths;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    actions::{
        ActionError,
        datasets::{self as act, DatasetInput},
    },
    db::{
        self,
        datasets::{Dataset, Export, VersionState},
    },
    web::{AppError, AppState},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::API_DATASETS, get(list).post(create))
        .route(paths::API_DATASET, get(show).patch(update))
        .route(paths::API_DATASET_PREVIEW, post(preview))
        .route(paths::API_DATASET_VERSIONS, get(versions).post(generate))
        .route(paths::API_DATASET_VERSION, get(version))
        .route(paths::API_DATASET_EXPORTS, post(export))
        .route(paths::API_EXPORT, get(export_status))
        .route(
            paths::API_EXPORT_DOWNLOAD,
            get(crate::web::datasets::download),
        )
        .route(
            paths::API_BACKGROUNDS,
            get(backgrounds)
                .post(upload_background)
                .layer(axum::extract::DefaultBodyLimit::max(
                    act::MAX_BACKGROUND_BYTES + (1 << 20),
                )),
        )
}

/// Reads a JSON body; an empty body is the defaults.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("The body is not the JSON expected: {e}.")))
}

fn dataset_json(d: &Dataset) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "task": d.task,
        "rule": d.task().rule(),
        "rule_text": d.task().rule().describe(),
        "selection": d.selection.0,
        "settings": d.settings.0,
        "render": d.render.0,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "url": paths::with_id(paths::API_DATASET, d.id),
    })
}

async fn find(state: &AppState, id: &str) -> Result<Dataset, AppError> {
    Ok(act::find(state.actions(), id).await?)
}

/// `GET /api/datasets`
async fn list(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let rows = db::datasets::list(&state.pool).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|l| {
            let mut v = dataset_json(&l.dataset);
            v["versions"] = json!(l.versions);
            v
        })
        .collect();
    Ok(Json(json!({ "datasets": items })))
}

/// `POST /api/datasets`: `{"name", "task", "selection", "settings", "render"}`.
async fn create(
    State(state): State<AppState>,
    bytes: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let input: DatasetInput = body(&bytes)?;
    let dataset = act::create(state.actions(), &input).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(dataset_json(&dataset)),
    ))
}

/// `GET /api/datasets/{id}` (an id or a name).
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(dataset_json(&find(&state, &id).await?)))
}

/// Lays the body over the dataset's current input.
async fn merged(
    state: &AppState,
    dataset: &Dataset,
    bytes: &Bytes,
) -> Result<DatasetInput, AppError> {
    let current = DatasetInput::of(dataset, act::barcodes(state.actions(), dataset).await?);
    let mut value = serde_json::to_value(&current).map_err(|e| AppError::Internal(e.into()))?;
    let patch: Value = body::<Option<Value>>(bytes)?.unwrap_or(Value::Null);
    if let (Value::Object(base), Value::Object(patch)) = (&mut value, patch) {
        for (k, v) in patch {
            match (base.get_mut(&k), v) {
                (Some(Value::Object(inner)), Value::Object(more)) => {
                    inner.extend(more);
                }
                (_, v) => {
                    base.insert(k, v);
                }
            }
        }
    }
    Ok(act::read_input(value)?)
}

/// `PATCH /api/datasets/{id}`: changes the given parts of the settings.
async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let dataset = find(&state, &id).await?;
    let input = merged(&state, &dataset, &bytes).await?;
    let dataset = act::update(state.actions(), &dataset, &input).await?;
    Ok(Json(dataset_json(&dataset)))
}

#[derive(Debug, Deserialize)]
struct PreviewQuery {
    seed: Option<u64>,
    count: Option<usize>,
}

/// `POST /api/datasets/{id}/preview?seed=&count=`: draws with the saved
/// settings, or with the settings in the body laid over them.
async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
    bytes: Bytes,
) -> Result<Json<Value>, AppError> {
    let dataset = find(&state, &id).await?;
    let input = merged(&state, &dataset, &bytes).await?;
    let seed = query.seed.unwrap_or(dataset.settings.seed);
    let draws = act::preview(
        state.actions(),
        &dataset,
        &input,
        seed,
        query.count.unwrap_or(8),
    )
    .await?;
    Ok(Json(json!({ "seed": seed, "draws": draws })))
}

async fn version_json(
    state: &AppState,
    dataset: &Dataset,
    v: &VersionState,
) -> Result<Value, AppError> {
    let splits = db::datasets::split_counts(&state.pool, v.version.id).await?;
    let exports = db::datasets::exports(&state.pool, v.version.id).await?;
    Ok(json!({
        "id": v.version.id,
        "dataset_id": dataset.id,
        "number": v.version.number,
        "task": v.version.task,
        "rule": v.version.rule,
        "classes": v.version.classes.0,
        "guard_frames": v.version.guard_frames,
        "images": v.images,
        "rendered": v.rendered,
        "ready": v.ready(),
        "job_id": v.version.job_id,
        "job_status": v.job_status,
        "error": v.job_error,
        "splits": splits,
        "config": v.version.config,
        "exports": exports.iter().map(export_json).collect::<Vec<_>>(),
        "created_at": v.version.created_at,
    }))
}

fn export_json(e: &Export) -> Value {
    json!({
        "id": e.id,
        "format": e.format,
        "state": e.state(),
        "progress": e.job_progress,
        "job_id": e.job_id,
        "error": if e.ready() { None } else { e.job_error.clone() },
        "size": e.size,
        "sha256": e.sha256,
        "ready_at": e.ready_at,
        "download": e.ready().then(|| paths::with_id(paths::API_EXPORT_DOWNLOAD, e.id)),
    })
}

/// `GET /api/datasets/{id}/versions`
async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let dataset = find(&state, &id).await?;
    let mut out = Vec::new();
    for v in db::datasets::versions(&state.pool, dataset.id).await? {
        out.push(version_json(&state, &dataset, &v).await?);
    }
    Ok(Json(json!({ "versions": out })))
}

/// `POST /api/datasets/{id}/versions`: generates the next version.
async fn generate(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let dataset = find(&state, &id).await?;
    let (version, job) = act::generate(state.actions(), &dataset).await?;
    let state_now = act::version(state.actions(), &dataset, version.number).await?;
    let mut v = version_json(&state, &dataset, &state_now).await?;
    v["job_id"] = json!(job);
    Ok((axum::http::StatusCode::ACCEPTED, Json(v)))
}

/// `GET /api/datasets/{id}/versions/{number}`
async fn version(
    State(state): State<AppState>,
    Path((id, number)): Path<(String, i32)>,
) -> Result<Json<Value>, AppError> {
    let dataset = find(&state, &id).await?;
    let v = act::version(state.actions(), &dataset, number).await?;
    Ok(Json(version_json(&state, &dataset, &v).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExportBody {
    format: String,
}

/// `POST /api/datasets/{id}/versions/{number}/exports`: `{"format": "coco"}`.
async fn export(
    State(state): State<AppState>,
    Path((id, number)): Path<(String, i32)>,
    bytes: Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let dataset = find(&state, &id).await?;
    let request: ExportBody = body(&bytes)?;
    let format = act::parse_format(if request.format.is_empty() {
        "coco"
    } else {
        &request.format
    })?;
    let (export_id, _) = act::export(state.actions(), &dataset, number, format).await?;
    let export = db::datasets::export(&state.pool, export_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("export #{export_id} vanished")))?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(export_json(&export))))
}

/// `GET /api/exports/{id}`
async fn export_status(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Json<Value>, AppError> {
    let export = db::datasets::export(&state.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no export #{id}.")))?;
    Ok(Json(export_json(&export)))
}

/// `GET /api/backgrounds`
async fn backgrounds(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let all = db::datasets::backgrounds(&state.pool).await?;
    Ok(Json(json!({ "backgrounds": all })))
}

/// `POST /api/backgrounds`: a multipart `background` file.
async fn upload_background(
    State(state): State<AppState>,
    mut multipart: Multipart,
) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let (name, bytes) = crate::web::datasets::background_field(&mut multipart).await?;
    let added = act::add_background(state.actions(), &name, bytes).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!(added))))
}
