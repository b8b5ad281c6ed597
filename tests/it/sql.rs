//! The analysis queries in `sql/`: every file runs against the current schema,
//! and the answers are right on known data.

use crate::common;

use std::time::Duration;

use buybuddy::{
    jobs::{JobSpec, fail::Fail, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};
use common::*;
use sqlx::{Column, Row, postgres::PgRow};

fn query(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sql").join(name))
        .unwrap_or_else(|e| panic!("sql/{name}: {e}"))
}

async fn run(pool: &sqlx::PgPool, name: &str) -> Vec<PgRow> {
    sqlx::query(sqlx::AssertSqlSafe(query(name)))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("sql/{name}: {e}"))
}

#[tokio::test]
async fn every_analysis_query_runs_and_says_what_it_answers() {
    let db = TestDb::new().await;
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("sql"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for name in files {
        assert!(
            query(&name).trim_start().starts_with("--"),
            "sql/{name} should open with a comment saying what it answers"
        );
        let rows = run(&db.pool, &name).await;
        println!("sql/{name}: {} rows on an empty database", rows.len());
    }
}

#[tokio::test]
async fn job_and_queue_figures_match_what_happened() {
    let db = TestDb::with_settings(&test_backoff(Duration::from_millis(50))).await;
    let mut jobs: Vec<Enqueue> = (0..3)
        .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
        .collect();
    jobs.push(Enqueue {
        max_attempts: Some(1),
        ..Enqueue::from(JobSpec::Fail(Fail {
            message: "the video is too dark".into(),
            ..Fail::default()
        }))
    });
    let ids = queue::enqueue(&db.pool, DEFAULT_QUEUE, jobs).await.unwrap();
    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, ids[3], "failed", Duration::from_secs(10)).await;
    for id in &ids[..3] {
        wait_for_status(&db.pool, *id, "completed", Duration::from_secs(10)).await;
    }
    worker.stop().await;

    let per_day = run(&db.pool, "jobs_per_day.sql").await;
    let noop = per_day
        .iter()
        .find(|r| r.get::<String, _>("kind") == "noop")
        .unwrap();
    assert_eq!(noop.get::<i64, _>("completed"), 3);
    let fail = per_day
        .iter()
        .find(|r| r.get::<String, _>("kind") == "fail")
        .unwrap();
    assert_eq!(fail.get::<i64, _>("failed"), 1);

    let reasons = run(&db.pool, "failure_reasons.sql").await;
    assert_eq!(reasons.len(), 1);
    assert_eq!(
        reasons[0].get::<String, _>("error_message"),
        "the video is too dark"
    );

    let health = run(&db.pool, "queue_health.sql").await;
    assert_eq!(health.len(), 1);
    let columns: Vec<&str> = health[0].columns().iter().map(|c| c.name()).collect();
    assert!(columns.contains(&"oldest_waiting"));
    assert_eq!(health[0].get::<i64, _>("waiting"), 0);
    assert_eq!(health[0].get::<i64, _>("claimed"), 0);
}

#[tokio::test]
async fn directory_figures_count_products_by_category_and_backlog() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO products (barcode, category, status, product_name) VALUES
           ('1', 'snacks', 'approved', 'Crisps'),
           ('2', 'snacks', 'needs_review', 'Pretzels'),
           ('3', 'drinks', 'needs_review', 'Cola'),
           ('4', NULL, 'pending', NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let categories = run(&db.pool, "products_per_category.sql").await;
    let snacks = categories
        .iter()
        .find(|r| r.get::<String, _>("category") == "snacks")
        .unwrap();
    assert_eq!(snacks.get::<i64, _>("products"), 2);
    assert_eq!(snacks.get::<i64, _>("approved"), 1);
    assert!(
        categories
            .iter()
            .any(|r| r.get::<String, _>("category") == "(none)")
    );

    let backlog = run(&db.pool, "review_backlog.sql").await;
    let barcodes: Vec<String> = backlog.iter().map(|r| r.get("barcode")).collect();
    assert_eq!(barcodes, ["2", "3"]);
}
