//! The Merchants pages: merchants with the form that adds one, a merchant's
//! page (its list's progress, the import in two steps, bulk acceptance,
//! export), and the review of its lines one at a time with keyboard
//! shortcuts.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::{
    layout::{self, Viewer, csrf_field},
    paths,
};

#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub lines: i64,
    pub assigned: i64,
    pub absent: i64,
    pub undecided: i64,
    pub waiting: i64,
    pub images_queued: i64,
    pub images_failed: i64,
    pub conflicts: i64,
}

#[derive(Debug, Clone)]
pub struct MerchantRow {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub counts: Counts,
}

pub struct MerchantsPage {
    pub rows: Vec<MerchantRow>,
    pub code: String,
    pub name: String,
    pub errors: BTreeMap<String, String>,
    pub notice: Option<String>,
}

fn error_of(errors: &BTreeMap<String, String>, field: &str) -> Markup {
    html! {
        @if let Some(m) = errors.get(field) {
            ul.errors.field-error role="alert" { @for line in m.lines() { li { (line) } } }
        }
    }
}

pub fn list_page(viewer: &Viewer, view: &MerchantsPage) -> Markup {
    layout::page_for(
        viewer,
        "Merchants",
        html! {
            h1 { "Merchants" }
            @if let Some(n) = &view.notice { p.notice role="status" { (n) } }
            p.muted { "A merchant sends its own product list; each line is assigned to a product of the directory, or marked as not in it. Suggestions come from barcodes, names and images." }
            section.card {
                h2 { "Merchants (" (view.rows.len()) ")" }
                @if view.rows.is_empty() {
                    p.muted { "No merchant yet. Add one below, then import its list." }
                } @else {
                    table.list {
                        thead { tr { th { "Merchant" } th { "Lines" } th { "Assigned" } th { "Not in directory" } th { "Undecided" } th { "Conflicts" } } }
                        tbody {
                            @for r in &view.rows {
                                tr {
                                    td { a href=(paths::with_id(paths::MERCHANT, r.id)) { (r.name) } " " code { (r.code) } }
                                    td { (r.counts.lines) }
                                    td { (r.counts.assigned) }
                                    td { (r.counts.absent) }
                                    td { (r.counts.undecided) }
                                    td { (r.counts.conflicts) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Add a merchant" }
                form.row method="post" action=(paths::MERCHANTS) {
                    (csrf_field(viewer))
                    label.num { "Code" input type="text" name="code" value=(view.code) required; }
                    label { "Name" input type="text" name="name" value=(view.name) required; }
                    button type="submit" { "Add" }
                }
                (error_of(&view.errors, "code"))
                (error_of(&view.errors, "name"))
            }
        },
    )
}

#[derive(Debug, Clone)]
pub struct ImportRow {
    pub when: String,
    pub file: String,
    pub read: String,
    pub summary: String,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone)]
pub struct LineRow {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub barcode: String,
    pub status: String,
    pub product: Option<(String, String)>,
    pub image: String,
}

pub struct MerchantPage {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub counts: Counts,
    pub exact_matches: usize,
    pub imports: Vec<ImportRow>,
    pub lines: Vec<LineRow>,
    pub filter: String,
    pub filters: Vec<(String, String)>,
    pub offset: i64,
    pub limit: i64,
    pub total: i64,
    pub errors: BTreeMap<String, String>,
    pub notice: Option<String>,
}

pub fn merchant_page(viewer: &Viewer, view: &MerchantPage) -> Markup {
    let c = &view.counts;
    layout::page_for(
        viewer,
        &view.name,
        html! {
            p { a href=(paths::MERCHANTS) { "← Merchants" } }
            h1 { (view.name) " " code { (view.code) } }
            @if let Some(n) = &view.notice { p.notice role="status" { (n) } }
            ul.counts {
                li { span.count #lines-count { (c.lines) } span.label { "lines" } }
                li { span.count { (c.assigned) } span.label { "assigned" } }
                li { span.count { (c.absent) } span.label { "not in the directory" } }
                li { span.count #undecided-count { (c.undecided) } span.label { "undecided" } }
                li { span.count { (c.waiting) } span.label { "waiting for suggestions" } }
                li { span.count { (c.images_queued) " / " (c.images_failed) } span.label { "images to fetch / failed" } }
                li { span.count { (c.conflicts) } span.label { "conflicts" } }
            }
            div.actions {
                a.button href=(paths::with_id(paths::MERCHANT_REVIEW, view.id)) { "Review the lines" }
                @if c.conflicts > 0 {
                    a.button href=(format!("{}?filter=conflicts", paths::with_id(paths::MERCHANT_REVIEW, view.id))) { "Review the conflicts" }
                }
                form method="post" action=(paths::with_id(paths::MERCHANT_BULK, view.id)) {
                    (csrf_field(viewer))
                    input type="hidden" name="confirm" value="true";
                    button.secondary type="submit" disabled[view.exact_matches == 0] {
                        "Accept " (view.exact_matches) " exact barcode matches whose names agree"
                    }
                }
                form method="post" action=(paths::with_id(paths::MERCHANT_SUGGEST, view.id)) {
                    (csrf_field(viewer))
                    button.secondary type="submit" { "Suggest again" }
                }
                a href=(paths::with_id(paths::MERCHANT_EXPORT, view.id).replace("{format}", "csv")) { "Export CSV" }
                a href=(paths::with_id(paths::MERCHANT_EXPORT, view.id).replace("{format}", "json")) { "Export JSON" }
            }
            section.card {
                h2 { "Import a list" }
                form.row method="post" action=(layout::multipart_action(&paths::with_id(paths::MERCHANT_IMPORT, view.id), viewer)) enctype="multipart/form-data" {
                    (csrf_field(viewer))
                    label { "CSV file (UTF-8 or Latin-1; commas, semicolons or tabs; a header row)" input type="file" name="file" accept=".csv,.txt,.tsv,text/csv" required; }
                    button type="submit" { "Next: map the columns" }
                }
                (error_of(&view.errors, "file"))
                p.muted { "Importing again updates lines by the merchant's SKU and reports what was added, changed and removed." }
            }
            @if !view.imports.is_empty() {
                section.card {
                    h2 { "Imports" }
                    @for i in &view.imports {
                        article.import {
                            p { strong { (i.file) } " · " (i.when) " · " span.muted { (i.read) } }
                            p { (i.summary) }
                            @if !i.skipped.is_empty() {
                                details {
                                    summary { (i.skipped.len()) " lines left out" }
                                    table.list {
                                        thead { tr { th { "Line" } th { "SKU" } th { "Why" } } }
                                        tbody { @for (line, sku, why) in &i.skipped { tr { td { (line) } td { (sku) } td { (why) } } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Lines" }
                form.filters method="get" action=(paths::with_id(paths::MERCHANT, view.id)) {
                    label { "Show"
                        select name="filter" {
                            @for (value, label) in &view.filters {
                                option value=(value) selected[*value == view.filter] { (label) }
                            }
                        }
                    }
                    button.secondary type="submit" { "Show" }
                }
                @if view.lines.is_empty() {
                    p.muted { "No line here." }
                } @else {
                    table.list #lines {
                        thead { tr { th { "SKU" } th { "Name" } th { "Barcode" } th { "Image" } th { "State" } th { "Product" } } }
                        tbody {
                            @for l in &view.lines {
                                tr {
                                    td { a href=(format!("{}?line={}", paths::with_id(paths::MERCHANT_REVIEW, view.id), l.id)) { (l.sku) } }
                                    td { (l.name) }
                                    td { (l.barcode) }
                                    td { (l.image) }
                                    td { span.badge data-state=(l.status) { (l.status) } }
                                    td { @if let Some((barcode, url)) = &l.product { a href=(url) { (barcode) } } }
                                }
                            }
                        }
                    }
                    div.pager {
                        @if view.offset > 0 {
                            a href=(format!("{}?filter={}&offset={}", paths::with_id(paths::MERCHANT, view.id), view.filter, (view.offset - view.limit).max(0))) { "← Previous" }
                        }
                        span.muted { (view.offset + 1) "–" ((view.offset + view.lines.len() as i64)) " of " (view.total) }
                        @if view.offset + view.limit < view.total {
                            a href=(format!("{}?filter={}&offset={}", paths::with_id(paths::MERCHANT, view.id), view.filter, view.offset + view.limit)) { "Next →" }
                        }
                    }
                }
            }
        },
    )
}

/// A line left out of an import: (line, SKU, reason).
pub type Skipped = (usize, String, String);

/// The mapping step of an import.
pub struct MappingPage {
    pub merchant_id: i32,
    pub merchant: String,
    pub file_name: String,
    pub key: String,
    pub read: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub total_rows: usize,
    /// (field, label, the header it takes).
    pub fields: Vec<(String, String, String)>,
    /// Bad lines of the last try: (line, SKU, reason), and how many are good.
    pub bad: Option<(Vec<Skipped>, usize)>,
    pub errors: BTreeMap<String, String>,
}

pub fn mapping_page(viewer: &Viewer, view: &MappingPage) -> Markup {
    layout::page_for(
        viewer,
        "Map the columns",
        html! {
            p { a href=(paths::with_id(paths::MERCHANT, view.merchant_id)) { "← " (view.merchant) } }
            h1 { "Import " (view.file_name) }
            p.muted { (view.read) " · " (view.total_rows) " rows" }
            (error_of(&view.errors, "mapping"))
            (error_of(&view.errors, "file"))
            form method="post" action=(paths::with_id(paths::MERCHANT_IMPORT_MAP, view.merchant_id)) #mapping {
                (csrf_field(viewer))
                input type="hidden" name="key" value=(view.key);
                input type="hidden" name="file_name" value=(view.file_name);
                @if let Some((bad, good)) = &view.bad {
                    section.card.warning #bad-lines {
                        h2 { (bad.len()) " lines cannot be imported" }
                        table.list {
                            thead { tr { th { "Line" } th { "SKU" } th { "Why" } } }
                            tbody { @for (line, sku, why) in bad.iter().take(200) { tr { td { (line) } td { (sku) } td { (why) } } } }
                        }
                        @if bad.len() > 200 { p.muted { "… and " (bad.len() - 200) " more." } }
                        div.actions {
                            button type="submit" name="bad_lines" value="import_good" { "Import the " (good) " good lines" }
                            a.button href=(paths::with_id(paths::MERCHANT, view.merchant_id)) { "Import nothing" }
                        }
                    }
                }
                section.card {
                    h2 { "Which column is which" }
                    div.row {
                        @for (field, label, chosen) in &view.fields {
                            label.num {
                                (label)
                                select name=(format!("map.{field}")) {
                                    option value="" { "—" }
                                    @for h in &view.headers {
                                        option value=(h) selected[h == chosen] { (h) }
                                    }
                                }
                            }
                        }
                    }
                    p.muted { "Columns no field takes are kept with each line as extra data." }
                    button type="submit" name="bad_lines" value="refuse" { "Import" }
                }
                section.card {
                    h2 { "The first rows" }
                    div.scroll {
                        table.list {
                            thead { tr { @for h in &view.headers { th { (h) } } } }
                            tbody { @for r in &view.rows { tr { @for c in r { td { (c) } } } } }
                        }
                    }
                }
            }
        },
    )
}

/// One part of a suggestion's score.
#[derive(Debug, Clone)]
pub struct PartView {
    pub signal: String,
    pub points: f32,
    pub says: String,
}

#[derive(Debug, Clone)]
pub struct CandidateView {
    pub rank: i16,
    pub product_id: String,
    pub product_url: String,
    pub barcode: String,
    pub name: String,
    pub brand: String,
    pub thumb: Option<String>,
    pub score: String,
    pub parts: Vec<PartView>,
    pub exact: bool,
    /// SKUs of other lines already assigned to it.
    pub assigned_to: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ReviewLine {
    pub id: i64,
    pub sku: String,
    pub fields: Vec<(String, String)>,
    pub image: Option<String>,
    pub state: String,
    pub conflicts: Vec<String>,
    pub candidates: Vec<CandidateView>,
    /// (when, what, who).
    pub history: Vec<(String, String, String)>,
    pub waiting: bool,
}

pub struct ReviewPage {
    pub merchant_id: i32,
    pub merchant: String,
    pub filter: String,
    pub filters: Vec<(String, String)>,
    pub left: i64,
    pub line: Option<ReviewLine>,
    pub error: Option<String>,
}

pub fn review_page(viewer: &Viewer, view: &ReviewPage) -> Markup {
    layout::page_for(
        viewer,
        "Assign lines",
        html! {
            p { a href=(paths::with_id(paths::MERCHANT, view.merchant_id)) { "← " (view.merchant) } }
            h1 { "Assign " (view.merchant) "'s lines" }
            form.filters method="get" action=(paths::with_id(paths::MERCHANT_REVIEW, view.merchant_id)) {
                label { "Show"
                    select name="filter" onchange="this.form.submit()" {
                        @for (value, label) in &view.filters { option value=(value) selected[*value == view.filter] { (label) } }
                    }
                }
                noscript { button.secondary type="submit" { "Show" } }
            }
            (render_review(viewer, view))
            script src=(paths::asset("review.js")) defer {}
        },
    )
}

/// The review panel, swapped whole after every decision.
pub fn render_review(viewer: &Viewer, view: &ReviewPage) -> Markup {
    html! {
        div #review hx-target="this" hx-swap="outerHTML" {
            p.review-counter role="status" { strong { (view.left) } " left (" (view.filter.replace('_', " ")) ")" }
            @if let Some(e) = &view.error { p.error role="alert" { (e) } }
            @match &view.line {
                None => { p.notice { "Nothing left here." } }
                Some(line) => {
                    @let decide = paths::with_id(paths::MERCHANT_LINE_DECIDE, line.id);
                    div.review.merchant-review {
                        div.line-card {
                            h2 { "SKU " (line.sku) }
                            @if let Some(img) = &line.image { img src=(img) alt="the merchant's image" width="200" height="200"; }
                            dl.facts { @for (k, v) in &line.fields { dt { (k) } dd { (v) } } }
                            p { span.badge data-state=(line.state) { (line.state) } }
                            @if !line.conflicts.is_empty() { p.warning { "Its product is also assigned to " (line.conflicts.join(", ")) "." } }
                            @if line.waiting { p.warning { "Its suggestions are being made." } }
                            @if !line.history.is_empty() {
                                details {
                                    summary { "History (" (line.history.len()) ")" }
                                    ul { @for (when, what, who) in &line.history { li { (when) " · " (what) " · " (who) } } }
                                }
                            }
                        }
                        div.suggestions {
                            ol.candidates {
                                @for c in &line.candidates {
                                    li.candidate {
                                        @if let Some(t) = &c.thumb { img src=(t) width="96" height="96" alt="" loading="lazy"; } @else { span {} }
                                        div {
                                            a href=(c.product_url) { (c.barcode) } " " (c.brand) " " (c.name) br;
                                            strong { "score " (c.score) } @if c.exact { " " span.badge data-state="covered" { "exact barcode" } }
                                            ul.parts { @for p in &c.parts { li.part.{(if p.points >= 0.0 { "agrees" } else { "disagrees" })} { (format!("{:+.2}", p.points)) " " (p.says) } } }
                                            @if !c.assigned_to.is_empty() { span.warning { "Already assigned to " (c.assigned_to.join(", ")) } }
                                        }
                                        form method="post" action=(decide) hx-post=(decide) hx-sync="#review:drop" {
                                            (csrf_field(viewer))
                                            input type="hidden" name="action" value="assign";
                                            input type="hidden" name="product" value=(c.product_id);
                                            input type="hidden" name="filter" value=(view.filter);
                                            button type="submit" data-key=(c.rank) { "This one " kbd { (c.rank) } }
                                        }
                                    }
                                }
                            }
                            @if line.candidates.is_empty() && !line.waiting { p.muted { "No candidate: search below, or say the directory lacks it." } }
                            div.actions {
                                @for (action, label, key) in [("absent", "Not in the directory", "n"), ("skip", "Skip", "s")] {
                                    form method="post" action=(decide) hx-post=(decide) hx-sync="#review:drop" {
                                        (csrf_field(viewer))
                                        input type="hidden" name="action" value=(action);
                                        input type="hidden" name="filter" value=(view.filter);
                                        button.secondary type="submit" data-key=(key) { (label) " " kbd { (key) } }
                                    }
                                }
                            }
                            form.picker method="post" action=(decide) hx-post=(decide) hx-sync="#review:drop" {
                                (csrf_field(viewer))
                                input type="hidden" name="action" value="assign";
                                input type="hidden" name="filter" value=(view.filter);
                                label {
                                    "Another product " kbd { "/" }
                                    input #pick type="search" name="q" placeholder="name or barcode" autocomplete="off"
                                        hx-get=(paths::with_id(paths::MERCHANT_PICKER, line.id)) hx-trigger="input changed delay:250ms"
                                        hx-target="#picked" hx-swap="innerHTML";
                                }
                                div #picked {}
                                label { "…or its barcode or id" input type="text" name="product"; }
                                button type="submit" { "Assign" }
                            }
                        }
                    }
                    p.muted { "Keys: " kbd { "1" } "–" kbd { "5" } " take a suggestion, " kbd { "n" } " not in the directory, " kbd { "s" } " skip, " kbd { "/" } " search." }
                }
            }
        }
    }
}
