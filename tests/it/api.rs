//! The JSON API with an API token: products (list, read, edit, review,
//! reprocess, many at once), jobs (filters, pages, retry) and the catalog.
//! Longer than most files: one test per group of routes, as the README's API
//! table lists them.

use crate::common;

use buybuddy::{
    auth, db,
    jobs::{JobSpec, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};
use common::*;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

/// A client that signs every request with a fresh API token.
async fn token_client(db: &TestDb) -> reqwest::Client {
    let hash = auth::hash_password(TEST_PASSWORD).unwrap();
    let (user, _) = db::users::upsert(&db.pool, "robot@example.com", &hash)
        .await
        .unwrap();
    let token = auth::new_token();
    db::users::create_api_token(&db.pool, user, "tests", &auth::token_hash(&token))
        .await
        .unwrap();
    let mut headers = header::HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, value)
}

async fn get(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    json_of(client.get(url).send().await.unwrap()).await
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    json_of(client.post(url).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn products_are_listed_with_filters_and_pages() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = token_client(&db).await;
    let (status, empty) = get(&client, server.url("/api/products")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, json!({ "products": [], "next": null }));

    for i in 0..5 {
        seed_product(
            &db.pool,
            &format!("869000000000{i}"),
            &format!("Cola {i}"),
            2,
        )
        .await;
    }
    seed_product(&db.pool, "8690000000009", "Crispy Chips", 0).await;

    let (_, first) = get(&client, server.url("/api/products?limit=4")).await;
    let rows = first["products"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["product_name"], "Crispy Chips", "newest first");
    assert_eq!(rows[1]["frame_count"], 2);
    assert!(
        rows[1]["thumbnail_url"]
            .as_str()
            .unwrap()
            .starts_with("/media/frames/")
    );
    let next = first["next"].as_str().expect("a second page");
    let (_, second) = get(
        &client,
        server.url(&format!("/api/products?limit=4&before={next}")),
    )
    .await;
    assert_eq!(second["products"].as_array().unwrap().len(), 2);
    assert_eq!(second["next"], Value::Null);
    let mut seen: Vec<&str> = rows
        .iter()
        .chain(second["products"].as_array().unwrap())
        .map(|p| p["barcode"].as_str().unwrap())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "every product once across the pages");

    let (_, found) = get(&client, server.url("/api/products?q=chips")).await;
    assert_eq!(found["products"].as_array().unwrap().len(), 1);
    let (_, by_status) = get(&client, server.url("/api/products?status=approved")).await;
    assert_eq!(by_status["products"], json!([]));
    let (status, bad) = get(&client, server.url("/api/products?status=great")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a product status")
    );
    let (status, _) = get(&client, server.url("/api/products?before=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_product_is_read_and_its_metadata_patched() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = token_client(&db).await;
    let id = seed_product(&db.pool, "8690000000001", "Fizzo Cola", 3).await;
    let url = server.url(&format!("/api/products/{id}"));

    let (status, shown) = get(&client, url.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["product"]["barcode"], "8690000000001");
    assert_eq!(shown["frames"].as_array().unwrap().len(), 3);
    assert_eq!(shown["frames"][2]["index"], 2);
    assert!(
        shown["frames"][0]["mask_url"]
            .as_str()
            .unwrap()
            .starts_with("/media/masks/")
    );

    let patch = |body: Value| client.patch(url.clone()).json(&body).send();
    let (status, saved) = json_of(
        patch(json!({
            "brand_name": "  Fizzo  ",
            "nutrition_facts": { "sugars": "10.6 g", "energy_kcal": 42 },
            "claims": ["no colourings", "  "],
            "visibility_score": 80
        }))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let product = &saved["product"];
    assert_eq!(product["brand_name"], "Fizzo");
    assert_eq!(product["product_name"], "Fizzo Cola", "untouched");
    assert_eq!(
        product["nutrition_facts"],
        json!({ "sugars": "10.6 g", "energy_kcal": 42 })
    );
    assert_eq!(product["claims"], json!(["no colourings"]));
    assert_eq!(product["visibility_score"], 80);

    let (status, refused) = json_of(
        patch(json!({
            "brand_name": "Other",
            "product_name": "",
            "visibility_score": 250,
            "flavour": "cherry"
        }))
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields = refused["error"]["fields"].as_object().unwrap();
    assert!(
        fields["product_name"]
            .as_str()
            .unwrap()
            .contains("needs a name")
    );
    assert!(
        fields["visibility_score"]
            .as_str()
            .unwrap()
            .contains("0 to 100")
    );
    assert!(fields["_"].as_str().unwrap().contains("\"flavour\""));
    let stored = db::products::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(
        stored.brand_name.as_deref(),
        Some("Fizzo"),
        "nothing changed"
    );

    let (status, _) = json_of(
        client
            .patch(server.url(&format!("/api/products/{}", Uuid::nil())))
            .json(&json!({ "brand_name": "x" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn products_are_approved_rejected_and_reprocessed() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = token_client(&db).await;
    let a = seed_product(&db.pool, "8690000000001", "A", 1).await;
    let b = seed_product(&db.pool, "8690000000002", "B", 1).await;
    let c = seed_product(&db.pool, "8690000000003", "C", 1).await;

    let (status, approved) = post(
        &client,
        server.url(&format!("/api/products/{a}/approve")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approved["product"]["status"], "approved");
    assert_eq!(approved["product"]["reviewed_by"], "robot@example.com");
    // Without a body at all, too.
    let bare = client
        .post(server.url(&format!("/api/products/{b}/approve")))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::OK);

    let (status, refused) = post(
        &client,
        server.url(&format!("/api/products/{b}/reject")),
        json!({ "reason": "  " }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reason")
    );
    let (status, rejected) = post(
        &client,
        server.url(&format!("/api/products/{b}/reject")),
        json!({ "reason": "blurry frames" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejected["product"]["status"], "rejected");
    assert_eq!(rejected["product"]["review_note"], "blurry frames");

    let (status, queued) = post(
        &client,
        server.url(&format!("/api/products/{c}/reprocess")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let job: Uuid = queued["job_id"].as_str().unwrap().parse().unwrap();
    let job = db::jobs::get(&db.pool, job).await.unwrap().unwrap();
    assert_eq!(
        job.video_url.as_deref(),
        Some("https://cdn.example/8690000000003.mp4")
    );

    let (status, _) = post(
        &client,
        server.url(&format!("/api/products/{}/approve", Uuid::nil())),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Many at once.
    let review = server.url("/api/products/review");
    let (status, done) = post(
        &client,
        review.clone(),
        json!({ "action": "reject", "ids": [a, c], "reason": "duplicate" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["changed"], 2);
    for id in [a, c] {
        let p = db::products::get(&db.pool, id).await.unwrap().unwrap();
        assert_eq!(
            (p.status.as_str(), p.review_note.as_deref()),
            ("rejected", Some("duplicate"))
        );
    }
    let (status, _) = post(
        &client,
        review.clone(),
        json!({ "action": "reject", "ids": [a] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a reason is needed");
    let (_, done) = post(
        &client,
        review.clone(),
        json!({ "action": "reprocess", "ids": [a, b] }),
    )
    .await;
    assert_eq!(done["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(done["without_video"], json!([]));
    let (status, _) = post(
        &client,
        review.clone(),
        json!({ "action": "delete", "ids": [a] }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&client, review, json!({ "action": "approve", "ids": [] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jobs_are_filtered_paged_and_retried() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = token_client(&db).await;
    let ids = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        (0..3)
            .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
            .collect(),
    )
    .await
    .unwrap();
    let barcodes: Vec<String> = (0..3).map(|i| format!("869000000000{i}")).collect();
    label_jobs(&db.pool, &ids, &barcodes).await;
    sqlx::query("UPDATE jobs SET status = 'failed', completed_at = now(), error_message = 'boom' WHERE id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();

    let (_, failed) = get(&client, server.url("/api/jobs?status=failed")).await;
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(failed["jobs"][0]["error_message"], "boom");
    let (_, by_barcode) = get(&client, server.url("/api/jobs?q=0000002")).await;
    assert_eq!(by_barcode["jobs"][0]["id"], ids[2].to_string());
    let (_, first) = get(&client, server.url("/api/jobs?limit=2")).await;
    let next = first["next"].as_str().unwrap();
    let (_, second) = get(
        &client,
        server.url(&format!("/api/jobs?limit=2&before={next}")),
    )
    .await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);

    let retry = server.url(&format!("/api/jobs/{}/retry", ids[0]));
    let (status, retried) = post(&client, retry.clone(), json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(retried["retry_of"], ids[0].to_string());
    let new: Uuid = retried["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(common::status(&db.pool, new).await, "queued");
    let (status, again) = post(&client, retry, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already retried")
    );
    let (status, _) = post(
        &client,
        server.url(&format!("/api/jobs/{}/retry", ids[1])),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a queued job is not retried");
}

#[tokio::test]
async fn the_catalog_is_read_and_queued_through_the_api() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = token_client(&db).await;
    let (status, empty) = get(&client, server.url("/api/sync")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["catalog_size"], 0);
    assert_eq!(empty["configured"], false);
    let (status, refused) = post(&client, server.url("/api/sync"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );

    sqlx::query(
        "INSERT INTO catalog_products (barcode, name, video_url, synced_at)
         VALUES ('8690000000001', 'Cola', 'https://cdn.example/1.mp4', now()),
                ('8690000000002', 'Chips', 'https://cdn.example/2.mp4', now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (_, listed) = get(&client, server.url("/api/sync")).await;
    assert_eq!(listed["catalog_size"], 2);
    assert_eq!(listed["unprocessed"].as_array().unwrap().len(), 2);

    let enqueue = server.url("/api/sync/enqueue");
    let (status, _) = post(&client, enqueue.clone(), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, one) = post(
        &client,
        enqueue.clone(),
        json!({ "barcodes": ["8690000000002"] }),
    )
    .await;
    assert_eq!(one["queued"].as_array().unwrap().len(), 1);
    assert_eq!(one["queued"][0]["barcode"], "8690000000002");
    let (_, rest) = post(&client, enqueue.clone(), json!({ "all": true })).await;
    assert_eq!(
        rest["queued"].as_array().unwrap().len(),
        1,
        "the one already queued is not queued twice: {rest}"
    );
    let (_, none) = post(&client, enqueue, json!({ "all": true })).await;
    assert_eq!(none["queued"], json!([]));
}

/// How many jobs rows and queue tasks the database holds.
async fn queued_anything(pool: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM apalis.jobs)")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_refuses_worker_paths_other_buckets_and_probe_jobs_and_queues_nothing() {
    let db = TestDb::new().await;
    let server = TestServer::start_with_buckets(&db.pool, &["media"]).await;
    let client = token_client(&db).await;
    let jobs = server.url("/api/jobs");
    for (body, wanted, says) in [
        (
            json!({ "kind": "video", "barcode": "8690000000001", "video_url": "/var/lib/buybuddy/secret.mp4" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give an http(s):// or s3:// address",
        ),
        (
            json!({ "kind": "video", "barcode": "8690000000001", "video_url": "file:///etc/passwd" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give an http(s):// or s3:// address",
        ),
        (
            json!({ "kind": "video", "barcode": "8690000000001", "video_url": "s3://payroll/q3.mp4" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not one this server reads videos from (media)",
        ),
        (
            // The queued form with its own frame count goes through the same checks.
            json!({ "kind": "video", "barcode": "8690000000001", "video_url": "s3://payroll/q3.mp4", "frames": 4 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not one this server reads videos from",
        ),
        (
            json!({ "kind": "video", "barcode": "../etc", "video_url": "https://cdn.example/v.mp4" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "is not a barcode",
        ),
        (
            json!({ "kind": "sleep", "millis": 60000 }),
            StatusCode::FORBIDDEN,
            "probe job",
        ),
        (
            json!({ "kind": "noop" }),
            StatusCode::FORBIDDEN,
            "--enable-probe-jobs",
        ),
        (
            json!({ "kind": "crash" }),
            StatusCode::FORBIDDEN,
            "probe job",
        ),
    ] {
        let (status, refused) = post(&client, jobs.clone(), body.clone()).await;
        assert_eq!(status, wanted, "{body}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, refused) = post(
        &client,
        jobs.clone(),
        json!({ "kind": "video", "barcode": "1", "video_url": "/tmp/v.mp4" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["error"]["fields"]["video_url"].is_string(),
        "{refused}"
    );
    assert_eq!(
        queued_anything(&db.pool).await,
        (0, 0),
        "nothing was queued"
    );
}

#[tokio::test]
async fn the_api_queues_web_addresses_allowed_buckets_and_uploads() {
    let db = TestDb::new().await;
    let server = TestServer::start_with_buckets(&db.pool, &["media"]).await;
    let client = token_client(&db).await;
    let jobs = server.url("/api/jobs");
    let mut created = Vec::new();
    for url in ["https://cdn.example/v.mp4", "s3://media/videos/v.mp4"] {
        let (status, body) = post(
            &client,
            jobs.clone(),
            json!({ "kind": "video", "barcode": "8690000000001", "video_url": url }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
        created.push(body["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }

    let upload = reqwest::multipart::Form::new()
        .text("barcode", " 8690000000002 ")
        .part(
            "video",
            reqwest::multipart::Part::bytes(vec![7u8; 4096]).file_name("../../clip (1).mp4"),
        );
    let (status, body) = json_of(
        client
            .post(jobs.clone())
            .multipart(upload)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: Uuid = body["id"].as_str().unwrap().parse().unwrap();
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.barcode.as_deref(), Some("8690000000002"), "trimmed");
    let stored = job.video_url.unwrap();
    let key = stored
        .strip_prefix(&server.state.storage.url(""))
        .unwrap_or_else(|| panic!("{stored} is not in this server's storage"));
    assert!(key.starts_with("uploads/"), "{key}");
    assert!(
        key.ends_with("/_.._clip__1_.mp4"),
        "the server names it: {key}"
    );
    assert_eq!(
        server.state.storage.get(key).await.unwrap().len(),
        4096,
        "the whole file is stored"
    );

    for id in created {
        let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
        assert_eq!(job.kind, "video");
        assert_eq!(job.status, "queued");
    }
    assert_eq!(queued_anything(&db.pool).await, (3, 3));

    // A file that is too large is refused, and nothing more is queued.
    let big = reqwest::multipart::Form::new()
        .text("barcode", "8690000000003")
        .part(
            "video",
            reqwest::multipart::Part::bytes(vec![0u8; 9 << 20]).file_name("big.mp4"),
        );
    let response = client.post(jobs).multipart(big).send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(queued_anything(&db.pool).await, (3, 3));
}

#[tokio::test]
async fn a_server_started_for_testing_accepts_probe_jobs() {
    let db = TestDb::new().await;
    let server = TestServer::start_with_probes(&db.pool).await;
    let client = token_client(&db).await;
    let (status, body) = post(
        &client,
        server.url("/api/jobs"),
        json!({ "kind": "sleep", "millis": 10 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Worker paths stay refused even then.
    let (status, _) = post(
        &client,
        server.url("/api/jobs"),
        json!({ "kind": "video", "barcode": "1", "video_url": "/etc/passwd" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
