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

#[tokio::test]
async fn dataset_split_figures_count_products_images_boxes_and_leaks() {
    let db = TestDb::new().await;
    let p1 = uuid::Uuid::new_v4();
    let p2 = uuid::Uuid::new_v4();
    let source = |p: uuid::Uuid| {
        format!(
            r#"[{{"frame_id": 1, "product_id": "{p}", "class": 0, "image": "a.png", "mask": null}}]"#
        )
    };
    let both = format!(
        r#"[{{"frame_id": 1, "product_id": "{p1}", "class": 0, "image": "a.png", "mask": null}},
            {{"frame_id": 2, "product_id": "{p2}", "class": 0, "image": "b.png", "mask": null}}]"#
    );
    let version: i32 = sqlx::query_scalar(
        "WITH d AS (INSERT INTO datasets (name, task, selection, settings, render)
                    VALUES ('shelves', 'detect', '{}', '{}', '{}') RETURNING id)
         INSERT INTO dataset_versions (dataset_id, number, task, rule, config, classes)
         SELECT id, 1, 'detect', 'by_product', '{}', '[]' FROM d RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let items = [
        ("train", "frame", source(p1), Some(r#"[{"class": 0}]"#)),
        ("train", "augmented", source(p1), Some(r#"[{"class": 0}]"#)),
        (
            "train",
            "composite",
            both.clone(),
            Some(r#"[{"class": 0}, {"class": 0}]"#),
        ),
        ("val", "frame", source(p2), None),
    ];
    for (ordinal, (split, kind, sources, objects)) in items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO dataset_items (version_id, ordinal, split, kind, seed, sources, image_key, objects, rendered_at)
             VALUES ($1, $2, $3, $4, 0, $5::jsonb, 'k', $6::jsonb, CASE WHEN $6 IS NULL THEN NULL ELSE now() END)",
        )
        .bind(version)
        .bind(ordinal as i32)
        .bind(split)
        .bind(kind)
        .bind(sources)
        .bind(objects)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let rows = run(&db.pool, "dataset_splits.sql").await;
    assert_eq!(rows.len(), 2);
    let train = &rows[0];
    assert_eq!(train.get::<String, _>("split"), "train");
    assert_eq!(train.get::<i64, _>("products"), 2);
    assert_eq!(train.get::<i64, _>("frames"), 1);
    assert_eq!(train.get::<i64, _>("augmented"), 1);
    assert_eq!(train.get::<i64, _>("composites"), 1);
    assert_eq!(train.get::<i64, _>("images"), 3);
    assert_eq!(train.get::<i64, _>("boxes"), 4);
    // The composite put p2 in train too: a leak, and the query says so.
    assert_eq!(train.get::<i64, _>("products_in_other_splits"), 1);
    let val = &rows[1];
    assert_eq!(val.get::<i64, _>("rendered"), 0);
    assert_eq!(val.get::<i64, _>("products_in_other_splits"), 1);
    // The page's per-version figures agree.
    let counts = buybuddy::db::datasets::split_counts(&db.pool, version)
        .await
        .unwrap();
    assert_eq!(counts[0].products, 2);
    assert_eq!(counts[0].boxes, 4);
    assert_eq!(counts[1].images, 1);
}
