//! Real shelf photos: uploading them (one, many, or a ZIP, with the YOLO or
//! COCO labels that come with them), boxes drawn, moved and deleted, matching
//! every crop to the directory, the review of crops, and coverage.
//!
//! An upload is checked whole before anything is written: every photo read,
//! every label file paired with a photo and every box checked against it.
//! Then each photo, its upright copy and its crops go to storage, and the rows
//! of all photos and boxes are written in one transaction; when anything
//! fails, what was stored is removed. Nothing is ever half imported.

mod boxes;
mod coverage;
mod review;

pub use boxes::{BoxInput, add_boxes, delete_box, move_box};
pub use coverage::{CategoryLine, CoverageReport, ProductCoverage, coverage, verdict};
pub use review::{Decision, ReviewItem, SuggestionView, decide, next_to_review, review_item};

use std::{
    collections::BTreeMap,
    io::{Read, Seek},
    path::PathBuf,
};

use anyhow::anyhow;
use buybuddy_dataset::labels::{self, FileRole, ImageEntry, LabelEntry, Labelled};
use buybuddy_worker::{
    media::photo::{self, Limits, Probe},
    postprocess,
    segment::BoundingBox,
    storage::Storage,
};
use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ActionError, Ctx, FieldErrors};
use crate::{
    db::{
        self,
        embeddings::Model,
        shelves::{NewBox, NewImage, Place},
    },
    jobs::{JobSpec, match_shelf::MatchShelf, propose_boxes::ProposeBoxes},
    keys,
    queue::{self, Enqueue},
};

/// How large a photo may be.
pub const PHOTO_LIMITS: Limits = Limits {
    max_bytes: 40 << 20,
    max_side: 12_000,
    max_pixels: 100_000_000,
};
/// Photos in one upload at most.
pub const MAX_PHOTOS: usize = 2_000;
/// Boxes on one photo at most.
pub const MAX_BOXES: usize = 2_000;
/// The largest label file.
const MAX_LABEL_BYTES: u64 = 20 << 20;
/// Entries of one ZIP at most (photos, labels and what is left aside).
const MAX_ZIP_ENTRIES: usize = 20_000;
/// The smallest box side, in pixels.
pub const MIN_BOX_SIDE: i32 = 4;
/// The quality of the JPEGs stored for the browser and of the crops.
const JPEG_QUALITY: u8 = 90;

/// A file a person sent: the name they gave it, and where its bytes wait.
#[derive(Debug, Clone)]
pub struct Sent {
    pub name: String,
    pub path: PathBuf,
}

/// Where the photos of an upload were taken, as typed (all optional).
#[derive(Debug, Clone, Default)]
pub struct PlaceInput {
    pub store: String,
    pub aisle: String,
    pub taken_on: String,
    pub notes: String,
}

/// What an upload stored.
#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    /// The photos: (id, file name, boxes).
    pub images: Vec<(i32, String, usize)>,
    pub boxes: usize,
    /// Files that were neither photos nor labels (a manifest, a README).
    pub ignored: Vec<String>,
}

/// Where a photo's bytes are: a file sent as it is, or an entry of a ZIP.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Zipped(PathBuf, usize),
}

/// A photo of the upload, read and checked, not yet stored.
#[derive(Debug, Clone)]
struct Checked {
    path: String,
    origin: Origin,
    probe: Probe,
    sha256: String,
}

fn place(input: &PlaceInput, errors: &mut FieldErrors) -> Place {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let taken_on = match text(&input.taken_on) {
        None => None,
        Some(date) => match NaiveDate::parse_from_str(&date, "%Y-%m-%d") {
            Ok(date) => Some(date),
            Err(_) => {
                errors.insert(
                    "taken_on",
                    format!("{date:?} is not a date like 2026-12-07."),
                );
                None
            }
        },
    };
    Place {
        store: text(&input.store),
        aisle: text(&input.aisle),
        taken_on,
        notes: text(&input.notes),
    }
}

fn is_zip(sent: &Sent) -> std::io::Result<bool> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(&sent.path)?;
    let n = file.read(&mut head)?;
    Ok(n == 4 && head == *b"PK\x03\x04" || sent.name.to_ascii_lowercase().ends_with(".zip"))
}

/// A ZIP entry worth reading: not a folder, not a hidden or macOS file.
fn wanted_entry(name: &str) -> bool {
    !name.ends_with('/')
        && !name.starts_with("__MACOSX/")
        && !name.rsplit('/').next().unwrap_or(name).starts_with('.')
}

/// Everything the upload holds, read and checked (blocking).
struct Manifest {
    photos: Vec<Checked>,
    labels: Vec<LabelEntry>,
    ignored: Vec<String>,
    problems: Vec<String>,
}

/// The largest file of a kind (by its name).
fn limit_for(name: &str) -> u64 {
    match labels::role(name) {
        FileRole::YoloLabels | FileRole::Names | FileRole::Coco => MAX_LABEL_BYTES,
        _ => PHOTO_LIMITS.max_bytes as u64,
    }
}

fn too_large(name: &str, size: u64, limit: u64) -> String {
    format!(
        "{name}: is {} MB; the most accepted is {} MB",
        size >> 20,
        limit >> 20
    )
}

fn read_all(sent: &[Sent]) -> Manifest {
    let mut manifest = Manifest {
        photos: Vec::new(),
        labels: Vec::new(),
        ignored: Vec::new(),
        problems: Vec::new(),
    };
    for file in sent {
        let size = std::fs::metadata(&file.path).map_or(0, |m| m.len());
        match is_zip(file) {
            Ok(true) => read_zip(file, &mut manifest),
            Ok(false) if size > limit_for(&file.name) => {
                manifest
                    .problems
                    .push(too_large(&file.name, size, limit_for(&file.name)))
            }
            Ok(false) => match std::fs::read(&file.path) {
                Ok(bytes) => take(
                    &file.name,
                    Origin::File(file.path.clone()),
                    bytes,
                    &mut manifest,
                ),
                Err(e) => manifest
                    .problems
                    .push(format!("{}: could not be read: {e}", file.name)),
            },
            Err(e) => manifest
                .problems
                .push(format!("{}: could not be read: {e}", file.name)),
        }
    }
    manifest
}

fn read_zip(file: &Sent, manifest: &mut Manifest) {
    let opened = std::fs::File::open(&file.path)
        .map_err(|e| e.to_string())
        .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()));
    let mut archive = match opened {
        Ok(archive) => archive,
        Err(e) => {
            manifest.problems.push(format!(
                "{}: is not a ZIP archive that can be read ({e})",
                file.name
            ));
            return;
        }
    };
    if archive.len() > MAX_ZIP_ENTRIES {
        manifest.problems.push(format!(
            "{}: holds {} entries; at most {MAX_ZIP_ENTRIES} go in one ZIP",
            file.name,
            archive.len()
        ));
        return;
    }
    for index in 0..archive.len() {
        let (name, size) = match archive.by_index(index) {
            Ok(entry) => (entry.name().to_owned(), entry.size()),
            Err(e) => {
                manifest
                    .problems
                    .push(format!("{}: entry {index} cannot be read ({e})", file.name));
                continue;
            }
        };
        if !wanted_entry(&name) {
            continue;
        }
        if labels::role(&name) == FileRole::Other {
            manifest.ignored.push(name);
            continue;
        }
        let limit = limit_for(&name);
        if size > limit {
            manifest.problems.push(too_large(&name, size, limit));
            continue;
        }
        match read_entry(&mut archive, index, limit) {
            Ok(bytes) => take(
                &name,
                Origin::Zipped(file.path.clone(), index),
                bytes,
                manifest,
            ),
            Err(e) => manifest
                .problems
                .push(format!("{name}: cannot be read from {} ({e})", file.name)),
        }
    }
}

/// An entry's bytes, at most `limit` of them whatever its header says.
fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    limit: u64,
) -> anyhow::Result<Vec<u8>> {
    let entry = archive.by_index(index)?;
    let mut bytes = Vec::with_capacity(entry.size().min(limit) as usize);
    entry.take(limit + 1).read_to_end(&mut bytes)?;
    anyhow::ensure!(
        bytes.len() as u64 <= limit,
        "it unpacks to more than {} MB",
        limit >> 20
    );
    Ok(bytes)
}

/// Files one by one: a photo is probed and hashed (its pixels are read later,
/// one photo at a time), a label file kept as text. A loose file with no
/// telling name may still be a photo; in a ZIP, such files are left aside
/// before they get here.
fn take(path: &str, origin: Origin, bytes: Vec<u8>, manifest: &mut Manifest) {
    match labels::role(path) {
        FileRole::Image | FileRole::Other => match photo::probe(&bytes, &PHOTO_LIMITS) {
            Ok(probe) => manifest.photos.push(Checked {
                path: path.to_owned(),
                origin,
                probe,
                sha256: format!("{:x}", Sha256::digest(&bytes)),
            }),
            Err(e) => manifest.problems.push(format!("{path}: {e}")),
        },
        _ => match String::from_utf8(bytes) {
            Ok(text) => manifest.labels.push(LabelEntry {
                path: path.to_owned(),
                text,
            }),
            Err(_) => manifest.problems.push(format!(
                "{path}: is not a text file (labels are UTF-8 text)"
            )),
        },
    }
}

fn invalid(problems: Vec<String>) -> ActionError {
    let shown: Vec<String> = problems.iter().take(20).cloned().collect();
    let more = problems.len() - shown.len();
    let mut message = format!(
        "Nothing was imported: {} problem{}.\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        shown.join("\n")
    );
    if more > 0 {
        message.push_str(&format!("\n… and {more} more."));
    }
    ActionError::field("files", message)
}

fn join_blocking(e: tokio::task::JoinError) -> ActionError {
    ActionError::Internal(anyhow!(e))
}

/// Uploads shelf photos with the labels that come with them.
pub async fn upload(
    ctx: Ctx<'_>,
    sent: Vec<Sent>,
    place_input: &PlaceInput,
    user: Option<Uuid>,
) -> Result<UploadReport, ActionError> {
    let mut errors = FieldErrors::new();
    let place = place(place_input, &mut errors);
    if sent.is_empty() {
        errors.insert(
            "files",
            "Choose photos (JPEG, PNG or WebP), with their label files if they have any, or a ZIP of them.".into(),
        );
    }
    if !errors.is_empty() {
        return Err(ActionError::Invalid(errors));
    }
    let manifest = tokio::task::spawn_blocking(move || read_all(&sent))
        .await
        .map_err(join_blocking)?;
    let Manifest {
        photos,
        labels: label_files,
        ignored,
        mut problems,
    } = manifest;
    if photos.is_empty() && problems.is_empty() {
        problems.push("the upload holds no photo".into());
    }
    if photos.len() > MAX_PHOTOS {
        problems.push(format!(
            "the upload holds {} photos; at most {MAX_PHOTOS} go in one upload",
            photos.len()
        ));
    }
    // The same photo twice, in the upload or already stored.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &photos {
        if let Some(first) = seen.insert(&p.sha256, &p.path) {
            problems.push(format!("{}: is the same photo as {first}", p.path));
        }
    }
    let hashes: Vec<String> = photos.iter().map(|p| p.sha256.clone()).collect();
    for (hash, id) in db::shelves::known_hashes(ctx.pool, &hashes).await? {
        if let Some(p) = photos.iter().find(|p| p.sha256 == hash) {
            problems.push(format!(
                "{}: was uploaded before, as shelf photo #{id}; leave it out",
                p.path
            ));
        }
    }
    let entries: Vec<ImageEntry> = photos
        .iter()
        .map(|p| ImageEntry {
            path: p.path.clone(),
            width: p.probe.width,
            height: p.probe.height,
        })
        .collect();
    let mut boxes = match labels::read_upload(&entries, &label_files) {
        Ok(boxes) => boxes,
        Err(label_errors) => {
            problems.extend(label_errors.iter().map(ToString::to_string));
            BTreeMap::new()
        }
    };
    for (at, found) in &boxes {
        if found.len() > MAX_BOXES {
            problems.push(format!(
                "{}: has {} boxes; at most {MAX_BOXES} go on one photo",
                photos[*at].path,
                found.len()
            ));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let mut written: Vec<String> = Vec::new();
    let mut new_images = Vec::with_capacity(photos.len());
    for (at, checked) in photos.iter().enumerate() {
        let labelled = boxes.remove(&at).unwrap_or_default();
        match store_photo(ctx.storage, checked, labelled, &mut written).await {
            Ok(image) => new_images.push(image),
            Err(e) => {
                remove_folders(ctx.storage, &written).await;
                return Err(e);
            }
        }
    }
    let ids = match db::shelves::insert_images(ctx.pool, &new_images, &place, user).await {
        Ok(ids) => ids,
        Err(e) => {
            remove_folders(ctx.storage, &written).await;
            return Err(e.into());
        }
    };
    let total = new_images.iter().map(|i| i.boxes.len()).sum();
    Ok(UploadReport {
        images: ids
            .into_iter()
            .zip(&new_images)
            .map(|(id, i)| (id, i.file_name.clone(), i.boxes.len()))
            .collect(),
        boxes: total,
        ignored,
    })
}

async fn remove_folders(storage: &Storage, folders: &[String]) {
    for folder in folders {
        if let Err(e) = storage.delete_prefix(folder).await {
            tracing::warn!(%folder, error = %e, "could not remove a failed upload's objects");
        }
    }
}

/// The bytes of a photo of the upload, read again.
fn bytes_of(origin: &Origin) -> anyhow::Result<Vec<u8>> {
    match origin {
        Origin::File(path) => Ok(std::fs::read(path)?),
        Origin::Zipped(path, index) => {
            let mut archive = zip::ZipArchive::new(std::fs::File::open(path)?)?;
            read_entry(&mut archive, *index, PHOTO_LIMITS.max_bytes as u64)
        }
    }
}

/// A photo's objects: the original, the upright copy (the original itself
/// when it is stored upright), and the crop of every box.
struct PhotoObjects {
    original: Bytes,
    upright: Option<Bytes>,
    crops: Vec<(NewBox, Bytes)>,
}

fn photo_objects(
    checked: &Checked,
    folder: &str,
    labelled: &[Labelled],
) -> Result<PhotoObjects, String> {
    let bytes = bytes_of(&checked.origin).map_err(|e| format!("{}: {e}", checked.path))?;
    let image =
        photo::decode(&bytes, &PHOTO_LIMITS).map_err(|e| format!("{}: {e}", checked.path))?;
    let upright = (checked.probe.orientation != image::metadata::Orientation::NoTransforms)
        .then(|| Bytes::from(photo::jpeg(&image, 92)));
    let crops = labelled
        .iter()
        .map(|l| {
            let new_box = NewBox {
                x: l.bbox.x as i32,
                y: l.bbox.y as i32,
                width: l.bbox.w as i32,
                height: l.bbox.h as i32,
                source: "imported",
                label: l.class.clone(),
                crop_key: keys::shelf_crop(
                    folder,
                    l.bbox.x as i32,
                    l.bbox.y as i32,
                    l.bbox.w as i32,
                    l.bbox.h as i32,
                ),
            };
            let crop = crop_jpeg(&image, &new_box);
            (new_box, crop)
        })
        .collect();
    Ok(PhotoObjects {
        original: Bytes::from(bytes),
        upright,
        crops,
    })
}

/// A box's crop, as stored.
fn crop_jpeg(image: &image::RgbImage, b: &NewBox) -> Bytes {
    let bbox = BoundingBox {
        x: b.x as u32,
        y: b.y as u32,
        width: b.width as u32,
        height: b.height as u32,
    };
    let crop = postprocess::crop_box(image, &bbox, crate::jobs::match_shelf::CROP_MARGIN);
    Bytes::from(photo::jpeg(&crop, JPEG_QUALITY))
}

async fn store_photo(
    storage: &Storage,
    checked: &Checked,
    labelled: Vec<Labelled>,
    written: &mut Vec<String>,
) -> Result<NewImage, ActionError> {
    let folder = keys::shelf_folder();
    let job = checked.clone();
    let in_folder = folder.clone();
    let objects = tokio::task::spawn_blocking(move || photo_objects(&job, &in_folder, &labelled))
        .await
        .map_err(join_blocking)?
        .map_err(|problem| invalid(vec![problem]))?;
    written.push(folder.clone());
    let original_key = keys::shelf_original(&folder, checked.probe.format);
    let put = |key: String, body: Bytes, content_type: &'static str| async move {
        storage
            .put(&key, body, content_type)
            .await
            .map_err(|e| ActionError::Internal(anyhow!(e).context(format!("storing {key}"))))
    };
    let mime = match checked.probe.format {
        "png" => "image/png",
        "webp" => "image/webp",
        _ => "image/jpeg",
    };
    put(original_key.clone(), objects.original, mime).await?;
    let storage_key = match objects.upright {
        Some(upright) => {
            let key = keys::shelf_photo(&folder);
            put(key.clone(), upright, "image/jpeg").await?;
            key
        }
        None => original_key.clone(),
    };
    let mut boxes = Vec::with_capacity(objects.crops.len());
    for (new_box, crop) in objects.crops {
        put(new_box.crop_key.clone(), crop, "image/jpeg").await?;
        boxes.push(new_box);
    }
    Ok(NewImage {
        file_name: checked.path.clone(),
        original_key,
        storage_key,
        sha256: checked.sha256.clone(),
        width: checked.probe.width as i32,
        height: checked.probe.height as i32,
        boxes,
    })
}

/// A shelf photo with its boxes.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    pub image: db::shelves::ShelfImage,
    pub boxes: Vec<db::shelves::ShelfBox>,
    /// The newest match or proposal job of the photo: (id, kind, status,
    /// progress).
    pub job: Option<(Uuid, String, String, i16)>,
}

pub async fn image(ctx: Ctx<'_>, id: i32) -> Result<ImageView, ActionError> {
    let image = db::shelves::image(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no shelf photo #{id}.")))?;
    let boxes = db::shelves::boxes_of(ctx.pool, id).await?;
    let job = db::shelves::photo_jobs(ctx.pool, id, 1)
        .await?
        .into_iter()
        .next();
    Ok(ImageView { image, boxes, job })
}

/// Deletes a photo with its boxes and objects. Dataset versions keep the
/// crops they rendered (under their own folder).
pub async fn delete_image(ctx: Ctx<'_>, id: i32) -> Result<(), ActionError> {
    let key = db::shelves::delete_image(ctx.pool, id)
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no shelf photo #{id}.")))?;
    remove_folders(ctx.storage, &[keys::shelf_folder_of(&key).to_owned()]).await;
    Ok(())
}

/// Queues matching of the photos' crops with the serving model: the given
/// photos, or every photo with a crop that lacks its vectors.
pub async fn match_crops(
    ctx: Ctx<'_>,
    image_ids: Option<Vec<i32>>,
) -> Result<(Model, Uuid, usize), ActionError> {
    let model = super::search::serving_model(ctx.pool).await?;
    let ids = match image_ids {
        Some(ids) => {
            for &id in &ids {
                if db::shelves::image(ctx.pool, id).await?.is_none() {
                    return Err(ActionError::NotFound(format!(
                        "There is no shelf photo #{id}."
                    )));
                }
            }
            ids
        }
        None => db::shelves::images_to_match(ctx.pool, model.id).await?,
    };
    if ids.is_empty() {
        return Err(ActionError::Conflict(format!(
            "Every crop already has vectors of {}: there is nothing to match.",
            model.label()
        )));
    }
    let count = ids.len();
    let job = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::MatchShelf(MatchShelf {
            image_ids: ids,
            model_id: model.id,
        }))],
    )
    .await?;
    Ok((model, job[0], count))
}

/// The prompt SAM 3 proposes boxes with unless asked otherwise.
pub const DEFAULT_PROMPT: &str = "product";
/// SAM 3's own threshold for keeping an instance.
pub const DEFAULT_MIN_SCORE: f32 = 0.3;

/// Queues SAM 3 box proposals for a photo: one prompt per product kind
/// expected (comma or line separated; "product" when none).
pub async fn propose(
    ctx: Ctx<'_>,
    image_id: i32,
    prompts: &str,
    min_score: Option<f32>,
) -> Result<Uuid, ActionError> {
    if db::shelves::image(ctx.pool, image_id).await?.is_none() {
        return Err(ActionError::NotFound(format!(
            "There is no shelf photo #{image_id}."
        )));
    }
    let mut list: Vec<String> = prompts
        .split([',', '\n'])
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    list.dedup();
    if list.is_empty() {
        list.push(DEFAULT_PROMPT.to_owned());
    }
    if list.len() > 50 || list.iter().any(|p| p.chars().count() > 100) {
        return Err(ActionError::field(
            "prompts",
            "At most 50 prompts of at most 100 characters each.",
        ));
    }
    let min_score = min_score.unwrap_or(DEFAULT_MIN_SCORE);
    if !(0.0..=1.0).contains(&min_score) {
        return Err(ActionError::field(
            "min_score",
            "The minimum score is between 0 and 1.",
        ));
    }
    let job = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::ProposeBoxes(ProposeBoxes {
            image_ids: vec![image_id],
            prompts: list,
            min_score,
        }))],
    )
    .await?;
    Ok(job[0])
}
