//! The jobs and products pages through the router: every page and action,
//! with status, key content, bad input and what is left in the database.
//! Longer than most files: every page and action, each with its bad input,
//! sharing the signed-in client helpers.

use crate::common;

use buybuddy::{
    db,
    jobs::{JobSpec, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};
use common::*;
use reqwest::{StatusCode, multipart, redirect::Policy};
use serde_json::json;
use uuid::Uuid;

/// A signed-in client of its own that does not follow redirects, with or
/// without the CSRF header.
async fn session_client(
    db: &TestDb,
    _server: &TestServer,
    csrf_header: bool,
) -> (reqwest::Client, String) {
    let (session, csrf) = sign_in_directly(
        &db.pool,
        &format!("{}@example.com", Uuid::new_v4().simple()),
    )
    .await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::COOKIE,
        format!("{}={session}", buybuddy::auth::COOKIE)
            .parse()
            .unwrap(),
    );
    if csrf_header {
        headers.insert(buybuddy::auth::CSRF_HEADER, csrf.parse().unwrap());
    }
    (
        reqwest::Client::builder()
            .redirect(Policy::none())
            .default_headers(headers)
            .build()
            .unwrap(),
        csrf,
    )
}

async fn text(client: &reqwest::Client, url: String) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn every_page_works_on_an_empty_database() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    for (path, expected) in [
        ("/", "No products yet"),
        ("/", "Last 24 hours: <strong>0</strong> completed"),
        ("/sync", "not configured on this server"),
        ("/jobs", "No jobs yet"),
        ("/jobs?status=failed&q=869", "No jobs match these filters"),
        ("/products", "No products yet"),
        (
            "/products?status=approved&q=cola",
            "No products match these filters",
        ),
        ("/fragments/jobs", "No jobs yet"),
        ("/fragments/products", "No products yet"),
    ] {
        let (status, html) = text(&server.client, server.url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains(expected), "{path}: {html}");
    }
    let (status, _) = text(&server.client, server.url("/jobs?status=exploded")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, html) = text(
        &server.client,
        server.url(&format!("/jobs/{}", Uuid::nil())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("There is no job"));
    let (status, _) = text(
        &server.client,
        server.url(&format!("/products/{}", Uuid::nil())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn job_form(barcode: &str, url: &str) -> multipart::Form {
    multipart::Form::new()
        .text("barcode", barcode.to_owned())
        .text("video_url", url.to_owned())
}

#[tokio::test]
async fn a_new_job_from_a_url_an_upload_or_the_catalog() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;

    let created = client
        .post(server.url("/jobs"))
        .multipart(job_form("8690000000001", "https://cdn.example/v.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let id: Uuid = location.strip_prefix("/jobs/").unwrap().parse().unwrap();
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.video_url.as_deref(), Some("https://cdn.example/v.mp4"));
    assert_eq!(job.barcode.as_deref(), Some("8690000000001"));
    let (status, html) = text(&client, server.url(&location)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("job-progress") && html.contains("status-queued"),
        "{html}"
    );

    // An upload goes to storage and the job reads it from there.
    let upload = multipart::Form::new()
        .text("barcode", "8690000000002")
        .text("video_url", "")
        .part(
            "video",
            multipart::Part::bytes(vec![7u8; 4096]).file_name("my clip (1).mp4"),
        );
    let created = client
        .post(server.url("/jobs"))
        .multipart(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let id: Uuid = created.headers()["location"].to_str().unwrap()[6..]
        .parse()
        .unwrap();
    let url = db::jobs::get(&db.pool, id)
        .await
        .unwrap()
        .unwrap()
        .video_url
        .unwrap();
    let key = url
        .strip_prefix(&server.state.storage.url(""))
        .expect("a stored object");
    assert!(
        key.starts_with("uploads/") && key.ends_with("my_clip__1_.mp4"),
        "{key}"
    );
    assert_eq!(server.state.storage.get(key).await.unwrap().len(), 4096);

    // With neither, a synced catalog product's video is used.
    db::catalog::upsert(
        &db.pool,
        &[db::catalog::Entry {
            barcode: "8690000000003".into(),
            name: Some("Cola".into()),
            video_url: "https://cdn.example/catalog.mp4".into(),
            video_id: Some(3),
            processed: false,
            raw: json!({}),
        }],
    )
    .await
    .unwrap();
    let created = client
        .post(server.url("/jobs"))
        .multipart(job_form("8690000000003", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let id: Uuid = created.headers()["location"].to_str().unwrap()[6..]
        .parse()
        .unwrap();
    assert_eq!(
        db::jobs::get(&db.pool, id)
            .await
            .unwrap()
            .unwrap()
            .video_url
            .as_deref(),
        Some("https://cdn.example/catalog.mp4")
    );
}

#[tokio::test]
async fn bad_new_job_input_is_shown_next_to_its_field_and_kept() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;
    let refused = client
        .post(server.url("/jobs"))
        .multipart(job_form("../etc", "ftp://files.example/<b>x</b>.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("is not a barcode"), "{html}");
    assert!(
        html.contains("Give an http(s):// or s3:// address"),
        "{html}"
    );
    assert!(html.contains("value=\"../etc\""), "typed barcode kept");
    assert!(
        html.contains("ftp://files.example/&lt;b&gt;x&lt;/b&gt;.mp4"),
        "escaped and kept"
    );

    let unknown = client
        .post(server.url("/jobs"))
        .header("hx-request", "true")
        .multipart(job_form("8690000000009", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let fragment = unknown.text().await.unwrap();
    assert!(fragment.contains("not in the synced catalog"), "{fragment}");
    assert!(!fragment.contains("<html"), "HTMX gets the form alone");

    // Over the upload limit (8 MiB on test servers).
    let big = multipart::Form::new()
        .text("barcode", "8690000000001")
        .part(
            "video",
            multipart::Part::bytes(vec![0u8; 9 << 20]).file_name("big.mp4"),
        );
    let refused = client
        .post(server.url("/jobs"))
        .multipart(big)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("larger than the limit of 8 MiB")
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no job from bad input");
    assert!(
        server
            .state
            .storage
            .list("uploads/")
            .await
            .unwrap()
            .is_empty()
    );

    // Without the CSRF token the form is refused before it is read.
    let (bare, csrf) = session_client(&db, &server, false).await;
    let refused = bare
        .post(server.url("/jobs"))
        .multipart(job_form("8690000000001", "https://cdn.example/v.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let accepted = bare
        .post(server.url(&format!("/jobs?_csrf={csrf}")))
        .multipart(job_form("8690000000001", "https://cdn.example/v.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        accepted.status(),
        StatusCode::SEE_OTHER,
        "the form's URL carries the token"
    );
}

async fn noop_jobs(db: &TestDb, n: usize) -> Vec<Uuid> {
    let ids = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        (0..n)
            .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
            .collect(),
    )
    .await
    .unwrap();
    let barcodes: Vec<String> = (0..n).map(|i| format!("86900000{i:05}")).collect();
    label_jobs(&db.pool, &ids, &barcodes).await;
    ids
}

#[tokio::test]
async fn the_jobs_list_filters_and_pages() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let ids = noop_jobs(&db, 120).await;
    sqlx::query("UPDATE jobs SET status = 'failed', completed_at = now(), error_message = 'boom' WHERE id = $1")
        .bind(ids[7])
        .execute(&db.pool)
        .await
        .unwrap();
    let (_, first) = text(&server.client, server.url("/jobs")).await;
    assert_eq!(first.matches("<tr data-status").count(), 50);
    let older = first
        .split("href=\"/jobs?before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an Older link");
    let (_, second) = text(&server.client, server.url(&format!("/jobs?before={older}"))).await;
    assert_eq!(second.matches("<tr data-status").count(), 50);
    assert!(second.contains("← Newest"));
    let first_ids: Vec<&str> = first
        .split("href=\"/jobs/")
        .skip(1)
        .map(|s| &s[..36])
        .collect();
    assert!(
        second
            .split("href=\"/jobs/")
            .skip(1)
            .all(|s| !first_ids.contains(&&s[..36])),
        "pages do not overlap"
    );
    let (_, failed) = text(&server.client, server.url("/jobs?status=failed")).await;
    assert_eq!(failed.matches("<tr data-status").count(), 1);
    assert!(failed.contains("boom"));
    let (_, searched) = text(&server.client, server.url("/jobs?q=0000011")).await;
    // Barcodes 8690000000110..119 and ...011.
    assert_eq!(searched.matches("<tr data-status").count(), 11);
    let (status, _) = text(&server.client, server.url("/jobs?before=garbage")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_failed_job_is_retried_once_and_a_queued_one_cancelled() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;
    let ids = noop_jobs(&db, 2).await;
    sqlx::query("UPDATE jobs SET status = 'failed', completed_at = now(), error_message = 'boom' WHERE id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    let (_, html) = text(&client, server.url(&format!("/jobs/{}", ids[0]))).await;
    assert!(html.contains("Retry") && html.contains("boom"));

    let retried = client
        .post(server.url(&format!("/jobs/{}/retry", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    let new: Uuid = retried.headers()["location"].to_str().unwrap()[6..]
        .parse()
        .unwrap();
    let job = db::jobs::get(&db.pool, new).await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.retry_of),
        ("queued", Some(ids[0]))
    );
    assert_eq!(job.payload, json!({ "kind": "noop" }));
    let (_, html) = text(&client, server.url(&format!("/jobs/{}", ids[0]))).await;
    assert!(html.contains("Retried as"));
    let again = client
        .post(server.url(&format!("/jobs/{}/retry", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "one retry per failure"
    );
    let queued = client
        .post(server.url(&format!("/jobs/{}/retry", ids[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), StatusCode::CONFLICT);

    let cancelled = client
        .post(server.url(&format!("/jobs/{}/cancel", ids[1])))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    assert_eq!(status(&db.pool, ids[1]).await, "cancelled");
    let (_, live) = text(&client, server.url(&format!("/fragments/jobs/{}", ids[1]))).await;
    assert!(live.contains("status-cancelled") && !live.contains("<html"));
}

#[tokio::test]
async fn the_products_list_searches_pages_and_escapes() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    seed_product(&db.pool, "8690000000001", "Fizzo Cola", 3).await;
    seed_product(&db.pool, "8690000000002", "Crispy Chips", 0).await;
    seed_product(&db.pool, "8690000000003", "<script>alert(1)</script>", 1).await;
    let (status, html) = text(&server.client, server.url("/products")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("<tr data-status").count(), 3);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert(1)"), "names are escaped");
    assert!(
        html.contains("src=\"/media/frames/8690000000001/"),
        "a thumbnail"
    );
    let (_, html) = text(&server.client, server.url("/products?q=cola")).await;
    assert_eq!(html.matches("<tr data-status").count(), 1);
    let (_, html) = text(&server.client, server.url("/products?q=0000002")).await;
    assert!(html.contains("Crispy Chips") && html.matches("<tr data-status").count() == 1);
    let (_, html) = text(&server.client, server.url("/products?status=approved")).await;
    assert!(html.contains("No products match"));
}

#[tokio::test]
async fn the_product_page_warns_about_frames_that_look_wrong() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;
    let id = seed_product(&db.pool, "8690000000001", "Fizzo Cola", 4).await;
    let (_, page) = text(&client, server.url(&format!("/products/{id}"))).await;
    assert!(!page.contains("look wrong"), "fine frames raise no warning");

    sqlx::query(
        "UPDATE frames SET quality = '{\"area_share\": 0.4, \"warnings\": [\"touches_border\", \"blurred\"]}'
         WHERE product_id = $1 AND frame_index = 2",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    let (_, page) = text(&client, server.url(&format!("/products/{id}"))).await;
    assert!(page.contains("1 of 4 frames look wrong"), "{page}");
    assert!(
        page.contains("much blurrier than the other frames (1)"),
        "{page}"
    );
    assert_eq!(page.matches("class=\"frame doubtful\"").count(), 1);
    assert!(page.contains("title=\"Frame 2: the mask runs along the frame&#39;s border (cut off?); much blurrier than the other frames\"")
        || page.contains("title=\"Frame 2: the mask runs along the frame's border (cut off?); much blurrier than the other frames\""), "{page}");
}

#[tokio::test]
async fn metadata_edits_are_validated_per_field_and_kept_on_error() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;
    let id = seed_product(&db.pool, "8690000000001", "Fizzo Cola", 4).await;
    let (_, page) = text(&client, server.url(&format!("/products/{id}"))).await;
    assert_eq!(page.matches("class=\"frame\"").count(), 4);
    assert!(page.contains("show-masks") && page.contains("class=\"mask\""));
    assert!(page.contains("loading=\"lazy\""));
    assert!(
        page.contains("src=\"https://cdn.example/8690000000001.mp4\""),
        "the source video"
    );

    let bad = [
        ("product_name", "Fizzo Cola Zero"),
        ("brand_name", "Fizzo"),
        ("visibility_score", "250"),
        ("nutrition_facts", "sugars: 0 g\nthis line has no colon"),
        ("claims", "zero sugar"),
    ];
    let refused = client
        .post(server.url(&format!("/products/{id}")))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("A whole number from 0 to 100, not 250."),
        "{html}"
    );
    assert!(html.contains("Line 2 should read name: value"), "{html}");
    assert!(
        html.contains("value=\"Fizzo Cola Zero\"") && html.contains("value=\"250\""),
        "typed values kept"
    );
    assert!(html.contains("this line has no colon"));
    let name: Option<String> =
        sqlx::query_scalar("SELECT product_name FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Fizzo Cola"), "nothing saved");

    let good = [
        ("product_name", "  Fizzo   Cola Zero "),
        ("brand_name", "Fizzo"),
        ("visibility_score", "88"),
        ("nutrition_facts", "sugars: 0\nsalt: 0.01 g"),
        ("claims", "zero sugar\n\nno preservatives"),
    ];
    let saved = client
        .post(server.url(&format!("/products/{id}")))
        .header("hx-request", "true")
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    assert!(saved.text().await.unwrap().contains("Saved."));
    let p = db::products::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(p.product_name.as_deref(), Some("Fizzo Cola Zero"));
    assert_eq!(p.visibility_score, Some(88));
    assert_eq!(
        p.nutrition_facts,
        Some(json!({ "sugars": 0.0, "salt": "0.01 g" }))
    );
    assert_eq!(
        p.claims,
        Some(vec!["zero sugar".to_owned(), "no preservatives".to_owned()])
    );
}

#[tokio::test]
async fn approve_reject_and_reprocess_one_or_many() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (client, _) = session_client(&db, &server, true).await;
    let a = seed_product(&db.pool, "8690000000001", "A", 1).await;
    let b = seed_product(&db.pool, "8690000000002", "B", 1).await;
    let c = seed_product(&db.pool, "8690000000003", "C", 1).await;
    let status_of = |id: Uuid| {
        let pool = db.pool.clone();
        async move { db::products::get(&pool, id).await.unwrap().unwrap() }
    };

    let approved = client
        .post(server.url(&format!("/products/{a}/approve")))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let p = status_of(a).await;
    assert_eq!(p.status, "approved");
    assert!(p.reviewed_by.unwrap().ends_with("@example.com"));

    let no_reason = client
        .post(server.url(&format!("/products/{b}/reject")))
        .form(&[("reason", " ")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), StatusCode::BAD_REQUEST);
    assert_eq!(status_of(b).await.status, "needs_review");
    client
        .post(server.url(&format!("/products/{b}/reject")))
        .form(&[("reason", "blurry")])
        .send()
        .await
        .unwrap();
    let p = status_of(b).await;
    assert_eq!(
        (p.status.as_str(), p.review_note.as_deref()),
        ("rejected", Some("blurry"))
    );

    // Bulk: rejecting needs a reason; then two products at once.
    let form = |action: &str, reason: &str| {
        vec![
            ("ids".to_owned(), a.to_string()),
            ("ids".to_owned(), c.to_string()),
            ("action".to_owned(), action.to_owned()),
            ("reason".to_owned(), reason.to_owned()),
        ]
    };
    let page = client
        .post(server.url("/products/bulk"))
        .form(&form("reject", ""))
        .send()
        .await
        .unwrap();
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Give a reason for rejecting")
    );
    assert_eq!(status_of(c).await.status, "needs_review");
    let page = client
        .post(server.url("/products/bulk"))
        .form(&form("reject", "wrong product"))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Rejected 2 products."));
    for id in [a, c] {
        assert_eq!(status_of(id).await.status, "rejected");
    }
    let page = client
        .post(server.url("/products/bulk"))
        .form(&form("reprocess", ""))
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("Queued 2 jobs."));
    let urls: Vec<String> =
        sqlx::query_scalar("SELECT video_url FROM jobs WHERE status = 'queued' ORDER BY barcode")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        urls,
        vec![
            "https://cdn.example/8690000000001.mp4",
            "https://cdn.example/8690000000003.mp4"
        ]
    );
    let reprocess = client
        .post(server.url(&format!("/products/{b}/reprocess")))
        .send()
        .await
        .unwrap();
    assert_eq!(reprocess.status(), StatusCode::SEE_OTHER);
}
