//! Queries on the dataset tables: datasets and their settings, versions with
//! their snapshotted items, the render job's progress, exports, and the
//! uploaded backgrounds.

use buybuddy_dataset::{
    augment::Augment,
    composite::Shelf,
    export::{Format, Object},
    plan::{self, Kind, Task},
    split::Split,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

/// Which products a dataset takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Selection {
    /// Product statuses taken; approved only unless asked otherwise.
    pub statuses: Vec<String>,
    /// Categories taken (any when empty).
    pub categories: Vec<String>,
    /// Explicit products (any when empty; else only these, still filtered by status).
    pub products: Vec<Uuid>,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            statuses: vec!["approved".into()],
            categories: Vec::new(),
            products: Vec::new(),
        }
    }
}

/// How a dataset's images are drawn: the per-image pipeline and the shelf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderSettings {
    pub augment: Augment,
    pub shelf: Shelf,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Dataset {
    pub id: i32,
    pub name: String,
    pub task: String,
    pub selection: Json<Selection>,
    pub settings: Json<plan::Settings>,
    pub render: Json<RenderSettings>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Dataset {
    pub fn task(&self) -> Task {
        Task::parse(&self.task).unwrap_or(Task::Detect)
    }
}

/// A dataset in the list, with its versions counted.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Listed {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub dataset: Dataset,
    pub versions: i64,
}

const COLUMNS: &str =
    "d.id, d.name, d.task, d.selection, d.settings, d.render, d.created_at, d.updated_at";

/// What a new dataset is made of.
#[derive(Debug, Clone)]
pub struct NewDataset<'a> {
    pub name: &'a str,
    pub task: Task,
    pub selection: &'a Selection,
    pub settings: &'a plan::Settings,
    pub render: &'a RenderSettings,
}

/// Creates a dataset; `None` when the name is taken.
pub async fn create(pool: &PgPool, new: &NewDataset<'_>) -> sqlx::Result<Option<Dataset>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO datasets AS d (name, task, selection, settings, render)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(new.name)
    .bind(new.task.as_str())
    .bind(Json(new.selection))
    .bind(Json(new.settings))
    .bind(Json(new.render))
    .fetch_optional(pool)
    .await
}

/// Replaces a dataset's settings (versions already made keep theirs).
pub async fn update_settings(
    pool: &PgPool,
    id: i32,
    selection: &Selection,
    settings: &plan::Settings,
    render: &RenderSettings,
) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE datasets SET selection = $2, settings = $3, render = $4 WHERE id = $1")
            .bind(id)
            .bind(Json(selection))
            .bind(Json(settings))
            .bind(Json(render))
            .execute(pool)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get(pool: &PgPool, id: i32) -> sqlx::Result<Option<Dataset>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM datasets d WHERE d.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn get_by_name(pool: &PgPool, name: &str) -> sqlx::Result<Option<Dataset>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM datasets d WHERE d.name = $1"
    )))
    .bind(name)
    .fetch_optional(pool)
    .await
}

/// Every dataset, newest first, with how many versions each has.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Listed>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS},
                (SELECT count(*) FROM dataset_versions v WHERE v.dataset_id = d.id) AS versions
         FROM datasets d ORDER BY d.created_at DESC, d.id DESC LIMIT 500"
    )))
    .fetch_all(pool)
    .await
}

/// One frame a selection takes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SelectedFrame {
    pub product_id: Uuid,
    pub barcode: String,
    pub label: String,
    pub frame_id: i64,
    pub frame_index: i32,
    pub storage_key: String,
    pub mask_key: Option<String>,
}

/// The frames of the products a selection takes, by product (in barcode
/// order) and in video order; frames without masks are left out when the
/// task needs masks.
pub async fn select_frames(
    pool: &PgPool,
    selection: &Selection,
    needs_masks: bool,
) -> sqlx::Result<Vec<SelectedFrame>> {
    sqlx::query_as(
        "SELECT p.id AS product_id, p.barcode,
                concat_ws(' ', p.brand_name, p.product_name) AS label,
                f.id AS frame_id, f.frame_index, f.storage_key, f.mask_key
         FROM products p JOIN frames f ON f.product_id = p.id
         WHERE p.status = ANY($1)
           AND (cardinality($2::text[]) = 0 OR p.category = ANY($2))
           AND (cardinality($3::uuid[]) = 0 OR p.id = ANY($3))
           AND (NOT $4 OR f.mask_key IS NOT NULL)
         ORDER BY p.barcode, f.frame_index, f.id",
    )
    .bind(&selection.statuses)
    .bind(&selection.categories)
    .bind(&selection.products)
    .bind(needs_masks)
    .fetch_all(pool)
    .await
}

/// The barcodes of selected products that have frames but none with a mask.
pub async fn unmasked_products(pool: &PgPool, selection: &Selection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT p.barcode FROM products p
         WHERE p.status = ANY($1)
           AND (cardinality($2::text[]) = 0 OR p.category = ANY($2))
           AND (cardinality($3::uuid[]) = 0 OR p.id = ANY($3))
           AND EXISTS (SELECT 1 FROM frames f WHERE f.product_id = p.id)
           AND NOT EXISTS (SELECT 1 FROM frames f WHERE f.product_id = p.id AND f.mask_key IS NOT NULL)
         ORDER BY p.barcode",
    )
    .bind(&selection.statuses)
    .bind(&selection.categories)
    .bind(&selection.products)
    .fetch_all(pool)
    .await
}

/// One image an item is made from (a filmed frame, or a real shelf crop), as
/// it was when the version was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_id: Option<i64>,
    /// The shelf box a real crop is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_id: Option<i64>,
    pub product_id: Uuid,
    pub class: usize,
    pub image: String,
    pub mask: Option<String>,
}

/// A version's item, planned.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub split: Split,
    pub kind: Kind,
    pub seed: u64,
    pub sources: Vec<ItemSource>,
}

/// One class of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Class {
    pub name: String,
    pub product_id: Option<Uuid>,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Version {
    pub id: i32,
    pub dataset_id: i32,
    pub number: i32,
    pub task: String,
    pub rule: String,
    pub config: serde_json::Value,
    pub classes: Json<Vec<Class>>,
    pub guard_frames: i32,
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl Version {
    pub fn task(&self) -> Task {
        Task::parse(&self.task).unwrap_or(Task::Detect)
    }

    /// The storage folder the version's images live under.
    pub fn prefix(&self) -> String {
        crate::keys::dataset_version(self.dataset_id, self.number)
    }
}

const VERSION_COLUMNS: &str = "v.id, v.dataset_id, v.number, v.task, v.rule, v.config, v.classes, v.guard_frames, v.job_id, v.created_at";

/// Makes the next version of a dataset with its items, in one transaction
/// (numbers are taken in turn even when two people generate at once).
pub async fn create_version(
    pool: &PgPool,
    dataset: &Dataset,
    rule: &str,
    config: &serde_json::Value,
    classes: &[Class],
    guard_frames: usize,
    items: &[NewItem],
) -> sqlx::Result<Version> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT id FROM datasets WHERE id = $1 FOR UPDATE")
        .bind(dataset.id)
        .execute(&mut *tx)
        .await?;
    let version: Version = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO dataset_versions AS v (dataset_id, number, task, rule, config, classes, guard_frames)
         SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5, $6
         FROM dataset_versions WHERE dataset_id = $1
         RETURNING {VERSION_COLUMNS}"
    )))
    .bind(dataset.id)
    .bind(&dataset.task)
    .bind(rule)
    .bind(config)
    .bind(Json(classes))
    .bind(guard_frames as i32)
    .fetch_one(&mut *tx)
    .await?;
    let prefix = version.prefix();
    for (chunk_no, chunk) in items.chunks(5_000).enumerate() {
        let base = chunk_no * 5_000;
        let ordinals: Vec<i32> = (0..chunk.len()).map(|i| (base + i) as i32).collect();
        let splits: Vec<&str> = chunk.iter().map(|i| i.split.as_str()).collect();
        let kinds: Vec<&str> = chunk.iter().map(|i| i.kind.as_str()).collect();
        let seeds: Vec<i64> = chunk.iter().map(|i| i.seed as i64).collect();
        let sources: Vec<serde_json::Value> = chunk
            .iter()
            .map(|i| serde_json::to_value(&i.sources).expect("sources serialise"))
            .collect();
        let keys: Vec<String> = ordinals
            .iter()
            .map(|o| crate::keys::dataset_image(&prefix, *o))
            .collect();
        sqlx::query(
            "INSERT INTO dataset_items (version_id, ordinal, split, kind, seed, sources, image_key)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::jsonb[], $7::text[])",
        )
        .bind(version.id)
        .bind(&ordinals)
        .bind(&splits)
        .bind(&kinds)
        .bind(&seeds)
        .bind(&sources)
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(version)
}

pub async fn set_version_job(pool: &PgPool, version_id: i32, job: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE dataset_versions SET job_id = $2 WHERE id = $1")
        .bind(version_id)
        .bind(job)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn version(pool: &PgPool, id: i32) -> sqlx::Result<Option<Version>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM dataset_versions v WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn version_by_number(
    pool: &PgPool,
    dataset_id: i32,
    number: i32,
) -> sqlx::Result<Option<Version>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM dataset_versions v WHERE v.dataset_id = $1 AND v.number = $2"
    )))
    .bind(dataset_id)
    .bind(number)
    .fetch_optional(pool)
    .await
}

/// A version with its render progress and its job's state.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct VersionState {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub version: Version,
    pub images: i64,
    pub rendered: i64,
    pub job_status: Option<String>,
    pub job_error: Option<String>,
}

impl VersionState {
    pub fn ready(&self) -> bool {
        self.images > 0 && self.rendered == self.images
    }
}

const STATE: &str = "(SELECT count(*) FROM dataset_items i WHERE i.version_id = v.id) AS images,
    (SELECT count(*) FROM dataset_items i WHERE i.version_id = v.id AND i.rendered_at IS NOT NULL) AS rendered,
    j.status AS job_status, j.error_message AS job_error";

/// A dataset's versions, newest first.
pub async fn versions(pool: &PgPool, dataset_id: i32) -> sqlx::Result<Vec<VersionState>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS}, {STATE}
         FROM dataset_versions v LEFT JOIN jobs j ON j.id = v.job_id
         WHERE v.dataset_id = $1 ORDER BY v.number DESC"
    )))
    .bind(dataset_id)
    .fetch_all(pool)
    .await
}

pub async fn version_state(pool: &PgPool, id: i32) -> sqlx::Result<Option<VersionState>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS}, {STATE}
         FROM dataset_versions v LEFT JOIN jobs j ON j.id = v.job_id WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// What a version holds per split.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SplitCounts {
    pub split: String,
    pub products: i64,
    pub frames: i64,
    pub augmented: i64,
    pub composites: i64,
    /// Confirmed crops of real shelf photos.
    pub real: i64,
    pub images: i64,
    /// Labelled objects in the rendered images.
    pub boxes: i64,
}

/// Per split: products, frames, images and boxes (the query of
/// `sql/dataset_splits.sql`, for one version).
pub async fn split_counts(pool: &PgPool, version_id: i32) -> sqlx::Result<Vec<SplitCounts>> {
    sqlx::query_as(
        "SELECT i.split,
                (SELECT count(DISTINCT s ->> 'product_id') FROM dataset_items i2,
                        jsonb_array_elements(i2.sources) s
                 WHERE i2.version_id = $1 AND i2.split = i.split) AS products,
                count(*) FILTER (WHERE i.kind = 'frame') AS frames,
                count(*) FILTER (WHERE i.kind = 'augmented') AS augmented,
                count(*) FILTER (WHERE i.kind = 'composite') AS composites,
                count(*) FILTER (WHERE i.kind = 'real') AS real,
                count(*) AS images,
                coalesce(sum(jsonb_array_length(i.objects)), 0)::bigint AS boxes
         FROM dataset_items i WHERE i.version_id = $1
         GROUP BY i.split
         ORDER BY array_position(ARRAY['train', 'val', 'test'], i.split)",
    )
    .bind(version_id)
    .fetch_all(pool)
    .await
}

/// A version's item as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub ordinal: i32,
    pub split: String,
    pub kind: String,
    pub seed: i64,
    pub sources: Json<Vec<ItemSource>>,
    pub image_key: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub objects: Option<Json<Vec<Object>>>,
}

impl ItemRow {
    pub fn split(&self) -> Split {
        Split::parse(&self.split).unwrap_or(Split::Train)
    }

    pub fn kind(&self) -> Kind {
        match self.kind.as_str() {
            "augmented" => Kind::Augmented,
            "composite" => Kind::Composite,
            "real" => Kind::Real,
            _ => Kind::Frame,
        }
    }
}

const ITEM_COLUMNS: &str = "ordinal, split, kind, seed, sources, image_key, width, height, objects";

/// The next items still to render, in order.
pub async fn unrendered(pool: &PgPool, version_id: i32, limit: i64) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLUMNS} FROM dataset_items
         WHERE version_id = $1 AND rendered_at IS NULL ORDER BY ordinal LIMIT $2"
    )))
    .bind(version_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Items from `after` on (exclusive), in order: a page of an export.
pub async fn items_after(
    pool: &PgPool,
    version_id: i32,
    after: i32,
    limit: i64,
) -> sqlx::Result<Vec<ItemRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLUMNS} FROM dataset_items
         WHERE version_id = $1 AND ordinal > $2 ORDER BY ordinal LIMIT $3"
    )))
    .bind(version_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records rendered items: their size and labels.
pub async fn mark_rendered(
    pool: &PgPool,
    version_id: i32,
    done: &[(i32, u32, u32, Vec<Object>)],
) -> sqlx::Result<()> {
    let ordinals: Vec<i32> = done.iter().map(|d| d.0).collect();
    let widths: Vec<i32> = done.iter().map(|d| d.1 as i32).collect();
    let heights: Vec<i32> = done.iter().map(|d| d.2 as i32).collect();
    let objects: Vec<serde_json::Value> = done
        .iter()
        .map(|d| serde_json::to_value(&d.3).expect("objects serialise"))
        .collect();
    sqlx::query(
        "UPDATE dataset_items i SET width = u.w, height = u.h, objects = u.o, rendered_at = now()
         FROM unnest($2::int[], $3::int[], $4::int[], $5::jsonb[]) AS u(ordinal, w, h, o)
         WHERE i.version_id = $1 AND i.ordinal = u.ordinal",
    )
    .bind(version_id)
    .bind(&ordinals)
    .bind(&widths)
    .bind(&heights)
    .bind(&objects)
    .execute(pool)
    .await?;
    Ok(())
}

/// An export of a version, with its job's state.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Export {
    pub id: i32,
    pub version_id: i32,
    pub format: String,
    pub job_id: Option<Uuid>,
    pub storage_key: Option<String>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub job_status: Option<String>,
    pub job_progress: Option<i16>,
    pub job_error: Option<String>,
}

impl Export {
    pub fn format(&self) -> Format {
        match self.format.as_str() {
            "yolo" => Format::Yolo,
            "folder" => Format::Folder,
            _ => Format::Coco,
        }
    }

    /// Downloadable: the archive is whole in storage.
    pub fn ready(&self) -> bool {
        self.storage_key.is_some()
    }

    /// What people see of its state.
    pub fn state(&self) -> &str {
        if self.ready() {
            "ready"
        } else {
            self.job_status.as_deref().unwrap_or("queued")
        }
    }
}

const EXPORT_COLUMNS: &str = "e.id, e.version_id, e.format, e.job_id, e.storage_key, e.size, e.sha256, e.created_at, e.ready_at, j.status AS job_status, j.progress AS job_progress, j.error_message AS job_error";

pub async fn create_export(pool: &PgPool, version_id: i32, format: Format) -> sqlx::Result<i32> {
    sqlx::query_scalar(
        "INSERT INTO dataset_exports (version_id, format) VALUES ($1, $2) RETURNING id",
    )
    .bind(version_id)
    .bind(format.as_str())
    .fetch_one(pool)
    .await
}

pub async fn set_export_job(pool: &PgPool, id: i32, job: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE dataset_exports SET job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a whole archive in storage: from now on it can be downloaded.
pub async fn finish_export(
    pool: &PgPool,
    id: i32,
    key: &str,
    size: u64,
    sha256: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE dataset_exports SET storage_key = $2, size = $3, sha256 = $4, ready_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(key)
    .bind(size as i64)
    .bind(sha256)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn export(pool: &PgPool, id: i32) -> sqlx::Result<Option<Export>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLUMNS} FROM dataset_exports e LEFT JOIN jobs j ON j.id = e.job_id
         WHERE e.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A version's exports, newest first.
pub async fn exports(pool: &PgPool, version_id: i32) -> sqlx::Result<Vec<Export>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLUMNS} FROM dataset_exports e LEFT JOIN jobs j ON j.id = e.job_id
         WHERE e.version_id = $1 ORDER BY e.created_at DESC, e.id DESC"
    )))
    .bind(version_id)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Background {
    pub id: i32,
    pub name: String,
    pub storage_key: String,
    pub width: i32,
    pub height: i32,
    pub created_at: DateTime<Utc>,
}

pub async fn add_background(
    pool: &PgPool,
    name: &str,
    key: &str,
    width: u32,
    height: u32,
) -> sqlx::Result<Background> {
    sqlx::query_as(
        "INSERT INTO dataset_backgrounds (name, storage_key, width, height)
         VALUES ($1, $2, $3, $4)
         RETURNING id, name, storage_key, width, height, created_at",
    )
    .bind(name)
    .bind(key)
    .bind(width as i32)
    .bind(height as i32)
    .fetch_one(pool)
    .await
}

pub async fn backgrounds(pool: &PgPool) -> sqlx::Result<Vec<Background>> {
    sqlx::query_as(
        "SELECT id, name, storage_key, width, height, created_at
         FROM dataset_backgrounds ORDER BY id",
    )
    .fetch_all(pool)
    .await
}
