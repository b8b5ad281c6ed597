//! The jobs pages: list (filters, pages, live), "New job" (URL, uploaded file,
//! or a catalog product's video), one job (live progress and log), cancel and
//! retry.

use anyhow::anyhow;
use axum::{
    extract::{Multipart, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use buybuddy_templates::{
    jobs::{self, EventLine, JobFilter, JobRow, JobView, JobsList, NewJobForm},
    paths,
};
use chrono::Utc;
use maud::Markup;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::{AppError, AppState, Viewer, error::OwnBody, paging};
use crate::{
    db::{self, jobs::Cancel},
    jobs::{JobSpec, video::Video},
    pipeline::check_barcode,
    queue::{self, Enqueue},
};

/// Jobs per page.
const PAGE: i64 = 50;

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    before: Option<String>,
}

impl ListQuery {
    pub(super) fn filter(&self) -> Result<(JobFilter, db::jobs::ListFilter), AppError> {
        let read = paging::Listing::read(
            self.status.as_deref(),
            jobs::STATUSES,
            "job",
            self.q.as_deref(),
            self.before.as_deref(),
        )?;
        Ok((
            JobFilter {
                status: read.status.clone(),
                q: read.q.clone(),
            },
            db::jobs::ListFilter {
                barcode: read.search(),
                status: read.status,
                before: read.before,
            },
        ))
    }
}

pub fn row(job: &db::jobs::Job) -> JobRow {
    JobRow {
        id: job.id.to_string(),
        kind: job.kind.clone(),
        barcode: job.barcode.clone(),
        status: job.status.clone(),
        progress: job.progress,
        stage: job.stage.clone(),
        error: job.error_message.clone(),
        attempts: job.attempts,
        created_at: job.created_at,
    }
}

async fn list_view(state: &AppState, query: &ListQuery) -> Result<JobsList, AppError> {
    let (filter, db_filter) = query.filter()?;
    let mut found = db::jobs::list(&state.pool, &db_filter, PAGE + 1).await?;
    let next = paging::cut(&mut found, PAGE, |j| (j.created_at, j.id));
    Ok(JobsList {
        filter,
        rows: found.iter().map(row).collect(),
        next,
        paged: db_filter.before.is_some(),
        now: Utc::now(),
    })
}

fn empty_form(state: &AppState) -> NewJobForm {
    NewJobForm {
        max_upload: human_bytes(state.max_upload),
        ..NewJobForm::default()
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    let list = list_view(&state, &query).await?;
    Ok(jobs::page(&viewer.0, &list, &empty_form(&state)))
}

pub async fn list_fragment(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, AppError> {
    Ok(jobs::render_list(&list_view(&state, &query).await?))
}

/// A "New job" submission, from a URL, an uploaded file, or (with neither) the
/// catalog's video of the barcode.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let htmx = headers.contains_key("hx-request");
    let mut form = empty_form(&state);
    let mut uploaded: Option<(tempfile::NamedTempFile, String, u64)> = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
    {
        match field.name().unwrap_or_default() {
            "barcode" => form.barcode = field.text().await.unwrap_or_default().trim().to_owned(),
            "video_url" => {
                form.video_url = field.text().await.unwrap_or_default().trim().to_owned()
            }
            "video" => {
                let name = field.file_name().unwrap_or_default().to_owned();
                if name.is_empty() {
                    continue;
                }
                // Streamed to a temporary file under the limit, then to storage.
                let temp =
                    tempfile::NamedTempFile::new().map_err(|e| AppError::Internal(e.into()))?;
                let mut file = tokio::fs::File::create(temp.path())
                    .await
                    .map_err(|e| AppError::Internal(e.into()))?;
                let mut size = 0u64;
                let mut too_large = false;
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        // The request's own size limit, a little above ours.
                        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                            too_large = true;
                            break;
                        }
                        Err(e) => {
                            return Err(AppError::BadRequest(format!(
                                "The upload broke off: {e}."
                            )));
                        }
                    };
                    size += chunk.len() as u64;
                    if size > state.max_upload {
                        too_large = true;
                        break;
                    }
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| AppError::Internal(e.into()))?;
                }
                file.flush()
                    .await
                    .map_err(|e| AppError::Internal(e.into()))?;
                if too_large {
                    form.errors.insert(
                        "video",
                        format!("The file is larger than the limit of {}.", form.max_upload),
                    );
                } else if size == 0 {
                    form.errors.insert("video", "The file is empty.".into());
                } else {
                    uploaded = Some((temp, name, size));
                }
            }
            _ => {}
        }
    }
    if let Err(error) = check_barcode(&form.barcode) {
        form.errors.insert("barcode", error.to_string());
    }
    let remote = ["http://", "https://", "s3://"]
        .iter()
        .any(|s| form.video_url.starts_with(s));
    if !form.video_url.is_empty() && !remote {
        form.errors.insert(
            "video_url",
            "Give an http(s):// or s3:// address (or upload the file below).".into(),
        );
    }
    if !form.video_url.is_empty() && uploaded.is_some() {
        form.errors
            .insert("video", "Give a URL or a file, not both.".into());
    }
    let catalog_video = if form.video_url.is_empty() && uploaded.is_none() && form.errors.is_empty()
    {
        let found: Option<String> =
            sqlx::query_scalar("SELECT video_url FROM catalog_products WHERE barcode = $1")
                .bind(&form.barcode)
                .fetch_optional(&state.pool)
                .await?;
        if found.is_none() {
            form.errors.insert(
                "video_url",
                "Give a video URL or a file: this barcode is not in the synced catalog.".into(),
            );
        }
        found
    } else {
        None
    };
    if !form.errors.is_empty() {
        return Ok(form_again(&state, &viewer, &form, htmx).await);
    }
    let video_url = match (uploaded, catalog_video) {
        (Some((temp, name, _)), _) => {
            let key = format!("uploads/{}/{}", Uuid::now_v7(), safe_name(&name));
            state
                .storage
                .put_file(&key, temp.path(), "application/octet-stream")
                .await
                .map_err(|e| AppError::Internal(anyhow!("storing the upload: {e}")))?;
            state.storage.url(&key)
        }
        (None, Some(url)) => url,
        (None, None) => form.video_url.clone(),
    };
    let ids = queue::enqueue(
        &state.pool,
        &state.queue,
        vec![Enqueue::from(JobSpec::Video(Video {
            video_url,
            barcode: form.barcode.clone(),
            video_id: None,
            frames: None,
            background: None,
        }))],
    )
    .await?;
    Ok(go_to(&paths::with_id(paths::JOB, ids[0]), htmx))
}

async fn form_again(state: &AppState, viewer: &Viewer, form: &NewJobForm, htmx: bool) -> Response {
    let markup = if htmx {
        jobs::render_new_job(&viewer.0, form)
    } else {
        match list_view(state, &ListQuery::default()).await {
            Ok(list) => jobs::page(&viewer.0, &list, form),
            Err(error) => return error.into_response(),
        }
    };
    let mut response = (StatusCode::UNPROCESSABLE_ENTITY, markup).into_response();
    response.extensions_mut().insert(OwnBody);
    response
}

/// A redirect that HTMX follows as a page load, and browsers as usual.
pub fn go_to(path: &str, htmx: bool) -> Response {
    if htmx {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(value) = path.parse() {
            response.headers_mut().insert("hx-redirect", value);
        }
        response
    } else {
        Redirect::to(path).into_response()
    }
}

fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        "video".into()
    } else {
        cleaned.chars().take(100).collect()
    }
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

async fn job_view(state: &AppState, id: Uuid) -> Result<JobView, AppError> {
    let job = db::jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("There is no job {id}.")))?;
    let events = db::job_events::for_job(&state.pool, id).await?;
    let retried_as = db::jobs::retried_as(&state.pool, id).await?;
    let product_id = job
        .output
        .as_ref()
        .and_then(|o| o.get("product_id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(JobView {
        row: row(&job),
        video_url: job.video_url.clone(),
        max_attempts: job.max_attempts,
        next_attempt_at: job.next_attempt_at,
        worker: job.worker.clone(),
        started_at: job.started_at,
        completed_at: job.completed_at,
        frame_count: job.frame_count,
        product_id,
        cancel_requested: job.cancel_requested_at.is_some(),
        retry_of: job.retry_of.map(|id| id.to_string()),
        retried_as: retried_as.map(|id| id.to_string()),
        events: events
            .into_iter()
            .map(|e| EventLine {
                at: e.at,
                level: e.level,
                stage: e.stage,
                message: e.message,
            })
            .collect(),
        now: Utc::now(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
) -> Result<Markup, AppError> {
    Ok(jobs::job_page(&viewer.0, &job_view(&state, id).await?))
}

pub async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<Uuid>,
) -> Result<Markup, AppError> {
    Ok(jobs::render_job_live(
        &viewer.0,
        &job_view(&state, id).await?,
    ))
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    match db::jobs::cancel(&state.pool, id).await? {
        Cancel::Cancelled | Cancel::Requested | Cancel::AlreadyEnded(_) => {}
        Cancel::NotFound => return Err(AppError::NotFound(format!("There is no job {id}."))),
    }
    Ok(go_to(
        &paths::with_id(paths::JOB, id),
        headers.contains_key("hx-request"),
    ))
}

/// Queues a failed or cancelled job again, as a new job linked to it.
pub async fn retry_job(state: &AppState, id: Uuid) -> Result<Uuid, AppError> {
    let mut tx = state.pool.begin().await?;
    let job: Option<(String, serde_json::Value)> =
        sqlx::query_as("SELECT status, payload FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (status, payload) =
        job.ok_or_else(|| AppError::NotFound(format!("There is no job {id}.")))?;
    if !matches!(status.as_str(), "failed" | "cancelled") {
        return Err(AppError::Conflict(format!(
            "Only failed or cancelled jobs can be retried; this one is {status}."
        )));
    }
    if let Some(retry) = db::jobs::retried_as(&mut *tx, id).await? {
        return Err(AppError::Conflict(format!(
            "This job was already retried as {retry}."
        )));
    }
    let spec: JobSpec = serde_json::from_value(payload)
        .map_err(|e| AppError::Internal(anyhow!("job {id} has an unreadable payload: {e}")))?;
    let new = queue::enqueue_in(&mut tx, &state.queue, vec![Enqueue::from(spec)]).await?[0];
    sqlx::query("UPDATE jobs SET retry_of = $1 WHERE id = $2")
        .bind(id)
        .bind(new)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(new)
}

pub async fn retry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let new = retry_job(&state, id).await?;
    Ok(go_to(
        &paths::with_id(paths::JOB, new),
        headers.contains_key("hx-request"),
    ))
}
