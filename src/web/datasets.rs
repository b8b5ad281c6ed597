//! The Datasets pages: the list and the new-dataset form, a dataset's page
//! (settings, the live augmentation preview, versions and exports), the
//! streamed download of an export, and background uploads.

use std::time::Instant;

use axum::{
    Form,
    body::Body,
    extract::{Multipart, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use buybuddy_dataset::{
    augment::{BackgroundKind, Ranged},
    plan::Task,
    split::Rule,
};
use buybuddy_domain::ProductStatus;
use buybuddy_templates::{
    datasets::{
        self as view, BackgroundView, Choice, DatasetPage, DatasetRow, DatasetsPage, DrawView,
        ExportView, NewForm, NumberField, PreviewGrid, SettingsForm, SplitRow, TransformRow,
        VersionView,
    },
    format, paths,
};
use maud::Markup;
use serde::Deserialize;

use super::{
    AppError, AppState, Viewer,
    error::OwnBody,
    htmx::{HxRequest, go_to},
};
use crate::{
    actions::{
        ActionError, FieldErrors,
        datasets::{self as act, DatasetInput},
    },
    db::{self, datasets::Dataset},
};

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

/// The form fields that belong to a dataset's input (not the CSRF token or
/// the preview seed).
fn input_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter(|(k, _)| {
            k == "name"
                || k == "task"
                || k.starts_with("selection.")
                || k.starts_with("settings.")
                || k.starts_with("render.")
        })
        .cloned()
        .collect()
}

/// Reads a submitted form; unchecked checkbox groups mean "none".
fn read_form(pairs: &[(String, String)], base: &DatasetInput) -> Result<DatasetInput, ActionError> {
    let mut pairs = input_pairs(pairs);
    // An empty checkbox group sends nothing: when the form has the group's
    // section, that means none checked.
    for (list, section) in [
        ("selection.statuses", "selection."),
        ("render.augment.background_kinds", "render.augment."),
    ] {
        let has_section = pairs.iter().any(|(k, _)| k.starts_with(section));
        if has_section && !pairs.iter().any(|(k, _)| k == list) {
            pairs.push((list.to_owned(), String::new()));
        }
    }
    let mut value = serde_json::to_value(base).map_err(|e| ActionError::Internal(e.into()))?;
    merge(&mut value, act::nest_form(&pairs));
    act::read_input(value)
}

/// Lays `patch` over `base`, object by object.
fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (k, v) in patch {
                merge(base.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (base, patch) => *base = patch,
    }
}

fn task_choices(selected: &str) -> Vec<Choice> {
    Task::ALL
        .iter()
        .map(|t| Choice {
            value: t.as_str().into(),
            label: t.label().into(),
            selected: t.as_str() == selected,
        })
        .collect()
}

fn status_choices(selected: &[String]) -> Vec<Choice> {
    ProductStatus::ALL
        .iter()
        .map(|s| Choice {
            value: s.as_str().into(),
            label: format::label(s.as_str()),
            selected: selected.iter().any(|x| x == s.as_str()),
        })
        .collect()
}

async fn backgrounds(state: &AppState) -> Result<Vec<BackgroundView>, AppError> {
    Ok(db::datasets::backgrounds(&state.pool)
        .await?
        .into_iter()
        .map(|b| BackgroundView {
            url: paths::media(&b.storage_key),
            size: format!("{}x{}", b.width, b.height),
            name: b.name,
        })
        .collect())
}

async fn list_view(
    state: &AppState,
    form: NewForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<DatasetsPage, AppError> {
    let rows = db::datasets::list(&state.pool)
        .await?
        .into_iter()
        .map(|l| DatasetRow {
            id: l.dataset.id,
            task: l.dataset.task().label().into(),
            name: l.dataset.name,
            versions: l.versions,
            created: l.dataset.created_at.format("%Y-%m-%d %H:%M").to_string(),
        })
        .collect();
    Ok(DatasetsPage {
        rows,
        form,
        errors: errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        backgrounds: backgrounds(state).await?,
        notice,
    })
}

fn new_form(input: &DatasetInput) -> NewForm {
    NewForm {
        name: input.name.clone(),
        tasks: task_choices(if input.task.is_empty() {
            "detect"
        } else {
            &input.task
        }),
        statuses: status_choices(&input.selection.statuses),
        categories: input.selection.categories.join(", "),
        products: input.selection.products.join("\n"),
    }
}

/// `GET /datasets`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(notice): Query<Notice>,
) -> Result<Markup, AppError> {
    let view = list_view(
        &state,
        new_form(&DatasetInput::default()),
        FieldErrors::new(),
        notice.notice,
    )
    .await?;
    Ok(view::list_page(&viewer.0, &view))
}

/// `POST /datasets`: creates a dataset with default settings.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let input = read_form(&pairs, &DatasetInput::default());
    let result = match &input {
        Ok(input) => act::create(state.actions(), input).await,
        Err(_) => Err(ActionError::field(
            "settings",
            "The form could not be read.",
        )),
    };
    match result {
        Ok(dataset) => Ok(go_to(&paths::with_id(paths::DATASET, dataset.id), htmx)),
        Err(ActionError::Invalid(errors)) => {
            let input = input.unwrap_or_default();
            let view = list_view(&state, new_form(&input), errors, None).await?;
            Ok(unprocessable(view::list_page(&viewer.0, &view)))
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) fn unprocessable(markup: Markup) -> Response {
    let mut response = (StatusCode::UNPROCESSABLE_ENTITY, markup).into_response();
    response.extensions_mut().insert(OwnBody);
    response
}

fn ranged(
    name: &str,
    label: &str,
    unit: &str,
    r: &Ranged,
    bounds: [f64; 2],
    step: &str,
) -> TransformRow {
    let field = |suffix: &str, label: &str, value: f64| NumberField {
        name: format!("render.augment.{name}.{suffix}"),
        label: label.into(),
        value: trim(value),
        min: trim(bounds[0]),
        max: trim(bounds[1]),
        step: step.into(),
    };
    TransformRow {
        label: label.into(),
        unit: unit.into(),
        p: NumberField {
            min: "0".into(),
            max: "1".into(),
            step: "0.05".into(),
            ..field("p", "probability", r.p)
        },
        range: Some((
            field("range.0", "from", r.range[0]),
            field("range.1", "to", r.range[1]),
        )),
    }
}

/// A number as short as it can be written.
fn trim(x: f64) -> String {
    let text = format!("{x:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

fn number(name: &str, label: &str, value: f64, min: f64, max: f64, step: &str) -> NumberField {
    NumberField {
        name: name.into(),
        label: label.into(),
        value: trim(value),
        min: trim(min),
        max: trim(max),
        step: step.into(),
    }
}

fn kind_choices(selected: &[BackgroundKind]) -> Vec<Choice> {
    [
        (BackgroundKind::Solid, "solid", "a solid colour"),
        (BackgroundKind::Texture, "texture", "a generated texture"),
        (BackgroundKind::Image, "image", "an uploaded image"),
    ]
    .into_iter()
    .map(|(k, value, label)| Choice {
        value: value.into(),
        label: label.into(),
        selected: selected.contains(&k),
    })
    .collect()
}

/// The settings form for an input.
fn settings_form(input: &DatasetInput, preview_seed: u64) -> SettingsForm {
    let s = &input.settings;
    let a = &input.render.augment;
    let shelf = &input.render.shelf;
    SettingsForm {
        statuses: status_choices(&input.selection.statuses),
        categories: input.selection.categories.join(", "),
        products: input.selection.products.join("\n"),
        plan: vec![
            number(
                "settings.ratios.train",
                "train",
                s.ratios.train,
                0.0,
                1.0,
                "0.05",
            ),
            number("settings.ratios.val", "val", s.ratios.val, 0.0, 1.0, "0.05"),
            number(
                "settings.ratios.test",
                "test",
                s.ratios.test,
                0.0,
                1.0,
                "0.05",
            ),
            number("settings.seed", "seed", s.seed as f64, 0.0, 1e12, "1"),
            number(
                "settings.copies",
                "augmented copies per train frame",
                f64::from(s.copies),
                0.0,
                20.0,
                "1",
            ),
            number(
                "settings.composites",
                "shelf composites",
                f64::from(s.composites),
                0.0,
                100_000.0,
                "1",
            ),
            number(
                "settings.per_composite",
                "frames per composite",
                f64::from(s.per_composite),
                1.0,
                40.0,
                "1",
            ),
        ],
        transforms: vec![
            ranged(
                "rotate",
                "Rotation",
                "degrees",
                &a.rotate,
                [-180.0, 180.0],
                "1",
            ),
            ranged(
                "scale",
                "Scale (zoom and crop)",
                "factor",
                &a.scale,
                [0.1, 4.0],
                "0.05",
            ),
            ranged(
                "shift",
                "Shift",
                "share of the side",
                &a.shift,
                [-0.5, 0.5],
                "0.01",
            ),
            ranged(
                "brightness",
                "Brightness",
                "added, share of full scale",
                &a.brightness,
                [-1.0, 1.0],
                "0.05",
            ),
            ranged(
                "contrast",
                "Contrast",
                "factor",
                &a.contrast,
                [0.0, 4.0],
                "0.05",
            ),
            ranged(
                "saturation",
                "Saturation",
                "factor",
                &a.saturation,
                [0.0, 4.0],
                "0.05",
            ),
            ranged("hue", "Hue", "degrees", &a.hue, [-180.0, 180.0], "1"),
            ranged("blur", "Blur", "radius, px", &a.blur, [0.0, 20.0], "0.5"),
            ranged(
                "noise",
                "Noise",
                "std. dev., levels",
                &a.noise,
                [0.0, 100.0],
                "1",
            ),
            ranged("jpeg", "JPEG quality", "1-100", &a.jpeg, [1.0, 100.0], "1"),
            TransformRow {
                label: "Horizontal flip".into(),
                unit: String::new(),
                p: number(
                    "render.augment.flip",
                    "probability",
                    a.flip,
                    0.0,
                    1.0,
                    "0.05",
                ),
                range: None,
            },
        ],
        background: Some(number(
            "render.augment.background",
            "background swap probability",
            a.background,
            0.0,
            1.0,
            "0.05",
        )),
        background_kinds: kind_choices(&a.background_kinds),
        shelf: vec![
            number(
                "render.shelf.width",
                "width",
                f64::from(shelf.width),
                64.0,
                4096.0,
                "1",
            ),
            number(
                "render.shelf.height",
                "height",
                f64::from(shelf.height),
                64.0,
                4096.0,
                "1",
            ),
            number(
                "render.shelf.rows.0",
                "shelves from",
                f64::from(shelf.rows[0]),
                1.0,
                8.0,
                "1",
            ),
            number(
                "render.shelf.rows.1",
                "shelves to",
                f64::from(shelf.rows[1]),
                1.0,
                8.0,
                "1",
            ),
            number(
                "render.shelf.max_objects",
                "products at most",
                f64::from(shelf.max_objects),
                1.0,
                200.0,
                "1",
            ),
            number(
                "render.shelf.scale.0",
                "height from",
                shelf.scale[0],
                0.05,
                1.0,
                "0.05",
            ),
            number(
                "render.shelf.scale.1",
                "height to",
                shelf.scale[1],
                0.05,
                1.0,
                "0.05",
            ),
            number(
                "render.shelf.overlap.0",
                "overlap from",
                shelf.overlap[0],
                0.0,
                0.95,
                "0.05",
            ),
            number(
                "render.shelf.overlap.1",
                "overlap to",
                shelf.overlap[1],
                0.0,
                0.95,
                "0.05",
            ),
        ],
        shelf_backgrounds: kind_choices(&[shelf.background]),
        real_splits: (Task::parse(input.task.trim()) == Some(Task::Recognition)).then(|| {
            [
                ("settings.real.train", "train", s.real.train),
                ("settings.real.val", "val", s.real.val),
                ("settings.real.test", "test", s.real.test),
            ]
            .into_iter()
            .map(|(value, label, on)| Choice {
                value: value.into(),
                label: label.into(),
                selected: on,
            })
            .collect()
        }),
        preview_seed,
    }
}

fn rule_text(task: Task) -> String {
    let rule = task.rule();
    let name = match rule {
        Rule::ByProduct => "By product",
        Rule::FrameBlocks => "By contiguous frame blocks",
    };
    format!("{name} — {}.", rule.describe())
}

async fn versions_view(state: &AppState, dataset: &Dataset) -> Result<Vec<VersionView>, AppError> {
    let mut out = Vec::new();
    for v in db::datasets::versions(&state.pool, dataset.id).await? {
        let splits = db::datasets::split_counts(&state.pool, v.version.id).await?;
        let exports = db::datasets::exports(&state.pool, v.version.id).await?;
        let failed = matches!(v.job_status.as_deref(), Some("failed" | "cancelled"));
        let state_text = if v.ready() {
            "ready".to_owned()
        } else if failed {
            v.job_status.clone().unwrap_or_default()
        } else {
            "rendering".to_owned()
        };
        let number = v.version.number;
        out.push(VersionView {
            number,
            created: v.version.created_at.format("%Y-%m-%d %H:%M").to_string(),
            ready: v.ready(),
            state: state_text,
            rendered: v.rendered,
            images: v.images,
            error: if failed {
                Some(
                    v.job_error
                        .clone()
                        .unwrap_or_else(|| "The render job stopped.".into()),
                )
            } else {
                None
            },
            job: v.version.job_id.map(|j| paths::with_id(paths::JOB, j)),
            rule: match v.version.rule.as_str() {
                "frame_blocks" => "split by frame blocks".into(),
                _ => "split by product".into(),
            },
            guard_frames: v.version.guard_frames,
            classes: v.version.classes.len(),
            splits: splits
                .into_iter()
                .map(|s| SplitRow {
                    real: s.real,
                    split: s.split,
                    products: s.products,
                    frames: s.frames,
                    augmented: s.augmented,
                    composites: s.composites,
                    images: s.images,
                    boxes: s.boxes,
                })
                .collect(),
            exports: exports
                .iter()
                .map(|e| ExportView {
                    id: e.id,
                    format: e.format.clone(),
                    state: e.state().to_owned(),
                    progress: e.job_progress.unwrap_or(0),
                    size: e.size.map(format::bytes),
                    sha256: e.sha256.as_ref().map(|s| s[..12.min(s.len())].to_owned()),
                    download: e
                        .ready()
                        .then(|| paths::with_id(paths::DATASET_DOWNLOAD, e.id)),
                    job: e.job_id.map(|j| paths::with_id(paths::JOB, j)),
                    error: if e.ready() { None } else { e.job_error.clone() },
                })
                .collect(),
            formats: act::formats_for(v.version.task())
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            export_action: paths::with_version(paths::DATASET_EXPORTS, dataset.id, number),
            render_action: paths::with_version(paths::DATASET_VERSION_RENDER, dataset.id, number),
        });
    }
    Ok(out)
}

async fn page_view(
    state: &AppState,
    dataset: &Dataset,
    input: &DatasetInput,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<DatasetPage, AppError> {
    Ok(DatasetPage {
        id: dataset.id,
        name: dataset.name.clone(),
        task: dataset.task().label().into(),
        rule: rule_text(dataset.task()),
        form: settings_form(input, dataset.settings.seed),
        errors: errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        versions: versions_view(state, dataset).await?,
        notice,
    })
}

async fn dataset(state: &AppState, id: i32) -> Result<Dataset, AppError> {
    Ok(act::find(state.actions(), &id.to_string()).await?)
}

/// `GET /datasets/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i32>,
    Query(notice): Query<Notice>,
) -> Result<Markup, AppError> {
    let dataset = dataset(&state, id).await?;
    let input = DatasetInput::of(&dataset, act::barcodes(state.actions(), &dataset).await?);
    let view = page_view(&state, &dataset, &input, FieldErrors::new(), notice.notice).await?;
    Ok(view::page(&viewer.0, &view))
}

/// `POST /datasets/{id}`: saves the settings.
pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Path(id): Path<i32>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let dataset = dataset(&state, id).await?;
    let saved = DatasetInput::of(&dataset, act::barcodes(state.actions(), &dataset).await?);
    let (input, result) = match read_form(&pairs, &saved) {
        Ok(input) => {
            let result = act::update(state.actions(), &dataset, &input).await;
            (input, result)
        }
        Err(error) => (saved, Err(error)),
    };
    match result {
        Ok(_) => Ok(go_to(
            &format!(
                "{}?notice=Settings+saved.+Generate+a+version+to+use+them.",
                paths::with_id(paths::DATASET, id)
            ),
            htmx,
        )),
        Err(ActionError::Invalid(errors)) => {
            let view = page_view(&state, &dataset, &input, errors, None).await?;
            Ok(unprocessable(view::page(&viewer.0, &view)))
        }
        Err(other) => Err(other.into()),
    }
}

/// `POST /fragments/datasets/{id}/preview`: the grid for the form's settings
/// (saved or not).
pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<i32>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Markup, AppError> {
    let dataset = dataset(&state, id).await?;
    let saved = DatasetInput::of(&dataset, act::barcodes(state.actions(), &dataset).await?);
    let seed = pairs
        .iter()
        .find(|(k, _)| k == "preview_seed")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(dataset.settings.seed);
    let started = Instant::now();
    let drawn = match read_form(&pairs, &saved) {
        Ok(input) => act::preview(state.actions(), &dataset, &input, seed, 8).await,
        Err(error) => Err(error),
    };
    let grid = match drawn {
        Ok(draws) => PreviewGrid {
            seed,
            draws: draws
                .into_iter()
                .map(|d| DrawView {
                    boxes: d.objects.len(),
                    label: d.label,
                    kind: d.kind.into(),
                    seed: d.seed,
                    original: d.original,
                    draw: d.draw,
                })
                .collect(),
            error: None,
            millis: started.elapsed().as_millis(),
        },
        Err(ActionError::Internal(error)) => return Err(AppError::Internal(error)),
        Err(error) => PreviewGrid {
            seed,
            error: Some(error.to_string()),
            ..PreviewGrid::default()
        },
    };
    Ok(view::render_preview(&grid))
}

/// `GET /fragments/datasets/{id}/versions`: the versions panel (live).
pub async fn versions_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i32>,
) -> Result<Markup, AppError> {
    let dataset = dataset(&state, id).await?;
    Ok(view::render_versions(
        &viewer.0,
        &versions_view(&state, &dataset).await?,
        &paths::with_id(paths::DATASET_VERSIONS_LIST, id),
    ))
}

fn with_notice(path: String, notice: &str) -> String {
    format!("{path}?notice={}", format::encode(notice))
}

/// `POST /datasets/{id}/versions`: generates a version.
pub async fn generate(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    let dataset = dataset(&state, id).await?;
    let (version, _) = act::generate(state.actions(), &dataset).await?;
    Ok(go_to(
        &with_notice(
            paths::with_id(paths::DATASET, id),
            &format!("Version {} is being rendered.", version.number),
        ),
        htmx,
    ))
}

/// `POST /datasets/{id}/versions/{number}/render`: renders a version again
/// after its job failed (what was rendered stays).
pub async fn render_again(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path((id, number)): Path<(i32, i32)>,
) -> Result<Response, AppError> {
    let dataset = dataset(&state, id).await?;
    let version = act::version(state.actions(), &dataset, number).await?;
    act::render_version(state.actions(), &version.version).await?;
    Ok(go_to(
        &with_notice(
            paths::with_id(paths::DATASET, id),
            &format!("Version {number} is being rendered again."),
        ),
        htmx,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    format: String,
}

/// `POST /datasets/{id}/versions/{number}/exports`
pub async fn export(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path((id, number)): Path<(i32, i32)>,
    Form(form): Form<ExportForm>,
) -> Result<Response, AppError> {
    let dataset = dataset(&state, id).await?;
    let format = act::parse_format(&form.format)?;
    let (export, _) = act::export(state.actions(), &dataset, number, format).await?;
    Ok(go_to(
        &with_notice(
            paths::with_id(paths::DATASET, id),
            &format!("Export #{export} of version {number} is being written."),
        ),
        htmx,
    ))
}

/// `GET /datasets/exports/{id}/download` (and the API's download): the
/// archive streamed from storage, never held whole in memory.
pub async fn download(
    State(state): State<AppState>,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    let (export, stream) = act::download(state.actions(), id).await?;
    let version = db::datasets::version(&state.pool, export.version_id)
        .await?
        .ok_or_else(|| AppError::NotFound("The export's version is gone.".into()))?;
    let dataset = dataset(&state, version.dataset_id).await?;
    let name = act::download_name(&dataset, &version, &export);
    let mut response = Response::new(Body::from_stream(stream.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/zip".parse().expect("valid"),
    );
    headers.insert(header::CONTENT_LENGTH, stream.size.into());
    if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(sha) = &export.sha256
        && let Ok(value) = format!("\"{sha}\"").parse()
    {
        headers.insert(header::ETAG, value);
    }
    Ok(response)
}

/// Reads the `background` file of a multipart form: its name and bytes.
pub async fn background_field(
    multipart: &mut Multipart,
) -> Result<(String, bytes::Bytes), AppError> {
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}")))?
    {
        if field.name() == Some("background") {
            let name = field.file_name().unwrap_or("background").to_owned();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}")))?;
            return Ok((name, bytes));
        }
    }
    Ok((String::new(), bytes::Bytes::new()))
}

/// `POST /datasets/backgrounds` (multipart)
pub async fn upload_background(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    mut multipart: Multipart,
) -> Result<Response, AppError> {
    let (name, bytes) = background_field(&mut multipart).await?;
    match act::add_background(state.actions(), &name, bytes).await {
        Ok(b) => Ok(go_to(
            &with_notice(
                paths::DATASETS.to_owned(),
                &format!(
                    "Background {:?} uploaded ({}x{}).",
                    b.name, b.width, b.height
                ),
            ),
            htmx,
        )),
        Err(ActionError::Invalid(errors)) => {
            let view = list_view(&state, new_form(&DatasetInput::default()), errors, None).await?;
            Ok(unprocessable(view::list_page(&viewer.0, &view)))
        }
        Err(other) => Err(other.into()),
    }
}
