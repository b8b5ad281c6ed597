//! Queries on `products`, the product directory.

use sqlx::PgExecutor;

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
        FROM (SELECT * FROM products ORDER BY updated_at DESC LIMIT $1) p
        CROSS JOIN LATERAL (
            SELECT count(*) AS count,
                   (array_agg(storage_key ORDER BY frame_index))[count(*) / 2 + 1] AS thumbnail
            FROM frames WHERE product_id = p.id
        ) f
        ORDER BY p.updated_at DESC
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

/// Filters of the products list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    /// Part of a barcode or of a product name.
    pub search: Option<String>,
    /// Only products created before this one (created_at, id).
    pub before: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
}

/// A product as listed, with its creation time (the list's order).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ListRow {
    pub id: uuid::Uuid,
    pub barcode: String,
    pub product_name: Option<String>,
    pub brand_name: Option<String>,
    pub status: String,
    pub frame_count: i64,
    pub thumbnail_key: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One page of products, newest first, each with its middle frame.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &ListFilter,
    limit: i64,
) -> sqlx::Result<Vec<ListRow>> {
    list_query("", filter, limit)
        .build_query_as::<ListRow>()
        .fetch_all(db)
        .await
}

/// The list's statement after `prefix` (`EXPLAIN ...` in the web benchmark).
pub fn list_query(
    prefix: &str,
    filter: &ListFilter,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut query = sqlx::QueryBuilder::new(format!(
        "{prefix}SELECT p.id, p.barcode, p.product_name, p.brand_name, p.status, p.created_at, p.updated_at,
                f.count AS frame_count, f.thumbnail AS thumbnail_key
         FROM (SELECT * FROM products WHERE true"
    ));
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = format!("%{}%", super::jobs::escape_like(search));
        query
            .push(" AND (barcode ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR product_name ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    super::push_newest_first(&mut query, filter.before, limit).push(
        ") p CROSS JOIN LATERAL (
                SELECT count(*) AS count,
                       (array_agg(storage_key ORDER BY frame_index))[count(*) / 2 + 1] AS thumbnail
                FROM frames WHERE product_id = p.id
             ) f
             ORDER BY p.created_at DESC, p.id DESC",
    );
    query
}

/// A whole product row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Product {
    pub id: uuid::Uuid,
    pub barcode: String,
    pub video_id: Option<i32>,
    pub brand_name: Option<String>,
    pub sub_brand: Option<String>,
    pub product_name: Option<String>,
    pub variant_flavor: Option<String>,
    pub category: Option<String>,
    pub container_type: Option<String>,
    pub net_quantity: Option<String>,
    pub nutrition_facts: Option<serde_json::Value>,
    pub claims: Option<Vec<String>>,
    pub grounding_prompt: Option<String>,
    pub visibility_score: Option<i32>,
    pub status: String,
    pub review_note: Option<String>,
    pub reviewed_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reviewed_by: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn get(db: impl PgExecutor<'_>, id: uuid::Uuid) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT id, barcode, video_id, brand_name, sub_brand, product_name, variant_flavor,
                  category, container_type, net_quantity, nutrition_facts, claims, grounding_prompt,
                  visibility_score, status, review_note, reviewed_at, reviewed_by, created_at,
                  updated_at
           FROM products WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// A product's catalog metadata (the one type Gemini, the editor, the API
/// and this table share).
pub use buybuddy_domain::Metadata;

/// Saves edited metadata; false when there is no such product.
pub async fn update_metadata(
    db: impl PgExecutor<'_>,
    id: uuid::Uuid,
    m: &Metadata,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"
        UPDATE products SET brand_name = $2, sub_brand = $3, product_name = $4, variant_flavor = $5,
            category = $6, container_type = $7, net_quantity = $8, nutrition_facts = $9,
            claims = $10, grounding_prompt = $11, visibility_score = $12
        WHERE id = $1
        "#,
        id,
        m.brand_name,
        m.sub_brand,
        m.product_name,
        m.variant_flavor,
        m.category,
        m.container_type,
        m.net_quantity,
        serde_json::Value::Object(m.nutrition_facts.clone()),
        &m.claims,
        m.grounding_prompt,
        m.visibility_score,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Approves or rejects products; returns how many changed.
pub async fn review(
    db: impl PgExecutor<'_>,
    ids: &[uuid::Uuid],
    status: &str,
    note: Option<&str>,
    by: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE products SET status = $2, review_note = $3, reviewed_at = now(), reviewed_by = $4
         WHERE id = ANY($1)",
        ids,
        status,
        note,
        by
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The video of each product's newest job with one, for reprocessing.
pub async fn videos(
    db: impl PgExecutor<'_>,
    ids: &[uuid::Uuid],
) -> sqlx::Result<Vec<(uuid::Uuid, String, Option<String>, Option<i32>)>> {
    let rows = sqlx::query!(
        r#"
        SELECT p.id, p.barcode, p.video_id,
               coalesce((SELECT j.video_url FROM jobs j
                         WHERE j.barcode = p.barcode AND j.kind = 'video' AND j.video_url IS NOT NULL
                         ORDER BY j.created_at DESC LIMIT 1),
                        (SELECT c.video_url FROM catalog_products c WHERE c.barcode = p.barcode)) AS video_url
        FROM products p WHERE p.id = ANY($1)
        "#,
        ids
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.barcode, r.video_url, r.video_id))
        .collect())
}

/// A whole product row, locked until the transaction ends (an edit in progress).
pub async fn get_for_update(
    db: impl PgExecutor<'_>,
    id: uuid::Uuid,
) -> sqlx::Result<Option<Product>> {
    sqlx::query_as::<_, Product>("SELECT * FROM products WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await
}
