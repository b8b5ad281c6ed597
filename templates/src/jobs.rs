//! The jobs pages: the list with its filters and the "New job" form, and one
//! job with its live progress and event log.

use std::collections::BTreeMap;

use buybuddy_domain::JobStatus;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::{
    format,
    layout::{self, Viewer},
    paths,
};

/// One row of the jobs list.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub barcode: Option<String>,
    pub status: String,
    pub progress: i16,
    pub stage: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// The list's filters, as in the query string.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    /// Part of a barcode.
    pub q: String,
}

impl JobFilter {
    /// The query string for these filters (and a page cursor).
    pub fn query(&self, before: Option<&str>) -> String {
        let mut pairs = Vec::new();
        if let Some(status) = &self.status {
            pairs.push(format!("status={}", format::encode(status)));
        }
        if !self.q.is_empty() {
            pairs.push(format!("q={}", format::encode(&self.q)));
        }
        if let Some(before) = before {
            pairs.push(format!("before={}", format::encode(before)));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobsList {
    pub filter: JobFilter,
    pub rows: Vec<JobRow>,
    /// The cursor of the next (older) page, when there is one.
    pub next: Option<String>,
    /// Whether this is a later page (a link back to the first is shown).
    pub paged: bool,
    pub now: DateTime<Utc>,
}

/// The "New job" form: what was typed, and what was wrong with it.
#[derive(Debug, Clone, Default)]
pub struct NewJobForm {
    pub video_url: String,
    pub barcode: String,
    pub errors: BTreeMap<&'static str, String>,
    /// The size limit of uploads, for the form's hint.
    pub max_upload: String,
}

/// The statuses the list filters by, in a job's order of life.
pub fn statuses() -> impl Iterator<Item = &'static str> {
    JobStatus::names()
}

pub fn page(viewer: &Viewer, list: &JobsList, form: &NewJobForm) -> Markup {
    layout::page_for(
        viewer,
        "Jobs",
        html! {
            h1 { "Jobs" }
            (render_new_job(viewer, form))
            section.card {
                form.filters method="get" action=(paths::JOBS) {
                    label {
                        "Status"
                        select name="status" {
                            option value="" { "any" }
                            @for status in statuses() {
                                option value=(status) selected[list.filter.status.as_deref() == Some(status)] {
                                    (format::label(status))
                                }
                            }
                        }
                    }
                    label {
                        "Barcode"
                        input type="search" name="q" value=(list.filter.q) placeholder="part of a barcode";
                    }
                    button.secondary type="submit" { "Filter" }
                }
                // The first page follows the queue live; later pages stay put.
                @if list.paged {
                    (render_list(list))
                } @else {
                    div sse-connect=(format!("{}?topic=jobs&coalesce=1000", paths::EVENTS)) {
                        div hx-get=(format!("{}{}", paths::JOBS_LIST, list.filter.query(None)))
                            hx-trigger="sse:job, sse:resync"
                            // A change during a reload is fetched after it, never dropped.
                            hx-sync="this:queue last"
                            hx-swap="innerHTML" {
                            (render_list(list))
                        }
                    }
                }
            }
        },
    )
}

pub fn render_list(list: &JobsList) -> Markup {
    html! {
        div #jobs-list {
            @if list.rows.is_empty() {
                p.muted {
                    @if list.filter.status.is_some() || !list.filter.q.is_empty() {
                        "No jobs match these filters."
                    } @else {
                        "No jobs yet: start one above."
                    }
                }
            } @else {
                table.jobs {
                    thead { tr { th { "Job" } th { "Kind" } th { "Barcode" } th { "Status" } th { "Attempts" } th { "Created" } } }
                    tbody {
                        @for job in &list.rows {
                            tr data-status=(job.status) {
                                td { a href=(paths::with_id(paths::JOB, &job.id)) { code { (short_id(&job.id)) } } }
                                td { (job.kind) }
                                td { (job.barcode.as_deref().unwrap_or("—")) }
                                td {
                                    span class={ "status status-" (job.status) } { (format::label(&job.status)) }
                                    @if job.status == JobStatus::Running {
                                        progress max="100" value=(job.progress) {}
                                        @if let Some(stage) = &job.stage { span.muted { " " (stage) } }
                                    }
                                    @if let Some(error) = &job.error { div.error-text { (error) } }
                                }
                                td { (job.attempts) }
                                td.muted { (format::ago(job.created_at, list.now)) }
                            }
                        }
                    }
                }
            }
            nav.pager {
                @if list.paged { a href=(format!("{}{}", paths::JOBS, list.filter.query(None))) { "← Newest" } }
                @if let Some(next) = &list.next {
                    a href=(format!("{}{}", paths::JOBS, list.filter.query(Some(next)))) { "Older →" }
                }
            }
        }
    }
}

pub fn render_new_job(viewer: &Viewer, form: &NewJobForm) -> Markup {
    let error = |field: &str| form.errors.get(field).cloned();
    html! {
        section.card #new-job {
            h2 { "New job" }
            @if let Some(message) = error("form") { p.error role="alert" { (message) } }
            form method="post" action=(layout::multipart_action(paths::JOBS, viewer))
                enctype="multipart/form-data"
                hx-post=(paths::JOBS) hx-target="#new-job" hx-swap="outerHTML" hx-encoding="multipart/form-data" {
                label {
                    "Barcode"
                    input type="text" name="barcode" value=(form.barcode) required maxlength="64"
                        placeholder="e.g. 8690000000001";
                    @if let Some(message) = error("barcode") { div.field-error { (message) } }
                }
                label {
                    "Video URL (http(s):// or s3://)"
                    input type="text" name="video_url" value=(form.video_url) placeholder="https://...";
                    @if let Some(message) = error("video_url") { div.field-error { (message) } }
                }
                label {
                    "…or a video file (up to " (form.max_upload) ")"
                    input type="file" name="video" accept="video/*";
                    @if let Some(message) = error("video") { div.field-error { (message) } }
                }
                button type="submit" { "Start job" }
            }
        }
    }
}

/// One job, as its page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub row: JobRow,
    pub video_url: Option<String>,
    pub max_attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub frame_count: Option<i32>,
    pub product_id: Option<String>,
    pub cancel_requested: bool,
    pub retry_of: Option<String>,
    pub retried_as: Option<String>,
    pub events: Vec<EventLine>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct EventLine {
    pub at: DateTime<Utc>,
    pub level: String,
    pub stage: Option<String>,
    pub message: String,
}

pub fn job_page(viewer: &Viewer, job: &JobView) -> Markup {
    layout::page_for(
        viewer,
        &format!("Job {}", short_id(&job.row.id)),
        html! {
            p.muted { a href=(paths::JOBS) { "← Jobs" } }
            h1 { "Job " code { (short_id(&job.row.id)) } }
            // Every change of this job or its log reloads the live part.
            div sse-connect=(format!("{}?topic=job:{}&coalesce=300", paths::EVENTS, job.row.id)) {
                div hx-get=(paths::with_id(paths::JOB_LIVE, &job.row.id))
                    hx-trigger="sse:job, sse:job_event, sse:resync"
                    // A change during a reload is fetched after it, never dropped.
                    hx-sync="this:queue last"
                    hx-swap="innerHTML" {
                    (render_job_live(viewer, job))
                }
            }
        },
    )
}

/// The part of the job page that follows the job live.
pub fn render_job_live(viewer: &Viewer, job: &JobView) -> Markup {
    let row = &job.row;
    let active = !row
        .status
        .parse::<JobStatus>()
        .is_ok_and(JobStatus::has_ended);
    html! {
        section.card #job-live data-status=(row.status) {
            div.job-head {
                span class={ "status status-" (row.status) } { (format::label(&row.status)) }
                @if let Some(stage) = &row.stage { span.muted { " · " (stage) } }
                @if job.cancel_requested && active { span.muted { " · cancel requested" } }
            }
            progress #job-progress max="100" value=(row.progress) { (row.progress) "%" }
            span.muted { " " (row.progress) "%" }
            dl.facts {
                dt { "Kind" } dd { (row.kind) }
                @if let Some(barcode) = &row.barcode { dt { "Barcode" } dd { code { (barcode) } } }
                @if let Some(url) = &job.video_url { dt { "Video" } dd.wrap { (url) } }
                dt { "Attempts" } dd { (row.attempts) " of " (job.max_attempts) }
                @if let Some(at) = job.next_attempt_at { @if active { dt { "Next attempt" } dd { (at.format("%H:%M:%S UTC")) } } }
                @if let Some(worker) = &job.worker { dt { "Worker" } dd { code { (worker) } } }
                dt { "Created" } dd { (format::ago(row.created_at, job.now)) }
                @if let Some(at) = job.completed_at { dt { "Ended" } dd { (format::ago(at, job.now)) } }
                @if let Some(frames) = job.frame_count { dt { "Frames" } dd { (frames) } }
                @if let Some(id) = &job.product_id { dt { "Product" } dd { a href=(paths::with_id(paths::PRODUCT, id)) { "open" } } }
                @if let Some(id) = &job.retry_of { dt { "Retry of" } dd { a href=(paths::with_id(paths::JOB, id)) { code { (short_id(id)) } } } }
                @if let Some(id) = &job.retried_as { dt { "Retried as" } dd { a href=(paths::with_id(paths::JOB, id)) { code { (short_id(id)) } } } }
            }
            @if let Some(error) = &row.error { p.error role="alert" { (error) } }
            div.actions {
                @if active && !job.cancel_requested {
                    form method="post" action=(paths::with_id(paths::JOB_CANCEL, &row.id)) {
                        (layout::csrf_field(viewer))
                        button.secondary type="submit" { "Cancel" }
                    }
                }
                @if row.status.parse::<JobStatus>().is_ok_and(JobStatus::can_retry) && job.retried_as.is_none() {
                    form method="post" action=(paths::with_id(paths::JOB_RETRY, &row.id)) {
                        (layout::csrf_field(viewer))
                        button type="submit" { "Retry" }
                    }
                }
            }
        }
        section.card {
            h2 { "Log" }
            @if job.events.is_empty() {
                p.muted { "Nothing yet." }
            } @else {
                table.events {
                    tbody {
                        @for event in &job.events {
                            tr class={ "level-" (event.level) } {
                                td.muted { (event.at.format("%H:%M:%S")) }
                                td { (event.stage.as_deref().unwrap_or("")) }
                                td { (event.message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The tail of a job id: a UUIDv7 starts with its timestamp.
pub fn short_id(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}
