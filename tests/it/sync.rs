//! The Buybuddy API client and `buybuddy sync` against a local server speaking
//! the API's protocol: paging, sign-in, expiring tokens, wrong credentials, and
//! enqueueing each unprocessed product once.

use crate::common;

use std::time::Duration;

use buybuddy::db;
use buybuddy_worker::{
    buybuddy::{Buybuddy, BuybuddyError, Settings},
    retry::Backoff,
};
use common::{
    TestDb, TestServer, binary,
    catalog_api::{FakeBuybuddy, PASSWORD, USERNAME, item},
};
use serde_json::Value;

fn catalog(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| {
            item(
                &format!("86900000{i:05}"),
                &format!("Product {i}"),
                &format!("https://cdn.example/videos/{i}.mp4"),
                i as i64,
            )
        })
        .collect()
}

fn client(server: &FakeBuybuddy, password: &str) -> Buybuddy {
    Buybuddy::new(Settings {
        page_size: 10,
        attempts: 2,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(20)),
        ..Settings::new(&server.url, USERNAME, password)
    })
    .unwrap()
}

#[tokio::test]
async fn three_pages_of_catalog_are_listed_whole() {
    let server = FakeBuybuddy::start(catalog(25)).await;
    let mut seen = Vec::new();
    let listed = client(&server, PASSWORD)
        .list_products(|page, pages| seen.push((page, pages)))
        .await
        .unwrap();
    assert_eq!(listed.products.len(), 25);
    assert_eq!(listed.pages, 3);
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!(listed.products[24].barcode, "8690000000025");
    assert_eq!(listed.products[24].video_id, Some(25));
    assert_eq!(server.sign_ins(), 1);
}

#[tokio::test]
async fn items_without_barcode_or_video_are_counted_and_left_out() {
    let mut items = catalog(3);
    items[1]["video"]["product"]["upc"] = Value::Null;
    items[2]["video"]["media_url"] = Value::String(String::new());
    let server = FakeBuybuddy::start(items).await;
    let listed = client(&server, PASSWORD)
        .list_products(|_, _| {})
        .await
        .unwrap();
    assert_eq!(listed.products.len(), 1);
    assert_eq!(listed.skipped, 2);
}

#[tokio::test]
async fn wrong_credentials_say_so() {
    let server = FakeBuybuddy::start(catalog(3)).await;
    let error = client(&server, "guess")
        .list_products(|_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, BuybuddyError::Credentials { status: 401 }),
        "{error}"
    );
    assert!(
        error.to_string().contains("username or password"),
        "{error}"
    );
    assert_eq!(server.pages_served(), 0);
}

#[tokio::test]
async fn a_token_expiring_mid_sync_is_renewed_once() {
    let server = FakeBuybuddy::start(catalog(25)).await;
    // The first token serves two pages; the third page signs in again.
    server.tokens_expire_after(2);
    let listed = client(&server, PASSWORD)
        .list_products(|_, _| {})
        .await
        .unwrap();
    assert_eq!(listed.products.len(), 25);
    assert_eq!(server.sign_ins(), 2);
    assert_eq!(server.pages_served(), 3);
}

#[tokio::test]
async fn a_token_refused_even_when_fresh_is_an_error() {
    let server = FakeBuybuddy::start(catalog(5)).await;
    server.tokens_expire_after(0);
    let error = client(&server, PASSWORD)
        .list_products(|_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, BuybuddyError::Unauthorized { .. }),
        "{error}"
    );
    assert_eq!(server.sign_ins(), 2, "renewed once, not in a loop");
}

async fn sync(db: &TestDb, server: &FakeBuybuddy, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(binary())
        .arg("sync")
        .args(extra)
        .env("DATABASE_URL", db.url.expose())
        .env("BUYBUDDY_API_URL", &server.url)
        .env("BUYBUDDY_USERNAME", USERNAME)
        .env("BUYBUDDY_PASSWORD", PASSWORD)
        .env("BUYBUDDY_API_PAGE_SIZE", "10")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap()
}

async fn video_jobs(db: &TestDb) -> Vec<(String, String)> {
    sqlx::query_as("SELECT barcode, status FROM jobs WHERE kind = 'video' ORDER BY barcode")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sync_enqueue_twice_queues_every_product_once() {
    let db = TestDb::new().await;
    let server = FakeBuybuddy::start(catalog(25)).await;

    let first = sync(&db, &server, &["--enqueue"]).await;
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("25 products listed in 3 pages"), "{out}");
    assert!(out.contains("catalog: 25 new"), "{out}");
    assert!(out.contains("enqueued 25 video jobs"), "{out}");
    let jobs = video_jobs(&db).await;
    assert_eq!(jobs.len(), 25);
    assert!(jobs.iter().all(|(_, status)| status == "queued"));
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tasks, 25, "each job has its queue task");
    let (url, video_id): (String, Option<i32>) =
        sqlx::query_as("SELECT video_url, video_id FROM jobs WHERE barcode = '8690000000007'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(url, "https://cdn.example/videos/7.mp4");
    assert_eq!(video_id, Some(7));

    let second = sync(&db, &server, &["--enqueue"]).await;
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        out.contains("catalog: 0 new, 0 changed, 25 unchanged"),
        "{out}"
    );
    assert!(
        out.contains("25 of them with a job queued or running"),
        "{out}"
    );
    assert!(out.contains("enqueued 0 video jobs"), "{out}");
    assert_eq!(video_jobs(&db).await.len(), 25);
}

#[tokio::test]
async fn sync_reports_only_what_is_not_processed() {
    let db = TestDb::new().await;
    let server = FakeBuybuddy::start(catalog(4)).await;
    // 1 has a product, 2 a completed job, 3 a failed job; 4 nothing.
    sqlx::query("INSERT INTO products (barcode, status) VALUES ('8690000000001', 'approved')")
        .execute(&db.pool)
        .await
        .unwrap();
    for (barcode, status) in [("8690000000002", "completed"), ("8690000000003", "failed")] {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, barcode, status, max_attempts,
                               started_at, completed_at)
             VALUES (gen_random_uuid(), 'video', '{}', $1, $2, 1, now(), now())",
        )
        .bind(barcode)
        .bind(status)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let output = sync(&db, &server, &["--json"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let unprocessed: Vec<(&str, bool)> = report["unprocessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["barcode"].as_str().unwrap(),
                u["last_failed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unprocessed,
        vec![("8690000000003", true), ("8690000000004", false)]
    );
    assert!(
        report["enqueued"].as_array().unwrap().is_empty(),
        "no --enqueue, no jobs"
    );
    assert_eq!(
        db::catalog::name_of(&db.pool, "8690000000004")
            .await
            .unwrap()
            .as_deref(),
        Some("Product 4")
    );
    assert_eq!(db::catalog::count(&db.pool).await.unwrap(), 4);
}

#[tokio::test]
async fn sync_without_credentials_or_with_wrong_ones_fails_clearly() {
    let db = TestDb::new().await;
    let server = FakeBuybuddy::start(catalog(2)).await;
    let output = tokio::process::Command::new(binary())
        .arg("sync")
        .env("DATABASE_URL", db.url.expose())
        .env_remove("BUYBUDDY_API_URL")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("set BUYBUDDY_API_URL"), "{stderr}");

    let output = tokio::process::Command::new(binary())
        .arg("sync")
        .env("DATABASE_URL", db.url.expose())
        .env("BUYBUDDY_API_URL", &server.url)
        .env("BUYBUDDY_USERNAME", USERNAME)
        .env("BUYBUDDY_PASSWORD", "wrong")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("refused the username or password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong"),
        "the password is not shown: {stderr}"
    );
}

#[tokio::test]
async fn doctor_checks_the_gemini_key_and_the_buybuddy_credentials() {
    let db = TestDb::new().await;
    let catalog = FakeBuybuddy::start(catalog(1)).await;
    let gemini = common::gemini::FakeGemini::start().await;
    let doctor = |key: &'static str, password: &'static str| {
        let mut command = tokio::process::Command::new(binary());
        command
            .args(["doctor", "--data-dir", "/tmp/buybuddy-doctor"])
            .env("DATABASE_URL", db.url.expose())
            .env("GEMINI_API_KEY", key)
            .env("GEMINI_BASE_URL", &gemini.url)
            .env("GEMINI_MODEL", "test-model")
            .env("BUYBUDDY_API_URL", &catalog.url)
            .env("BUYBUDDY_USERNAME", USERNAME)
            .env("BUYBUDDY_PASSWORD", password);
        command
    };
    let output = doctor(common::gemini::API_KEY, PASSWORD)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("OK    gemini     model test-model answers"),
        "{report}"
    );
    assert!(report.contains("OK    buybuddy   signed in to"), "{report}");

    let output = doctor("wrong-key", "wrong-password")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{report}");
    assert!(
        report.contains("FAIL  gemini") && report.contains("API key not valid"),
        "{report}"
    );
    assert!(
        report.contains("FAIL  buybuddy") && report.contains("refused the username or password"),
        "{report}"
    );
    assert!(!report.contains("wrong-key") && !report.contains("wrong-password"));
}

#[tokio::test]
async fn the_sync_page_syncs_lists_and_queues_selected_or_all() {
    let db = TestDb::new().await;
    let api = FakeBuybuddy::start(catalog(5)).await;
    let server = TestServer::start_with_catalog(&db.pool, client(&api, PASSWORD)).await;
    let page = server.client.get(server.url("/sync")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("0 products stored") && html.contains("Every catalog product"),
        "{html}"
    );

    let synced = server
        .client
        .post(server.url("/sync"))
        .form(&[("_csrf", server.csrf_token.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        synced.contains("Listed 5 products in 1 pages: 5 new"),
        "{synced}"
    );
    assert!(
        synced.contains("Not processed yet <span class=\"muted\">(5)</span>"),
        "{synced}"
    );
    assert_eq!(video_jobs(&db).await.len(), 0, "syncing queues nothing");

    let queued = server
        .client
        .post(server.url("/sync/enqueue"))
        .form(&[("barcodes", "8690000000002"), ("barcodes", "8690000000004")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(queued.contains("Queued 2 video jobs."), "{queued}");
    let all = server
        .client
        .post(server.url("/sync/enqueue"))
        .form(&[("all", "1")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        all.contains("Queued 3 video jobs."),
        "the 2 already queued are skipped: {all}"
    );
    assert_eq!(video_jobs(&db).await.len(), 5);

    // Without an API the page says how to set one up, and still lists the stored catalog.
    let plain = TestServer::start(&db.pool).await;
    let html = plain
        .client
        .get(plain.url("/sync"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("BUYBUDDY_API_URL") && html.contains("5 products are stored"),
        "{html}"
    );
}
