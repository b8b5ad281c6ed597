//! The Training pages: runs and the form that starts one, a run's live page,
//! cancel, and "use for search".

use axum::{
    Form,
    extract::{Path, Query, State},
    response::Response,
};
use buybuddy_templates::{
    datasets::Choice,
    format, paths,
    training::{
        self as view, Chart, CheckpointRow, Field, RunForm, RunLive, RunPage, RunRow, Series,
        TrainingPage,
    },
};
use maud::Markup;
use serde::Deserialize;

use super::{
    AppError, AppState, Viewer,
    htmx::{HxRequest, go_to},
};
use crate::{
    actions::{
        ActionError, FieldErrors,
        training::{self as act, RunView},
    },
    db,
    training::{AUGMENTS, LOSSES, RunConfig},
};

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

/// The number fields of the form: (field, label, hint).
const NUMBERS: &[(&str, &str, &str)] = &[
    ("epochs", "Epochs", "passes over the training frames"),
    ("p", "P (products per batch)", "products in each batch"),
    (
        "k",
        "K (frames per product)",
        "frames of each product in a batch",
    ),
    (
        "lr",
        "Learning rate",
        "peak, after the warm-up; cosine decay to 0",
    ),
    (
        "warmup_steps",
        "Warm-up steps",
        "linear from 0 to the learning rate",
    ),
    ("weight_decay", "Weight decay", "AdamW, matrices only"),
    (
        "frozen_blocks",
        "Frozen blocks",
        "first layers kept as they are; -1 trains the head only",
    ),
    (
        "head_dim",
        "Embedding dimension",
        "a linear head to this size; 0 for none",
    ),
    ("seed", "Seed", "the same seed gives the same run on a CPU"),
    (
        "log_every",
        "Log every (steps)",
        "a training point every this many steps",
    ),
    (
        "window",
        "Near-duplicate window",
        "frames this close to a query in its video are left out",
    ),
];

fn value_of(config: &RunConfig, field: &str) -> String {
    let json = serde_json::to_value(config).unwrap_or_default();
    match &json[field] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the form into settings, with a message per field that is not a number.
fn read_form(pairs: &[(String, String)]) -> (Option<String>, Option<i32>, RunConfig, FieldErrors) {
    let mut json = serde_json::to_value(RunConfig::default()).unwrap_or_default();
    let mut errors = FieldErrors::new();
    let mut name = None;
    let mut version = None;
    for (key, value) in pairs {
        let value = value.trim();
        match key.as_str() {
            "name" => name = Some(value.to_owned()),
            "version" => match value.parse() {
                Ok(v) => version = Some(v),
                Err(_) => {
                    errors.insert("version", "Pick a dataset version.".to_owned());
                }
            },
            "base" | "loss" | "augment" => json[key.as_str()] = value.into(),
            other => {
                if let Some((field, ..)) = NUMBERS.iter().find(|(f, ..)| *f == other) {
                    match value.parse::<f64>() {
                        Ok(number) if number.is_finite() => {
                            json[*field] = if *field == "lr" || *field == "weight_decay" {
                                serde_json::json!(number)
                            } else if number.fract() == 0.0 {
                                serde_json::json!(number as i64)
                            } else {
                                serde_json::json!(number)
                            };
                        }
                        _ => {
                            errors.insert(field, format!("{value:?} is not a number."));
                        }
                    }
                }
            }
        }
    }
    let config = match serde_json::from_value::<RunConfig>(json) {
        Ok(config) => config,
        Err(e) => {
            errors.insert("settings", format!("The settings cannot be read: {e}."));
            RunConfig::default()
        }
    };
    (name, version, config, errors)
}

async fn form(
    state: &AppState,
    name: &str,
    version: Option<i32>,
    config: &RunConfig,
) -> Result<RunForm, AppError> {
    let versions = db::training::trainable_versions(&state.pool).await?;
    let chosen = version.or_else(|| versions.first().map(|v| v.0));
    let mut bases = vec![
        Choice {
            value: "scratch:tiny".into(),
            label: "from scratch, tiny preset (112 px)".into(),
            selected: false,
        },
        Choice {
            value: "scratch:small".into(),
            label: "from scratch, small preset (224 px)".into(),
            selected: false,
        },
    ];
    for model in db::embeddings::list(&state.pool).await? {
        if model.model.kind == "dinov2" {
            bases.push(Choice {
                value: format!("model:{}", model.model.id),
                label: model.model.label(),
                selected: false,
            });
        }
    }
    let choices = |list: &[(&str, &str)], selected: &str| {
        list.iter()
            .map(|(value, label)| Choice {
                value: (*value).into(),
                label: (*label).into(),
                selected: *value == selected,
            })
            .collect()
    };
    Ok(RunForm {
        name: name.to_owned(),
        versions: versions
            .into_iter()
            .map(|(id, label)| Choice {
                value: id.to_string(),
                label,
                selected: Some(id) == chosen,
            })
            .collect(),
        bases,
        base: config.base.clone(),
        losses: choices(LOSSES, &config.loss),
        augments: choices(AUGMENTS, &config.augment),
        numbers: NUMBERS
            .iter()
            .map(|(field, label, hint)| Field {
                name: (*field).into(),
                label: (*label).into(),
                value: value_of(config, field),
                hint: (*hint).into(),
            })
            .collect(),
    })
}

async fn list_view(
    state: &AppState,
    form: RunForm,
    errors: FieldErrors,
    notice: Option<String>,
) -> Result<TrainingPage, AppError> {
    let rows = db::training::list(&state.pool, 200)
        .await?
        .into_iter()
        .map(|l| RunRow {
            id: l.run.id,
            dataset: format!("{} v{}", l.dataset_name, l.version_number),
            state: l.status.clone().unwrap_or_else(|| "queued".into()),
            progress: l.progress.unwrap_or(0),
            step: match l.run.total_steps {
                Some(total) => format!("{} / {total}", l.step),
                None => l.step.to_string(),
            },
            best: l
                .best_map_at_r
                .map_or_else(|| "–".into(), |m| format!("{m:.3}")),
            created: l.run.created_at.format("%Y-%m-%d %H:%M").to_string(),
            name: l.run.name,
        })
        .collect();
    Ok(TrainingPage {
        rows,
        form,
        errors: errors.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        notice,
    })
}

/// `GET /training`
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(notice): Query<Notice>,
) -> Result<Markup, AppError> {
    let config = RunConfig::default();
    let form = form(&state, "", None, &config).await?;
    let view = list_view(&state, form, FieldErrors::new(), notice.notice).await?;
    Ok(view::list_page(&viewer.0, &view))
}

/// `POST /training`: starts a run.
pub async fn start(
    State(state): State<AppState>,
    viewer: Viewer,
    htmx: HxRequest,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let (name, version, config, mut errors) = read_form(&pairs);
    if version.is_none() && !errors.contains_key("version") {
        errors.insert("version", "Pick a dataset version.".to_owned());
    }
    let result = match (errors.is_empty(), version) {
        (true, Some(version)) => {
            act::start(state.actions(), name.as_deref(), version, config.clone()).await
        }
        _ => Err(ActionError::Invalid(errors)),
    };
    let errors = match result {
        Ok(run) => {
            return Ok(go_to(
                &paths::with_id(paths::TRAINING_RUN, run.run.id),
                htmx,
            ));
        }
        Err(ActionError::Invalid(errors)) => errors,
        Err(ActionError::Conflict(message)) => FieldErrors::from([("version", message)]),
        Err(other) => return Err(other.into()),
    };
    let form = form(
        &state,
        name.as_deref().unwrap_or_default(),
        version,
        &config,
    )
    .await?;
    let view = list_view(&state, form, errors, None).await?;
    Ok(super::datasets::unprocessable(view::list_page(
        &viewer.0, &view,
    )))
}

fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

/// The live part of a run's page.
pub fn live_view(run: &RunView) -> RunLive {
    let listed = &run.run;
    let state = listed.status.clone().unwrap_or_else(|| "queued".into());
    let running = matches!(state.as_str(), "queued" | "running");
    let train: Vec<_> = run.metrics.iter().filter(|m| m.kind == "train").collect();
    let val: Vec<_> = run.metrics.iter().filter(|m| m.kind == "val").collect();
    let points = |f: &dyn Fn(&db::training::Metric) -> Option<f64>,
                  rows: &[&db::training::Metric]| {
        rows.iter()
            .filter_map(|m| f(m).map(|v| (f64::from(m.step), v)))
            .collect::<Vec<_>>()
    };
    let charts = vec![
        Chart {
            title: "Training loss".into(),
            series: vec![Series {
                label: "loss".into(),
                points: points(&|m| m.loss, &train),
            }],
            range: None,
        },
        Chart {
            title: "Learning rate".into(),
            series: vec![Series {
                label: "lr".into(),
                points: points(&|m| m.lr, &train),
            }],
            range: None,
        },
        Chart {
            title: "Validation (unseen products)".into(),
            series: vec![
                Series {
                    label: "recall@1".into(),
                    points: points(&|m| m.recall_at_1, &val),
                },
                Series {
                    label: "recall@5".into(),
                    points: points(&|m| m.recall_at_5, &val),
                },
                Series {
                    label: "mAP@R".into(),
                    points: points(&|m| m.map_at_r, &val),
                },
            ],
            range: Some((0.0, 1.0)),
        },
    ];
    let total = listed.run.total_steps.unwrap_or(0);
    let batch = listed
        .run
        .data
        .as_ref()
        .and_then(|d| d.get("batch"))
        .and_then(|b| b.as_f64())
        .unwrap_or(0.0);
    let last_speed = train.last().and_then(|m| m.images_per_s);
    let eta = match (running, last_speed) {
        (true, Some(speed)) if speed > 0.0 && batch > 0.0 && total > listed.step => {
            let seconds = f64::from(total - listed.step) * batch / speed;
            Some(format::duration(std::time::Duration::from_secs_f64(
                seconds,
            )))
        }
        _ => None,
    };
    let baseline = listed
        .run
        .baseline
        .as_ref()
        .map(|b| {
            let mut rows = Vec::new();
            for (key, label) in [("base", "Base model"), ("classic", "Classic descriptor")] {
                let get = |name: &str| b[key][name].as_f64();
                rows.push((
                    label.to_owned(),
                    format!(
                        "recall@1 {} · recall@5 {} · mAP@R {}",
                        figure(get("recall_at_1")),
                        figure(get("recall_at_5")),
                        figure(get("map_at_r"))
                    ),
                ));
            }
            rows
        })
        .unwrap_or_default();
    RunLive {
        id: listed.run.id,
        progress: listed.progress.unwrap_or(0),
        stage: listed
            .stage
            .clone()
            .unwrap_or_else(|| "waiting for a worker".into()),
        step: if total > 0 {
            format!("{} of {total}", listed.step)
        } else {
            listed.step.to_string()
        },
        eta,
        speed: last_speed.map(|s| format!("{s:.1} images/s")),
        error: listed.error_message.clone().filter(|_| !running),
        running,
        charts,
        validation: val
            .iter()
            .map(|m| {
                [
                    m.step.to_string(),
                    m.epoch.to_string(),
                    figure(m.recall_at_1),
                    figure(m.recall_at_5),
                    figure(m.map_at_r),
                ]
            })
            .collect(),
        train: train
            .iter()
            .map(|m| {
                [
                    m.step.to_string(),
                    m.epoch.to_string(),
                    m.loss.map_or_else(|| "–".into(), |v| format!("{v:.4}")),
                    m.lr.map_or_else(|| "–".into(), |v| format!("{v:.2e}")),
                    m.images_per_s
                        .map_or_else(|| "–".into(), |v| format!("{v:.1}")),
                ]
            })
            .collect(),
        baseline,
        checkpoints: run
            .checkpoints
            .iter()
            .map(|c| CheckpointRow {
                step: c.step,
                epoch: c.epoch,
                reason: c.reason.clone(),
                size: format::bytes(c.size),
                map_at_r: figure(c.map_at_r),
                created: c.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
            .collect(),
        model: run.model.as_ref().map(|m| (m.label(), m.active)),
        state,
    }
}

fn page_view(run: &RunView, notice: Option<String>) -> RunPage {
    let listed = &run.run;
    let settings = match &listed.run.config {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        _ => Vec::new(),
    };
    let data = match &listed.run.data {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.replace('_', " "), v.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    RunPage {
        id: listed.run.id,
        name: listed.run.name.clone(),
        dataset: format!("{} v{}", listed.dataset_name, listed.version_number),
        dataset_url: paths::with_id(paths::DATASET, listed.dataset_id),
        job_url: listed.run.job_id.map(|j| paths::with_id(paths::JOB, j)),
        job_topic: listed.run.job_id.map(|j| format!("job:{j}")),
        settings,
        data,
        protocol: run.protocol.clone(),
        live: live_view(run),
        notice,
    }
}

/// `GET /training/{id}`
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i32>,
    Query(notice): Query<Notice>,
) -> Result<Markup, AppError> {
    let run = act::view(state.actions(), id).await?;
    Ok(view::page(&viewer.0, &page_view(&run, notice.notice)))
}

/// `GET /fragments/training/{id}`
pub async fn live(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i32>,
) -> Result<Markup, AppError> {
    let run = act::view(state.actions(), id).await?;
    Ok(view::render_live(
        &viewer.0,
        &live_view(&run),
        &paths::with_id(paths::TRAINING_RUN_LIVE, id),
    ))
}

fn with_notice(id: i32, notice: &str) -> String {
    format!(
        "{}?notice={}",
        paths::with_id(paths::TRAINING_RUN, id),
        format::encode(notice)
    )
}

/// `POST /training/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    act::cancel(state.actions(), id).await?;
    Ok(go_to(
        &with_notice(id, "Cancelled; the last checkpoint is kept."),
        htmx,
    ))
}

/// `POST /training/{id}/use`
pub async fn use_for_search(
    State(state): State<AppState>,
    htmx: HxRequest,
    Path(id): Path<i32>,
) -> Result<Response, AppError> {
    let (model, queued) = act::use_for_search(state.actions(), id).await?;
    Ok(go_to(
        &with_notice(
            id,
            &format!(
                "{} is now the active model: {queued} products are being embedded again; search \
                 answers from the model before until they are done.",
                model.label()
            ),
        ),
        htmx,
    ))
}
