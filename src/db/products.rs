//! Queries on `products`, the product directory.

use sqlx::PgExecutor;

/// The statuses a product moves through during processing and review.
pub const STATUSES: &[&str] = &[
    "pending",
    "processing",
    "needs_review",
    "approved",
    "rejected",
];

/// How many products are in each status (statuses with none are left out).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(r#"SELECT status, count(*) AS "count!" FROM products GROUP BY status"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// A product as listed, with the storage key of one frame to show.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    pub id: uuid::Uuid,
    pub barcode: String,
    pub product_name: Option<String>,
    pub brand_name: Option<String>,
    pub status: String,
    pub frame_count: i64,
    pub thumbnail_key: Option<String>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The most recently changed products, each with its middle frame as thumbnail.
pub async fn latest(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<Listed>> {
    sqlx::query_as!(
        Listed,
        r#"
        SELECT p.id, p.barcode, p.product_name, p.brand_name, p.status, p.updated_at,
               f.count AS "frame_count!", f.thumbnail AS thumbnail_key
        FROM products p
        CROSS JOIN LATERAL (
            SELECT count(*) AS count,
                   (array_agg(storage_key ORDER BY frame_index))[count(*) / 2 + 1] AS thumbnail
            FROM frames WHERE product_id = p.id
        ) f
        ORDER BY p.updated_at DESC
        LIMIT $1
        "#,
        limit
    )
    .fetch_all(db)
    .await
}

/// A product by barcode.
pub async fn by_barcode(
    db: impl PgExecutor<'_>,
    barcode: &str,
) -> sqlx::Result<Option<(uuid::Uuid, String)>> {
    let row = sqlx::query!(
        "SELECT id, status FROM products WHERE barcode = $1",
        barcode
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.id, r.status)))
}
