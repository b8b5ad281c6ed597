//! The dashboard: what is in the directory and what the workers are doing.

use buybuddy_domain::JobStatus;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::{format, layout, paths};

/// A status and how many rows have it.
#[derive(Debug, Clone)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// One line of the recent-jobs list.
#[derive(Debug, Clone)]
pub struct JobLine {
    pub id: String,
    pub kind: String,
    pub barcode: Option<String>,
    pub status: String,
    pub progress: i16,
    pub stage: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A recently processed product, with one of its frames.
#[derive(Debug, Clone)]
pub struct ProductCard {
    pub barcode: String,
    pub name: Option<String>,
    pub status: String,
    pub frame_count: i64,
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub products: Vec<StatusCount>,
    pub latest_products: Vec<ProductCard>,
    pub jobs: JobsPanel,
}

/// The part of the dashboard that follows the queue live.
#[derive(Debug, Clone)]
pub struct JobsPanel {
    pub counts: Vec<StatusCount>,
    pub latest: Vec<JobLine>,
    /// Jobs ended per hour over the last 24 hours: (hour, completed, failed).
    pub throughput: Vec<(DateTime<Utc>, i64, i64)>,
    pub now: DateTime<Utc>,
}

pub fn page(viewer: &layout::Viewer, view: &Dashboard) -> Markup {
    layout::page_for(
        viewer,
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            section.card {
                h2 { "Products" }
                (render_counts(&view.products, "No products yet: process a video to add one."))
                @if !view.latest_products.is_empty() {
                    ul.products {
                        @for product in &view.latest_products {
                            li.product {
                                @if let Some(url) = &product.thumbnail_url {
                                    img src=(url) alt=(format!("Product {}", product.barcode))
                                        loading="lazy" width="160" height="160";
                                }
                                div.barcode { code { (product.barcode) } }
                                @if let Some(name) = &product.name { div { (name) } }
                                div.muted {
                                    span class={ "status status-" (product.status) } { (format::label(&product.status)) }
                                    " · " (product.frame_count) " frames"
                                }
                            }
                        }
                    }
                }
            }
            // Reloads itself when jobs change: the server sends at most one change
            // a second (coalesce), and always the last one, so the last state shows.
            div sse-connect=(format!("{}?topic=jobs&coalesce=1000", paths::EVENTS)) {
                div hx-get=(paths::DASHBOARD_JOBS)
                    hx-trigger="sse:job, sse:resync"
                    // A change during a reload is fetched after it, never dropped.
                    hx-sync="this:queue last"
                    hx-swap="innerHTML" {
                    (render_jobs_panel(&view.jobs))
                }
            }
        },
    )
}

pub fn render_jobs_panel(panel: &JobsPanel) -> Markup {
    html! {
        section.card #jobs-panel {
            h2 { "Jobs" }
            (render_counts(&panel.counts, "No jobs yet."))
            (render_throughput(&panel.throughput))
            @if !panel.latest.is_empty() {
                table.jobs {
                    thead { tr { th { "Job" } th { "Kind" } th { "Barcode" } th { "Status" } th { "Created" } } }
                    tbody {
                        @for job in &panel.latest {
                            tr data-status=(job.status) {
                                // The tail: a UUIDv7 starts with its timestamp.
                                td { code title=(job.id) { (job.id.get(job.id.len().saturating_sub(8)..).unwrap_or(&job.id)) } }
                                td { (job.kind) }
                                td { (job.barcode.as_deref().unwrap_or("—")) }
                                td {
                                    span class={ "status status-" (job.status) } { (format::label(&job.status)) }
                                    @if job.status == JobStatus::Running {
                                        progress max="100" value=(job.progress) {}
                                        @if let Some(stage) = &job.stage { span.muted { " " (stage) } }
                                    }
                                    @if let Some(error) = &job.error {
                                        div.error-text { (error) }
                                    }
                                }
                                td.muted { (format::ago(job.created_at, panel.now)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn render_counts(counts: &[StatusCount], empty: &str) -> Markup {
    html! {
        @if counts.iter().all(|c| c.count == 0) {
            p.muted { (empty) }
        } @else {
            ul.counts {
                @for c in counts {
                    li class={ "status-" (c.status) } {
                        span.count { (c.count) }
                        span.label { (format::label(&c.status)) }
                    }
                }
            }
        }
    }
}

/// Jobs ended per hour over the last day, as bars.
fn render_throughput(hours: &[(DateTime<Utc>, i64, i64)]) -> Markup {
    let completed: i64 = hours.iter().map(|h| h.1).sum();
    let failed: i64 = hours.iter().map(|h| h.2).sum();
    let peak = hours.iter().map(|h| h.1 + h.2).max().unwrap_or(0).max(1);
    html! {
        div.throughput {
            p.muted { "Last 24 hours: " strong { (completed) } " completed, " strong { (failed) } " failed" }
            @if completed + failed > 0 {
                div.bars role="img" aria-label=(format!("{completed} completed and {failed} failed in the last 24 hours, per hour")) {
                    @for (hour, ok, bad) in hours {
                        div.bar title=(format!("{}: {ok} completed, {bad} failed", hour.format("%H:00"))) {
                            span.bad style=(format!("height:{}%", bad * 100 / peak)) {}
                            span.ok style=(format!("height:{}%", ok * 100 / peak)) {}
                        }
                    }
                }
            }
        }
    }
}
