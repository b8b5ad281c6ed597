//! The Shelves pages: real shelf photos with the upload form, a photo with
//! its boxes (drawn and edited in the browser by `shelves.js`; listed, added
//! by numbers and deleted without it), and the review of crops one at a time
//! with keyboard shortcuts.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::{
    layout::{self, Viewer, csrf_field},
    paths,
};

#[derive(Debug, Clone)]
pub struct PhotoRow {
    pub id: i32,
    pub file_name: String,
    pub thumb_url: String,
    pub place: String,
    pub boxes: i64,
    pub matched: i64,
    pub confirmed: i64,
    pub absent: i64,
    pub created: String,
}

/// What the upload form held.
#[derive(Debug, Clone, Default)]
pub struct UploadForm {
    pub store: String,
    pub aisle: String,
    pub taken_on: String,
    pub notes: String,
}

pub struct ShelvesPage {
    pub rows: Vec<PhotoRow>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub form: UploadForm,
    pub errors: BTreeMap<String, String>,
    pub notice: Option<String>,
    /// The serving model's label, when one serves (matching needs it).
    pub model: Option<String>,
    pub left_to_review: i64,
}

/// Field messages, a line per problem.
fn messages(errors: &BTreeMap<String, String>, field: &str) -> Markup {
    html! {
        @if let Some(m) = errors.get(field) {
            ul.errors.field-error role="alert" {
                @for line in m.lines() { li { (line) } }
            }
        }
    }
}

pub fn list_page(viewer: &Viewer, view: &ShelvesPage) -> Markup {
    layout::page_for(
        viewer,
        "Shelves",
        html! {
            h1 { "Shelf photos" }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            p.muted {
                "Real photos of shelves, with a box around each product. Every box is a real crop: matching finds the nearest products of the directory, people confirm them in "
                a href=(paths::SHELF_REVIEW) { "review" } " (" (view.left_to_review) " left), and "
                a href=(paths::COVERAGE) { "coverage" } " says which products our frames represent poorly in the field."
            }
            section.card {
                h2 { "Upload" }
                form.stack method="post" action=(layout::multipart_action(paths::SHELVES, viewer)) enctype="multipart/form-data" {
                    (csrf_field(viewer))
                    label {
                        "Photos, with their labels if they have any"
                        input type="file" name="files" multiple accept="image/jpeg,image/png,image/webp,.heic,.zip,.txt,.yaml,.yml,.json";
                    }
                    (messages(&view.errors, "files"))
                    p.muted { "JPEG, PNG or WebP, one or many, or a ZIP. Boxes come from YOLO label files (one .txt per photo, with a data.yaml or classes.txt for the class names) or a COCO instances .json; a YOLO export of a dataset here uploads as it is. Nothing is imported unless every file is fine." }
                    div.row {
                        label.num { "Store" input type="text" name="store" value=(view.form.store); }
                        label.num { "Aisle" input type="text" name="aisle" value=(view.form.aisle); }
                        label.num { "Taken on" input type="date" name="taken_on" value=(view.form.taken_on); }
                    }
                    (messages(&view.errors, "taken_on"))
                    label { "Notes" input type="text" name="notes" value=(view.form.notes); }
                    button type="submit" { "Upload" }
                }
            }
            section.card {
                h2 { "Photos (" (view.total) ")" }
                div.actions {
                    form method="post" action=(paths::SHELVES_MATCH) {
                        (csrf_field(viewer))
                        button type="submit" disabled[view.model.is_none()] { "Match every unmatched crop" }
                    }
                    span.muted {
                        @match &view.model {
                            Some(model) => { "with " (model) }
                            None => { "No model serves searches yet: start a worker first." }
                        }
                    }
                }
                @if view.rows.is_empty() {
                    p.muted { "No shelf photo yet. Upload some above." }
                } @else {
                    table.list {
                        thead { tr { th {} th { "Photo" } th { "Where" } th { "Boxes" } th { "Matched" } th { "Confirmed" } th { "Not in directory" } th { "Uploaded" } } }
                        tbody {
                            @for r in &view.rows {
                                tr {
                                    td.thumb { img src=(r.thumb_url) width="64" height="48" alt="" loading="lazy"; }
                                    td.wrap { a href=(paths::with_id(paths::SHELF, r.id)) { "#" (r.id) " " (r.file_name) } }
                                    td { (r.place) }
                                    td { (r.boxes) }
                                    td { (r.matched) }
                                    td { (r.confirmed) }
                                    td { (r.absent) }
                                    td { (r.created) }
                                }
                            }
                        }
                    }
                    div.pager {
                        @if view.offset > 0 {
                            a href=(format!("{}?offset={}", paths::SHELVES, (view.offset - view.limit).max(0))) { "← Newer" }
                        }
                        @if view.offset + view.limit < view.total {
                            a href=(format!("{}?offset={}", paths::SHELVES, view.offset + view.limit)) { "Older →" }
                        }
                    }
                }
            }
        },
    )
}

/// A box as the photo page shows it.
#[derive(Debug, Clone)]
pub struct BoxRow {
    pub id: i64,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub source: String,
    pub label: Option<String>,
    pub status: String,
    /// Barcode and name, with the product's page.
    pub product: Option<(String, String, String)>,
    pub crop_url: String,
    pub reviewed: Option<String>,
    pub note: Option<String>,
}

/// A job working on the photo.
#[derive(Debug, Clone)]
pub struct JobState {
    /// What it does: matching, proposing boxes.
    pub kind: String,
    pub url: String,
    pub status: String,
    pub progress: i16,
    pub topic: String,
}

pub struct PhotoPage {
    pub id: i32,
    pub file_name: String,
    pub photo_url: String,
    pub width: i32,
    pub height: i32,
    pub facts: Vec<(String, String)>,
    pub boxes: Vec<BoxRow>,
    pub job: Option<JobState>,
    pub errors: BTreeMap<String, String>,
    pub notice: Option<String>,
    pub model: Option<String>,
}

fn percent(part: i32, whole: i32) -> String {
    format!("{:.4}%", f64::from(part) * 100.0 / f64::from(whole.max(1)))
}

pub fn photo_page(viewer: &Viewer, view: &PhotoPage) -> Markup {
    let add_url = paths::with_id(paths::SHELF_BOXES, view.id);
    layout::page_for(
        viewer,
        &view.file_name,
        html! {
            p { a href=(paths::SHELVES) { "← Shelf photos" } }
            h1.wrap { "#" (view.id) " " (view.file_name) }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            (messages(&view.errors, "box"))
            dl.facts {
                dt { "Size" } dd { (view.width) " × " (view.height) " px (upright)" }
                @for (k, v) in &view.facts { dt { (k) } dd { (v) } }
            }
            div.actions {
                form method="post" action=(paths::SHELVES_MATCH) {
                    (csrf_field(viewer))
                    input type="hidden" name="image_id" value=(view.id);
                    button type="submit" disabled[view.model.is_none() || view.boxes.is_empty()] { "Match this photo's crops" }
                }
                a.button href=(format!("{}?image={}", paths::SHELF_REVIEW, view.id)) { "Review its crops" }
                @if let Some(job) = &view.job {
                    span sse-connect=(format!("{}?topic={}&coalesce=500", paths::EVENTS, job.topic)) {
                        span hx-get=(paths::with_id(paths::SHELF, view.id)) hx-trigger="sse:job" hx-select="#job-state" hx-target="#job-state" hx-swap="outerHTML" {}
                    }
                    span #job-state {
                        a href=(job.url) { (job.kind) } ": " span.status.{"status-" (job.status)} { (job.status) }
                        progress max="100" value=(job.progress) {}
                    }
                }
            }
            section.card {
                h2 { "Boxes (" (view.boxes.len()) ")" }
                p.muted { "Drag on the photo to draw a box; drag a box to move it, its corner to resize it; select one and press Delete to remove it." }
                div.shelf-canvas #shelf-canvas data-add-url=(add_url) data-box-url=(paths::SHELF_BOX)
                    data-width=(view.width) data-height=(view.height) data-csrf=(viewer.csrf_token) {
                    img src=(view.photo_url) alt=(view.file_name) draggable="false";
                    @for b in &view.boxes {
                        div.shelf-box data-id=(b.id) data-status=(b.status)
                            data-x=(b.x) data-y=(b.y) data-w=(b.width) data-h=(b.height)
                            title=(b.product.as_ref().map_or_else(|| b.label.clone().unwrap_or_default(), |p| p.0.clone()))
                            style=(format!("left:{};top:{};width:{};height:{}", percent(b.x, view.width), percent(b.y, view.height), percent(b.width, view.width), percent(b.height, view.height))) {
                            span.handle {}
                        }
                    }
                }
                @if view.boxes.is_empty() {
                    p.muted { "No box yet." }
                } @else {
                    table.list #boxes {
                        thead { tr { th { "Crop" } th { "Box" } th { "From" } th { "State" } th { "Product" } th {} } }
                        tbody {
                            @for b in &view.boxes {
                                tr #(format!("box-{}", b.id)) {
                                    td.thumb { img src=(b.crop_url) width="56" height="56" alt="" loading="lazy"; }
                                    td { "#" (b.id) " " code { (b.x) "," (b.y) " " (b.width) "×" (b.height) } }
                                    td { (b.source) @if let Some(l) = &b.label { br; span.muted { (l) } } }
                                    td {
                                        span.badge data-state=(b.status) { (b.status) }
                                        @if let Some(n) = &b.note { br; span.muted { (n) } }
                                    }
                                    td {
                                        @if let Some((barcode, name, url)) = &b.product { a href=(url) { (barcode) } " " (name) }
                                        @if let Some(r) = &b.reviewed { br; span.muted { (r) } }
                                    }
                                    td {
                                        div.actions {
                                            @if b.status == "confirmed" || b.status == "absent" {
                                                form method="post" action=(paths::with_id(paths::SHELF_REVIEW_DECIDE, b.id)) {
                                                    (csrf_field(viewer))
                                                    input type="hidden" name="action" value="reopen";
                                                    input type="hidden" name="back" value=(paths::with_id(paths::SHELF, view.id));
                                                    button.secondary type="submit" { "Review again" }
                                                }
                                            } @else {
                                                a href=(format!("{}?box={}", paths::SHELF_REVIEW, b.id)) { "Review" }
                                            }
                                            form method="post" action=(paths::with_id(paths::SHELF_BOX_DELETE, b.id)) {
                                                (csrf_field(viewer))
                                                button.danger type="submit" { "Delete" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                details {
                    summary { "Propose boxes with SAM 3" }
                    form.row method="post" action=(paths::with_id(paths::SHELF_PROPOSE, view.id)) {
                        (csrf_field(viewer))
                        label { "What to look for (comma separated)" input type="text" name="prompts" value="product"; }
                        label.num { "Minimum score" input type="number" name="min_score" value="0.3" min="0" max="1" step="0.05"; }
                        button type="submit" { "Propose" }
                    }
                    p.muted { "A worker with SAM 3 finds each instance; proposed boxes are listed here to keep, move or delete. Boxes overlapping one already here are not proposed again." }
                    (messages(&view.errors, "prompts"))
                    (messages(&view.errors, "min_score"))
                }
                details {
                    summary { "Add a box by its numbers" }
                    form.row method="post" action=(add_url) {
                        (csrf_field(viewer))
                        @for (name, label) in [("x", "Left"), ("y", "Top"), ("width", "Width"), ("height", "Height")] {
                            label.num { (label) input type="number" name=(name) min="0" required; }
                        }
                        button type="submit" { "Add box" }
                    }
                }
            }
            section.card {
                h2 { "Delete this photo" }
                form method="post" action=(paths::with_id(paths::SHELF_DELETE, view.id)) {
                    (csrf_field(viewer))
                    button.danger type="submit" { "Delete the photo and its boxes" }
                }
            }
            script src=(paths::asset("shelves.js")) defer {}
        },
    )
}

/// A product matching suggested for the crop under review.
#[derive(Debug, Clone)]
pub struct SuggestionCard {
    pub rank: i16,
    pub product_id: String,
    pub barcode: String,
    pub name: String,
    pub similarity: String,
    pub frame_url: Option<String>,
    pub product_url: String,
}

#[derive(Debug, Clone)]
pub struct ReviewView {
    pub box_id: i64,
    pub crop_url: String,
    pub photo_url: String,
    pub photo_link: String,
    pub photo_name: String,
    pub label: Option<String>,
    pub note: Option<String>,
    pub suggestions: Vec<SuggestionCard>,
    /// Why there are no suggestions, when there are none.
    pub unmatched: Option<String>,
}

pub struct ReviewPage {
    pub item: Option<ReviewView>,
    pub left: i64,
    pub confirmed: i64,
    pub absent: i64,
    /// Reviewing one photo's crops only.
    pub image: Option<i32>,
    pub error: Option<String>,
}

pub fn review_page(viewer: &Viewer, view: &ReviewPage) -> Markup {
    layout::page_for(
        viewer,
        "Review crops",
        html! {
            p { a href=(paths::SHELVES) { "← Shelf photos" } " · " a href=(paths::COVERAGE) { "Coverage" } }
            h1 { "Review crops" }
            (render_review(viewer, view))
            script src=(paths::asset("review.js")) defer {}
        },
    )
}

/// The review panel: swapped whole after every decision.
pub fn render_review(viewer: &Viewer, view: &ReviewPage) -> Markup {
    let decide = |id: i64| paths::with_id(paths::SHELF_REVIEW_DECIDE, id);
    let scope = view.image.map(|i| i.to_string()).unwrap_or_default();
    html! {
        div #review hx-target="this" hx-swap="outerHTML" {
            p.review-counter role="status" {
                strong { (view.left) } " left to review · " (view.confirmed) " confirmed · " (view.absent) " not in the directory"
                @if let Some(i) = view.image { " · photo #" (i) " only (" a href=(paths::SHELF_REVIEW) { "all photos" } ")" }
            }
            @if let Some(e) = &view.error { p.error role="alert" { (e) } }
            @match &view.item {
                None => { p.notice { "Nothing left to review." } }
                Some(item) => {
                    div.review {
                        figure.crop {
                            img src=(item.crop_url) alt="the crop under review" width="320" height="320";
                            figcaption {
                                "Box #" (item.box_id) " of " a href=(item.photo_link) { (item.photo_name) }
                                @if let Some(l) = &item.label { br; "Labelled " code { (l) } " in the upload" }
                                @if let Some(n) = &item.note { br; span.warning { (n) } }
                            }
                        }
                        div.suggestions {
                            @if let Some(why) = &item.unmatched { p.warning { (why) } }
                            ol.candidates {
                                @for s in &item.suggestions {
                                    li.candidate {
                                        @if let Some(f) = &s.frame_url { img src=(f) width="140" height="140" alt="" loading="lazy"; }
                                        div {
                                            a href=(s.product_url) { (s.barcode) } br;
                                            (s.name) br;
                                            span.muted { "similarity " (s.similarity) }
                                        }
                                        form method="post" action=(decide(item.box_id)) hx-post=(decide(item.box_id)) hx-sync="#review:drop" {
                                            (csrf_field(viewer))
                                            input type="hidden" name="action" value="confirm";
                                            input type="hidden" name="product" value=(s.product_id);
                                            input type="hidden" name="image" value=(scope);
                                            button type="submit" data-key=(s.rank) { "This one " kbd { (s.rank) } }
                                        }
                                    }
                                }
                            }
                            div.actions {
                                form method="post" action=(decide(item.box_id)) hx-post=(decide(item.box_id)) hx-sync="#review:drop" {
                                    (csrf_field(viewer))
                                    input type="hidden" name="action" value="absent";
                                    input type="hidden" name="image" value=(scope);
                                    button.secondary type="submit" data-key="n" { "Not in the directory " kbd { "n" } }
                                }
                                form method="post" action=(decide(item.box_id)) hx-post=(decide(item.box_id)) hx-sync="#review:drop" {
                                    (csrf_field(viewer))
                                    input type="hidden" name="action" value="skip";
                                    input type="hidden" name="image" value=(scope);
                                    button.secondary type="submit" data-key="s" { "Skip " kbd { "s" } }
                                }
                            }
                            form.picker method="post" action=(decide(item.box_id)) hx-post=(decide(item.box_id)) hx-sync="#review:drop" {
                                (csrf_field(viewer))
                                input type="hidden" name="action" value="confirm";
                                input type="hidden" name="image" value=(scope);
                                label {
                                    "Another product " kbd { "/" }
                                    input #pick type="search" name="q" placeholder="name or barcode" autocomplete="off"
                                        hx-get=(paths::with_id(paths::SHELF_PRODUCT_PICKER, item.box_id)) hx-trigger="input changed delay:250ms"
                                        hx-target="#picked" hx-swap="innerHTML";
                                }
                                div #picked {}
                                label { "…or its barcode or id" input type="text" name="product"; }
                                button type="submit" { "Confirm" }
                            }
                        }
                    }
                    p.muted { "Keys: " kbd { "1" } "–" kbd { "5" } " take a suggestion, " kbd { "n" } " not in the directory, " kbd { "s" } " skip, " kbd { "/" } " search." }
                }
            }
        }
    }
}
