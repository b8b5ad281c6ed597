//! Queries on `frames`, the training images of each product, and saving a
//! finished video job: the product, its frames and the job's figures together.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// A frame about to be saved.
#[derive(Debug, Clone)]
pub struct NewFrame {
    pub frame_index: i32,
    pub storage_key: String,
    pub mask_key: String,
    pub width: i32,
    pub height: i32,
    pub mask_area: i32,
    /// The product's box in the source frame: x, y, width, height.
    pub bbox: [i32; 4],
    pub quality: Value,
}

/// The product a video job produced.
#[derive(Debug, Clone)]
pub struct ProductOfJob {
    pub job_id: Uuid,
    pub barcode: String,
    pub video_id: Option<i32>,
    pub grounding_prompt: Option<String>,
    /// Catalog metadata read from the video; the product's fields are left as
    /// they are without it.
    pub metadata: Option<buybuddy_domain::Metadata>,
    /// Where the job's frames are, for `jobs.frames_path`.
    pub frames_path: String,
}

#[derive(Debug, Clone)]
pub struct Saved {
    pub product_id: Uuid,
    /// Object keys of the frames this save replaced (from earlier jobs of the
    /// same product), to delete once the save is durable.
    pub replaced: Vec<String>,
}

/// Saves a product with its frames, in one transaction: no product without
/// frames, ever. The product is created or updated by barcode and goes back to
/// review; its frames from earlier jobs are replaced by these; running this again
/// for the same job gives the same result.
pub async fn save(
    pool: &PgPool,
    product: &ProductOfJob,
    frames: &[NewFrame],
) -> sqlx::Result<Saved> {
    let mut tx = pool.begin().await?;
    let m = product.metadata.as_ref();
    let text = |f: fn(&buybuddy_domain::Metadata) -> &Option<String>| m.and_then(|m| f(m).clone());
    let product_id = sqlx::query_scalar!(
        r#"
        INSERT INTO products (barcode, video_id, grounding_prompt, status, brand_name, sub_brand,
                              product_name, variant_flavor, category, container_type, net_quantity,
                              nutrition_facts, claims, visibility_score)
        VALUES ($1, $2, $3, 'needs_review', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (barcode) DO UPDATE
        SET video_id = coalesce(EXCLUDED.video_id, products.video_id),
            grounding_prompt = coalesce(EXCLUDED.grounding_prompt, products.grounding_prompt),
            status = 'needs_review',
            brand_name = CASE WHEN $4 THEN EXCLUDED.brand_name ELSE products.brand_name END,
            sub_brand = CASE WHEN $4 THEN EXCLUDED.sub_brand ELSE products.sub_brand END,
            product_name = CASE WHEN $4 THEN EXCLUDED.product_name ELSE products.product_name END,
            variant_flavor = CASE WHEN $4 THEN EXCLUDED.variant_flavor ELSE products.variant_flavor END,
            category = CASE WHEN $4 THEN EXCLUDED.category ELSE products.category END,
            container_type = CASE WHEN $4 THEN EXCLUDED.container_type ELSE products.container_type END,
            net_quantity = CASE WHEN $4 THEN EXCLUDED.net_quantity ELSE products.net_quantity END,
            nutrition_facts = CASE WHEN $4 THEN EXCLUDED.nutrition_facts ELSE products.nutrition_facts END,
            claims = CASE WHEN $4 THEN EXCLUDED.claims ELSE products.claims END,
            visibility_score = CASE WHEN $4 THEN EXCLUDED.visibility_score ELSE products.visibility_score END
        RETURNING id
        "#,
        product.barcode,
        product.video_id,
        product.grounding_prompt,
        m.is_some(),
        text(|m| &m.brand_name),
        text(|m| &m.sub_brand),
        text(|m| &m.product_name),
        text(|m| &m.variant_flavor),
        text(|m| &m.category),
        text(|m| &m.container_type),
        text(|m| &m.net_quantity),
        m.map(|m| Value::Object(m.nutrition_facts.clone())),
        m.map(|m| m.claims.clone()) as Option<Vec<String>>,
        m.and_then(|m| m.visibility_score),
    )
    .fetch_one(&mut *tx)
    .await?;
    let replaced = sqlx::query!(
        "DELETE FROM frames WHERE product_id = $1 AND job_id <> $2 RETURNING storage_key, mask_key",
        product_id,
        product.job_id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .flat_map(|row| std::iter::once(row.storage_key).chain(row.mask_key))
    .collect();
    sqlx::query!("DELETE FROM frames WHERE job_id = $1", product.job_id)
        .execute(&mut *tx)
        .await?;
    // Frame vectors went with their frames; a prototype made of them must not
    // outlive them. The embed job queued after this save makes new ones.
    sqlx::query("DELETE FROM product_embeddings WHERE product_id = $1")
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
    insert(&mut *tx, product_id, product.job_id, frames).await?;
    sqlx::query!(
        "UPDATE jobs SET frame_count = $2, frames_path = $3, barcode = $4 WHERE id = $1",
        product.job_id,
        frames.len() as i32,
        product.frames_path,
        product.barcode,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Saved {
        product_id,
        replaced,
    })
}

async fn insert(
    db: impl PgExecutor<'_>,
    product_id: Uuid,
    job_id: Uuid,
    frames: &[NewFrame],
) -> sqlx::Result<()> {
    let column = |f: fn(&NewFrame) -> i32| frames.iter().map(f).collect::<Vec<i32>>();
    let keys: Vec<String> = frames.iter().map(|f| f.storage_key.clone()).collect();
    let masks: Vec<String> = frames.iter().map(|f| f.mask_key.clone()).collect();
    let quality: Vec<Value> = frames.iter().map(|f| f.quality.clone()).collect();
    sqlx::query!(
        r#"
        INSERT INTO frames (product_id, job_id, frame_index, storage_key, mask_key, width, height,
                            mask_area, bbox_x, bbox_y, bbox_w, bbox_h, quality)
        SELECT $1, $2, * FROM unnest($3::int4[], $4::text[], $5::text[], $6::int4[], $7::int4[],
                                     $8::int4[], $9::int4[], $10::int4[], $11::int4[], $12::int4[],
                                     $13::jsonb[])
        "#,
        product_id,
        job_id,
        &column(|f| f.frame_index),
        &keys,
        &masks,
        &column(|f| f.width),
        &column(|f| f.height),
        &column(|f| f.mask_area),
        &column(|f| f.bbox[0]),
        &column(|f| f.bbox[1]),
        &column(|f| f.bbox[2]),
        &column(|f| f.bbox[3]),
        &quality,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A stored frame.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Frame {
    pub id: i64,
    pub product_id: Uuid,
    pub job_id: Uuid,
    pub frame_index: i32,
    pub storage_key: String,
    pub mask_key: Option<String>,
    pub width: i32,
    pub height: i32,
    pub mask_area: Option<i32>,
    pub bbox_x: Option<i32>,
    pub bbox_y: Option<i32>,
    pub bbox_w: Option<i32>,
    pub bbox_h: Option<i32>,
    pub quality: Value,
}

/// A product's frames in video order.
pub async fn for_product(db: impl PgExecutor<'_>, product_id: Uuid) -> sqlx::Result<Vec<Frame>> {
    sqlx::query_as!(
        Frame,
        r#"SELECT id, product_id, job_id, frame_index, storage_key, mask_key, width, height,
                  mask_area, bbox_x, bbox_y, bbox_w, bbox_h, quality
           FROM frames WHERE product_id = $1 ORDER BY frame_index"#,
        product_id
    )
    .fetch_all(db)
    .await
}
