//! The jobs pages: list (filters, pages, live), "New job" (URL, uploaded file,
//! or a catalog product's video), one job (live progress and log), cancel and
//! retry.

use axum::{
    extract::{Multipart, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use buybuddy_domain::JobStatus;
use buybuddy_templates::{
    jobs::{self, EventLine, JobFilter, JobRow, JobView, JobsList, NewJobForm},
    paths,
};
use chrono::Utc;
use maud::Markup;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    AppError, AppState, Viewer,
    error::OwnBody,
    htmx::{HxRequest, go_to},
    paging,
    upload::{JobForm, human_bytes},
};
use crate::{
    actions::{self, ActionError},
    db,
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
            &JobStatus::names().collect::<Vec<_>>(),
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
    htmx: HxRequest,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let read = JobForm::read(&mut multipart, state.max_upload).await?;
    let job = read.job();
    let mut form = NewJobForm {
        barcode: read.barcode.clone(),
        video_url: read.video_url.clone(),
        errors: read.errors.clone(),
        ..empty_form(&state)
    };
    let outcome = if form.errors.is_empty() {
        actions::jobs::create_video_job(state.actions(), job).await
    } else {
        // The file's problems, and whatever else is wrong, all at once.
        form.errors
            .extend(actions::jobs::check_video_job(&state.intake, &job));
        return Ok(form_again(&state, &viewer, &form, htmx).await);
    };
    match outcome {
        Ok(id) => Ok(go_to(&paths::with_id(paths::JOB, id), htmx)),
        Err(ActionError::Invalid(errors)) => {
            form.errors.extend(errors);
            Ok(form_again(&state, &viewer, &form, htmx).await)
        }
        Err(other) => Err(other.into()),
    }
}

async fn form_again(
    state: &AppState,
    viewer: &Viewer,
    form: &NewJobForm,
    htmx: HxRequest,
) -> Response {
    let markup = if htmx.0 {
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
    htmx: HxRequest,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    // A job that already ended stays as it is; its page says how it ended.
    actions::jobs::cancel(state.actions(), id).await?;
    Ok(go_to(&paths::with_id(paths::JOB, id), htmx))
}

/// Queues a failed or cancelled job again, as a new job linked to it.
pub async fn retry(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let new = actions::jobs::retry(state.actions(), id).await?;
    Ok(go_to(&paths::with_id(paths::JOB, new), htmx))
}
