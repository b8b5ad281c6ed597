//! Queries on shelf photos, their boxes (real crops), what matching found for
//! each crop, and the review of crops by people.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::embeddings::{Model, vector_text};

/// A row of `shelf_images`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ShelfImage {
    pub id: i32,
    pub file_name: String,
    pub original_key: String,
    pub storage_key: String,
    pub sha256: String,
    pub width: i32,
    pub height: i32,
    pub store: Option<String>,
    pub aisle: Option<String>,
    pub taken_on: Option<NaiveDate>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

const IMAGE_COLUMNS: &str = "id, file_name, original_key, storage_key, sha256, width, height, \
                             store, aisle, taken_on, notes, created_at";

/// A photo about to be stored, with its boxes.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub file_name: String,
    pub original_key: String,
    pub storage_key: String,
    pub sha256: String,
    pub width: i32,
    pub height: i32,
    pub boxes: Vec<NewBox>,
}

/// Where a photo was taken, as the person uploading it said.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Place {
    pub store: Option<String>,
    pub aisle: Option<String>,
    pub taken_on: Option<NaiveDate>,
    pub notes: Option<String>,
}

/// A box about to be stored, with its crop already in storage.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBox {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    /// `drawn`, `imported` or `proposed`.
    pub source: &'static str,
    pub label: Option<String>,
    pub crop_key: String,
}

/// A row of `shelf_boxes`, with the product it was confirmed as.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ShelfBox {
    pub id: i64,
    pub image_id: i32,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub source: String,
    pub label: Option<String>,
    pub crop_key: String,
    pub status: String,
    pub product_id: Option<Uuid>,
    pub barcode: Option<String>,
    pub product_name: Option<String>,
    pub took_top: Option<bool>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

const BOX_SELECT: &str = "SELECT b.id, b.image_id, b.x, b.y, b.width, b.height, b.source, b.label,
        b.crop_key, b.status, b.product_id, p.barcode, p.product_name, b.took_top,
        u.email AS reviewed_by, b.reviewed_at, b.note, b.created_at
    FROM shelf_boxes b
    LEFT JOIN products p ON p.id = b.product_id
    LEFT JOIN users u ON u.id = b.reviewed_by";

/// Hashes of photos already stored: (sha256, image id).
pub async fn known_hashes(pool: &PgPool, hashes: &[String]) -> sqlx::Result<Vec<(String, i32)>> {
    sqlx::query_as("SELECT sha256, id FROM shelf_images WHERE sha256 = ANY($1)")
        .bind(hashes)
        .fetch_all(pool)
        .await
}

/// Stores photos and their boxes, all or none.
pub async fn insert_images(
    pool: &PgPool,
    images: &[NewImage],
    place: &Place,
    user: Option<Uuid>,
) -> sqlx::Result<Vec<i32>> {
    let mut tx = pool.begin().await?;
    let mut ids = Vec::with_capacity(images.len());
    for image in images {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO shelf_images (file_name, original_key, storage_key, sha256, width, height,
                                       store, aisle, taken_on, notes, uploaded_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(&image.file_name)
        .bind(&image.original_key)
        .bind(&image.storage_key)
        .bind(&image.sha256)
        .bind(image.width)
        .bind(image.height)
        .bind(&place.store)
        .bind(&place.aisle)
        .bind(place.taken_on)
        .bind(&place.notes)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        insert_boxes(&mut tx, id, &image.boxes).await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// Adds boxes to a photo; returns their ids in order.
pub async fn insert_boxes(
    tx: &mut Transaction<'_, Postgres>,
    image_id: i32,
    boxes: &[NewBox],
) -> sqlx::Result<Vec<i64>> {
    let column = |f: fn(&NewBox) -> i32| boxes.iter().map(f).collect::<Vec<i32>>();
    let sources: Vec<&str> = boxes.iter().map(|b| b.source).collect();
    let labels: Vec<Option<String>> = boxes.iter().map(|b| b.label.clone()).collect();
    let crops: Vec<&str> = boxes.iter().map(|b| b.crop_key.as_str()).collect();
    sqlx::query_scalar(
        "INSERT INTO shelf_boxes (image_id, x, y, width, height, source, label, crop_key)
         SELECT $1, * FROM unnest($2::int[], $3::int[], $4::int[], $5::int[], $6::text[],
                                  $7::text[], $8::text[])
         RETURNING id",
    )
    .bind(image_id)
    .bind(column(|b| b.x))
    .bind(column(|b| b.y))
    .bind(column(|b| b.width))
    .bind(column(|b| b.height))
    .bind(&sources)
    .bind(&labels)
    .bind(&crops)
    .fetch_all(&mut **tx)
    .await
}

pub async fn image(db: impl PgExecutor<'_>, id: i32) -> sqlx::Result<Option<ShelfImage>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS} FROM shelf_images WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A photo as listed, with how far its crops are.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ImageRow {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub image: ShelfImage,
    pub boxes: i64,
    /// Crops with vectors of the serving model.
    pub matched: i64,
    pub confirmed: i64,
    pub absent: i64,
}

/// Photos, newest first.
pub async fn list_images(pool: &PgPool, limit: i64, offset: i64) -> sqlx::Result<Vec<ImageRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {IMAGE_COLUMNS},
                (SELECT count(*) FROM shelf_boxes b WHERE b.image_id = i.id) AS boxes,
                (SELECT count(*) FROM shelf_boxes b JOIN shelf_crop_matches m ON m.box_id = b.id
                 JOIN embedding_models e ON e.id = m.model_id AND e.serving
                 WHERE b.image_id = i.id) AS matched,
                (SELECT count(*) FROM shelf_boxes b
                 WHERE b.image_id = i.id AND b.status = 'confirmed') AS confirmed,
                (SELECT count(*) FROM shelf_boxes b
                 WHERE b.image_id = i.id AND b.status = 'absent') AS absent
         FROM shelf_images i ORDER BY id DESC LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

pub async fn count_images(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM shelf_images")
        .fetch_one(pool)
        .await
}

/// Deletes a photo with its boxes; returns its storage keys' folder, if it was there.
pub async fn delete_image(pool: &PgPool, id: i32) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("DELETE FROM shelf_images WHERE id = $1 RETURNING storage_key")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn boxes_of(pool: &PgPool, image_id: i32) -> sqlx::Result<Vec<ShelfBox>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{BOX_SELECT} WHERE b.image_id = $1 ORDER BY b.id"
    )))
    .bind(image_id)
    .fetch_all(pool)
    .await
}

pub async fn get_box(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ShelfBox>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{BOX_SELECT} WHERE b.id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Moves or resizes a box: its crop is new, so what matching found for the
/// old one goes, and an unreviewed box waits for matching again. A reviewed
/// box keeps its review (the person who moved it knows what it is).
pub async fn move_box(pool: &PgPool, id: i64, to: &NewBox) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM shelf_crop_matches WHERE box_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let moved = sqlx::query(
        "UPDATE shelf_boxes SET x = $2, y = $3, width = $4, height = $5, crop_key = $6,
                status = CASE WHEN status = 'suggested' THEN 'new' ELSE status END
         WHERE id = $1",
    )
    .bind(id)
    .bind(to.x)
    .bind(to.y)
    .bind(to.width)
    .bind(to.height)
    .bind(&to.crop_key)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(moved == 1)
}

pub async fn delete_box(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query("DELETE FROM shelf_boxes WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// A crop to embed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CropToMatch {
    pub id: i64,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    pub crop_key: String,
}

/// The crops of a photo without vectors of a model.
pub async fn crops_to_match(
    pool: &PgPool,
    image_id: i32,
    model_id: i32,
) -> sqlx::Result<Vec<CropToMatch>> {
    sqlx::query_as(
        "SELECT b.id, b.x, b.y, b.width, b.height, b.crop_key FROM shelf_boxes b
         WHERE b.image_id = $1
           AND NOT EXISTS (SELECT 1 FROM shelf_crop_matches m
                           WHERE m.box_id = b.id AND m.model_id = $2)
         ORDER BY b.id",
    )
    .bind(image_id)
    .bind(model_id)
    .fetch_all(pool)
    .await
}

/// Photos with crops that lack vectors of a model.
pub async fn images_to_match(pool: &PgPool, model_id: i32) -> sqlx::Result<Vec<i32>> {
    sqlx::query_scalar(
        "SELECT DISTINCT b.image_id FROM shelf_boxes b
         WHERE NOT EXISTS (SELECT 1 FROM shelf_crop_matches m
                           WHERE m.box_id = b.id AND m.model_id = $1)
         ORDER BY 1",
    )
    .bind(model_id)
    .fetch_all(pool)
    .await
}

/// What matching found for one crop.
#[derive(Debug, Clone)]
pub struct Found {
    pub box_id: i64,
    pub embedding: Vec<f32>,
    /// The filmed frame nearest the crop: (frame id, product id, similarity).
    pub gallery: Option<(i64, Uuid, f32)>,
    /// The nearest products by prototype, best first: (product id, similarity).
    pub suggestions: Vec<(Uuid, f32)>,
}

/// Replaces what a model found for crops, and moves new crops to review.
/// A box deleted meanwhile is skipped.
pub async fn save_matches(pool: &PgPool, model: &Model, found: &[Found]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for f in found {
        sqlx::query("DELETE FROM shelf_crop_matches WHERE box_id = $1 AND model_id = $2")
            .bind(f.box_id)
            .bind(model.id)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO shelf_crop_matches (box_id, model_id, embedding, gallery_frame_id,
                                             gallery_product_id, gallery_similarity)
             SELECT id, $2, $3::text::vector({dims}), $4, $5, $6 FROM shelf_boxes WHERE id = $1",
            dims = model.dims
        )))
        .bind(f.box_id)
        .bind(model.id)
        .bind(vector_text(&f.embedding))
        .bind(f.gallery.map(|g| g.0))
        .bind(f.gallery.map(|g| g.1))
        .bind(f.gallery.map(|g| g.2))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        let ranks: Vec<i16> = (1..=f.suggestions.len() as i16).collect();
        let products: Vec<Uuid> = f.suggestions.iter().map(|s| s.0).collect();
        let similarities: Vec<f32> = f.suggestions.iter().map(|s| s.1).collect();
        sqlx::query(
            "INSERT INTO shelf_suggestions (box_id, model_id, rank, product_id, similarity)
             SELECT $1, $2, * FROM unnest($3::smallint[], $4::uuid[], $5::real[])",
        )
        .bind(f.box_id)
        .bind(model.id)
        .bind(&ranks)
        .bind(&products)
        .bind(&similarities)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE shelf_boxes SET status = 'suggested' WHERE id = $1 AND status = 'new'")
            .bind(f.box_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A product a crop may be, by the serving model.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Suggestion {
    pub rank: i16,
    pub product_id: Uuid,
    pub similarity: f32,
}

pub async fn suggestions(
    pool: &PgPool,
    box_id: i64,
    model_id: i32,
) -> sqlx::Result<Vec<Suggestion>> {
    sqlx::query_as(
        "SELECT rank, product_id, similarity FROM shelf_suggestions
         WHERE box_id = $1 AND model_id = $2 ORDER BY rank",
    )
    .bind(box_id)
    .bind(model_id)
    .fetch_all(pool)
    .await
}

/// A crop's vector of a model.
pub async fn crop_vector(
    pool: &PgPool,
    box_id: i64,
    model_id: i32,
) -> sqlx::Result<Option<Vec<f32>>> {
    sqlx::query_scalar(
        "SELECT embedding::real[] FROM shelf_crop_matches WHERE box_id = $1 AND model_id = $2",
    )
    .bind(box_id)
    .bind(model_id)
    .fetch_optional(pool)
    .await
}

/// The next crop to review (unreviewed, skipped ones last), on one photo or any.
pub async fn next_to_review(
    pool: &PgPool,
    image_id: Option<i32>,
) -> sqlx::Result<Option<ShelfBox>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{BOX_SELECT} WHERE b.status IN ('new', 'suggested') AND ($1::int IS NULL OR b.image_id = $1)
         ORDER BY b.skipped_at NULLS FIRST, b.id LIMIT 1"
    )))
    .bind(image_id)
    .fetch_optional(pool)
    .await
}

/// How far review is: crops left, confirmed, absent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ReviewCounts {
    pub left: i64,
    pub confirmed: i64,
    pub absent: i64,
}

pub async fn review_counts(pool: &PgPool, image_id: Option<i32>) -> sqlx::Result<ReviewCounts> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status IN ('new', 'suggested')),
                count(*) FILTER (WHERE status = 'confirmed'),
                count(*) FILTER (WHERE status = 'absent')
         FROM shelf_boxes WHERE $1::int IS NULL OR image_id = $1",
    )
    .bind(image_id)
    .fetch_one(pool)
    .await?;
    Ok(ReviewCounts {
        left: row.get(0),
        confirmed: row.get(1),
        absent: row.get(2),
    })
}

/// What a person decided about a crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is this product (and whether it was the top suggestion).
    Confirm(Uuid, bool),
    /// The directory does not have it.
    Absent,
    /// Later.
    Skip,
    /// Back to review.
    Reopen,
}

/// Records a decision; false when the box is gone.
pub async fn decide(
    pool: &PgPool,
    box_id: i64,
    decision: Decision,
    user: Option<Uuid>,
) -> sqlx::Result<bool> {
    let query = match decision {
        Decision::Confirm(product, took_top) => sqlx::query(
            "UPDATE shelf_boxes SET status = 'confirmed', product_id = $2, took_top = $3,
                    reviewed_by = $4, reviewed_at = now(), skipped_at = NULL, note = NULL
             WHERE id = $1",
        )
        .bind(box_id)
        .bind(product)
        .bind(took_top)
        .bind(user),
        Decision::Absent => sqlx::query(
            "UPDATE shelf_boxes SET status = 'absent', product_id = NULL, took_top = NULL,
                    reviewed_by = $2, reviewed_at = now(), skipped_at = NULL, note = NULL
             WHERE id = $1",
        )
        .bind(box_id)
        .bind(user),
        Decision::Skip => {
            sqlx::query("UPDATE shelf_boxes SET skipped_at = now() WHERE id = $1").bind(box_id)
        }
        Decision::Reopen => sqlx::query(
            "UPDATE shelf_boxes
             SET status = CASE WHEN EXISTS (SELECT 1 FROM shelf_crop_matches m WHERE m.box_id = id)
                               THEN 'suggested' ELSE 'new' END,
                 product_id = NULL, took_top = NULL, reviewed_by = NULL, reviewed_at = NULL,
                 skipped_at = NULL
             WHERE id = $1",
        )
        .bind(box_id),
    };
    Ok(query.execute(pool).await?.rows_affected() == 1)
}

/// Confirmed crops of products, for a dataset version: (product id, box id,
/// crop key), by product then box.
pub async fn confirmed_crops(
    pool: &PgPool,
    products: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, i64, String)>> {
    sqlx::query_as(
        "SELECT product_id, id, crop_key FROM shelf_boxes
         WHERE status = 'confirmed' AND product_id = ANY($1)
         ORDER BY product_id, id",
    )
    .bind(products)
    .fetch_all(pool)
    .await
}

/// One product's line of the coverage figures (`sql/shelf_coverage.sql`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Coverage {
    pub product_id: Uuid,
    pub barcode: String,
    pub product_name: Option<String>,
    pub brand_name: Option<String>,
    pub category: Option<String>,
    /// Confirmed real crops.
    pub real_crops: i64,
    /// Of those, the ones with vectors of the serving model.
    pub crops_scored: i64,
    pub mean_similarity: Option<f64>,
    pub mean_margin: Option<f64>,
    pub worst_margin: Option<f64>,
    pub recall_at_1: Option<f64>,
    pub confused: i64,
}

pub const COVERAGE_SQL: &str = include_str!("../../sql/shelf_coverage.sql");

/// Every product with confirmed crops, worst covered first.
pub async fn coverage(pool: &PgPool) -> sqlx::Result<Vec<Coverage>> {
    sqlx::query_as(COVERAGE_SQL).fetch_all(pool).await
}

/// A confirmed crop whose nearest filmed frame is another product's.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Confusion {
    pub box_id: i64,
    pub image_id: i32,
    pub crop_key: String,
    pub product_id: Uuid,
    pub barcode: String,
    /// What it was taken for.
    pub confused_with: Uuid,
    pub confused_barcode: String,
    pub confused_name: Option<String>,
    pub similarity: Option<f32>,
}

/// The confused crops, by the serving model (of one product, or all).
pub async fn confusions(
    pool: &PgPool,
    product: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Confusion>> {
    sqlx::query_as(
        "SELECT b.id AS box_id, b.image_id, b.crop_key, b.product_id, p.barcode,
                m.gallery_product_id AS confused_with, q.barcode AS confused_barcode,
                q.product_name AS confused_name, m.gallery_similarity AS similarity
         FROM shelf_boxes b
         JOIN shelf_crop_matches m ON m.box_id = b.id
         JOIN embedding_models e ON e.id = m.model_id AND e.serving
         JOIN products p ON p.id = b.product_id
         JOIN products q ON q.id = m.gallery_product_id
         WHERE b.status = 'confirmed' AND m.gallery_product_id <> b.product_id
           AND ($1::uuid IS NULL OR b.product_id = $1)
         ORDER BY p.barcode, b.id LIMIT $2",
    )
    .bind(product)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Confirmed crops without vectors of the serving model.
pub async fn unscored_confirmed(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM shelf_boxes b
         WHERE b.status = 'confirmed' AND NOT EXISTS (
             SELECT 1 FROM shelf_crop_matches m JOIN embedding_models e ON e.id = m.model_id
             WHERE m.box_id = b.id AND e.serving)",
    )
    .fetch_one(pool)
    .await
}

/// The match and proposal jobs of a photo, newest first: (job id, kind,
/// status, progress).
pub async fn photo_jobs(
    pool: &PgPool,
    image_id: i32,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String, String, i16)>> {
    sqlx::query_as(
        "SELECT id, kind, status, progress FROM jobs
         WHERE kind IN ('match_shelf', 'propose_boxes') AND payload -> 'image_ids' @> to_jsonb($1::int)
         ORDER BY created_at DESC LIMIT $2",
    )
    .bind(image_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
