//! The Datasets pages: the list with the form that starts a dataset, and a
//! dataset's page (its settings with a live preview of the augmentation, its
//! versions with per-split counts, and their exports with downloads).

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::{
    layout::{self, Viewer, csrf_field},
    paths,
};

/// A dataset in the list.
#[derive(Debug, Clone)]
pub struct DatasetRow {
    pub id: i32,
    pub name: String,
    pub task: String,
    pub versions: i64,
    pub created: String,
}

/// One choice of a select or a group of checkboxes.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// What the new-dataset form holds.
#[derive(Debug, Clone, Default)]
pub struct NewForm {
    pub name: String,
    pub tasks: Vec<Choice>,
    pub statuses: Vec<Choice>,
    pub categories: String,
    pub products: String,
}

pub struct DatasetsPage {
    pub rows: Vec<DatasetRow>,
    pub form: NewForm,
    pub errors: BTreeMap<String, String>,
    pub backgrounds: Vec<BackgroundView>,
    pub notice: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BackgroundView {
    pub name: String,
    pub url: String,
    pub size: String,
}

/// A number input.
#[derive(Debug, Clone)]
pub struct NumberField {
    pub name: String,
    pub label: String,
    pub value: String,
    pub min: String,
    pub max: String,
    pub step: String,
}

/// One transform: its probability and its range.
#[derive(Debug, Clone)]
pub struct TransformRow {
    pub label: String,
    pub unit: String,
    pub p: NumberField,
    pub range: Option<(NumberField, NumberField)>,
}

/// A dataset's settings as a form.
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub statuses: Vec<Choice>,
    pub categories: String,
    pub products: String,
    pub plan: Vec<NumberField>,
    pub transforms: Vec<TransformRow>,
    pub background: Option<NumberField>,
    pub background_kinds: Vec<Choice>,
    pub shelf: Vec<NumberField>,
    pub shelf_backgrounds: Vec<Choice>,
    /// Which splits take confirmed real shelf crops (recognition only).
    pub real_splits: Option<Vec<Choice>>,
    pub preview_seed: u64,
}

#[derive(Debug, Clone)]
pub struct SplitRow {
    pub split: String,
    pub products: i64,
    pub frames: i64,
    pub augmented: i64,
    pub composites: i64,
    pub real: i64,
    pub images: i64,
    pub boxes: i64,
}

#[derive(Debug, Clone)]
pub struct ExportView {
    pub id: i32,
    pub format: String,
    pub state: String,
    pub progress: i16,
    pub size: Option<String>,
    pub sha256: Option<String>,
    pub download: Option<String>,
    pub job: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VersionView {
    pub number: i32,
    pub created: String,
    pub state: String,
    pub ready: bool,
    pub rendered: i64,
    pub images: i64,
    pub error: Option<String>,
    pub job: Option<String>,
    pub rule: String,
    pub guard_frames: i32,
    pub classes: usize,
    pub splits: Vec<SplitRow>,
    pub exports: Vec<ExportView>,
    pub formats: Vec<String>,
    pub export_action: String,
    pub render_action: String,
}

#[derive(Debug, Clone)]
pub struct DrawView {
    pub label: String,
    pub kind: String,
    pub seed: u64,
    pub original: String,
    pub draw: String,
    pub boxes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PreviewGrid {
    pub seed: u64,
    pub draws: Vec<DrawView>,
    pub error: Option<String>,
    pub millis: u128,
}

pub struct DatasetPage {
    pub id: i32,
    pub name: String,
    pub task: String,
    pub rule: String,
    pub form: SettingsForm,
    pub errors: BTreeMap<String, String>,
    pub versions: Vec<VersionView>,
    pub notice: Option<String>,
}

pub fn list_page(viewer: &Viewer, view: &DatasetsPage) -> Markup {
    let error = |field: &str| view.errors.get(field);
    layout::page_for(
        viewer,
        "Datasets",
        html! {
            h1 { "Datasets" }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            section.card {
                h2 { "Datasets" }
                @if view.rows.is_empty() {
                    p.muted { "No dataset yet. Start one below: it takes the approved products by default." }
                } @else {
                    table.list {
                        thead { tr { th { "Name" } th { "Task" } th { "Versions" } th { "Created" } } }
                        tbody {
                            @for row in &view.rows {
                                tr {
                                    td { a href=(paths::with_id(paths::DATASET, row.id)) { (row.name) } }
                                    td { (row.task) }
                                    td { (row.versions) }
                                    td { (row.created) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "New dataset" }
                @if !view.errors.is_empty() {
                    p.error role="alert" { "Some fields need fixing; nothing was saved." }
                }
                form.stack method="post" action=(paths::DATASETS) {
                    (csrf_field(viewer))
                    label { "Name" input type="text" name="name" value=(view.form.name) required maxlength="100"; }
                    @if let Some(m) = error("name") { div.field-error { (m) } }
                    label { "Task"
                        select name="task" {
                            @for t in &view.form.tasks {
                                option value=(t.value) selected[t.selected] { (t.label) }
                            }
                        }
                    }
                    @if let Some(m) = error("task") { div.field-error { (m) } }
                    (selection_fields(&view.form.statuses, &view.form.categories, &view.form.products, &view.errors))
                    div { button type="submit" { "Create dataset" } }
                }
            }
            (backgrounds_card(viewer, &view.backgrounds, error("background")))
        },
    )
}

fn selection_fields(
    statuses: &[Choice],
    categories: &str,
    products: &str,
    errors: &BTreeMap<String, String>,
) -> Markup {
    html! {
        fieldset {
            legend { "Products taken" }
            div.row {
                @for s in statuses {
                    label.check {
                        input type="checkbox" name="selection.statuses" value=(s.value) checked[s.selected];
                        (s.label)
                    }
                }
            }
            @if let Some(m) = errors.get("selection.statuses") { div.field-error { (m) } }
            label { "Categories (comma-separated; any when empty)"
                input type="text" name="selection.categories" value=(categories) placeholder="any"; }
            label { "Only these products (ids or barcodes, one per line; all when empty)"
                textarea name="selection.products" rows="2" { (products) } }
            @if let Some(m) = errors.get("selection.products") { div.field-error { (m) } }
        }
    }
}

fn backgrounds_card(
    viewer: &Viewer,
    backgrounds: &[BackgroundView],
    error: Option<&String>,
) -> Markup {
    html! {
        section.card #backgrounds {
            h2 { "Background images" }
            p.muted { "Used by the background swap and the shelf composites when their kind is \"image\": a random crop of one of these goes behind the product." }
            @if backgrounds.is_empty() {
                p.muted { "None uploaded." }
            } @else {
                div.gallery {
                    @for b in backgrounds {
                        figure { img src=(b.url) alt=(b.name) loading="lazy"; figcaption { (b.name) " · " (b.size) } }
                    }
                }
            }
            form method="post" action=(layout::multipart_action(paths::DATASET_BACKGROUNDS, viewer)) enctype="multipart/form-data" {
                (csrf_field(viewer))
                label { "PNG or JPEG, at least 64 px a side "
                    input type="file" name="background" accept="image/png,image/jpeg" required; }
                button.secondary type="submit" { "Upload" }
            }
            @if let Some(m) = error { div.field-error { (m) } }
        }
    }
}

fn number(field: &NumberField, errors: &BTreeMap<String, String>) -> Markup {
    html! {
        label.num {
            (field.label)
            input type="number" name=(field.name) value=(field.value) min=(field.min) max=(field.max) step=(field.step);
        }
        @if let Some(m) = errors.get(field.name.as_str()) { div.field-error { (m) } }
    }
}

pub fn page(viewer: &Viewer, view: &DatasetPage) -> Markup {
    let form = &view.form;
    let errors = &view.errors;
    let preview_url = paths::with_id(paths::DATASET_PREVIEW, view.id);
    layout::page_for(
        viewer,
        &view.name,
        html! {
            p { a href=(paths::DATASETS) { "← Datasets" } }
            h1 { (view.name) }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            p { strong { "Task: " } (view.task) }
            p.muted #split-rule { strong { "Split rule: " } (view.rule) }
            section.card {
                h2 { "Versions" }
                form method="post" action=(paths::with_id(paths::DATASET_VERSIONS, view.id)) {
                    (csrf_field(viewer))
                    button type="submit" { "Generate a version" }
                    span.muted { " A version is a snapshot of the saved settings: later changes to products or settings do not change it." }
                }
                div sse-connect=(format!("{}?topic=jobs&coalesce=1000", paths::EVENTS)) {
                    div #versions hx-get=(paths::with_id(paths::DATASET_VERSIONS_LIST, view.id))
                        hx-trigger="sse:job, sse:resync" hx-sync="this:queue last" hx-swap="innerHTML" {
                        (render_versions(viewer, &view.versions, &paths::with_id(paths::DATASET_VERSIONS_LIST, view.id)))
                    }
                }
            }
            section.card {
                h2 { "Settings" }
                @if !errors.is_empty() {
                    p.error role="alert" { "Some fields need fixing; nothing was saved." }
                    ul.errors { @for (field, m) in errors { li { code { (field) } ": " (m) } } }
                }
                div.settings-layout {
                form #settings.stack method="post" action=(paths::with_id(paths::DATASET, view.id))
                    hx-post=(preview_url) hx-trigger="change delay:150ms, input changed delay:400ms from:input[type=number]"
                    hx-target="#preview" hx-swap="outerHTML" hx-sync="this:replace" {
                    (csrf_field(viewer))
                    (selection_fields(&form.statuses, &form.categories, &form.products, errors))
                    fieldset {
                        legend { "Splits and counts" }
                        div.row { @for f in &form.plan { (number(f, errors)) } }
                        @if let Some(m) = errors.get("settings.ratios") { div.field-error { (m) } }
                        @if let Some(m) = errors.get("settings") { div.field-error { (m) } }
                        p.muted { "Augmented copies are made of train frames only; val and test stay as filmed, so their scores measure real frames. Composites are shared among the splits by their ratios, each made of its own split's products only." }
                    }
                    @if let Some(splits) = &form.real_splits {
                        fieldset #real-crops {
                            legend { "Real shelf crops" }
                            p.muted { "Confirmed crops of real shelf photos go into their product's split, in the splits ticked here: in val or test they measure the model on the field, in train they teach it the field." }
                            @for c in splits {
                                label.check { input type="checkbox" name=(c.value) value="true" checked[c.selected]; (c.label) }
                            }
                            @if let Some(m) = errors.get("settings.real") { div.field-error { (m) } }
                        }
                    }
                    fieldset {
                        legend { "Augmentation" }
                        table.transforms {
                            thead { tr { th { "Transform" } th { "Probability" } th { "From" } th { "To" } } }
                            tbody {
                                @for t in &form.transforms {
                                    tr {
                                        td { (t.label) " " span.muted { (t.unit) } }
                                        td { input type="number" name=(t.p.name) value=(t.p.value) min="0" max="1" step="0.05" aria-label=(format!("{} probability", t.label)); }
                                        @if let Some((lo, hi)) = &t.range {
                                            td { input type="number" name=(lo.name) value=(lo.value) min=(lo.min) max=(lo.max) step=(lo.step) aria-label=(format!("{} from", t.label)); }
                                            td { input type="number" name=(hi.name) value=(hi.value) min=(hi.min) max=(hi.max) step=(hi.step) aria-label=(format!("{} to", t.label)); }
                                        } @else { td {} td {} }
                                    }
                                    @if let Some(m) = errors.get(t.p.name.trim_end_matches(".p")) { tr { td colspan="4" { div.field-error { (m) } } } }
                                }
                            }
                        }
                        @if let Some(bg) = &form.background { (number(bg, errors)) }
                        div.row {
                            span { "Swap to: " }
                            @for k in &form.background_kinds {
                                label.check { input type="checkbox" name="render.augment.background_kinds" value=(k.value) checked[k.selected]; (k.label) }
                            }
                        }
                        @if let Some(m) = errors.get("render.augment.background_kinds") { div.field-error { (m) } }
                    }
                    fieldset {
                        legend { "Shelf composites" }
                        div.row { @for f in &form.shelf { (number(f, errors)) } }
                        label { "Shelf background "
                            select name="render.shelf.background" {
                                @for k in &form.shelf_backgrounds { option value=(k.value) selected[k.selected] { (k.label) } }
                            }
                        }
                        @if let Some(m) = errors.get("render.shelf") { div.field-error { (m) } }
                    }
                    div.row {
                        label.num { "Preview seed" input type="number" name="preview_seed" value=(form.preview_seed) min="0"; }
                        button.secondary type="button" hx-post=(preview_url) hx-include="#settings" hx-target="#preview" hx-swap="outerHTML" { "Preview" }
                        button type="submit" { "Save settings" }
                    }
                }
                // Beside the form and kept in view while it scrolls, so a
                // changed setting shows its draws where the eye is.
                div.preview-pane {
                    h3 { "Preview" }
                    div #preview hx-post=(preview_url) hx-include="#settings" hx-trigger="load" hx-swap="outerHTML" {
                        p.muted { "Drawing a preview…" }
                    }
                }
                }
            }
        },
    )
}

/// The preview grid: each draw beside its original, boxes outlined.
pub fn render_preview(grid: &PreviewGrid) -> Markup {
    html! {
        div #preview {
            @if let Some(error) = &grid.error {
                p.error role="alert" { (error) }
            } @else {
                p.muted { (grid.draws.len()) " draws with seed " (grid.seed) ", rendered in " (grid.millis) " ms. The same seed gives the same grid." }
                div.draws {
                    @for d in &grid.draws {
                        figure.draw data-kind=(d.kind) data-seed=(d.seed) {
                            div.pair {
                                img src=(d.original) alt="original";
                                img src=(d.draw) alt=(format!("{} draw", d.kind));
                            }
                            figcaption { (d.label) " · " (d.boxes) " box" @if d.boxes != 1 { "es" } }
                        }
                    }
                }
            }
        }
    }
}

/// The versions panel. `refresh` is the panel's own URL: while a version
/// renders or an export is written, the panel also reloads itself every two
/// seconds, so a change announced before the page's event stream opened is
/// not missed.
pub fn render_versions(viewer: &Viewer, versions: &[VersionView], refresh: &str) -> Markup {
    let busy = versions.iter().any(|v| {
        (!v.ready && v.error.is_none())
            || v.exports
                .iter()
                .any(|e| e.state == "queued" || e.state == "running")
    });
    html! {
        @if busy {
            div hidden hx-get=(refresh) hx-trigger="load delay:2s" hx-target="#versions" hx-swap="innerHTML" {}
        }
        @if versions.is_empty() {
            p.muted { "No version yet." }
        }
        @for v in versions {
            article.version #(format!("version-{}", v.number)) {
                h3 { "Version " (v.number) " " span.badge data-state=(v.state) { (v.state) } }
                p.muted { (v.created) " · " (v.classes) " classes · " (v.rule)
                    @if v.guard_frames > 0 { " · " (v.guard_frames) " guard frames left out" } }
                @if !v.ready {
                    p { "Rendered " (v.rendered) " of " (v.images) " images"
                        @if let Some(job) = &v.job { " · " a href=(job) { "job" } } }
                    progress max=(v.images.max(1)) value=(v.rendered) {}
                }
                @if let Some(error) = &v.error {
                    p.error role="alert" { (error) }
                    form method="post" action=(v.render_action) {
                        (csrf_field(viewer))
                        button.secondary type="submit" { "Render again" }
                    }
                }
                table.list {
                    thead { tr { th { "Split" } th { "Products" } th { "Frames" } th { "Augmented" } th { "Composites" } th { "Real crops" } th { "Images" } th { "Boxes" } } }
                    tbody {
                        @for s in &v.splits {
                            tr { td { (s.split) } td { (s.products) } td { (s.frames) } td { (s.augmented) } td { (s.composites) } td.real { (s.real) } td { (s.images) } td { (s.boxes) } }
                        }
                    }
                }
                @if v.ready {
                    form.row method="post" action=(v.export_action) {
                        (csrf_field(viewer))
                        @for f in &v.formats {
                            button.secondary type="submit" name="format" value=(f) { "Export " (f) }
                        }
                    }
                }
                @if !v.exports.is_empty() {
                    table.list {
                        thead { tr { th { "Export" } th { "State" } th { "Size" } th { "SHA-256" } th {} } }
                        tbody {
                            @for e in &v.exports {
                                tr {
                                    td { "#" (e.id) " " (e.format) }
                                    td {
                                        (e.state)
                                        @if e.download.is_none() && (e.state == "running" || e.state == "queued") { " " (e.progress) "%" }
                                        @if let Some(error) = &e.error { div.field-error { (error) } }
                                    }
                                    td { (e.size.clone().unwrap_or_default()) }
                                    td { code { (e.sha256.clone().unwrap_or_default()) } }
                                    td {
                                        @if let Some(url) = &e.download { a.button href=(url) download { "Download" } }
                                        @else if let Some(job) = &e.job { a href=(job) { "job" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
