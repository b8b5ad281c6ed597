//! Datasets: create one and change its settings, preview its augmentation,
//! generate a version (the snapshot and its render job), export a version,
//! open an export for download, and upload background images.

use std::{collections::BTreeMap, io::Cursor};

use anyhow::anyhow;
use base64::Engine;
use buybuddy_dataset::{
    augment::{BackgroundKind, Ranged, decode_background},
    export::{Format, Object},
    plan::{self, Kind, PlanError, Task},
    render::{self, Source},
};
use buybuddy_domain::{Barcode, ProductStatus};
use buybuddy_worker::storage::{ObjectStream, StorageError};
use bytes::Bytes;
use image::{RgbImage, imageops::FilterType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ActionError, Ctx, FieldErrors, capitalised};
use crate::{
    db::{
        self,
        datasets::{
            Class, Dataset, Export, ItemRow, ItemSource, NewDataset, NewItem, RenderSettings,
            SelectedFrame, Selection, Version,
        },
    },
    jobs::{self, JobSpec},
    queue::{self, Enqueue},
};

/// A dataset as people and scripts describe it; every part but the name has
/// a default that works.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DatasetInput {
    pub name: String,
    pub task: String,
    pub selection: SelectionInput,
    pub settings: plan::Settings,
    pub render: RenderSettings,
}

/// Which products: statuses, categories, and products by id or barcode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SelectionInput {
    pub statuses: Vec<String>,
    pub categories: Vec<String>,
    pub products: Vec<String>,
}

impl Default for SelectionInput {
    fn default() -> Self {
        let selection = Selection::default();
        Self {
            statuses: selection.statuses,
            categories: Vec::new(),
            products: Vec::new(),
        }
    }
}

impl DatasetInput {
    /// The input that gives back a dataset's current settings.
    pub fn of(dataset: &Dataset, barcodes: Vec<String>) -> Self {
        Self {
            name: dataset.name.clone(),
            task: dataset.task.clone(),
            selection: SelectionInput {
                statuses: dataset.selection.statuses.clone(),
                categories: dataset.selection.categories.clone(),
                products: barcodes,
            },
            settings: dataset.settings.0,
            render: dataset.render.0.clone(),
        }
    }
}

/// The longest dataset name.
pub const MAX_NAME: usize = 100;

/// Reads a flat form (`settings.ratios.train=0.8`, repeated keys for lists)
/// into the nested shape [`DatasetInput`] has. List fields also take one
/// value separated by commas or new lines.
pub fn nest_form(pairs: &[(String, String)]) -> Value {
    const LISTS: [&str; 4] = [
        "selection.statuses",
        "selection.categories",
        "selection.products",
        "render.augment.background_kinds",
    ];
    const TEXT: [&str; 2] = ["name", "task"];
    let mut root = serde_json::Map::new();
    for (key, value) in pairs {
        let leaf = if LISTS.contains(&key.as_str()) {
            let items: Vec<Value> = value
                .split([',', '\n'])
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_owned()))
                .collect();
            Value::Array(items)
        } else if TEXT.contains(&key.as_str()) {
            Value::String(value.clone())
        } else if let Ok(flag) = value.trim().parse::<bool>() {
            Value::Bool(flag)
        } else if let Ok(n) = value.trim().parse::<u64>() {
            json!(n)
        } else if let Ok(x) = value.trim().parse::<f64>() {
            json!(x)
        } else {
            Value::String(value.clone())
        };
        let mut node = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Default::default()))
                .as_object_mut()
                .expect("form keys nest consistently");
        }
        let last = parts[parts.len() - 1].to_owned();
        match (node.get_mut(&last), leaf) {
            (Some(Value::Array(list)), Value::Array(more)) => list.extend(more),
            (_, leaf) => {
                node.insert(last, leaf);
            }
        }
    }
    let mut value = Value::Object(root);
    numbered_to_arrays(&mut value);
    value
}

/// `{"0": a, "1": b}` (from fields `range.0`, `range.1`) becomes `[a, b]`.
fn numbered_to_arrays(value: &mut Value) {
    if let Value::Object(map) = value {
        for v in map.values_mut() {
            numbered_to_arrays(v);
        }
        let indexed = !map.is_empty() && (0..map.len()).all(|i| map.contains_key(&i.to_string()));
        if indexed {
            let items = (0..map.len())
                .map(|i| map.remove(&i.to_string()).unwrap_or(Value::Null))
                .collect();
            *value = Value::Array(items);
        }
    }
}

/// Reads a nested form or JSON body; a value of the wrong type is a message.
pub fn read_input(value: Value) -> Result<DatasetInput, ActionError> {
    serde_json::from_value(value).map_err(|e| ActionError::field("settings", format!("{e}.")))
}

/// Checks a dataset's input; returns the parsed task, the selection with
/// products resolved to ids, and every problem by field.
async fn check(ctx: Ctx<'_>, input: &DatasetInput) -> Result<(Task, Selection), ActionError> {
    let mut errors = FieldErrors::new();
    let name = input.name.trim();
    if name.is_empty() {
        errors.insert("name", "Give the dataset a name.".into());
    } else if name.chars().count() > MAX_NAME {
        errors.insert("name", format!("A name has at most {MAX_NAME} characters."));
    }
    let task = Task::parse(input.task.trim())
        .or_else(|| input.task.trim().is_empty().then_some(Task::Detect));
    if task.is_none() {
        let names: Vec<&str> = Task::ALL.iter().map(|t| t.as_str()).collect();
        errors.insert(
            "task",
            format!(
                "{:?} is not a task; tasks are {}.",
                input.task,
                names.join(", ")
            ),
        );
    }
    let statuses: Vec<String> = input
        .selection
        .statuses
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if statuses.is_empty() {
        errors.insert(
            "selection.statuses",
            "Take products of at least one status.".into(),
        );
    }
    if let Some(bad) = statuses
        .iter()
        .find(|s| s.parse::<ProductStatus>().is_err())
    {
        errors.insert(
            "selection.statuses",
            format!("{bad:?} is not a product status."),
        );
    }
    let mut products = Vec::new();
    let mut unknown = Vec::new();
    for given in input
        .selection
        .products
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        if let Ok(id) = Uuid::parse_str(given) {
            match db::products::get(ctx.pool, id).await? {
                Some(_) => products.push(id),
                None => unknown.push(given.to_owned()),
            }
        } else if let Ok(barcode) = Barcode::parse(given) {
            match db::products::by_barcode(ctx.pool, barcode.as_str()).await? {
                Some((id, _)) => products.push(id),
                None => unknown.push(given.to_owned()),
            }
        } else {
            unknown.push(given.to_owned());
        }
    }
    if !unknown.is_empty() {
        errors.insert(
            "selection.products",
            format!("No product has the id or barcode {}.", unknown.join(", ")),
        );
    }
    if let Err(e) = input.settings.ratios.validate() {
        errors.insert(
            "settings.ratios",
            format!("{}.", capitalised(&e.to_string())),
        );
    }
    let s = &input.settings;
    if s.copies > plan::MAX_COPIES {
        errors.insert(
            "settings.copies",
            format!("At most {} augmented copies per frame.", plan::MAX_COPIES),
        );
    }
    if s.composites > plan::MAX_COMPOSITES {
        errors.insert(
            "settings.composites",
            format!("At most {} composites per version.", plan::MAX_COMPOSITES),
        );
    }
    if !(1..=40).contains(&s.per_composite) {
        errors.insert(
            "settings.per_composite",
            "A composite takes 1 to 40 products.".into(),
        );
    }
    if s.real.any() && task.is_some_and(|t| t != Task::Recognition) {
        errors.insert(
            "settings.real",
            "Real shelf crops are images of one product each, without a mask; only a recognition \
             dataset takes them."
                .into(),
        );
    }
    if task == Some(Task::Recognition) && s.composites > 0 {
        errors.insert(
            "settings.composites",
            "Shelf composites are detection images; set them to 0 for recognition.".into(),
        );
    }
    check_render(&input.render, &mut errors);
    if !errors.is_empty() {
        return Err(ActionError::Invalid(errors));
    }
    Ok((
        task.expect("checked"),
        Selection {
            statuses,
            categories: input
                .selection
                .categories
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            products,
        },
    ))
}

/// Every transform's probability in 0..1 and its range in bounds.
fn check_render(render: &RenderSettings, errors: &mut FieldErrors) {
    let a = &render.augment;
    let ranged: [(&'static str, &Ranged, f64, f64); 10] = [
        ("render.augment.rotate", &a.rotate, -180.0, 180.0),
        ("render.augment.scale", &a.scale, 0.1, 4.0),
        ("render.augment.shift", &a.shift, -0.5, 0.5),
        ("render.augment.brightness", &a.brightness, -1.0, 1.0),
        ("render.augment.contrast", &a.contrast, 0.0, 4.0),
        ("render.augment.saturation", &a.saturation, 0.0, 4.0),
        ("render.augment.hue", &a.hue, -180.0, 180.0),
        ("render.augment.blur", &a.blur, 0.0, 20.0),
        ("render.augment.noise", &a.noise, 0.0, 100.0),
        ("render.augment.jpeg", &a.jpeg, 1.0, 100.0),
    ];
    for (field, r, lo, hi) in ranged {
        let name = field.rsplit('.').next().unwrap_or(field);
        if !(0.0..=1.0).contains(&r.p) {
            errors.insert(
                field,
                format!("The {name} probability must be between 0 and 1."),
            );
        } else if !(r.range[0].is_finite() && r.range[1].is_finite())
            || r.range[0] > r.range[1]
            || r.range[0] < lo
            || r.range[1] > hi
        {
            errors.insert(
                field,
                format!(
                    "The {name} range must run from low to high within {lo} to {hi}; got {} to {}.",
                    r.range[0], r.range[1]
                ),
            );
        }
    }
    for (field, p) in [
        ("render.augment.flip", a.flip),
        ("render.augment.background", a.background),
    ] {
        if !(0.0..=1.0).contains(&p) {
            errors.insert(field, "A probability must be between 0 and 1.".into());
        }
    }
    if a.background > 0.0 && a.background_kinds.is_empty() {
        errors.insert(
            "render.augment.background_kinds",
            "Choose at least one kind of background to swap to.".into(),
        );
    }
    let s = &render.shelf;
    if !(64..=4096).contains(&s.width) || !(64..=4096).contains(&s.height) {
        errors.insert(
            "render.shelf",
            "A shelf image is 64 to 4096 pixels a side.".into(),
        );
    } else if s.rows[0] < 1 || s.rows[0] > s.rows[1] || s.rows[1] > 8 {
        errors.insert(
            "render.shelf",
            "Shelves per image run from 1 to 8, low to high.".into(),
        );
    } else if !(1..=200).contains(&s.max_objects) {
        errors.insert(
            "render.shelf",
            "A shelf image holds 1 to 200 products.".into(),
        );
    } else if !(s.scale[0] > 0.0 && s.scale[0] <= s.scale[1] && s.scale[1] <= 1.0) {
        errors.insert(
            "render.shelf",
            "A product's height is above 0 and at most 1 shelf height, low to high.".into(),
        );
    } else if !(s.overlap[0] >= 0.0 && s.overlap[0] <= s.overlap[1] && s.overlap[1] < 1.0) {
        errors.insert(
            "render.shelf",
            "Overlap runs from 0 to below 1, low to high.".into(),
        );
    }
}

/// Creates a dataset.
pub async fn create(ctx: Ctx<'_>, input: &DatasetInput) -> Result<Dataset, ActionError> {
    let (task, selection) = check(ctx, input).await?;
    db::datasets::create(
        ctx.pool,
        &NewDataset {
            name: input.name.trim(),
            task,
            selection: &selection,
            settings: &input.settings,
            render: &input.render,
        },
    )
    .await?
    .ok_or_else(|| {
        ActionError::field(
            "name",
            format!("There is already a dataset named {:?}.", input.name.trim()),
        )
    })
}

/// A dataset by id or name.
pub async fn find(ctx: Ctx<'_>, id_or_name: &str) -> Result<Dataset, ActionError> {
    let found = match id_or_name.parse::<i32>() {
        Ok(id) => db::datasets::get(ctx.pool, id).await?,
        Err(_) => db::datasets::get_by_name(ctx.pool, id_or_name).await?,
    };
    found.ok_or_else(|| ActionError::NotFound(format!("There is no dataset {id_or_name:?}.")))
}

/// Saves new settings for a dataset (its name and task stay).
pub async fn update(
    ctx: Ctx<'_>,
    dataset: &Dataset,
    input: &DatasetInput,
) -> Result<Dataset, ActionError> {
    let input = DatasetInput {
        name: dataset.name.clone(),
        task: dataset.task.clone(),
        ..input.clone()
    };
    let (_, selection) = check(ctx, &input).await?;
    db::datasets::update_settings(
        ctx.pool,
        dataset.id,
        &selection,
        &input.settings,
        &input.render,
    )
    .await?;
    find(ctx, &dataset.id.to_string()).await
}

/// The barcodes of a dataset's explicit products (how the form shows them).
pub async fn barcodes(ctx: Ctx<'_>, dataset: &Dataset) -> Result<Vec<String>, ActionError> {
    let mut out = Vec::new();
    for id in &dataset.selection.products {
        if let Some(p) = db::products::get(ctx.pool, *id).await? {
            out.push(p.barcode.clone());
        }
    }
    Ok(out)
}

/// The selection's frames grouped by product, in order.
fn by_product(frames: &[SelectedFrame]) -> Vec<&[SelectedFrame]> {
    frames
        .chunk_by(|a, b| a.product_id == b.product_id)
        .collect()
}

fn nothing_selected(task: Task) -> ActionError {
    ActionError::Conflict(if task.needs_masks() {
        "No product with masked frames matches this dataset's selection (approve products, \
         or widen the statuses and categories)."
            .into()
    } else {
        "No product with frames matches this dataset's selection (approve products, or widen \
         the statuses and categories)."
            .into()
    })
}

/// Makes the next version: snapshots which frames go where and how they are
/// drawn, and queues the `augment` job that renders it.
pub async fn generate(ctx: Ctx<'_>, dataset: &Dataset) -> Result<(Version, Uuid), ActionError> {
    let task = dataset.task();
    if task.needs_masks() {
        let unmasked = db::datasets::unmasked_products(ctx.pool, &dataset.selection).await?;
        if !unmasked.is_empty() {
            let shown: Vec<&str> = unmasked.iter().take(10).map(String::as_str).collect();
            return Err(ActionError::Conflict(format!(
                "{} selected product{} frames but no masks ({}{}); a {} dataset takes its labels \
                 from the masks. Reprocess them with a segmenter, or leave them out of the selection.",
                unmasked.len(),
                if unmasked.len() == 1 {
                    " has"
                } else {
                    "s have"
                },
                shown.join(", "),
                if unmasked.len() > shown.len() {
                    ", …"
                } else {
                    ""
                },
                task.as_str()
            )));
        }
    }
    let frames =
        db::datasets::select_frames(ctx.pool, &dataset.selection, task.needs_masks()).await?;
    if frames.is_empty() {
        return Err(nothing_selected(task));
    }
    let groups = by_product(&frames);
    let keys: Vec<(Vec<u8>, usize)> = groups
        .iter()
        .map(|g| (g[0].product_id.as_bytes().to_vec(), g.len()))
        .collect();
    let mut planned = plan::plan(&keys, task, &dataset.settings).map_err(|e| match e {
        PlanError::Split(e) => ActionError::Conflict(format!("{}.", capitalised(&e.to_string()))),
        e => ActionError::field("settings", format!("{}.", capitalised(&e.to_string()))),
    })?;
    // Confirmed real crops, per product of the plan: (box id, crop key).
    let mut real: Vec<Vec<(i64, String)>> = vec![Vec::new(); groups.len()];
    if dataset.settings.real.any() {
        let ids: Vec<Uuid> = groups.iter().map(|g| g[0].product_id).collect();
        let at: std::collections::HashMap<Uuid, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        for (product, box_id, key) in db::shelves::confirmed_crops(ctx.pool, &ids).await? {
            real[at[&product]].push((box_id, key));
        }
        let counts: Vec<usize> = real.iter().map(Vec::len).collect();
        plan::add_real(&mut planned, &counts, &dataset.settings);
    }
    let classes: Vec<Class> = if task.classes_are_products() {
        groups
            .iter()
            .map(|g| Class {
                name: g[0].barcode.clone(),
                product_id: Some(g[0].product_id),
                label: g[0].label.clone(),
            })
            .collect()
    } else {
        vec![Class {
            name: "product".into(),
            product_id: None,
            label: "any product".into(),
        }]
    };
    let items: Vec<NewItem> = planned
        .items
        .iter()
        .map(|p| NewItem {
            split: p.split,
            kind: p.kind,
            seed: p.seed,
            sources: p
                .sources
                .iter()
                .map(|&(product, frame)| {
                    if p.kind == Kind::Real {
                        let (box_id, key) = &real[product][frame];
                        return ItemSource {
                            frame_id: None,
                            box_id: Some(*box_id),
                            product_id: groups[product][0].product_id,
                            class: product,
                            image: key.clone(),
                            mask: None,
                        };
                    }
                    let f = &groups[product][frame];
                    ItemSource {
                        frame_id: Some(f.frame_id),
                        box_id: None,
                        product_id: f.product_id,
                        class: if task.classes_are_products() {
                            product
                        } else {
                            0
                        },
                        image: f.storage_key.clone(),
                        mask: f.mask_key.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    let uses_images = dataset.render.augment.background > 0.0
        && dataset
            .render
            .augment
            .background_kinds
            .contains(&BackgroundKind::Image)
        || dataset.settings.composites > 0
            && dataset.render.shelf.background == BackgroundKind::Image;
    let backgrounds: Vec<String> = if uses_images {
        db::datasets::backgrounds(ctx.pool)
            .await?
            .into_iter()
            .map(|b| b.storage_key)
            .collect()
    } else {
        Vec::new()
    };
    let config = json!({
        "selection": dataset.selection.0,
        "settings": dataset.settings.0,
        "render": dataset.render.0,
        "backgrounds": backgrounds,
    });
    let rule = match planned.rule {
        buybuddy_dataset::split::Rule::ByProduct => "by_product",
        buybuddy_dataset::split::Rule::FrameBlocks => "frame_blocks",
    };
    let version = db::datasets::create_version(
        ctx.pool,
        dataset,
        rule,
        &config,
        &classes,
        planned.guard_frames,
        &items,
    )
    .await?;
    let job = render_version(ctx, &version).await?;
    Ok((version, job))
}

/// Queues the `augment` job of a version (again, after a failure: what is
/// rendered stays).
pub async fn render_version(ctx: Ctx<'_>, version: &Version) -> Result<Uuid, ActionError> {
    let ids = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::Augment(jobs::augment::Augment {
            version_id: version.id,
        }))],
    )
    .await?;
    let job = ids[0];
    db::datasets::set_version_job(ctx.pool, version.id, job).await?;
    Ok(job)
}

/// A version of a dataset by number.
pub async fn version(
    ctx: Ctx<'_>,
    dataset: &Dataset,
    number: i32,
) -> Result<db::datasets::VersionState, ActionError> {
    let missing = || {
        ActionError::NotFound(format!(
            "Dataset {:?} has no version {number}.",
            dataset.name
        ))
    };
    let version = db::datasets::version_by_number(ctx.pool, dataset.id, number)
        .await?
        .ok_or_else(missing)?;
    db::datasets::version_state(ctx.pool, version.id)
        .await?
        .ok_or_else(missing)
}

/// Which formats a task's versions export to.
pub fn formats_for(task: Task) -> &'static [Format] {
    if task.classes_are_products() {
        &[Format::Coco, Format::Yolo, Format::Folder]
    } else {
        &[Format::Coco, Format::Yolo]
    }
}

pub fn parse_format(text: &str) -> Result<Format, ActionError> {
    match text.trim() {
        "coco" => Ok(Format::Coco),
        "yolo" => Ok(Format::Yolo),
        "folder" => Ok(Format::Folder),
        other => Err(ActionError::field(
            "format",
            format!("{other:?} is not an export format; formats are coco, yolo and folder."),
        )),
    }
}

/// Queues an export of a rendered version; returns the export's id and job.
pub async fn export(
    ctx: Ctx<'_>,
    dataset: &Dataset,
    number: i32,
    format: Format,
) -> Result<(i32, Uuid), ActionError> {
    let state = version(ctx, dataset, number).await?;
    let task = state.version.task();
    if !formats_for(task).contains(&format) {
        return Err(ActionError::field(
            "format",
            format!(
                "A {} dataset has one class, so the recognition folder layout would hold one \
                 folder; export it as COCO or YOLO.",
                task.as_str()
            ),
        ));
    }
    if !state.ready() {
        return Err(ActionError::Conflict(format!(
            "Version {number} has {} of {} images rendered; export it once rendering is done.",
            state.rendered, state.images
        )));
    }
    let id = db::datasets::create_export(ctx.pool, state.version.id, format).await?;
    let ids = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::Export(jobs::export::Export {
            export_id: id,
        }))],
    )
    .await?;
    db::datasets::set_export_job(ctx.pool, id, ids[0]).await?;
    Ok((id, ids[0]))
}

/// An export that can be downloaded, and its archive as a stream.
pub async fn download(ctx: Ctx<'_>, id: i32) -> Result<(Export, ObjectStream), ActionError> {
    let export = db::datasets::export(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no export #{id}.")))?;
    let Some(key) = &export.storage_key else {
        return Err(ActionError::Conflict(format!(
            "Export #{id} is {}; it can be downloaded once it is ready.",
            export.state()
        )));
    };
    let stream = ctx.storage.get_stream(key).await.map_err(|e| match e {
        StorageError::NotFound(_) => ActionError::NotFound(format!(
            "Export #{id}'s archive is no longer in storage; export the version again."
        )),
        e => ActionError::Internal(e.into()),
    })?;
    Ok((export, stream))
}

/// The file name a download is offered under.
pub fn download_name(dataset: &Dataset, version: &Version, export: &Export) -> String {
    format!(
        "{}-v{}-{}.zip",
        buybuddy_dataset::export::folder_name(&dataset.name),
        version.number,
        export.format
    )
}

/// The largest background upload, in bytes.
pub const MAX_BACKGROUND_BYTES: usize = 30 << 20;

/// Stores an uploaded background image for the background swap and the shelf.
pub async fn add_background(
    ctx: Ctx<'_>,
    name: &str,
    bytes: Bytes,
) -> Result<db::datasets::Background, ActionError> {
    if bytes.is_empty() {
        return Err(ActionError::field(
            "background",
            "Choose an image to upload.",
        ));
    }
    if bytes.len() > MAX_BACKGROUND_BYTES {
        return Err(ActionError::field(
            "background",
            format!(
                "The image is {} MB; the most accepted is {} MB.",
                bytes.len() >> 20,
                MAX_BACKGROUND_BYTES >> 20
            ),
        ));
    }
    let check = bytes.clone();
    let image = tokio::task::spawn_blocking(move || decode_background(&check))
        .await
        .map_err(|e| ActionError::Internal(anyhow!(e)))?
        .map_err(|e| {
            ActionError::field("background", format!("{}.", capitalised(&e.to_string())))
        })?;
    let extension = if bytes.starts_with(b"\x89PNG") {
        "png"
    } else {
        "jpg"
    };
    let key = crate::keys::background(extension);
    let content_type = if extension == "png" {
        "image/png"
    } else {
        "image/jpeg"
    };
    ctx.storage
        .put(&key, bytes, content_type)
        .await
        .map_err(|e| ActionError::Internal(e.into()))?;
    let name = name.trim();
    let name = if name.is_empty() { "background" } else { name };
    Ok(db::datasets::add_background(ctx.pool, name, &key, image.width(), image.height()).await?)
}

/// One preview draw: a frame as filmed and a draw from it (or a composite),
/// with its boxes outlined.
#[derive(Debug, Clone, Serialize)]
pub struct Draw {
    pub kind: &'static str,
    pub label: String,
    pub seed: u64,
    /// JPEG thumbnails as data URIs.
    pub original: String,
    pub draw: String,
    pub objects: Vec<Object>,
}

/// The largest preview grid.
pub const MAX_PREVIEW: usize = 24;
/// The side of a preview thumbnail.
const THUMB: u32 = 256;

/// Renders `count` draws of a dataset's current selection with the given
/// settings (unsaved ones too): frames spread over the selection, chosen and
/// drawn by `seed`, so the same seed gives the same grid. A composite is
/// added when the settings make composites.
pub async fn preview(
    ctx: Ctx<'_>,
    dataset: &Dataset,
    input: &DatasetInput,
    seed: u64,
    count: usize,
) -> Result<Vec<Draw>, ActionError> {
    let input = DatasetInput {
        name: dataset.name.clone(),
        task: dataset.task.clone(),
        ..input.clone()
    };
    let (task, selection) = check(ctx, &input).await?;
    let count = count.clamp(1, MAX_PREVIEW);
    let frames = db::datasets::select_frames(ctx.pool, &selection, task.needs_masks()).await?;
    if frames.is_empty() {
        return Err(nothing_selected(task));
    }
    let mut rng = buybuddy_dataset::augment::Rng::new(seed);
    let picked: Vec<&SelectedFrame> = (0..count)
        .map(|_| &frames[(rng.next_u64() % frames.len() as u64) as usize])
        .collect();
    let composite_seed = rng.next_u64();
    let with_composite = input.settings.composites > 0;
    let composite_sources: Vec<&SelectedFrame> = if with_composite {
        (0..input.settings.per_composite.min(12))
            .map(|_| &frames[(rng.next_u64() % frames.len() as u64) as usize])
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<ItemRow> = picked
        .iter()
        .chain(&composite_sources)
        .map(|f| ItemRow {
            ordinal: 0,
            split: "train".into(),
            kind: "frame".into(),
            seed: 0,
            sources: sqlx::types::Json(vec![ItemSource {
                frame_id: Some(f.frame_id),
                box_id: None,
                product_id: f.product_id,
                class: 0,
                image: f.storage_key.clone(),
                mask: f.mask_key.clone(),
            }]),
            image_key: String::new(),
            width: None,
            height: None,
            objects: None,
        })
        .collect();
    let job_error = |e: jobs::JobError| ActionError::Internal(anyhow!("{e}"));
    let loaded = jobs::augment::load_sources(ctx.storage, &rows)
        .await
        .map_err(job_error)?;
    let backgrounds = if input
        .render
        .augment
        .background_kinds
        .contains(&BackgroundKind::Image)
        || input.render.shelf.background == BackgroundKind::Image
    {
        let keys: Vec<String> = db::datasets::backgrounds(ctx.pool)
            .await?
            .into_iter()
            .map(|b| b.storage_key)
            .collect();
        jobs::augment::load_backgrounds(ctx.storage, &keys)
            .await
            .map_err(job_error)?
    } else {
        Vec::new()
    };
    let settings = render::Settings {
        augment: input.render.augment.clone(),
        shelf: input.render.shelf.clone(),
        backgrounds,
    };
    let labels: Vec<String> = picked
        .iter()
        .map(|f| format!("{} {} · frame {}", f.barcode, f.label, f.frame_index))
        .collect();
    let picked_ids: Vec<String> = picked.iter().map(|f| f.storage_key.clone()).collect();
    let composite_ids: Vec<String> = composite_sources
        .iter()
        .map(|f| f.storage_key.clone())
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut rng = buybuddy_dataset::augment::Rng::new(seed ^ 0x7072_6576);
        let mut draws = Vec::with_capacity(picked_ids.len() + 1);
        for (id, label) in picked_ids.iter().zip(labels) {
            let (image, mask) = &loaded[id];
            let source = [Source {
                image,
                mask: mask.as_ref(),
                class: 0,
            }];
            let draw_seed = rng.next_u64();
            let original = render::render(Kind::Frame, &source, 0, &settings);
            let drawn = render::render(Kind::Augmented, &source, draw_seed, &settings);
            draws.push(Draw {
                kind: "augmented",
                label,
                seed: draw_seed,
                original: thumbnail(&original.image, &original.objects),
                draw: thumbnail(&drawn.image, &drawn.objects),
                objects: drawn.objects,
            });
        }
        if !composite_ids.is_empty() {
            let sources: Vec<Source<'_>> = composite_ids
                .iter()
                .enumerate()
                .map(|(i, id)| Source {
                    image: &loaded[id].0,
                    mask: loaded[id].1.as_ref(),
                    class: i,
                })
                .collect();
            let drawn = render::render(Kind::Composite, &sources, composite_seed, &settings);
            // Beside the composite: the first frame it is made of.
            let original = render::render(Kind::Frame, &sources[..1], 0, &settings);
            draws.push(Draw {
                kind: "composite",
                label: format!("shelf composite of {} frames", composite_ids.len()),
                seed: composite_seed,
                original: thumbnail(&original.image, &original.objects),
                draw: thumbnail(&drawn.image, &drawn.objects),
                objects: drawn.objects,
            });
        }
        draws
    })
    .await
    .map_err(|e| ActionError::Internal(anyhow!(e)))
}

/// A JPEG data URI of an image with its boxes, at most [`THUMB`] a side.
fn thumbnail(image: &RgbImage, objects: &[Object]) -> String {
    let mut image = image.clone();
    render::draw_boxes(&mut image, objects);
    let (w, h) = image.dimensions();
    let k = f64::from(THUMB) / f64::from(w.max(h));
    let small = if k < 1.0 {
        image::imageops::resize(
            &image,
            ((f64::from(w) * k).round() as u32).max(1),
            ((f64::from(h) * k).round() as u32).max(1),
            FilterType::Triangle,
        )
    } else {
        image
    };
    let mut bytes = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&small)
        .expect("encoding to memory cannot fail");
    format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes.into_inner())
    )
}

/// Per-field messages for a form, by field name (for the page's form).
pub fn field_messages(error: &ActionError) -> BTreeMap<&'static str, String> {
    match error {
        ActionError::Invalid(fields) => fields.clone(),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_flat_form_nests_into_the_input_with_lists_numbers_and_ranges() {
        let value = nest_form(&pairs(&[
            ("name", "2024"),
            ("task", "segment"),
            ("selection.statuses", "approved"),
            ("selection.statuses", "needs_review"),
            ("selection.categories", "drinks, snacks\nfrozen"),
            ("selection.products", "4006381333931"),
            ("settings.ratios.train", "0.7"),
            ("settings.ratios.val", "0.2"),
            ("settings.ratios.test", "0.1"),
            ("settings.copies", "3"),
            ("render.augment.rotate.p", "0.5"),
            ("render.augment.rotate.range.0", "-20"),
            ("render.augment.rotate.range.1", "20"),
            ("render.augment.background_kinds", "solid"),
            ("render.augment.background_kinds", "image"),
            ("render.shelf.rows.0", "1"),
            ("render.shelf.rows.1", "2"),
        ]));
        let input = read_input(value).unwrap();
        assert_eq!(input.name, "2024", "a numeric name stays a name");
        assert_eq!(input.task, "segment");
        assert_eq!(input.selection.statuses, ["approved", "needs_review"]);
        assert_eq!(input.selection.categories, ["drinks", "snacks", "frozen"]);
        assert_eq!(input.selection.products, ["4006381333931"]);
        assert_eq!(input.settings.ratios.train, 0.7);
        assert_eq!(input.settings.copies, 3);
        assert_eq!(input.render.augment.rotate.p, 0.5);
        assert_eq!(input.render.augment.rotate.range, [-20.0, 20.0]);
        assert_eq!(
            input.render.augment.background_kinds,
            [BackgroundKind::Solid, BackgroundKind::Image]
        );
        assert_eq!(input.render.shelf.rows, [1, 2]);
        // What the form leaves out keeps its default.
        assert_eq!(input.render.augment.flip, 0.5);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_message_not_a_crash() {
        let error = read_input(nest_form(&pairs(&[("settings.copies", "many")]))).unwrap_err();
        assert!(matches!(error, ActionError::Invalid(_)), "{error:?}");
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn the_render_settings_are_checked_range_by_range() {
        let mut render = RenderSettings::default();
        let mut errors = FieldErrors::new();
        check_render(&render, &mut errors);
        assert!(errors.is_empty(), "the defaults are valid: {errors:?}");
        render.augment.jpeg = Ranged {
            p: 0.5,
            range: [0.0, 90.0],
        };
        render.augment.hue.p = -0.1;
        render.shelf.rows = [3, 2];
        check_render(&render, &mut errors);
        assert!(
            errors["render.augment.jpeg"].contains("1 to 100"),
            "{errors:?}"
        );
        assert!(
            errors["render.augment.hue"].contains("probability"),
            "{errors:?}"
        );
        assert!(errors["render.shelf"].contains("low to high"), "{errors:?}");
    }
}
