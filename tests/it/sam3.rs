//! The video job with the SAM 3 segmenter: a tiny, randomly initialised SAM 3
//! exported by vision/python/export_sam3.py (scripts/setup.sh --test makes it),
//! run on CPU through the whole job: decode, segment, post-process, storage,
//! database.
#![cfg(feature = "sam3")]

use crate::common;

use std::path::PathBuf;

use buybuddy::db;
use common::*;
use serde_json::Value;

const BARCODE: &str = "8690000000002";

fn tiny_export() -> PathBuf {
    let path = std::env::var_os("BUYBUDDY_SAM3_TINY")
        .map_or_else(|| repo_root().join(".data/models/sam3-tiny"), PathBuf::from);
    assert!(
        path.join("sam3.pt").is_file(),
        "{} has no tiny SAM 3 export: run scripts/setup.sh --test",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_video_job_runs_on_the_sam3_segmenter() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "sample.mp4", 12);
    let storage = dir.path().join("storage");
    let output = process_command(&db, &video, BARCODE, 5, &storage)
        .env("SAM3_MODEL_PATH", tiny_export().join("sam3.pt"))
        .env("DEVICE", "cpu")
        .env("SAM3_BATCH_SIZE", "2")
        // The random model scores about 0.25 everywhere: take its best instance.
        .env("SAM3_MIN_SCORE", "0")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Finding the product in 5 frames (sam3 segmenter)"),
        "{stderr}"
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["status"], "completed");
    assert_eq!(printed["frame_count"], 5);

    let (product_id, _) = db::products::by_barcode(&db.pool, BARCODE)
        .await
        .unwrap()
        .unwrap();
    let rows = db::frames::for_product(&db.pool, product_id).await.unwrap();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_eq!((row.width, row.height), (518, 518));
        assert!(row.mask_area.unwrap() > 0);
        let image = image::open(storage.join(&row.storage_key)).unwrap();
        assert_eq!((image.width(), image.height()), (518, 518));
        let mask = image::open(storage.join(row.mask_key.as_ref().unwrap()))
            .unwrap()
            .into_luma8();
        assert_eq!(mask.dimensions(), (518, 518));
        assert!(mask.as_raw().iter().all(|&v| v == 0 || v == 255));
    }
}

/// Waits for a job to end; returns its status and error.
async fn ended(pool: &sqlx::PgPool, job: &str) -> (String, Option<String>) {
    let id: uuid::Uuid = job.parse().unwrap();
    eventually(std::time::Duration::from_secs(120), "the job", || async {
        let row: (String, Option<String>) =
            sqlx::query_as("SELECT status, error_message FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap();
        (row.0 != "queued" && row.0 != "running").then_some(row)
    })
    .await
}

#[tokio::test]
async fn sam3_proposes_boxes_on_a_shelf_photo_once_and_the_classic_segmenter_says_it_cannot() {
    use std::sync::Arc;
    let db = TestDb::new().await;
    let sam3 = buybuddy_worker::segment::Sam3Segmenter::load(
        &tiny_export(),
        buybuddy_vision::Sam3Options {
            device: buybuddy_vision::DeviceChoice::Cpu,
            ..Default::default()
        },
    )
    .unwrap();
    let pipeline = TestPipeline::new().await.with_segmenter(Arc::new(sam3));
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let mut photo = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(buybuddy_vision::sam3::reference_frame(640, 480))
        .write_to(&mut photo, image::ImageFormat::Jpeg)
        .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(photo.into_inner()).file_name("shelf.jpg"),
    );
    let uploaded: Value = server
        .client
        .post(server.url("/api/shelves"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image = uploaded["images"][0][0].as_i64().unwrap();
    let propose = || async {
        let response: Value = server
            .client
            .post(server.url(&format!("/api/shelves/{image}/propose")))
            .json(&serde_json::json!({"prompts": ["product", "bottle"], "min_score": 0.0}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["job_id"].as_str().unwrap().to_owned()
    };
    let boxes = || async {
        let shown: Value = server
            .client
            .get(server.url(&format!("/api/shelves/{image}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        shown["boxes"].as_array().unwrap().clone()
    };

    let worker = InProcessWorker::start(
        &db.pool,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["propose_boxes"],
            ..pipeline.worker_config()
        },
    );
    let job = propose().await;
    assert_eq!(ended(&db.pool, &job).await, ("completed".into(), None));
    let first = boxes().await;
    assert!(
        !first.is_empty(),
        "the random model proposes something at min score 0"
    );
    for b in &first {
        assert_eq!(b["source"], "proposed");
        assert!(b["label"] == "product" || b["label"] == "bottle", "{b}");
        let (x, y) = (b["x"].as_i64().unwrap(), b["y"].as_i64().unwrap());
        let (w, h) = (b["width"].as_i64().unwrap(), b["height"].as_i64().unwrap());
        assert!(w >= 4 && h >= 4 && x + w <= 640 && y + h <= 480, "{b}");
        let crop = pipeline
            .storage
            .get(b["crop_key"].as_str().unwrap())
            .await
            .unwrap();
        assert!(!crop.is_empty());
    }
    // Asked again, it proposes nothing it proposed before.
    let job = propose().await;
    assert_eq!(ended(&db.pool, &job).await.0, "completed");
    assert_eq!(boxes().await.len(), first.len());
    worker.stop().await;

    // A worker with the classic segmenter says why it cannot.
    let classic = buybuddy::jobs::Resources {
        storage: Some(pipeline.storage.clone()),
        segmenter: Some(Arc::new(
            buybuddy_worker::segment::ClassicSegmenter::default(),
        )),
        ..Default::default()
    };
    let worker = InProcessWorker::start(
        &db.pool,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["propose_boxes"],
            resources: Arc::new(classic),
            ..worker_config()
        },
    );
    let job = propose().await;
    let (status, error) = ended(&db.pool, &job).await;
    assert_eq!(status, "failed");
    assert!(
        error
            .unwrap_or_default()
            .contains("cannot tell products apart")
    );
    worker.stop().await;
}

#[tokio::test]
async fn a_worker_with_a_broken_model_stops_at_start_saying_why() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["sam3.json", "tokenizer.json"] {
        std::fs::copy(tiny_export().join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("sam3.pt"), b"truncated").unwrap();
    let output = tokio::process::Command::new(binary())
        .arg("worker")
        .env("DATABASE_URL", db.url.expose())
        .env("SAM3_MODEL_PATH", dir.path())
        .env("DEVICE", "cpu")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("SAM3_MODEL_PATH="), "{stderr}");
    assert!(
        stderr.contains("loading the TorchScript module"),
        "{stderr}"
    );
}

#[tokio::test]
async fn doctor_reports_libtorch_and_the_segmenter() {
    let db = TestDb::new().await;
    let output = tokio::process::Command::new(binary())
        .arg("doctor")
        .env("DATABASE_URL", db.url.expose())
        .env("SAM3_MODEL_PATH", tiny_export())
        .env("DEVICE", "cpu")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let libtorch = stdout
        .lines()
        .find(|l| l.contains("libtorch "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(libtorch.starts_with("OK"), "{libtorch}");
    assert!(libtorch.contains("libtorch 2.11.0"), "{libtorch}");
    assert!(libtorch.contains("DEVICE=cpu runs on cpu"), "{libtorch}");
    let segmenter = stdout
        .lines()
        .find(|l| l.contains("segmenter"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        segmenter.starts_with("OK") && segmenter.contains("loads and runs"),
        "{segmenter}"
    );
}

#[test]
fn the_binary_links_the_cuda_backend_and_finds_libtorch_by_itself() {
    let output = std::process::Command::new("ldd")
        .arg(binary())
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("libtorch_cuda.so =>"), "{listed}");
    assert!(listed.contains("libc10_cuda.so =>"), "{listed}");
    assert!(!listed.contains("not found"), "{listed}");
}
