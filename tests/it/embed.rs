//! Embeddings end to end: video jobs queue embed jobs, the vectors land in
//! pgvector, and the search API and page find a product from one of its
//! frames. Two models: their vectors never mix, and making a new one active
//! re-embeds in the background while searches keep answering from the old one.

use crate::common;

use std::{path::Path, sync::Arc, time::Duration};

use buybuddy::{
    db,
    jobs::{JobSpec, video::Video},
    queue::{self, DEFAULT_QUEUE},
};
use buybuddy_worker::{
    embed::{Dinov2Embedder, Embedders, LoadOptions},
    media::synthetic::{Codec, Kind},
};
use common::*;
use serde_json::Value;
use uuid::Uuid;

/// Two products that look different: a printed carton and a can.
const PRODUCTS: [(&str, &str, u64); 2] =
    [("8690000000101", "plain", 3), ("8690000000202", "can", 5)];

fn write_video(dir: &Path, kind: &str, seed: u64) -> String {
    let path = dir.join(format!("{kind}-{seed}.mp4"));
    let scene = buybuddy_worker::media::synthetic::Scene {
        width: 320,
        height: 240,
        frames: 24,
        ..Kind::named(kind).unwrap().scene(seed)
    };
    scene.write_video(&path, Codec::H264, false).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Processes both products' videos with a worker of these resources and
/// waits for every job (videos, then their embed jobs) to complete.
async fn process_products(db: &TestDb, pipeline: &TestPipeline, dir: &Path) -> Vec<Uuid> {
    let jobs = PRODUCTS
        .iter()
        .map(|(barcode, kind, seed)| {
            JobSpec::Video(Video {
                video_url: write_video(dir, kind, *seed),
                barcode: (*barcode).to_owned(),
                video_id: None,
                frames: Some(8),
                background: None,
            })
            .into()
        })
        .collect();
    queue::enqueue(&db.pool, DEFAULT_QUEUE, jobs).await.unwrap();
    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(db).await,
        pipeline.worker_config(),
    );
    all_jobs_done(db, 4).await;
    worker.stop().await;
    let mut ids = Vec::new();
    for (barcode, _, _) in PRODUCTS {
        ids.push(
            db::products::by_barcode(&db.pool, barcode)
                .await
                .unwrap()
                .unwrap()
                .0,
        );
    }
    ids
}

/// Waits until `count` jobs exist and all completed (failing on a failed one).
async fn all_jobs_done(db: &TestDb, count: i64) {
    eventually(Duration::from_secs(90), "every job to complete", || async {
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT kind, status, error_message FROM jobs")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        if let Some(failed) = rows.iter().find(|r| r.1 == "failed") {
            panic!("a job failed: {failed:?}");
        }
        (rows.len() as i64 >= count && rows.iter().all(|r| r.1 == "completed")).then_some(())
    })
    .await;
}

async fn search_by_frame(server: &TestServer, storage_key: &str) -> Value {
    let png = server.state.storage.get(storage_key).await.unwrap();
    let response = server
        .client
        .post(format!("{}/api/search?k=5", server.base))
        .header("content-type", "image/png")
        .body(png.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn first_result(answer: &Value) -> Uuid {
    answer["results"][0]["product"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn processed_products_are_embedded_and_found_by_their_frames() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = process_products(&db, &pipeline, dir.path()).await;

    let model = db::embeddings::serving(&db.pool).await.unwrap().unwrap();
    assert_eq!((model.kind.as_str(), model.active), ("classic", true));
    for id in &ids {
        let frames = db::frames::for_product(&db.pool, *id).await.unwrap();
        let vectors: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM frame_embeddings WHERE product_id = $1 AND model_id = $2",
        )
        .bind(id)
        .bind(model.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(vectors, frames.len() as i64);
        let prototype = db::embeddings::prototype_of(&db.pool, &model, *id)
            .await
            .unwrap()
            .expect("a prototype");
        assert_eq!(prototype.len(), model.dims as usize);
    }

    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    // A frame of each product finds that product first.
    for id in &ids {
        let frames = db::frames::for_product(&db.pool, *id).await.unwrap();
        let answer = search_by_frame(&server, &frames[frames.len() / 2].storage_key).await;
        assert_eq!(first_result(&answer), *id, "{answer:#}");
        assert_eq!(answer["model"]["kind"], "classic");
        let frame = &answer["results"][0]["frame"];
        assert!(frame["similarity"].as_f64().unwrap() > 0.95, "{frame}");
    }
    // A product's similar products leave it out.
    let similar: Value = server
        .client
        .get(format!("{}/api/products/{}/similar", server.base, ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = similar["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{similar:#}");
    assert_eq!(results[0]["product"]["id"], ids[1].to_string());
    // A filter nothing passes gives no result; one both pass gives both.
    let filtered: Value = server
        .client
        .get(format!(
            "{}/api/products/{}/similar?status=approved",
            server.base, ids[0]
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["results"].as_array().unwrap().len(), 0);

    // The Search page, given a frame of the second product, lists it first.
    let frames = db::frames::for_product(&db.pool, ids[1]).await.unwrap();
    let png = server
        .state
        .storage
        .get(&frames[0].storage_key)
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(png.to_vec()).file_name("query.png"),
        )
        .text("k", "5");
    let page = server
        .client
        .post(format!("{}/search", server.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let hits = &html[html.find("class=\"hits\"").expect("a list of hits")..];
    let first_link = &hits[hits.find("/products/").unwrap()..][..46];
    assert!(first_link.contains(&ids[1].to_string()), "{first_link}");
    // The product page's panel names the other product.
    let panel = server
        .client
        .get(format!(
            "{}/fragments/products/{}/similar",
            server.base, ids[1]
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains(&ids[0].to_string()), "{panel}");

    // The search can go through the model's HNSW index (with two products
    // the planner rightly prefers a scan, so scans are turned off here; the
    // benchmark shows the index chosen on its own at scale).
    let mut conn = db.pool.acquire().await.unwrap();
    for setting in ["enable_seqscan", "enable_bitmapscan"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("SET {setting} = off")))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let plan = db::embeddings::explain_nearest(
        &mut conn,
        &model,
        &vec![0.1; model.dims as usize],
        5,
        &Default::default(),
        "",
    )
    .await
    .unwrap();
    assert!(
        plan.contains(&format!(
            "Index Scan using product_embeddings_hnsw_{}",
            model.id
        )),
        "{plan}"
    );
}

#[tokio::test]
async fn bad_search_input_gets_a_clear_answer() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let post = |body: Vec<u8>, content_type: &'static str| {
        let request = server
            .client
            .post(format!("{}/api/search", server.base))
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // No model serves yet.
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (status, body) = post(png.clone(), "image/png").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("No embedding model"), "{body}");

    pipeline.resources.register_models(&db.pool).await.unwrap();
    let (status, body) = post(Vec::new(), "image/png").await;
    assert_eq!(
        (status, body.contains("Choose a photo")),
        (422, true),
        "{body}"
    );
    let (status, body) = post(b"just some text".to_vec(), "image/png").await;
    assert_eq!(
        (status, body.contains("not an image")),
        (422, true),
        "{body}"
    );
    let (status, body) = post(png[..png.len() / 2].to_vec(), "image/png").await;
    assert_eq!((status, body.contains("damaged")), (422, true), "{body}");
    // Nothing is embedded yet: an empty answer, not an error.
    let (status, body) = post(png, "image/png").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["results"].as_array().unwrap().len(), 0);
    // A product without vectors, and one that does not exist.
    let product = seed_product(&db.pool, "8690000000309", "Bare", 0).await;
    let similar = |id: Uuid| {
        let request = server
            .client
            .get(format!("{}/api/products/{id}/similar", server.base));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(similar(product).await, 409);
    assert_eq!(similar(Uuid::new_v4()).await, 404);
    // A k out of range.
    let response = server
        .client
        .get(format!(
            "{}/api/products/{product}/similar?k=0",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    // The pages say the same without failing.
    let page = server
        .client
        .get(format!("{}/search?product=nothing-like-this", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("No product has the id or barcode")
    );
}

#[tokio::test]
async fn two_models_never_mix_and_a_new_one_serves_once_complete() {
    let db = TestDb::new().await;
    let tiny = repo_root().join(".data/models/dinov2-tiny/tiny");
    let dinov2 = Dinov2Embedder::load(
        &tiny,
        buybuddy_vision::Dinov2Options {
            device: buybuddy_vision::DeviceChoice::Cpu,
            batch_size: 4,
            half: false,
        },
    )
    .unwrap();
    let pipeline = TestPipeline::new()
        .await
        .with_embedders(Arc::new(Embedders::new(
            Some(Arc::new(dinov2)),
            LoadOptions::default(),
        )));
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let models = db::embeddings::list(&db.pool).await.unwrap();
    assert_eq!(models.len(), 2);
    let classic = models
        .iter()
        .find(|m| m.model.kind == "classic")
        .unwrap()
        .model
        .clone();
    let network = models
        .iter()
        .find(|m| m.model.kind == "dinov2")
        .unwrap()
        .model
        .clone();
    assert!(classic.active && classic.serving && !network.active && !network.serving);
    assert_eq!(network.dims, 48);

    let dir = tempfile::tempdir().unwrap();
    let ids = process_products(&db, &pipeline, dir.path()).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;

    // Making the network active queues its backfill; until it has run,
    // searches still answer from the classic vectors.
    let activated: Value = server
        .client
        .post(format!(
            "{}/api/models/{}/activate",
            server.base, network.id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(activated["queued"], 2, "{activated:#}");
    assert_eq!(activated["model"]["serving"], false);
    let frames = db::frames::for_product(&db.pool, ids[0]).await.unwrap();
    let before = search_by_frame(&server, &frames[2].storage_key).await;
    assert_eq!(before["model"]["kind"], "classic");
    assert_eq!(first_result(&before), ids[0]);

    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(&db).await,
        pipeline.worker_config(),
    );
    all_jobs_done(&db, 6).await;
    worker.stop().await;
    let serving = db::embeddings::serving(&db.pool).await.unwrap().unwrap();
    assert_eq!(serving.id, network.id, "the complete new model serves");
    let after = search_by_frame(&server, &frames[2].storage_key).await;
    assert_eq!(after["model"]["kind"], "dinov2");
    assert_eq!(first_result(&after), ids[0], "{after:#}");

    // Each model's vectors have its own dimension; none is stored twice.
    let dims: Vec<(i32, i32, i64)> = sqlx::query_as(
        "SELECT model_id, vector_dims(embedding), count(*) FROM frame_embeddings GROUP BY 1, 2 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let frame_count: i64 = sqlx::query_scalar("SELECT count(*) FROM frames")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        dims,
        vec![
            (classic.id, classic.dims, frame_count),
            (network.id, 48, frame_count)
        ]
    );
    // Nothing more to backfill.
    let again: Value = server
        .client
        .post(format!("{}/api/embed", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["queued"], 0, "{again:#}");
}
