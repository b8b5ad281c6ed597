//! The products pages: the list with filters and bulk actions, and one product
//! with its metadata editor, frame gallery, source video and review.

use std::collections::BTreeMap;

use buybuddy_domain::ProductStatus;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::{
    format,
    layout::{self, Viewer},
    paths,
};

/// The statuses the list filters by, in a product's order of life.
pub fn statuses() -> impl Iterator<Item = &'static str> {
    ProductStatus::names()
}

#[derive(Debug, Clone)]
pub struct ProductRow {
    pub id: String,
    pub barcode: String,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub status: String,
    pub frame_count: i64,
    pub thumbnail_url: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub status: Option<String>,
    /// Part of a barcode or a name.
    pub q: String,
}

impl ProductFilter {
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
pub struct ProductsList {
    pub filter: ProductFilter,
    pub rows: Vec<ProductRow>,
    pub next: Option<String>,
    pub paged: bool,
    pub now: DateTime<Utc>,
    /// The outcome of the last bulk action, shown above the list.
    pub notice: Option<String>,
}

pub fn page(viewer: &Viewer, list: &ProductsList) -> Markup {
    layout::page_for(
        viewer,
        "Products",
        html! {
            h1 { "Products" }
            section.card {
                form.filters method="get" action=(paths::PRODUCTS) {
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
                        "Search"
                        input type="search" name="q" value=(list.filter.q) placeholder="barcode or name";
                    }
                    button.secondary type="submit" { "Filter" }
                }
                @if let Some(notice) = &list.notice { p.notice role="status" { (notice) } }
                @if list.paged {
                    (render_list(viewer, list))
                } @else {
                    div sse-connect=(format!("{}?topic=products&coalesce=1000", paths::EVENTS)) {
                        div hx-get=(format!("{}{}", paths::PRODUCTS_LIST, list.filter.query(None)))
                            hx-trigger="sse:product, sse:resync"
                            // A reload must not undo the boxes someone is ticking.
                            hx-sync="this:replace"
                            hx-swap="innerHTML" {
                            (render_list(viewer, list))
                        }
                    }
                }
            }
        },
    )
}

pub fn render_list(viewer: &Viewer, list: &ProductsList) -> Markup {
    html! {
        form #products-list method="post" action=(paths::PRODUCTS_BULK) {
            (layout::csrf_field(viewer))
            @if list.rows.is_empty() {
                p.muted {
                    @if list.filter.status.is_some() || !list.filter.q.is_empty() {
                        "No products match these filters."
                    } @else {
                        "No products yet: process a video to add one."
                    }
                }
            } @else {
                div.bulk {
                    input type="text" name="reason" placeholder="reason (for rejecting)" aria-label="Reason for rejecting";
                    button type="submit" name="action" value="approve" { "Approve selected" }
                    button.danger type="submit" name="action" value="reject" { "Reject selected" }
                    button.secondary type="submit" name="action" value="reprocess" { "Reprocess selected" }
                }
                table.products-table {
                    thead { tr { th {} th {} th { "Barcode" } th { "Product" } th { "Status" } th { "Frames" } th { "Updated" } } }
                    tbody {
                        @for p in &list.rows {
                            tr data-status=(p.status) {
                                td { input type="checkbox" name="ids" value=(p.id) aria-label=(format!("Select {}", p.barcode)); }
                                td.thumb {
                                    @if let Some(url) = &p.thumbnail_url {
                                        img src=(url) alt="" loading="lazy" width="56" height="56";
                                    }
                                }
                                td { a href=(paths::with_id(paths::PRODUCT, &p.id)) { code { (p.barcode) } } }
                                td {
                                    (p.name.as_deref().unwrap_or("—"))
                                    @if let Some(brand) = &p.brand { div.muted { (brand) } }
                                }
                                td { span class={ "status status-" (p.status) } { (format::label(&p.status)) } }
                                td { (p.frame_count) }
                                td.muted { (format::ago(p.updated_at, list.now)) }
                            }
                        }
                    }
                }
            }
            nav.pager {
                @if list.paged { a href=(format!("{}{}", paths::PRODUCTS, list.filter.query(None))) { "← Newest" } }
                @if let Some(next) = &list.next {
                    a href=(format!("{}{}", paths::PRODUCTS, list.filter.query(Some(next)))) { "Older →" }
                }
            }
        }
    }
}

/// The editable metadata, as typed.
pub use buybuddy_domain::MetadataForm;

#[derive(Debug, Clone)]
pub struct FrameTile {
    pub index: i32,
    pub url: String,
    pub mask_url: Option<String>,
    /// What looks wrong with the frame, for the reviewer (empty when fine).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProductView {
    pub id: String,
    pub barcode: String,
    /// What kind of code the barcode is: "EAN-13", "UPC-A", ..., or "internal code".
    pub barcode_kind: String,
    pub status: String,
    pub review_note: Option<String>,
    pub reviewed: Option<(DateTime<Utc>, Option<String>)>,
    pub form: MetadataForm,
    pub errors: BTreeMap<&'static str, String>,
    /// Shown above the editor after a save.
    pub notice: Option<String>,
    pub frames: Vec<FrameTile>,
    pub video_url: Option<String>,
    pub last_job: Option<(String, String)>,
    pub now: DateTime<Utc>,
}

const FIELDS: &[(&str, &str)] = &[
    ("product_name", "Product name"),
    ("brand_name", "Brand"),
    ("sub_brand", "Sub-brand"),
    ("variant_flavor", "Variant / flavour"),
    ("category", "Category"),
    ("container_type", "Container"),
    ("net_quantity", "Net quantity"),
    ("grounding_prompt", "Segmentation prompt"),
];

/// A frame's tooltip: its number and what looks wrong with it.
fn frame_title(frame: &FrameTile) -> String {
    if frame.warnings.is_empty() {
        format!("Frame {}", frame.index)
    } else {
        format!("Frame {}: {}", frame.index, frame.warnings.join("; "))
    }
}

/// Each warning with how many frames have it, most frequent first.
fn frame_warning_summary(frames: &[FrameTile]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for warning in frames.iter().flat_map(|f| &f.warnings) {
        match counts.iter_mut().find(|(w, _)| *w == warning.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((warning, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let parts: Vec<String> = counts.iter().map(|(w, n)| format!("{w} ({n})")).collect();
    format!("{}.", parts.join("; "))
}

pub fn product_page(viewer: &Viewer, product: &ProductView) -> Markup {
    let title = if product.form.product_name.is_empty() {
        product.barcode.clone()
    } else {
        product.form.product_name.clone()
    };
    layout::page_for(
        viewer,
        &title,
        html! {
            p.muted { a href=(paths::PRODUCTS) { "← Products" } }
            h1 { (title) " " code.muted title=(product.barcode_kind) { (product.barcode) } }
            p.muted { "Barcode: " (product.barcode_kind) }
            div sse-connect=(format!("{}?topic=product:{}&coalesce=300", paths::EVENTS, product.id)) {
                div hx-get=(paths::with_id(paths::PRODUCT_REVIEW, &product.id))
                    hx-trigger="sse:product, sse:resync"
                    hx-sync="this:queue last"
                    hx-swap="innerHTML" {
                    (render_review(viewer, product))
                }
            }
            div.columns {
                (render_editor(viewer, product))
                section.card {
                    h2 { "Source video" }
                    @if let Some(url) = &product.video_url {
                        video controls preload="metadata" src=(url) width="100%" {}
                    } @else {
                        p.muted { "The video is not stored where this page can show it." }
                    }
                    @if let Some((id, status)) = &product.last_job {
                        p.muted { "Last job: " a href=(paths::with_id(paths::JOB, id)) { (crate::jobs::short_id(id)) } " (" (format::label(status)) ")" }
                    }
                }
            }
            section.card {
                h2 { "Frames " span.muted { "(" (product.frames.len()) ")" } }
                @if product.frames.is_empty() {
                    p.muted { "No frames." }
                } @else {
                    @let doubtful = product.frames.iter().filter(|f| !f.warnings.is_empty()).count();
                    @if doubtful > 0 {
                        div.warning role="alert" {
                            strong { (doubtful) " of " (product.frames.len()) " frames look wrong" }
                            " (outlined below): check their masks before approving. "
                            (frame_warning_summary(&product.frames))
                        }
                    }
                    input #show-masks type="checkbox";
                    label.inline for="show-masks" { "Show masks" }
                    div.gallery {
                        @for frame in &product.frames {
                            a.frame.doubtful[!frame.warnings.is_empty()] href=(frame.url) target="_blank"
                                title=(frame_title(frame)) {
                                img src=(frame.url) alt=(format!("Frame {}", frame.index)) loading="lazy" width="172" height="172";
                                @if let Some(mask) = &frame.mask_url {
                                    img.mask src=(mask) alt="" loading="lazy" width="172" height="172";
                                }
                            }
                        }
                    }
                }
            }
            (crate::search::similar_panel(&product.id))
        },
    )
}

/// Status, review note and the review actions; reloaded live.
pub fn render_review(viewer: &Viewer, product: &ProductView) -> Markup {
    let action = |path: &str| paths::with_id(path, &product.id);
    html! {
        section.card #review {
            p {
                span class={ "status status-" (product.status) } { (format::label(&product.status)) }
                @if let Some((at, by)) = &product.reviewed {
                    span.muted { " · reviewed " (format::ago(*at, product.now)) @if let Some(by) = by { " by " (by) } }
                }
            }
            @if let Some(note) = &product.review_note { p.muted { "Reason: " (note) } }
            div.actions {
                form method="post" action=(action(paths::PRODUCT_APPROVE)) {
                    (layout::csrf_field(viewer))
                    button type="submit" disabled[product.status == ProductStatus::Approved] { "Approve" }
                }
                form.reject method="post" action=(action(paths::PRODUCT_REJECT)) {
                    (layout::csrf_field(viewer))
                    input type="text" name="reason" required placeholder="reason" aria-label="Reason for rejecting";
                    button.danger type="submit" { "Reject" }
                }
                form method="post" action=(action(paths::PRODUCT_REPROCESS)) {
                    (layout::csrf_field(viewer))
                    button.secondary type="submit" { "Reprocess" }
                }
            }
        }
    }
}

pub fn render_editor(viewer: &Viewer, product: &ProductView) -> Markup {
    let error = |field: &str| product.errors.get(field).cloned();
    let form = &product.form;
    html! {
        section.card #editor {
            h2 { "Metadata" }
            @if let Some(notice) = &product.notice { p.notice role="status" { (notice) } }
            @if !product.errors.is_empty() {
                p.error role="alert" { "Some fields need fixing; nothing was saved." }
            }
            form method="post" action=(paths::with_id(paths::PRODUCT, &product.id))
                hx-post=(paths::with_id(paths::PRODUCT, &product.id)) hx-target="#editor" hx-swap="outerHTML" {
                (layout::csrf_field(viewer))
                @for (name, label) in FIELDS {
                    label {
                        (label)
                        input type="text" name=(name) value=(form.value(name)) maxlength="200"
                            aria-invalid=[error(name).map(|_| "true")];
                        @if let Some(message) = error(name) { div.field-error { (message) } }
                    }
                }
                label {
                    "Visibility (0 to 100)"
                    input type="text" inputmode="numeric" name="visibility_score" value=(form.visibility_score)
                        aria-invalid=[error("visibility_score").map(|_| "true")];
                    @if let Some(message) = error("visibility_score") { div.field-error { (message) } }
                }
                label {
                    "Nutrition facts (one per line, name: value)"
                    textarea name="nutrition_facts" rows="5" { (form.nutrition_facts) }
                    @if let Some(message) = error("nutrition_facts") { div.field-error { (message) } }
                }
                label {
                    "Claims (one per line)"
                    textarea name="claims" rows="4" { (form.claims) }
                    @if let Some(message) = error("claims") { div.field-error { (message) } }
                }
                button type="submit" { "Save" }
            }
        }
    }
}
