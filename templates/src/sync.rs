//! The Sync page: the Buybuddy catalog as last synced, the products in it not
//! processed yet, and the buttons that sync and queue them.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::{
    format,
    layout::{self, Viewer},
    paths,
};

#[derive(Debug, Clone)]
pub struct Pending {
    pub barcode: String,
    pub name: Option<String>,
    pub video_url: String,
    pub in_progress: bool,
    pub last_failed: bool,
}

#[derive(Debug, Clone)]
pub struct SyncView {
    /// Where the catalog comes from; `None` when the API is not configured.
    pub api_url: Option<String>,
    pub catalog_size: i64,
    pub last_synced: Option<DateTime<Utc>>,
    pub pending: Vec<Pending>,
    /// What the last action did.
    pub notice: Option<String>,
    pub error: Option<String>,
    pub now: DateTime<Utc>,
}

pub fn page(viewer: &Viewer, view: &SyncView) -> Markup {
    layout::page_for(
        viewer,
        "Sync",
        html! {
            h1 { "Sync with the Buybuddy catalog" }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            @if let Some(error) = &view.error { p.error role="alert" { (error) } }
            section.card {
                @match &view.api_url {
                    Some(url) => {
                        p {
                            "Catalog at " code { (url) } ": " (view.catalog_size) " products stored"
                            @if let Some(at) = view.last_synced { ", last synced " (format::ago(at, view.now)) }
                            "."
                        }
                        // Listing a large catalog takes a while: say so, and
                        // keep the button from being pressed twice.
                        form method="post" action=(paths::SYNC) hx-boost="true"
                            hx-disabled-elt="find button" {
                            (layout::csrf_field(viewer))
                            button type="submit" { "Sync now" }
                            span.htmx-indicator.muted { " Listing every page of the catalog…" }
                        }
                    }
                    None => {
                        p.muted {
                            "The Buybuddy API is not configured on this server: set "
                            code { "BUYBUDDY_API_URL" } ", " code { "BUYBUDDY_USERNAME" } " and "
                            code { "BUYBUDDY_PASSWORD" } ". "
                            (view.catalog_size) " products are stored from earlier syncs."
                        }
                    }
                }
            }
            section.card {
                h2 { "Not processed yet " span.muted { "(" (view.pending.len()) ")" } }
                @if view.pending.is_empty() {
                    p.muted { "Every catalog product has a product or a completed job." }
                } @else {
                    form method="post" action=(paths::SYNC_ENQUEUE) {
                        (layout::csrf_field(viewer))
                        div.bulk {
                            button type="submit" name="all" value="1" { "Queue all" }
                            button.secondary type="submit" { "Queue selected" }
                        }
                        table {
                            thead { tr { th {} th { "Barcode" } th { "Name" } th { "State" } } }
                            tbody {
                                @for p in &view.pending {
                                    tr {
                                        td { input type="checkbox" name="barcodes" value=(p.barcode) disabled[p.in_progress] aria-label=(format!("Select {}", p.barcode)); }
                                        td { code { (p.barcode) } }
                                        td { (p.name.as_deref().unwrap_or("—")) div.muted.wrap { (p.video_url) } }
                                        td {
                                            @if p.in_progress { span.status.status-running { "queued or running" } }
                                            @else if p.last_failed { span.status.status-failed { "last job failed" } }
                                            @else { span.muted { "waiting" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
