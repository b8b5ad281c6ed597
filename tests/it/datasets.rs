//! Datasets end to end against real parts: products with masked frames in
//! storage, a dataset made and previewed over the API, a version rendered by
//! a worker, COCO and YOLO exports downloaded as streams and read back by
//! pycocotools and Ultralytics, and the refusals of bad input.

use crate::common;

use std::{collections::HashMap, time::Duration};

use buybuddy_worker::storage::Storage;
use common::*;
use image::{GrayImage, Luma, Rgb, RgbImage};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const SIDE: u32 = 160;

/// Approved products with `frames` masked frames each, stored as the video
/// pipeline stores them: a coloured box (moving a little per frame) on grey.
pub(crate) async fn masked_products(
    pool: &sqlx::PgPool,
    storage: &Storage,
    count: usize,
    frames: usize,
) -> Vec<(Uuid, String)> {
    let mut out = Vec::new();
    for p in 0..count {
        let barcode = format!("86900000{:05}", 10 + p);
        let id = seed_product(pool, &barcode, &format!("Product {p}"), 0).await;
        sqlx::query("UPDATE products SET status = 'approved', brand_name = 'Acme', category = $2 WHERE id = $1")
            .bind(id)
            .bind(if p % 2 == 0 { "drinks" } else { "snacks" })
            .execute(pool)
            .await
            .unwrap();
        let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE barcode = $1")
            .bind(&barcode)
            .fetch_one(pool)
            .await
            .unwrap();
        for f in 0..frames {
            let mut image = RgbImage::from_pixel(SIDE, SIDE, Rgb([128, 128, 128]));
            let mut mask = GrayImage::new(SIDE, SIDE);
            let (x0, y0) = (30 + f as u32 * 3, 20 + p as u32 * 2);
            for y in y0..y0 + 110 {
                for x in x0..x0 + 70 {
                    image.put_pixel(x, y, Rgb([(40 * p) as u8, 200, (25 * f) as u8]));
                    mask.put_pixel(x, y, Luma([255]));
                }
            }
            let key = format!("frames/{barcode}/{job}/{f:04}.png");
            let mask_key = format!("masks/{barcode}/{job}/{f:04}.png");
            let png = |img: image::DynamicImage| {
                let mut bytes = std::io::Cursor::new(Vec::new());
                img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
                bytes::Bytes::from(bytes.into_inner())
            };
            storage
                .put(&key, png(image.into()), "image/png")
                .await
                .unwrap();
            storage
                .put(&mask_key, png(mask.into()), "image/png")
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO frames (product_id, job_id, frame_index, storage_key, mask_key, width, height, quality)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, '{}')",
            )
            .bind(id)
            .bind(job)
            .bind(f as i32)
            .bind(&key)
            .bind(&mask_key)
            .bind(SIDE as i32)
            .execute(pool)
            .await
            .unwrap();
        }
        out.push((id, barcode));
    }
    out
}

async fn api(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    api(server, reqwest::Method::POST, path, Some(body)).await
}

pub(crate) async fn get(server: &TestServer, path: &str) -> Value {
    let (status, body) = api(server, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits for an export and downloads its archive; returns the bytes.
async fn export_and_download(
    server: &TestServer,
    dataset: i64,
    version: i64,
    format: &str,
) -> (Value, Vec<u8>) {
    let (status, export) = post(
        server,
        &format!("/api/datasets/{dataset}/versions/{version}/exports"),
        json!({"format": format}),
    )
    .await;
    assert_eq!(status, 202, "{export}");
    let id = export["id"].as_i64().unwrap();
    let ready = eventually(Duration::from_secs(60), "the export", || async {
        let e = get(server, &format!("/api/exports/{id}")).await;
        assert_ne!(e["state"], "failed", "{e}");
        (e["state"] == "ready").then_some(e)
    })
    .await;
    let response = server
        .client
        .get(server.url(ready["download"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap().to_vec();
    assert_eq!(bytes.len(), length);
    assert_eq!(ready["size"].as_u64().unwrap() as usize, length);
    (ready, bytes)
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A pool of the worker's own, as a worker process has. (Sharing the
/// server's: a worker stopped mid-`BEGIN` can hand the server a connection
/// still inside a transaction, sqlx 0.9.0's transact-rs/sqlx#4393.)
pub(crate) async fn worker_pool(db: &TestDb) -> sqlx::PgPool {
    buybuddy::db::connect(&db.url, 10, &[]).await.unwrap()
}

/// Runs tests/sdk/check_dataset.py with the torch virtualenv's Python.
async fn consumers_read(args: &[&str]) -> Value {
    let python = repo_root().join(".data/torch/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --test",
        python.display()
    );
    let output = tokio::process::Command::new(&python)
        .arg(repo_root().join("tests/sdk/check_dataset.py"))
        .args(args)
        .env("YOLO_CONFIG_DIR", repo_root().join(".data/ultralytics"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "check_dataset.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Ultralytics may print to stdout on its first import: the answer is the last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test]
async fn a_version_renders_exports_and_reads_back_in_pycocotools_and_ultralytics() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let products = masked_products(&db.pool, &pipeline.storage, 10, 6).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;

    let (status, dataset) = post(
        &server,
        "/api/datasets",
        json!({
            "name": "shelf detector",
            "task": "segment",
            "settings": {"copies": 1, "composites": 10, "per_composite": 5, "seed": 7,
                         "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
            "render": {"shelf": {"width": 320, "height": 240, "max_objects": 8}},
        }),
    )
    .await;
    assert_eq!(status, 201, "{dataset}");
    let id = dataset["id"].as_i64().unwrap();
    assert_eq!(dataset["rule"], "by_product");

    // The preview: the same seed draws the same grid, another seed another.
    let preview = |seed: u64| {
        let server = &server;
        async move {
            let (status, body) = post(
                server,
                &format!("/api/datasets/{id}/preview?seed={seed}&count=4"),
                json!({}),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let first = preview(3).await;
    assert_eq!(
        first["draws"].as_array().unwrap().len(),
        5,
        "4 draws and a composite"
    );
    assert_eq!(first, preview(3).await);
    assert_ne!(first["draws"], preview(4).await["draws"]);
    // An unsaved setting changes the draws: every image flipped.
    let (_, flipped) = post(
        &server,
        &format!("/api/datasets/{id}/preview?seed=3&count=4"),
        json!({"render": {"augment": {"flip": 1.0, "rotate": {"p": 0.0, "range": [0, 0]},
               "scale": {"p": 0.0, "range": [1, 1]}, "shift": {"p": 0.0, "range": [0, 0]}}}}),
    )
    .await;
    let bx = &flipped["draws"][0]["objects"][0]["bbox"];
    assert!(bx["x"].as_u64().unwrap() > 0, "{bx}");

    let worker = InProcessWorker::start(&worker_pool(&db).await, pipeline.worker_config());
    let (status, version) = post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    assert_eq!(status, 202, "{version}");
    assert_eq!(version["number"], 1);
    let version = eventually(Duration::from_secs(60), "version 1 to render", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        assert_ne!(v["job_status"], "failed", "{v}");
        (v["ready"] == true).then_some(v)
    })
    .await;

    // Per split: products, frames and boxes; no product in two splits.
    let splits: HashMap<String, Value> = version["splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["split"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    assert_eq!(splits["train"]["products"], 6);
    assert_eq!(splits["val"]["products"], 2);
    assert_eq!(splits["test"]["products"], 2);
    assert_eq!(splits["train"]["augmented"], splits["train"]["frames"]);
    assert_eq!(splits["val"]["augmented"], 0);
    let composites: i64 = splits
        .values()
        .map(|s| s["composites"].as_i64().unwrap())
        .sum();
    assert_eq!(composites, 10);
    let leaks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT s ->> 'product_id' FROM dataset_items i, jsonb_array_elements(i.sources) s
         GROUP BY 1 HAVING count(DISTINCT i.split) > 1) AS twice",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(leaks, 0, "a product is in two splits");
    assert_eq!(products.len(), 10);

    // The version no longer needs the product frames: remove them, as a
    // reprocess does, and the exports are unaffected.
    for (_, barcode) in &products {
        pipeline
            .storage
            .delete_prefix(&format!("frames/{barcode}/"))
            .await
            .unwrap();
    }

    let (coco, coco_bytes) = export_and_download(&server, id, 1, "coco").await;
    assert_eq!(coco["sha256"].as_str().unwrap(), sha256(&coco_bytes));
    let (_, again) = export_and_download(&server, id, 1, "coco").await;
    assert!(
        again == coco_bytes,
        "exporting a version twice gives byte-identical archives"
    );
    let (_, yolo_bytes) = export_and_download(&server, id, 1, "yolo").await;
    worker.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let coco_path = dir.path().join("coco.zip");
    let yolo_path = dir.path().join("yolo.zip");
    std::fs::write(&coco_path, &coco_bytes).unwrap();
    std::fs::write(&yolo_path, &yolo_bytes).unwrap();

    let read = consumers_read(&["coco", coco_path.to_str().unwrap()]).await;
    for split in ["train", "val", "test"] {
        let s = &read["splits"][split];
        assert_eq!(s["images"], splits[split]["images"], "{split}: {s}");
        assert_eq!(s["annotations"], splits[split]["boxes"], "{split}: {s}");
        assert_eq!(s["categories"], json!(["product"]));
        assert_eq!(s["ap_bbox"], 1.0, "{split}: {s}");
        assert_eq!(s["ap_segm"], 1.0, "{split}: {s}");
        assert!(
            s["worst_area_error"].as_f64().unwrap() < 0.03,
            "{split}: {s}"
        );
    }
    let read = consumers_read(&["yolo", yolo_path.to_str().unwrap(), "segment"]).await;
    assert_eq!(read["nc"], 1);
    assert_eq!(read["names"], json!(["product"]));
    for split in ["train", "val", "test"] {
        let s = &read["splits"][split];
        assert_eq!(s["images"], splits[split]["images"], "{split}: {s}");
        assert_eq!(s["boxes"], splits[split]["boxes"], "{split}: {s}");
        assert_eq!(s["segments"], splits[split]["boxes"], "{split}: {s}");
    }
}

#[tokio::test]
async fn per_product_classes_keep_every_product_in_train_and_export_folders() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let products = masked_products(&db.pool, &pipeline.storage, 3, 12).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let (status, dataset) = post(
        &server,
        "/api/datasets",
        json!({"name": "recognise", "task": "recognition", "settings": {"copies": 0}}),
    )
    .await;
    assert_eq!(status, 201, "{dataset}");
    let id = dataset["id"].as_i64().unwrap();
    let worker = InProcessWorker::start(&worker_pool(&db).await, pipeline.worker_config());
    let (status, _) = post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    assert_eq!(status, 202);
    let version = eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        (v["ready"] == true).then_some(v)
    })
    .await;
    assert_eq!(version["rule"], "by_product");
    assert_eq!(version["classes"].as_array().unwrap().len(), 3);

    // detect_classes splits by frame blocks: each product in train, guards out.
    let (_, dataset) = post(
        &server,
        "/api/datasets",
        json!({"name": "per product", "task": "detect_classes", "settings": {"copies": 0}}),
    )
    .await;
    let id = dataset["id"].as_i64().unwrap();
    post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    let version = eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        (v["ready"] == true).then_some(v)
    })
    .await;
    assert_eq!(version["rule"], "frame_blocks");
    assert_eq!(version["guard_frames"], 3 * 2);
    let train = &version["splits"][0];
    assert_eq!(train["split"], "train");
    assert_eq!(train["products"], 3);
    let (_, folder) = export_and_download(&server, id, 1, "folder").await;

    // Rendering again renders only what is missing.
    sqlx::query(
        "UPDATE dataset_items SET rendered_at = NULL WHERE ordinal < 2
         AND version_id = (SELECT id FROM dataset_versions WHERE dataset_id = $1)",
    )
    .bind(id as i32)
    .execute(&db.pool)
    .await
    .unwrap();
    let ctx = server.state.actions();
    let dataset = buybuddy::actions::datasets::find(ctx, &id.to_string())
        .await
        .unwrap();
    let state = buybuddy::actions::datasets::version(ctx, &dataset, 1)
        .await
        .unwrap();
    let job = buybuddy::actions::datasets::render_version(ctx, &state.version)
        .await
        .unwrap();
    wait_for_status(&db.pool, job, "completed", Duration::from_secs(60)).await;
    let output: Value = sqlx::query_scalar("SELECT output FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(output["rendered_now"], 2, "{output}");
    worker.stop().await;
    let archive = zip_names(&folder);
    assert_eq!(archive[0], "MANIFEST.md");
    for (_, barcode) in &products {
        assert!(
            archive
                .iter()
                .any(|n| n.starts_with(&format!("train/{barcode}/"))),
            "{barcode} has a train folder: {archive:?}"
        );
    }
}

/// Entry names of a ZIP, read from its central directory.
fn zip_names(bytes: &[u8]) -> Vec<String> {
    let end = (0..bytes.len() - 3)
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("an end of central directory");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
    let count = u16_at(end + 10);
    let mut at = u32_at(end + 16);
    let mut names = Vec::with_capacity(count);
    for _ in 0..count {
        let (name_len, extra, comment) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        names.push(String::from_utf8(bytes[at + 46..at + 46 + name_len].to_vec()).unwrap());
        at += 46 + name_len + extra + comment;
    }
    names
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message_and_changes_nothing() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;

    let (status, body) = post(
        &server,
        "/api/datasets",
        json!({"name": "x", "task": "teleport",
               "selection": {"products": ["4006381333931", "not-a-product"]},
               "settings": {"ratios": {"train": 0.5, "val": 0.1, "test": 0.1}},
               "render": {"augment": {"rotate": {"p": 2.0, "range": [0, 10]}, "blur": {"p": 0.5, "range": [5, 1]}}}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields = &body["error"]["fields"];
    assert!(
        fields["task"].as_str().unwrap().contains("not a task"),
        "{fields}"
    );
    assert!(
        fields["selection.products"]
            .as_str()
            .unwrap()
            .contains("not-a-product"),
        "{fields}"
    );
    assert!(
        fields["settings.ratios"]
            .as_str()
            .unwrap()
            .contains("add up to 1"),
        "{fields}"
    );
    assert!(
        fields["render.augment.rotate"]
            .as_str()
            .unwrap()
            .contains("probability"),
        "{fields}"
    );
    assert!(
        fields["render.augment.blur"]
            .as_str()
            .unwrap()
            .contains("low to high"),
        "{fields}"
    );
    assert!(
        buybuddy::db::datasets::list(&db.pool)
            .await
            .unwrap()
            .is_empty()
    );

    let (status, body) = post(&server, "/api/datasets", json!({"name": ""})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = post(&server, "/api/datasets", json!({"name": "empty"})).await;
    assert_eq!(status, 201);
    let (status, body) = post(&server, "/api/datasets", json!({"name": "empty"})).await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("already"),
        "{body}"
    );

    // Nothing approved yet: generating says why.
    let (status, body) = post(&server, "/api/datasets/empty/versions", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No product"),
        "{body}"
    );

    // A product with frames but no masks cannot be labelled.
    let unmasked = seed_product(&db.pool, "4006381333931", "No masks", 2).await;
    for sql in [
        "UPDATE products SET status = 'approved' WHERE id = $1",
        "UPDATE frames SET mask_key = NULL WHERE product_id = $1",
    ] {
        sqlx::query(sql)
            .bind(unmasked)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let (status, body) = post(&server, "/api/datasets/empty/versions", json!({})).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("4006381333931") && message.contains("no masks"),
        "{body}"
    );
    sqlx::query("UPDATE products SET status = 'rejected' WHERE id = $1")
        .bind(unmasked)
        .execute(&db.pool)
        .await
        .unwrap();

    // One product cannot fill three splits by product.
    masked_products(&db.pool, &pipeline.storage, 1, 4).await;
    let (status, body) = post(&server, "/api/datasets/empty/versions", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("would be empty"),
        "{body}"
    );

    // Exports of a version still rendering, or in a format the task cannot use.
    let (status, _) = api(
        &server,
        reqwest::Method::PATCH,
        "/api/datasets/empty",
        Some(json!({"settings": {"ratios": {"train": 1.0, "val": 0.0, "test": 0.0}}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&server, "/api/datasets/empty/versions", json!({})).await;
    assert_eq!(status, 202);
    let (status, body) = post(
        &server,
        "/api/datasets/empty/versions/1/exports",
        json!({"format": "coco"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rendered"),
        "{body}"
    );
    let (status, body) = post(
        &server,
        "/api/datasets/empty/versions/1/exports",
        json!({"format": "folder"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post(
        &server,
        "/api/datasets/empty/versions/1/exports",
        json!({"format": "voc"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = api(
        &server,
        reqwest::Method::GET,
        "/api/datasets/empty/versions/9",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A background that is not an image.
    let form = reqwest::multipart::Form::new().part(
        "background",
        reqwest::multipart::Part::bytes(b"not an image".to_vec()).file_name("bg.png"),
    );
    let response = server
        .client
        .post(server.url("/api/backgrounds"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a PNG or JPEG"),
        "{body}"
    );
}

#[tokio::test]
async fn a_cancelled_export_leaves_nothing_to_download() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    masked_products(&db.pool, &pipeline.storage, 3, 4).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let (_, dataset) = post(
        &server,
        "/api/datasets",
        json!({"name": "c", "settings": {"copies": 0, "ratios": {"train": 1.0, "val": 0.0, "test": 0.0}}}),
    )
    .await;
    let id = dataset["id"].as_i64().unwrap();
    let worker = InProcessWorker::start(&worker_pool(&db).await, pipeline.worker_config());
    post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        (v["ready"] == true).then_some(())
    })
    .await;
    worker.stop().await;
    let (status, export) = post(
        &server,
        &format!("/api/datasets/{id}/versions/1/exports"),
        json!({"format": "yolo"}),
    )
    .await;
    assert_eq!(status, 202, "{export}");
    let job = export["job_id"].as_str().unwrap();
    let (status, _) = post(&server, &format!("/api/jobs/{job}/cancel"), json!({})).await;
    assert!(status < 300, "{status}");
    let export_id = export["id"].as_i64().unwrap();
    let e = get(&server, &format!("/api/exports/{export_id}")).await;
    assert_eq!(e["state"], "cancelled", "{e}");
    assert!(e["download"].is_null());
    let (status, body) = api(
        &server,
        reqwest::Method::GET,
        &format!("/api/exports/{export_id}/download"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let keys = pipeline.storage.list("datasets/").await.unwrap();
    assert!(!keys.iter().any(|k| k.contains("/exports/")), "{keys:?}");
}

#[tokio::test]
async fn the_pages_create_a_dataset_preview_it_and_offer_its_versions() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    masked_products(&db.pool, &pipeline.storage, 4, 4).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let page = server
        .client
        .get(server.url("/datasets"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("No dataset yet"));

    // A bad form comes back with its message, and nothing is made.
    let response = server
        .client
        .post(server.url("/datasets"))
        .form(&[
            ("name", ""),
            ("task", "detect"),
            ("selection.statuses", "approved"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Give the dataset a name.")
    );

    let response = server
        .client
        .post(server.url("/datasets"))
        .form(&[
            ("name", "from the page"),
            ("task", "detect"),
            ("selection.statuses", "approved"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "followed to the dataset's page");
    let url = response.url().path().to_owned();
    let html = response.text().await.unwrap();
    assert!(
        html.contains("from the page") && html.contains("Split rule"),
        "{url}"
    );
    assert!(
        html.contains("split by product"),
        "the page says which rule applies"
    );

    // The preview fragment, from the form's fields.
    let id: i32 = url.rsplit('/').next().unwrap().parse().unwrap();
    let fields = [
        ("preview_seed", "5"),
        ("selection.statuses", "approved"),
        ("render.augment.flip", "1"),
        ("render.augment.rotate.p", "0.5"),
        ("render.augment.rotate.range.0", "-10"),
        ("render.augment.rotate.range.1", "10"),
        ("render.augment.background_kinds", "solid"),
        ("render.augment.background_kinds", "texture"),
    ];
    let fragment = |fields: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let response = server
                .client
                .post(server.url(&format!("/fragments/datasets/{id}/preview")))
                .form(&fields)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        }
    };
    let grid = fragment(fields.to_vec()).await;
    assert_eq!(
        grid.matches("data:image/jpeg;base64,").count(),
        16,
        "8 originals and 8 draws"
    );
    let strip = |html: &str| html.split(" ms.").nth(1).unwrap_or_default().to_owned();
    assert_eq!(
        strip(&grid),
        strip(&fragment(fields.to_vec()).await),
        "same seed, same grid"
    );
    let bad = fragment(vec![
        ("selection.statuses", "approved"),
        ("render.augment.flip", "3"),
    ])
    .await;
    assert!(bad.contains("probability must be between 0 and 1"), "{bad}");

    // Saving a bad setting shows the message and keeps the old one.
    let response = server
        .client
        .post(server.url(&format!("/datasets/{id}")))
        .form(&[
            ("selection.statuses", "approved"),
            ("settings.ratios.train", "0.2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("add up to 1"));
    let response = server
        .client
        .post(server.url(&format!("/datasets/{id}/versions")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("Version 1 is being rendered"), "{html}");
    assert!(html.contains("Rendered 0 of"), "{html}");
}

#[tokio::test]
async fn an_uploaded_background_goes_behind_the_products() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    masked_products(&db.pool, &pipeline.storage, 3, 2).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    // A blue 96x80 PNG.
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::from(RgbImage::from_pixel(96, 80, Rgb([0, 0, 255])))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "background",
        reqwest::multipart::Part::bytes(png.into_inner()).file_name("blue shelf.png"),
    );
    let response = server
        .client
        .post(server.url("/api/backgrounds"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let listed = get(&server, "/api/backgrounds").await;
    assert_eq!(listed["backgrounds"][0]["width"], 96);
    assert_eq!(listed["backgrounds"][0]["name"], "blue shelf.png");

    let (status, _) = post(
        &server,
        "/api/datasets",
        json!({"name": "on blue", "settings": {"copies": 1},
               "render": {"augment": {"background": 1.0, "background_kinds": ["image"]}}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = post(&server, "/api/datasets/on blue/preview?count=2", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draws"].as_array().unwrap().len(), 2);
    let worker = InProcessWorker::start(&worker_pool(&db).await, pipeline.worker_config());
    let (status, _) = post(&server, "/api/datasets/on blue/versions", json!({})).await;
    assert_eq!(status, 202);
    let version = eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, "/api/datasets/on blue/versions/1").await;
        assert_ne!(v["job_status"], "failed", "{v}");
        (v["ready"] == true).then_some(v)
    })
    .await;
    worker.stop().await;
    assert_eq!(
        version["config"]["backgrounds"].as_array().unwrap().len(),
        1
    );
    // An augmented draw: its corner, outside the product, is the uploaded blue
    // (darker or lighter by the colour transforms), not the frame's grey.
    let key: String = sqlx::query_scalar(
        "SELECT image_key FROM dataset_items WHERE kind = 'augmented' ORDER BY ordinal LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let drawn = image::load_from_memory(&pipeline.storage.get(&key).await.unwrap())
        .unwrap()
        .to_rgb8();
    let corner = drawn.get_pixel(1, SIDE - 2).0;
    let [r, g, b] = corner.map(i32::from);
    assert!(b > 100 && b > r + 80 && b > g + 80, "{corner:?}");
}
