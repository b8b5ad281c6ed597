//! The video job end to end against PostgreSQL, local storage and real video
//! files: what it produces, and what it leaves behind when anything goes wrong.
//! Longer than most files: one scenario per way the video job can end, sharing
//! the helpers that check nothing was left behind.

use crate::common;

use std::{net::SocketAddr, time::Duration};

use axum::{Router, body::Body, http::StatusCode, response::Response, routing::get};
use buybuddy::{
    db,
    jobs::{JobSpec, video::Video},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};
use buybuddy_worker::media::synthetic::{Codec, Scene};
use common::*;
use serde_json::Value;
use uuid::Uuid;

const BARCODE: &str = "8690000000001";

fn video_job(url: &str) -> JobSpec {
    JobSpec::Video(Video {
        video_url: url.to_owned(),
        barcode: BARCODE.to_owned(),
        video_id: Some(42),
        frames: None,
        background: None,
    })
}

async fn push(pool: &sqlx::PgPool, spec: JobSpec, max_attempts: u32) -> Uuid {
    queue::enqueue(
        pool,
        DEFAULT_QUEUE,
        vec![Enqueue {
            max_attempts: Some(max_attempts),
            ..Enqueue::from(spec)
        }],
    )
    .await
    .unwrap()[0]
}

/// Runs one video job on an in-process worker until it ends; returns the job.
async fn run_job(
    db: &TestDb,
    pipeline: &TestPipeline,
    url: &str,
    max_attempts: u32,
) -> db::jobs::Job {
    let id = push(&db.pool, video_job(url), max_attempts).await;
    let worker = InProcessWorker::start(&db.pool, pipeline.worker_config());
    let job = eventually(Duration::from_secs(60), "the video job to end", || async {
        let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
        (!matches!(job.status.as_str(), "queued" | "running")).then_some(job)
    })
    .await;
    worker.stop().await;
    job
}

async fn product_count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The job failed at `stage` with a message containing `says`, and nothing but
/// the failed job remains: no product, no frames, no objects, no downloads.
async fn failed_cleanly(
    db: &TestDb,
    pipeline: &TestPipeline,
    job: &db::jobs::Job,
    stage: &str,
    says: &str,
) {
    assert_eq!(job.status, "failed", "{job:?}");
    assert_eq!(job.stage.as_deref(), Some(stage), "{job:?}");
    let error = job.error_message.as_deref().unwrap_or_default();
    assert!(error.contains(says), "error {error:?} should say {says:?}");
    assert_eq!(
        product_count(&db.pool).await,
        0,
        "no product without frames"
    );
    let frames: i64 = sqlx::query_scalar("SELECT count(*) FROM frames")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(frames, 0);
    assert!(
        pipeline.objects().await.is_empty(),
        "{:?}",
        pipeline.objects().await
    );
    assert!(pipeline.scratch_is_empty(), "downloads must be removed");
}

#[tokio::test]
async fn process_command_prints_the_output_and_stores_n_square_frames() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "sample.mp4", 30);
    let storage = dir.path().join("storage");
    let output = process_command(&db, &video, BARCODE, 10, &storage)
        .args(["--video-id", "7"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Storing 10 frames"),
        "progress is shown: {stderr}"
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["status"], "completed");
    assert_eq!(printed["frame_count"], 10);
    assert!(printed["metadata"].is_null());
    let frames_url = printed["frames_url"].as_str().unwrap();
    let folder = frames_url.strip_prefix("file://").unwrap();
    let mut pngs: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), 10);
    for png in &pngs {
        let image = image::open(png).unwrap();
        assert_eq!(
            (image.width(), image.height()),
            (518, 518),
            "{}",
            png.display()
        );
    }

    let (product_id, status) = db::products::by_barcode(&db.pool, BARCODE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, "needs_review");
    let rows = db::frames::for_product(&db.pool, product_id).await.unwrap();
    assert_eq!(rows.len(), 10);
    let first = &rows[0];
    assert_eq!((first.width, first.height), (518, 518));
    assert!(first.mask_area.unwrap() > 1000 && first.bbox_w.unwrap() > 10);
    assert!(first.quality["sharpness"].as_f64().unwrap() > 0.0);
    // Where the mask sits in its frame, for the reviewer: a product standing
    // clear of the edges, with nothing to warn about.
    let share = first.quality["area_share"].as_f64().unwrap();
    assert!((0.05..0.5).contains(&share), "{share}");
    assert_eq!(first.quality["border_share"].as_f64(), Some(0.0));
    assert!(first.quality["width_share"].as_f64().unwrap() < 0.5);
    assert_eq!(first.quality["warnings"], serde_json::json!([]));
    assert!(storage.join(first.mask_key.as_ref().unwrap()).exists());
    let job: (i32, String, String) =
        sqlx::query_as("SELECT frame_count, frames_path, status FROM jobs WHERE barcode = $1")
            .bind(BARCODE)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(job, (10, frames_url.to_owned(), "completed".to_owned()));
}

#[tokio::test]
async fn files_that_are_not_usable_videos_fail_at_decode_leaving_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "aisle 4: cereal, oats\n".repeat(40)).unwrap();
    let audio = dir.path().join("tone.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:duration=1", "-c:a", "aac"])
        .arg(&audio)
        .status()
        .unwrap();
    assert!(made.success());
    let corrupt = dir.path().join("corrupt.mp4");
    let good = std::fs::read(sample_video(dir.path(), "good.mp4", 10)).unwrap();
    let mut bytes: Vec<u8> = good[..48].to_vec();
    bytes.extend((0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8));
    std::fs::write(&corrupt, bytes).unwrap();

    for (file, says) in [
        (&empty, "the file is empty"),
        (&text, "not a video FFmpeg can read"),
        (&audio, "no video stream (it holds audio only)"),
        (&corrupt, "FFmpeg"),
    ] {
        let db = TestDb::new().await;
        let pipeline = TestPipeline::new().await;
        let job = run_job(&db, &pipeline, file.to_str().unwrap(), 3).await;
        failed_cleanly(&db, &pipeline, &job, "decode", says).await;
        assert_eq!(
            job.attempts,
            1,
            "{}: a file that is not a video is not retried",
            file.display()
        );
    }
}

/// A server with a video, a missing one, a stalling one and a huge one.
async fn video_server(video: Vec<u8>) -> SocketAddr {
    let app = Router::new()
        .route("/video.mp4", get(move || async move { video.clone() }))
        .route("/missing.mp4", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/stall.mp4",
            get(|| async {
                let body = futures::stream::once(async { Ok::<_, std::io::Error>(vec![0u8; 64]) })
                    .chain(futures::stream::pending());
                Response::new(Body::from_stream(body))
            }),
        )
        .route("/huge.mp4", get(|| async { vec![0u8; 3 << 20] }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

use futures::StreamExt;

#[tokio::test]
async fn download_failures_say_why_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(sample_video(dir.path(), "sample.mp4", 12)).unwrap();
    let server = video_server(video).await;

    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let job = run_job(&db, &pipeline, &format!("http://{server}/missing.mp4"), 3).await;
    failed_cleanly(&db, &pipeline, &job, "download", "was not found").await;
    assert_eq!(job.attempts, 1, "a 404 is not retried");

    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let job = run_job(&db, &pipeline, &format!("http://{server}/stall.mp4"), 1).await;
    failed_cleanly(
        &db,
        &pipeline,
        &job,
        "download",
        "stopped sending (timed out)",
    )
    .await;

    let db = TestDb::new().await;
    let pipeline = TestPipeline::with_limits(buybuddy_worker::download::Limits {
        max_bytes: 1 << 20,
        ..buybuddy_worker::download::Limits::default()
    })
    .await;
    let job = run_job(&db, &pipeline, &format!("http://{server}/huge.mp4"), 3).await;
    failed_cleanly(
        &db,
        &pipeline,
        &job,
        "download",
        "larger than the limit of 1 MiB",
    )
    .await;
    assert_eq!(job.attempts, 1);

    // And the same server's real video goes through.
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let job = run_job(&db, &pipeline, &format!("http://{server}/video.mp4"), 1).await;
    assert_eq!(job.status, "completed", "{job:?}");
    assert_eq!(job.frame_count, Some(8));
    assert!(
        pipeline.scratch_is_empty(),
        "the download is removed after the job"
    );
}

#[tokio::test]
async fn a_one_frame_video_gives_one_frame() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "one.mp4", 1);
    let job = run_job(&db, &pipeline, video.to_str().unwrap(), 1).await;
    assert_eq!(job.status, "completed", "{job:?}");
    assert_eq!(job.frame_count, Some(1));
    assert_eq!(pipeline.objects().await.len(), 2, "one frame and its mask");
}

#[tokio::test]
async fn a_portrait_phone_video_is_processed_upright() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portrait.mp4");
    let scene = Scene {
        width: 240,
        height: 320,
        frames: 16,
        ..Scene::default()
    };
    scene.write_video(&path, Codec::H264, true).unwrap();
    let job = run_job(&db, &pipeline, path.to_str().unwrap(), 1).await;
    assert_eq!(job.status, "completed", "{job:?}");
    let output = job.output.unwrap();
    assert_eq!(output["video"]["rotation"], 90);
    assert_eq!(
        (
            output["video"]["width"].as_u64(),
            output["video"]["height"].as_u64()
        ),
        (Some(240), Some(320))
    );
    // The product's box overlaps the upright scene's; a sideways reading would not
    // even fit the 240x320 frame.
    let (product_id, _) = db::products::by_barcode(&db.pool, BARCODE)
        .await
        .unwrap()
        .unwrap();
    for frame in db::frames::for_product(&db.pool, product_id).await.unwrap() {
        let truth =
            buybuddy_worker::segment::bounding_box(&scene.render(frame.frame_index as usize).1)
                .unwrap();
        let (x, y, w, h) = (
            frame.bbox_x.unwrap(),
            frame.bbox_y.unwrap(),
            frame.bbox_w.unwrap(),
            frame.bbox_h.unwrap(),
        );
        let (tx, ty, tw, th) = (
            truth.x as i32,
            truth.y as i32,
            truth.width as i32,
            truth.height as i32,
        );
        let overlap_w = ((x + w).min(tx + tw) - x.max(tx)).max(0);
        let overlap_h = ((y + h).min(ty + th) - y.max(ty)).max(0);
        let inter = f64::from(overlap_w * overlap_h);
        let union = f64::from(w * h + tw * th) - inter;
        assert!(
            inter / union > 0.8,
            "frame {}: box {:?}, truth {truth:?}",
            frame.frame_index,
            (x, y, w, h)
        );
    }
}

#[tokio::test]
async fn a_second_video_of_a_barcode_replaces_the_first_ones_frames() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let first = run_job(
        &db,
        &pipeline,
        sample_video(dir.path(), "a.mp4", 20).to_str().unwrap(),
        1,
    )
    .await;
    assert_eq!(first.status, "completed");
    // Reviewed in between: a new video sends the product back to review.
    sqlx::query("UPDATE products SET status = 'approved'")
        .execute(&db.pool)
        .await
        .unwrap();
    let second = run_job(
        &db,
        &pipeline,
        sample_video(dir.path(), "b.mp4", 12).to_str().unwrap(),
        1,
    )
    .await;
    assert_eq!(second.status, "completed");

    assert_eq!(product_count(&db.pool).await, 1);
    let (product_id, status) = db::products::by_barcode(&db.pool, BARCODE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, "needs_review");
    let frames = db::frames::for_product(&db.pool, product_id).await.unwrap();
    assert_eq!(frames.len(), 8);
    assert!(
        frames.iter().all(|f| f.job_id == second.id),
        "only the latest video's frames"
    );
    let objects = pipeline.objects().await;
    assert_eq!(
        objects.len(),
        16,
        "the first video's objects are gone: {objects:?}"
    );
    assert!(
        objects
            .iter()
            .all(|key| key.contains(&second.id.to_string()))
    );
}

#[tokio::test]
async fn running_a_job_again_never_duplicates_frames_or_products() {
    use buybuddy::jobs::{Job, JobContext};
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "again.mp4", 16);
    let id = push(&db.pool, video_job(video.to_str().unwrap()), 3).await;
    let job = Video {
        video_url: video.to_str().unwrap().to_owned(),
        barcode: BARCODE.to_owned(),
        video_id: None,
        frames: None,
        background: None,
    };
    // As if the first attempt died after saving and the queue ran it again.
    for attempt in 1..=2 {
        let ctx = JobContext::new(db.pool.clone(), id, attempt, 3, pipeline.resources.clone());
        let output = job.run(&ctx).await.unwrap();
        assert_eq!(output["frame_count"], 8);
    }
    assert_eq!(product_count(&db.pool).await, 1);
    let frames: i64 = sqlx::query_scalar("SELECT count(*) FROM frames")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(frames, 8);
    assert_eq!(pipeline.objects().await.len(), 16);
}

#[tokio::test]
async fn a_failed_upload_removes_what_was_already_stored() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    // A file where the masks' folder should be: frames store fine, masks cannot.
    std::fs::create_dir_all(pipeline.storage_dir.path().join("masks")).unwrap();
    std::fs::write(
        pipeline.storage_dir.path().join("masks").join(BARCODE),
        b"in the way",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "sample.mp4", 12);
    let job = run_job(&db, &pipeline, video.to_str().unwrap(), 1).await;
    assert_eq!(job.status, "failed");
    assert_eq!(job.stage.as_deref(), Some("upload"));
    assert!(job.error_message.unwrap().starts_with("storage:"));
    assert_eq!(product_count(&db.pool).await, 0);
    let objects = pipeline.objects().await;
    assert_eq!(
        objects,
        vec![format!("masks/{BARCODE}")],
        "the frames stored before the failure are gone"
    );
}

#[tokio::test]
async fn enqueue_uploads_a_local_video_for_the_workers() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "shelf.mp4", 12);
    let output = tokio::process::Command::new(binary())
        .args(["enqueue", video.to_str().unwrap(), "--barcode", BARCODE])
        .args(["--storage", pipeline.storage_dir.path().to_str().unwrap()])
        .env("DATABASE_URL", db.url.expose())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id: Uuid = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    let url = job.video_url.unwrap();
    assert!(
        url.starts_with("file://") && url.contains("/uploads/"),
        "{url}"
    );
    assert_eq!(job.barcode.as_deref(), Some(BARCODE));

    let worker = InProcessWorker::start(&db.pool, pipeline.worker_config());
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(30)).await;
    worker.stop().await;
}

#[tokio::test]
async fn stored_frames_are_served_by_the_server_and_shown_on_the_dashboard() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let dir = tempfile::tempdir().unwrap();
    let job = run_job(
        &db,
        &pipeline,
        sample_video(dir.path(), "s.mp4", 12).to_str().unwrap(),
        1,
    )
    .await;
    assert_eq!(job.status, "completed");
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let page = server
        .client
        .get(&server.base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let src = page
        .split("src=\"/media/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a thumbnail on the dashboard");
    let image = server
        .client
        .get(format!("{}/media/{src}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    let bytes = image.bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 518);
    let missing = server
        .client
        .get(format!("{}/media/frames/none.png", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let escape = server
        .client
        .get(format!("{}/media/..%2F..%2Fetc%2Fpasswd", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}
