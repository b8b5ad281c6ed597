//! The status enums and the database's CHECK lists name the same statuses:
//! every enum value is stored and read back through its sqlx type, and a name
//! outside the enum is refused by the table.

use crate::common;

use buybuddy::jobs::{JobSpec, noop::Noop};
use buybuddy::queue::{self, DEFAULT_QUEUE, Enqueue};
use buybuddy_domain::{JobStatus, ProductStatus};
use common::*;

#[tokio::test]
async fn every_product_status_is_one_the_products_table_accepts() {
    let db = TestDb::new().await;
    for (i, status) in ProductStatus::ALL.iter().enumerate() {
        let read: ProductStatus = sqlx::query_scalar(
            "INSERT INTO products (barcode, status) VALUES ($1, $2) RETURNING status",
        )
        .bind(format!("status-{i}"))
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(read, *status);
    }
    let refused = sqlx::query("INSERT INTO products (barcode, status) VALUES ('x', 'archived')")
        .execute(&db.pool)
        .await;
    assert!(refused.is_err(), "a status outside the enum is refused");
}

#[tokio::test]
async fn every_job_status_is_one_the_jobs_table_accepts() {
    let db = TestDb::new().await;
    let ids = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        vec![Enqueue::from(JobSpec::Noop(Noop {}))],
    )
    .await
    .unwrap();
    for status in JobStatus::ALL {
        // Ended jobs have a completion time, live ones none (a table CHECK).
        let read: JobStatus = sqlx::query_scalar(
            "UPDATE jobs SET status = $2,
                             completed_at = CASE WHEN $2 IN ('queued', 'running') THEN NULL ELSE now() END
             WHERE id = $1 RETURNING status",
        )
        .bind(ids[0])
        .bind(status)
        .fetch_one(&db.pool)
        .await
        .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(read, *status);
        assert_eq!(
            read.has_ended(),
            !matches!(status, JobStatus::Queued | JobStatus::Running)
        );
    }
    let refused = sqlx::query("UPDATE jobs SET status = 'paused' WHERE id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await;
    assert!(refused.is_err(), "a status outside the enum is refused");
}
