//! Queries on `catalog_products`, the Buybuddy catalog as last synced.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

/// A catalog product about to be stored.
#[derive(Debug, Clone)]
pub struct Entry {
    pub barcode: String,
    pub name: Option<String>,
    pub video_url: String,
    pub video_id: Option<i64>,
    pub processed: bool,
    pub raw: Value,
}

/// What an upsert changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Upserted {
    pub new: i64,
    pub changed: i64,
    pub unchanged: i64,
}

/// Stores the entries by barcode in one statement; rows whose fields did not
/// change are left alone apart from their sync time.
pub async fn upsert(db: impl PgExecutor<'_>, entries: &[Entry]) -> sqlx::Result<Upserted> {
    let column = |f: fn(&Entry) -> String| entries.iter().map(f).collect::<Vec<_>>();
    let names: Vec<Option<String>> = entries.iter().map(|e| e.name.clone()).collect();
    let video_ids: Vec<Option<i64>> = entries.iter().map(|e| e.video_id).collect();
    let processed: Vec<bool> = entries.iter().map(|e| e.processed).collect();
    let raw: Vec<Value> = entries.iter().map(|e| e.raw.clone()).collect();
    let row = sqlx::query!(
        r#"
        WITH incoming AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bool[], $6::jsonb[])
                AS i(barcode, name, video_url, video_id, processed, raw)
        ),
        before AS (
            SELECT c.barcode, c.name, c.video_url, c.video_id, c.processed, c.raw
            FROM catalog_products c JOIN incoming USING (barcode)
        ),
        written AS (
            INSERT INTO catalog_products AS c (barcode, name, video_url, video_id, processed, raw)
            SELECT barcode, name, video_url, video_id, processed, raw FROM incoming
            ON CONFLICT (barcode) DO UPDATE
            SET name = EXCLUDED.name, video_url = EXCLUDED.video_url, video_id = EXCLUDED.video_id,
                processed = EXCLUDED.processed, raw = EXCLUDED.raw, synced_at = now(),
                updated_at = CASE
                    WHEN (c.name, c.video_url, c.video_id, c.processed, c.raw)
                         IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.video_url, EXCLUDED.video_id,
                                           EXCLUDED.processed, EXCLUDED.raw)
                    THEN now() ELSE c.updated_at END
            RETURNING c.barcode, c.name, c.video_url, c.video_id, c.processed, c.raw
        )
        SELECT count(*) FILTER (WHERE b.barcode IS NULL) AS "new!",
               count(*) FILTER (WHERE b.barcode IS NOT NULL
                                  AND (b.name, b.video_url, b.video_id, b.processed, b.raw)
                                      IS DISTINCT FROM (w.name, w.video_url, w.video_id, w.processed, w.raw)) AS "changed!",
               count(*) FILTER (WHERE b.barcode IS NOT NULL
                                  AND (b.name, b.video_url, b.video_id, b.processed, b.raw)
                                      IS NOT DISTINCT FROM (w.name, w.video_url, w.video_id, w.processed, w.raw)) AS "unchanged!"
        FROM written w LEFT JOIN before b USING (barcode)
        "#,
        &column(|e| e.barcode.clone()),
        &names as &[Option<String>],
        &column(|e| e.video_url.clone()),
        &video_ids as &[Option<i64>],
        &processed,
        &raw,
    )
    .fetch_one(db)
    .await?;
    Ok(Upserted {
        new: row.new,
        changed: row.changed,
        unchanged: row.unchanged,
    })
}

/// A catalog product this platform has not processed yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unprocessed {
    pub barcode: String,
    pub name: Option<String>,
    pub video_url: String,
    pub video_id: Option<i64>,
    /// A job for it is queued or running.
    pub in_progress: bool,
    /// Its latest job failed.
    pub last_failed: bool,
}

/// Those of `barcodes` with neither a product row nor a completed job, in
/// barcode order.
pub async fn unprocessed(
    db: impl PgExecutor<'_>,
    barcodes: &[String],
) -> sqlx::Result<Vec<Unprocessed>> {
    sqlx::query_as!(
        Unprocessed,
        r#"
        SELECT c.barcode, c.name, c.video_url, c.video_id,
               EXISTS (SELECT 1 FROM jobs j WHERE j.barcode = c.barcode
                       AND j.status IN ('queued', 'running')) AS "in_progress!",
               coalesce((SELECT j.status = 'failed' FROM jobs j WHERE j.barcode = c.barcode
                         ORDER BY j.created_at DESC LIMIT 1), false) AS "last_failed!"
        FROM catalog_products c
        WHERE c.barcode = ANY($1)
          AND NOT EXISTS (SELECT 1 FROM products p WHERE p.barcode = c.barcode)
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.barcode = c.barcode AND j.status = 'completed')
        ORDER BY c.barcode
        "#,
        barcodes
    )
    .fetch_all(db)
    .await
}

/// Serialises catalog enqueues with each other until the transaction ends, so
/// two syncs at once cannot both queue the same product.
pub async fn lock_for_enqueue(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended('buybuddy.catalog.enqueue', 0))")
        .execute(tx)
        .await?;
    Ok(())
}

/// The product's name in the catalog, if it is there.
pub async fn name_of(db: impl PgExecutor<'_>, barcode: &str) -> sqlx::Result<Option<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT name FROM catalog_products WHERE barcode = $1",
        barcode
    )
    .fetch_optional(db)
    .await?
    .flatten())
}

/// How many products the catalog holds.
pub async fn count(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM catalog_products"#)
        .fetch_one(db)
        .await
}

/// Every barcode of the catalog.
pub async fn barcodes(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!("SELECT barcode FROM catalog_products ORDER BY barcode")
        .fetch_all(db)
        .await
}

/// When the catalog was last synced.
pub async fn last_synced(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Option<chrono::DateTime<chrono::Utc>>> {
    sqlx::query_scalar!("SELECT max(synced_at) FROM catalog_products")
        .fetch_one(db)
        .await
}

/// The catalog's video of a barcode, if the barcode is in the synced catalog.
pub async fn video_of(db: impl PgExecutor<'_>, barcode: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT video_url FROM catalog_products WHERE barcode = $1")
        .bind(barcode)
        .fetch_optional(db)
        .await
}
