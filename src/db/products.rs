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
