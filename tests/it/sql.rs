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
        ("val", "real", source(p2), None),
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
    assert_eq!(val.get::<i64, _>("real_crops"), 1);
    assert_eq!(train.get::<i64, _>("real_crops"), 0);
    assert_eq!(val.get::<i64, _>("products_in_other_splits"), 1);
    // The page's per-version figures agree.
    let counts = buybuddy::db::datasets::split_counts(&db.pool, version)
        .await
        .unwrap();
    assert_eq!(counts[0].products, 2);
    assert_eq!(counts[0].boxes, 4);
    assert_eq!(counts[1].images, 2);
    assert_eq!(counts[1].real, 1);
}

/// Shelf coverage on vectors chosen so that every figure is known: product A
/// has a crop exactly at its prototype and one that looks more like C; B has
/// one crop at its prototype and one matched only by a model that does not
/// serve.
#[tokio::test]
async fn shelf_coverage_figures_are_right_on_crops_with_known_vectors() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let model = |name: &str, serving: bool| {
        sqlx::query_scalar::<_, i32>(
            "INSERT INTO embedding_models (kind, name, dims, weights_hash, active, serving)
             VALUES ('classic', $1, 2, $1, $2, $2) RETURNING id",
        )
        .bind(name.to_owned())
        .bind(serving)
        .fetch_one(pool)
    };
    let serving = model("crafted", true).await.unwrap();
    let other = model("older", false).await.unwrap();
    let a = seed_product(pool, "1000000000001", "A", 1).await;
    let b = seed_product(pool, "1000000000002", "B", 1).await;
    let c = seed_product(pool, "1000000000003", "C", 1).await;
    sqlx::query("UPDATE products SET category = 'drinks' WHERE id IN ($1, $2)")
        .bind(a)
        .bind(b)
        .execute(pool)
        .await
        .unwrap();
    for (product, vector) in [(a, "[1,0]"), (b, "[0,1]"), (c, "[0.6,0.8]")] {
        sqlx::query(
            "INSERT INTO product_embeddings (model_id, product_id, embedding, frame_count)
             VALUES ($1, $2, $3::vector, 1)",
        )
        .bind(serving)
        .bind(product)
        .bind(vector)
        .execute(pool)
        .await
        .unwrap();
    }
    let image: i32 = sqlx::query_scalar(
        "INSERT INTO shelf_images (file_name, original_key, storage_key, sha256, width, height)
         VALUES ('s.jpg', 'k', 'k', 'h', 100, 100) RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    // (status, product, model, vector, suggestions, nearest frame's product)
    let crops = [
        (
            "confirmed",
            Some(a),
            serving,
            "[1,0]",
            vec![(a, 1.0), (c, 0.6), (b, 0.0)],
            a,
        ),
        (
            "confirmed",
            Some(a),
            serving,
            "[0.6,0.8]",
            vec![(c, 1.0), (b, 0.8), (a, 0.6)],
            c,
        ),
        (
            "confirmed",
            Some(b),
            serving,
            "[0,1]",
            vec![(b, 1.0), (c, 0.8), (a, 0.0)],
            b,
        ),
        ("confirmed", Some(b), other, "[1,0]", vec![(a, 1.0)], a),
        ("absent", None, serving, "[0,1]", vec![(b, 1.0)], b),
        ("suggested", None, serving, "[1,0]", vec![(a, 1.0)], a),
    ];
    for (status, product, model_id, vector, suggestions, nearest) in crops {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO shelf_boxes (image_id, x, y, width, height, source, crop_key, status, product_id)
             VALUES ($1, 0, 0, 10, 10, 'drawn', 'c', $2, $3) RETURNING id",
        )
        .bind(image)
        .bind(status)
        .bind(product)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO shelf_crop_matches (box_id, model_id, embedding, gallery_product_id)
             VALUES ($1, $2, $3::vector, $4)",
        )
        .bind(id)
        .bind(model_id)
        .bind(vector)
        .bind(nearest)
        .execute(pool)
        .await
        .unwrap();
        for (rank, (p, similarity)) in suggestions.into_iter().enumerate() {
            sqlx::query(
                "INSERT INTO shelf_suggestions (box_id, model_id, rank, product_id, similarity)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(model_id)
            .bind(rank as i16 + 1)
            .bind(p)
            .bind(similarity as f32)
            .execute(pool)
            .await
            .unwrap();
        }
    }
    let rows = run(pool, "shelf_coverage.sql").await;
    let figures: Vec<buybuddy::db::shelves::Coverage> = rows
        .iter()
        .map(|r| sqlx::FromRow::from_row(r).unwrap())
        .collect();
    let close = |x: Option<f64>, y: f64| x.is_some_and(|x| (x - y).abs() < 1e-6);
    assert_eq!(figures.len(), 2, "{figures:?}");
    // Worst first: A finds itself in one crop of two.
    let a = &figures[0];
    assert_eq!(
        (a.barcode.as_str(), a.real_crops, a.crops_scored, a.confused),
        ("1000000000001", 2, 2, 1)
    );
    assert!(close(a.mean_similarity, 0.8), "{a:?}");
    assert!(
        close(a.mean_margin, 0.0) && close(a.worst_margin, -0.4),
        "{a:?}"
    );
    assert!(close(a.recall_at_1, 0.5), "{a:?}");
    let b = &figures[1];
    assert_eq!(
        (b.barcode.as_str(), b.real_crops, b.crops_scored, b.confused),
        ("1000000000002", 2, 1, 0)
    );
    assert!(close(b.mean_similarity, 1.0), "{b:?}");
    assert!(
        close(b.mean_margin, 0.2) && close(b.worst_margin, 0.2),
        "{b:?}"
    );
    assert!(close(b.recall_at_1, 1.0), "{b:?}");
    // The page's figures are the same query's, and its verdicts follow them.
    let coverage = buybuddy::db::shelves::coverage(pool).await.unwrap();
    assert_eq!(coverage.len(), 2);
    assert_eq!(buybuddy::actions::shelves::verdict(&coverage[0]), "re-film");
    assert_eq!(
        buybuddy::actions::shelves::verdict(&coverage[1]),
        "collect more"
    );
    let confusions = buybuddy::db::shelves::confusions(pool, None, 10)
        .await
        .unwrap();
    assert_eq!(confusions.len(), 1);
    assert_eq!(confusions[0].confused_barcode, "1000000000003");
    assert_eq!(
        buybuddy::db::shelves::unscored_confirmed(pool)
            .await
            .unwrap(),
        1
    );
}

/// Merchant lines against three products: the candidates query finds the
/// barcode match and the names nearest, with their signals; the progress
/// query counts decisions, conflicts and how they were made.
#[tokio::test]
async fn merchant_candidates_and_progress_are_right_on_known_lines() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let product =
        |barcode: &'static str, brand: &'static str, name: &'static str, size: &'static str| {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "INSERT INTO products (barcode, brand_name, product_name, net_quantity)
             VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(barcode)
            .bind(brand)
            .bind(name)
            .bind(size)
            .fetch_one(pool)
        };
    let cola = product("5449000131805", "Coca-Cola", "Coca-Cola Zero", "330 ml")
        .await
        .unwrap();
    let big = product("5449000134264", "Coca-Cola", "Coca-Cola Zero", "1 L")
        .await
        .unwrap();
    let pepsi = product("4060800001231", "Pepsi", "Pepsi Max", "330 ml")
        .await
        .unwrap();
    let merchant: i32 =
        sqlx::query_scalar("INSERT INTO merchants (code, name) VALUES ('m', 'M') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    let line = |sku: &'static str, name: &'static str, barcode: Option<&'static str>| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO merchant_lines (merchant_id, sku, name, barcode) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(merchant)
        .bind(sku)
        .bind(name)
        .bind(barcode)
        .fetch_one(pool)
    };
    let l1 = line("1", "Coca Cola Zero 33cl", Some("05449000131805"))
        .await
        .unwrap();
    let l2 = line("2", "pepsi max 0,33 l", None).await.unwrap();
    let l3 = line("3", "Coca Cola Zero 1lt", None).await.unwrap();
    let rows = run(pool, "merchant_candidates.sql").await;
    let find = |l: i64, p: uuid::Uuid| {
        rows.iter()
            .find(|r| r.get::<i64, _>("line_id") == l && r.get::<uuid::Uuid, _>("product_id") == p)
            .unwrap_or_else(|| panic!("line {l} has no candidate {p}"))
    };
    // Line 1's barcode finds a product with a name like its own: it needs no
    // search by name. Lines 2 and 3 have every product among their 10
    // nearest names.
    assert_eq!(rows.len(), 1 + 3 + 3);
    let by_barcode = find(l1, cola);
    assert_eq!(by_barcode.get::<String, _>("found_by"), "barcode");
    assert_eq!(
        by_barcode.get::<Option<bool>, _>("barcode_match"),
        Some(true)
    );
    assert_eq!(
        by_barcode.get::<Option<bool>, _>("barcode_valid"),
        Some(true)
    );
    assert_eq!(
        by_barcode.get::<Option<bool>, _>("quantity_agrees"),
        Some(true)
    );
    assert_eq!(
        by_barcode.get::<Option<bool>, _>("brand_agrees"),
        Some(true)
    );
    assert_eq!(find(l2, cola).get::<String, _>("found_by"), "name");
    assert_eq!(find(l2, cola).get::<Option<bool>, _>("barcode_match"), None);
    assert_eq!(
        find(l2, pepsi).get::<Option<bool>, _>("barcode_match"),
        None
    );
    assert_eq!(
        find(l2, pepsi).get::<Option<bool>, _>("quantity_agrees"),
        Some(true)
    );
    let words = |l, p| find(l, p).get::<Option<f32>, _>("word_overlap").unwrap();
    assert!(
        words(l2, pepsi) > words(l2, cola),
        "pepsi shares more words with pepsi"
    );
    let similar = |l, p| find(l, p).get::<Option<f32>, _>("name_similarity").unwrap();
    assert!(similar(l3, big) > similar(l3, pepsi));
    assert_eq!(
        find(l3, big).get::<Option<bool>, _>("quantity_agrees"),
        Some(true)
    );
    assert_eq!(
        find(l3, cola).get::<Option<bool>, _>("quantity_agrees"),
        Some(false)
    );

    // Decisions: 1 in bulk, 2 by review (taking the top suggestion), 3 to
    // the same product as 1 (a conflict), then cleared and assigned again.
    let decide = |l: i64,
                  status: &'static str,
                  p: Option<uuid::Uuid>,
                  suggested: bool,
                  via: &'static str| {
        sqlx::query(
            "WITH a AS (INSERT INTO merchant_assignments (line_id, status, product_id, barcode, suggested, via)
                        SELECT $1, $2, $3, (SELECT barcode FROM products WHERE id = $3), $4, $5 RETURNING id, line_id)
             UPDATE merchant_lines SET assignment_id = a.id FROM a WHERE merchant_lines.id = a.line_id",
        )
        .bind(l)
        .bind(status)
        .bind(p)
        .bind(suggested)
        .bind(via)
        .execute(pool)
    };
    decide(l1, "assigned", Some(cola), true, "bulk")
        .await
        .unwrap();
    decide(l2, "assigned", Some(pepsi), true, "review")
        .await
        .unwrap();
    decide(l3, "assigned", Some(cola), false, "review")
        .await
        .unwrap();
    let rows = run(pool, "merchant_progress.sql").await;
    let m = &rows[0];
    assert_eq!(m.get::<i64, _>("lines"), 3);
    assert_eq!(m.get::<i64, _>("assigned"), 3);
    assert_eq!(m.get::<i64, _>("conflicts"), 1);
    assert!((m.get::<f64, _>("took_top_suggestion") - 2.0 / 3.0).abs() < 1e-9);
    assert!((m.get::<f64, _>("bulk") - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(m.get::<i64, _>("waiting"), 3);
    decide(l3, "cleared", None, false, "review").await.unwrap();
    let rows = run(pool, "merchant_progress.sql").await;
    assert_eq!(rows[0].get::<i64, _>("undecided"), 1);
    assert_eq!(rows[0].get::<i64, _>("conflicts"), 0);
    // The page's figures agree.
    let progress = buybuddy::db::merchants::progress(pool, merchant)
        .await
        .unwrap();
    assert_eq!(
        (progress.assigned, progress.undecided, progress.conflicts),
        (2, 1, 0)
    );
}
