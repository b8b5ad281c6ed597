//! The Training pages: the list of runs with the form that starts one, and a
//! run's page: status and ETA, charts of the loss, the learning rate and the
//! validation figures (SVG drawn by the server, so they need no script, with
//! the same points as tables), the settings, the checkpoints and the model.

use std::collections::BTreeMap;

use maud::{Markup, PreEscaped, html};

use crate::{
    datasets::Choice,
    layout::{self, Viewer, csrf_field},
    paths,
};

#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i32,
    pub name: String,
    pub dataset: String,
    pub state: String,
    pub progress: i32,
    pub step: String,
    pub best: String,
    pub created: String,
}

/// A field of the form: its name, label, value, and hint.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub value: String,
    pub hint: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunForm {
    pub name: String,
    pub versions: Vec<Choice>,
    pub bases: Vec<Choice>,
    pub base: String,
    pub losses: Vec<Choice>,
    pub augments: Vec<Choice>,
    pub numbers: Vec<Field>,
}

pub struct TrainingPage {
    pub rows: Vec<RunRow>,
    pub form: RunForm,
    pub errors: BTreeMap<String, String>,
    pub notice: Option<String>,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub series: Vec<Series>,
    /// Fixed bounds of the value axis (the figures are 0..1), else the data's.
    pub range: Option<(f64, f64)>,
}

#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub step: i32,
    pub epoch: i32,
    pub reason: String,
    pub size: String,
    pub map_at_r: String,
    pub created: String,
}

pub struct RunLive {
    pub id: i32,
    pub state: String,
    pub progress: i32,
    pub stage: String,
    pub step: String,
    pub eta: Option<String>,
    pub speed: Option<String>,
    pub error: Option<String>,
    pub running: bool,
    pub charts: Vec<Chart>,
    /// Validation rows: step, epoch, recall@1, recall@5, mAP@R.
    pub validation: Vec<[String; 5]>,
    /// Training rows: step, epoch, loss, lr, images/s.
    pub train: Vec<[String; 5]>,
    pub baseline: Vec<(String, String)>,
    pub checkpoints: Vec<CheckpointRow>,
    pub model: Option<(String, bool)>,
}

pub struct RunPage {
    pub id: i32,
    pub name: String,
    pub dataset: String,
    pub dataset_url: String,
    pub job_url: Option<String>,
    pub job_topic: Option<String>,
    pub settings: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
    pub protocol: String,
    pub live: RunLive,
    pub notice: Option<String>,
}

pub fn list_page(viewer: &Viewer, view: &TrainingPage) -> Markup {
    let error = |field: &str| view.errors.get(field);
    layout::page_for(
        viewer,
        "Training",
        html! {
            h1 { "Training" }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            section.card {
                h2 { "Runs" }
                @if view.rows.is_empty() {
                    p.muted { "No run yet. Start one below on a recognition dataset version." }
                } @else {
                    table.list {
                        thead { tr { th { "Run" } th { "Dataset" } th { "State" } th { "Step" } th { "Best mAP@R" } th { "Started" } } }
                        tbody {
                            @for r in &view.rows {
                                tr {
                                    td { a href=(paths::with_id(paths::TRAINING_RUN, r.id)) { (r.name) } }
                                    td { (r.dataset) }
                                    td { span.badge data-state=(r.state) { (r.state) } " " progress max="100" value=(r.progress) {} }
                                    td { (r.step) }
                                    td { (r.best) }
                                    td { (r.created) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "New run" }
                @if !view.errors.is_empty() {
                    p.error role="alert" { "Some fields need fixing; nothing was started." }
                    @for (field, message) in &view.errors {
                        @if !view.form.numbers.iter().any(|f| &f.name == field) && !matches!(field.as_str(), "name" | "base" | "version" | "loss" | "augment") {
                            p.error { (message) }
                        }
                    }
                }
                @if view.form.versions.is_empty() {
                    p.muted { "There is no ready recognition dataset version to train on. Make a dataset with the task \"recognition\" on the "
                        a href=(paths::DATASETS) { "Datasets" } " page and generate a version." }
                }
                form.stack method="post" action=(paths::TRAINING) {
                    (csrf_field(viewer))
                    label { "Name (a default is made when empty)" input type="text" name="name" value=(view.form.name) maxlength="100"; }
                    @if let Some(m) = error("name") { div.field-error { (m) } }
                    label { "Dataset version"
                        select name="version" required {
                            @for v in &view.form.versions { option value=(v.value) selected[v.selected] { (v.label) } }
                        }
                    }
                    @if let Some(m) = error("version") { div.field-error { (m) } }
                    label { "Base model"
                        input type="text" name="base" value=(view.form.base) list="bases" required;
                        datalist #bases { @for b in &view.form.bases { option value=(b.value) { (b.label) } } }
                    }
                    p.muted { "scratch:tiny (112 px, 4 layers: minutes on a CPU) or scratch:small (224 px) start from random weights; model:N continues a registered DINOv2 model; folder:/path names a Hugging Face DINOv2 folder on the worker." }
                    @if let Some(m) = error("base") { div.field-error { (m) } }
                    div.row {
                        label { "Loss" select name="loss" { @for l in &view.form.losses { option value=(l.value) selected[l.selected] { (l.label) } } } }
                        label { "Augmentation" select name="augment" { @for a in &view.form.augments { option value=(a.value) selected[a.selected] { (a.label) } } } }
                    }
                    @if let Some(m) = error("loss") { div.field-error { (m) } }
                    div.row.wrap {
                        @for f in &view.form.numbers {
                            label.num title=(f.hint) { (f.label) input type="text" inputmode="decimal" name=(f.name) value=(f.value) size="8"; }
                        }
                    }
                    @for f in &view.form.numbers {
                        @if let Some(m) = error(&f.name) { div.field-error { (f.label) ": " (m) } }
                    }
                    div { button type="submit" disabled[view.form.versions.is_empty()] { "Start training" } }
                }
            }
        },
    )
}

pub fn page(viewer: &Viewer, view: &RunPage) -> Markup {
    let live_url = paths::with_id(paths::TRAINING_RUN_LIVE, view.id);
    let events = view
        .job_topic
        .as_ref()
        .map(|topic| format!("{}?topic={topic}&coalesce=500", paths::EVENTS));
    layout::page_for(
        viewer,
        &format!("Training {}", view.name),
        html! {
            p { a href=(paths::TRAINING) { "← Training" } }
            h1 { (view.name) }
            @if let Some(notice) = &view.notice { p.notice role="status" { (notice) } }
            p.muted { "On " a href=(view.dataset_url) { (view.dataset) }
                @if let Some(job) = &view.job_url { " · " a href=(job) { "job and its events" } } }
            @if let Some(events) = events {
                div sse-connect=(events) {
                    div #live hx-get=(live_url) hx-trigger="sse:job, sse:job_event, sse:resync" hx-sync="this:queue last" hx-swap="innerHTML" {
                        (render_live(viewer, &view.live, &live_url))
                    }
                }
            } @else {
                div #live { (render_live(viewer, &view.live, &live_url)) }
            }
            section.card {
                h2 { "Settings" }
                table.kv { tbody { @for (k, v) in &view.settings { tr { th { (k) } td { (v) } } } } }
                @if !view.data.is_empty() {
                    h3 { "Data" }
                    table.kv { tbody { @for (k, v) in &view.data { tr { th { (k) } td { (v) } } } } }
                }
                p.muted { "Validation protocol: " (view.protocol) }
            }
        },
    )
}

/// The part of a run's page that follows the run. While it runs, it also
/// reloads itself every few seconds, in case a change came before the
/// event stream opened.
pub fn render_live(viewer: &Viewer, live: &RunLive, refresh: &str) -> Markup {
    html! {
        @if live.running {
            div hidden hx-get=(refresh) hx-trigger="load delay:5s" hx-target="#live" hx-swap="innerHTML" {}
        }
        section.card {
            h2 { "Progress " span.badge data-state=(live.state) #run-state { (live.state) } }
            p { (live.stage) " · step " span #run-step { (live.step) }
                @if let Some(speed) = &live.speed { " · " (speed) }
                @if let Some(eta) = &live.eta { " · about " (eta) " left" } }
            progress max="100" value=(live.progress) {}
            @if let Some(error) = &live.error { p.error role="alert" { (error) } }
            div.row {
                @if live.running {
                    form method="post" action=(paths::with_id(paths::TRAINING_RUN_CANCEL, live.id)) {
                        (csrf_field(viewer))
                        button.secondary type="submit" { "Cancel (keeps the last checkpoint)" }
                    }
                }
                @if let Some((label, active)) = &live.model {
                    span { "Model: " (label) }
                    @if *active {
                        span.badge data-state="completed" { "used for search" }
                    } @else {
                        form method="post" action=(paths::with_id(paths::TRAINING_RUN_USE, live.id)) {
                            (csrf_field(viewer))
                            button type="submit" { "Use for search" }
                        }
                    }
                }
            }
        }
        section.card.charts {
            h2 { "Curves" }
            @if live.charts.iter().all(|c| c.series.iter().all(|s| s.points.is_empty())) {
                p.muted { "No point yet: the first comes after the first steps." }
            }
            div.chart-grid { @for chart in &live.charts { (svg_chart(chart)) } }
            @if !live.baseline.is_empty() {
                h3 { "Before training, on the same validation split" }
                table.kv { tbody { @for (k, v) in &live.baseline { tr { th { (k) } td { (v) } } } } }
            }
            details open[!live.validation.is_empty() && live.validation.len() <= 12] {
                summary { "Validation points (" (live.validation.len()) ")" }
                table.list #validation {
                    thead { tr { th { "Step" } th { "Epoch" } th { "Recall@1" } th { "Recall@5" } th { "mAP@R" } } }
                    tbody { @for row in &live.validation { tr { @for cell in row { td { (cell) } } } } }
                }
            }
            details {
                summary { "Training points (" (live.train.len()) ")" }
                table.list #train-points {
                    thead { tr { th { "Step" } th { "Epoch" } th { "Loss" } th { "Learning rate" } th { "Images/s" } } }
                    tbody { @for row in &live.train { tr { @for cell in row { td { (cell) } } } } }
                }
            }
        }
        section.card {
            h2 { "Checkpoints" }
            @if live.checkpoints.is_empty() {
                p.muted { "None yet: one is written at the end of every epoch, and when a worker stops or the run is cancelled." }
            } @else {
                table.list #checkpoints {
                    thead { tr { th { "Step" } th { "Epoch" } th { "Why" } th { "Size" } th { "mAP@R" } th { "Written" } } }
                    tbody { @for c in &live.checkpoints {
                        tr { td { (c.step) } td { (c.epoch) } td { (c.reason) } td { (c.size) } td { (c.map_at_r) } td { (c.created) } }
                    } }
                }
            }
        }
    }
}

const COLOURS: [&str; 4] = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];

/// A line chart as SVG: the series over the step axis, with the value range
/// and the last step written on it.
pub fn svg_chart(chart: &Chart) -> Markup {
    let (w, h, left, bottom, top) = (420.0, 180.0, 44.0, 22.0, 8.0);
    let points: Vec<&(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.1.is_finite())
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let (y_min, y_max) = chart.range.unwrap_or_else(|| {
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 0.5, lo + 0.5)
        } else {
            (0.0, 1.0)
        }
    });
    let x = |v: f64| left + (v / x_max) * (w - left - 8.0);
    let y = |v: f64| top + (1.0 - (v - y_min) / (y_max - y_min)) * (h - top - bottom);
    let label = |v: f64| {
        if v.abs() >= 0.01 || v == 0.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1e}")
        }
    };
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label=(chart.title) {
                line x1=(left) y1=(top) x2=(left) y2=(h - bottom) stroke="#999" {}
                line x1=(left) y1=(h - bottom) x2=(w - 8.0) y2=(h - bottom) stroke="#999" {}
                text x="2" y=(top + 8.0) font-size="10" { (label(y_max)) }
                text x="2" y=(h - bottom) font-size="10" { (label(y_min)) }
                text x=(left) y=(h - 6.0) font-size="10" { "0" }
                text x=(w - 8.0) y=(h - 6.0) font-size="10" text-anchor="end" { "step " (x_max) }
                @for (i, s) in chart.series.iter().enumerate() {
                    @let colour = COLOURS[i % COLOURS.len()];
                    @let path: Vec<String> = s.points.iter().filter(|p| p.1.is_finite()).map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect();
                    @if path.len() > 1 {
                        polyline points=(path.join(" ")) fill="none" stroke=(colour) stroke-width="1.5" {}
                    } @else if let Some(only) = path.first() {
                        @let (cx, cy) = only.split_once(',').unwrap_or(("0", "0"));
                        circle cx=(cx) cy=(cy) r="2.5" fill=(colour) {}
                    }
                }
            }
            figcaption {
                (chart.title) ": "
                @for (i, s) in chart.series.iter().enumerate() {
                    span style=(format!("color:{}", COLOURS[i % COLOURS.len()])) { (PreEscaped("&#9632; ")) (s.label) }
                    " "
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_its_series_inside_the_frame() {
        let chart = Chart {
            title: "loss".into(),
            series: vec![Series {
                label: "loss".into(),
                points: vec![(5.0, 2.0), (10.0, 1.0), (15.0, f64::NAN), (20.0, 0.5)],
            }],
            range: None,
        };
        let svg = svg_chart(&chart).into_string();
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap();
        let pairs: Vec<(f64, f64)> = points
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        // NaN left out; the highest value at the top, the lowest at the bottom.
        assert_eq!(pairs.len(), 3);
        assert!(
            pairs
                .iter()
                .all(|&(x, y)| (0.0..=420.0).contains(&x) && (0.0..=180.0).contains(&y))
        );
        assert!(pairs[0].1 < pairs[2].1);
        assert!(svg.contains("step 20"));
    }
}
