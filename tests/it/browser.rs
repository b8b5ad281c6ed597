//! The pages in a real browser: headless Chromium driven over WebDriver
//! (chromedriver). Each test leaves screenshots in
//! `target/test-output/browser/` for a person to look at.
//! Longer than most files: each scenario drives a whole page flow in Chromium,
//! and they share the driver and the page helpers.

use crate::common;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use buybuddy::db;
use bytes::Bytes;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Notify;
use uuid::Uuid;

/// chromedriver on a free port, in a process group of its own with the
/// browsers it starts; the whole group is killed when dropped, also when a
/// test fails, so no Chromium outlives its test.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; run scripts/setup.sh --test)");
        let url = format!("http://127.0.0.1:{port}");
        let since = Instant::now();
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }

    async fn browser(&self) -> Client {
        // Already installed by an earlier test in this process is fine too.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--window-size=1280,1000"]
            }),
        );
        ClientBuilder::rustls()
            .expect("a TLS setup")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid; Chromium and its helpers are in it.
        if let Some(pid) = self.child.id() {
            let group = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = repo_root().join("target/test-output/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `check` holds, polling the page.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let since = Instant::now();
    while !check().await {
        assert!(
            since.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks what is there now, trying again while a live part of the page is
/// swapped out between finding the element and clicking it.
async fn click_live(browser: &Client, css: &str) {
    until(
        &format!("a click on {css}"),
        Duration::from_secs(10),
        || async {
            match browser.find(Locator::Css(css)).await {
                Ok(element) => element.click().await.is_ok(),
                Err(_) => false,
            }
        },
    )
    .await;
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Signs in through the form, as a person would.
async fn sign_in(browser: &Client, server: &TestServer, email: &str) {
    browser.goto(&server.url("/")).await.unwrap();
    assert!(
        browser.current_url().await.unwrap().path() == "/login",
        "sent to sign in"
    );
    fill(browser, "input[name=email]", email).await;
    fill(browser, "input[name=password]", TEST_PASSWORD).await;
    click(browser, "form button[type=submit]").await;
    until("the dashboard", Duration::from_secs(10), || async {
        browser.current_url().await.unwrap().path() == "/"
    })
    .await;
}

async fn user(db: &TestDb) -> String {
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    let hash = buybuddy::auth::hash_password(TEST_PASSWORD).unwrap();
    db::users::upsert(&db.pool, &email, &hash).await.unwrap();
    email
}

/// Serves one video at `/video.mp4`.
/// Serves the video's first half at once and the rest only once `release`
/// is notified: the job then waits in its download stage for as long as the
/// test wants, whatever the machine's speed.
async fn held_video_server(video: Vec<u8>, release: Arc<Notify>) -> SocketAddr {
    let app = axum::Router::new().route(
        "/video.mp4",
        axum::routing::get(move || {
            let (head, tail) = video.split_at(video.len() / 2);
            let (head, tail) = (Bytes::copy_from_slice(head), Bytes::copy_from_slice(tail));
            let release = release.clone();
            async move {
                let rest = async move {
                    release.notified().await;
                    Ok::<_, std::io::Error>(tail)
                };
                let body =
                    futures::stream::once(async { Ok(head) }).chain(futures::stream::once(rest));
                (
                    [("content-type", "video/mp4")],
                    axum::body::Body::from_stream(body),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// The value of the job page's progress bar, if it has one.
async fn progress_of(browser: &Client) -> Option<f64> {
    browser
        .execute(
            "const p = document.getElementById('job-progress'); return p ? p.value : null;",
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
}

#[tokio::test]
async fn sign_in_start_a_job_from_a_url_and_watch_it_finish_without_reloading() {
    let db = TestDb::new().await;
    // The download is held open for as long as the test needs: no read timeout.
    let pipeline = TestPipeline::with_limits(buybuddy_worker::download::Limits {
        read_timeout: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(sample_video(dir.path(), "clip.mp4", 60)).unwrap();
    let release = Arc::new(Notify::new());
    let videos = held_video_server(video, release.clone()).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;

    sign_in(&browser, &server, &email).await;
    screenshot(&browser, "01-dashboard").await;

    browser.goto(&server.url("/jobs")).await.unwrap();
    fill(&browser, "#new-job input[name=barcode]", "8690000000001").await;
    fill(
        &browser,
        "#new-job input[name=video_url]",
        &format!("http://{videos}/video.mp4"),
    )
    .await;
    click(&browser, "#new-job button[type=submit]").await;
    until("the job page", Duration::from_secs(10), || async {
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/jobs/")
    })
    .await;
    // Marks this page load: a reload would lose the mark.
    browser
        .execute("window.__sameLoad = true; return null;", vec![])
        .await
        .unwrap();
    let queued = text_of(&browser, "#job-live .status").await;
    assert_eq!(queued.to_lowercase(), "queued");
    let mut seen: Vec<f64> = progress_of(&browser).await.into_iter().collect();
    screenshot(&browser, "02-job-queued").await;

    // Only now does a worker start: every change reaches the page over SSE.
    // The job stops in its download stage until the test lets the video through.
    let worker = InProcessWorker::start(&db.pool, pipeline.worker_config());
    until(
        "the page to show the download stage",
        Duration::from_secs(30),
        || async {
            text_of(&browser, "#job-live .status").await.to_lowercase() == "running"
                && progress_of(&browser).await.is_some_and(|p| p > 0.0)
        },
    )
    .await;
    seen.extend(progress_of(&browser).await);
    screenshot(&browser, "02-job-downloading").await;
    release.notify_one();

    let since = Instant::now();
    loop {
        if let Some(value) = progress_of(&browser).await
            && seen.last() != Some(&value)
        {
            seen.push(value);
        }
        if text_of(&browser, "#job-live .status").await.to_lowercase() == "completed" {
            // The same update set the bar: read it once more.
            if let Some(value) = progress_of(&browser).await
                && seen.last() != Some(&value)
            {
                seen.push(value);
            }
            break;
        }
        if since.elapsed() > Duration::from_secs(60) {
            screenshot(&browser, "03-job-stuck").await;
            let row: (String, Option<String>) = sqlx::query_as(
                "SELECT status::text, error_message FROM jobs ORDER BY created_at DESC LIMIT 1",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            panic!(
                "the job did not complete on the page; progress seen: {seen:?}; in the database: {row:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    screenshot(&browser, "03-job-completed").await;
    let same = browser
        .execute("return window.__sameLoad === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        json!(true),
        "the page updated itself, without a reload"
    );
    assert!(
        seen.len() >= 3,
        "the progress bar moved through several values: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "and only forward: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&100.0));
    worker.stop().await;
}

#[tokio::test]
async fn retry_a_failed_job_from_its_page() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    let id = buybuddy::queue::enqueue(
        &db.pool,
        buybuddy::queue::DEFAULT_QUEUE,
        vec![buybuddy::jobs::JobSpec::Noop(buybuddy::jobs::noop::Noop {}).into()],
    )
    .await
    .unwrap()[0];
    sqlx::query(
        "UPDATE jobs SET status = 'failed', completed_at = now(), stage = 'download',
                         error_message = 'https://cdn.example/v.mp4 was not found' WHERE id = $1",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();

    sign_in(&browser, &server, &email).await;
    browser
        .goto(&server.url(&format!("/jobs/{id}")))
        .await
        .unwrap();
    assert!(
        text_of(&browser, "#job-live .error")
            .await
            .contains("was not found")
    );
    screenshot(&browser, "04-failed-job").await;
    click_live(&browser, &format!("form[action='/jobs/{id}/retry'] button")).await;
    until("the new job's page", Duration::from_secs(10), || async {
        let path = browser.current_url().await.unwrap().path().to_owned();
        path.starts_with("/jobs/") && !path.contains(&id.to_string())
    })
    .await;
    assert!(text_of(&browser, "#job-live").await.contains("Retry of"));
    screenshot(&browser, "05-retried-job").await;
}

/// A product awaiting review, with one frame row.
async fn product(db: &TestDb, barcode: &str, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO products (barcode, product_name, brand_name, status)
         VALUES ($1, $2, 'Fizzo', 'needs_review') RETURNING id",
    )
    .bind(barcode)
    .bind(name)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn edit_metadata_approve_and_bulk_reject_in_the_browser() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    let cola = product(&db, "8690000000001", "Fizzo Cola").await;
    let b = product(&db, "8690000000002", "Fizzo Lemon").await;
    let c = product(&db, "8690000000003", "Fizzo Orange").await;
    sign_in(&browser, &server, &email).await;

    // An invalid value: the message is next to the field, and what was typed stays.
    browser
        .goto(&server.url(&format!("/products/{cola}")))
        .await
        .unwrap();
    fill(
        &browser,
        "#editor input[name=product_name]",
        "Fizzo Cola Zero",
    )
    .await;
    fill(&browser, "#editor input[name=visibility_score]", "250").await;
    click(&browser, "#editor button[type=submit]").await;
    until("the field's message", Duration::from_secs(10), || async {
        text_of(&browser, "#editor")
            .await
            .contains("A whole number from 0 to 100")
    })
    .await;
    let typed = browser
        .find(Locator::Css("#editor input[name=product_name]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(typed.as_deref(), Some("Fizzo Cola Zero"));
    screenshot(&browser, "06-metadata-invalid").await;
    let stored = db::products::get(&db.pool, cola).await.unwrap().unwrap();
    assert_eq!(
        stored.product_name.as_deref(),
        Some("Fizzo Cola"),
        "nothing saved"
    );

    fill(&browser, "#editor input[name=visibility_score]", "88").await;
    click(&browser, "#editor button[type=submit]").await;
    until("the save", Duration::from_secs(10), || async {
        text_of(&browser, "#editor").await.contains("Saved.")
    })
    .await;
    let stored = db::products::get(&db.pool, cola).await.unwrap().unwrap();
    assert_eq!(stored.product_name.as_deref(), Some("Fizzo Cola Zero"));
    assert_eq!(stored.visibility_score, Some(88));
    screenshot(&browser, "07-metadata-saved").await;

    // The save's own change notification reloads the review part, so the
    // button may be swapped out under the click.
    click_live(
        &browser,
        &format!("form[action='/products/{cola}/approve'] button"),
    )
    .await;
    until("the approval", Duration::from_secs(10), || async {
        text_of(&browser, "#review .status").await.to_lowercase() == "approved"
    })
    .await;
    assert_eq!(
        db::products::get(&db.pool, cola)
            .await
            .unwrap()
            .unwrap()
            .status,
        "approved"
    );
    screenshot(&browser, "08-approved").await;

    // Bulk: tick two rows, give a reason, reject.
    browser.goto(&server.url("/products")).await.unwrap();
    for id in [b, c] {
        click(&browser, &format!("input[name=ids][value='{id}']")).await;
    }
    fill(
        &browser,
        "#products-list input[name=reason]",
        "wrong product filmed",
    )
    .await;
    click(&browser, "#products-list button[value=reject]").await;
    until("the bulk result", Duration::from_secs(10), || async {
        text_of(&browser, ".notice")
            .await
            .contains("Rejected 2 products.")
    })
    .await;
    screenshot(&browser, "09-bulk-rejected").await;
    for id in [b, c] {
        let p = db::products::get(&db.pool, id).await.unwrap().unwrap();
        assert_eq!(
            (p.status.as_str(), p.review_note.as_deref()),
            ("rejected", Some("wrong product filmed"))
        );
    }
    assert_eq!(
        db::products::get(&db.pool, cola)
            .await
            .unwrap()
            .unwrap()
            .status,
        "approved"
    );
}

#[tokio::test]
async fn make_a_dataset_watch_the_preview_follow_the_settings_and_download_an_export() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    crate::datasets::masked_products(&db.pool, &pipeline.storage, 3, 4).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(&db).await,
        pipeline.worker_config(),
    );
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    sign_in(&browser, &server, &email).await;

    browser.goto(&server.url("/datasets")).await.unwrap();
    fill(&browser, "input[name=name]", "Shelf detector").await;
    click(&browser, "form.stack button[type=submit]").await;
    until("the dataset's page", Duration::from_secs(10), || async {
        text_of(&browser, "h1").await == "Shelf detector"
    })
    .await;
    assert!(
        text_of(&browser, "#split-rule")
            .await
            .contains("split by product")
    );

    // The preview draws itself, then follows an unsaved setting.
    let first_draw = || async {
        match browser
            .find(Locator::Css("#preview figure.draw img[alt$=draw]"))
            .await
        {
            // The grid may be swapped out between finding and reading: retry.
            Ok(img) => img.attr("src").await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    until("the preview", Duration::from_secs(15), || async {
        !first_draw().await.is_empty()
    })
    .await;
    let before = first_draw().await;
    screenshot(&browser, "dataset-1-preview").await;
    fill(&browser, "input[name='preview_seed']", "99").await;
    click(&browser, "h1").await;
    until("the preview to redraw", Duration::from_secs(15), || async {
        let now = first_draw().await;
        !now.is_empty() && now != before
    })
    .await;
    screenshot(&browser, "dataset-2-new-seed").await;

    // Generate a version: the panel follows its render job live.
    click(&browser, "form[action$='/versions'] button[type=submit]").await;
    // (That form is outside the live panel, so it cannot go stale.)
    until("version 1 to be ready", Duration::from_secs(60), || async {
        text_of(&browser, "#version-1").await.contains("ready")
    })
    .await;
    // The panel reloads itself while work is in flight: click what is there.
    click_live(&browser, "#version-1 button[value=coco]").await;
    until(
        "the export's download link",
        Duration::from_secs(60),
        || async {
            browser
                .find(Locator::Css("#version-1 a.button[download]"))
                .await
                .is_ok()
        },
    )
    .await;
    screenshot(&browser, "dataset-3-export-ready").await;
    let since = Instant::now();
    let href = loop {
        if let Ok(link) = browser
            .find(Locator::Css("#version-1 a.button[download]"))
            .await
            && let Ok(Some(value)) = link.attr("href").await
        {
            break value;
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "no download link"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let archive = server.client.get(server.url(&href)).send().await.unwrap();
    assert_eq!(archive.status(), 200);
    assert!(archive.bytes().await.unwrap().starts_with(b"PK\x03\x04"));
    browser.close().await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn start_a_training_run_from_the_page_and_watch_its_curves_fill_in() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    crate::datasets::masked_products(&db.pool, &pipeline.storage, 6, 8).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(&db).await,
        pipeline.worker_config(),
    );
    let (status, dataset) = crate::datasets::post(
        &server,
        "/api/datasets",
        json!({"name": "faces", "task": "recognition",
               "settings": {"ratios": {"train": 0.5, "val": 0.5, "test": 0.0}}}),
    )
    .await;
    assert_eq!(status, 201, "{dataset}");
    let id = dataset["id"].as_i64().unwrap();
    crate::datasets::post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    until("the version to render", Duration::from_secs(60), || async {
        crate::datasets::get(&server, &format!("/api/datasets/{id}/versions/1")).await["ready"]
            == true
    })
    .await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    sign_in(&browser, &server, &email).await;
    browser.goto(&server.url("/training")).await.unwrap();
    assert!(
        text_of(&browser, "section.card")
            .await
            .contains("No run yet")
    );
    // A bad number is refused with its field named; nothing starts.
    fill(&browser, "input[name=lr]", "fast").await;
    click(&browser, "form.stack button[type=submit]").await;
    until("the refusal", Duration::from_secs(10), || async {
        text_of(&browser, ".field-error")
            .await
            .contains("not a number")
    })
    .await;
    fill(&browser, "input[name=lr]", "0.0005").await;
    fill(&browser, "input[name=epochs]", "12").await;
    fill(&browser, "input[name=log_every]", "1").await;
    click(&browser, "form.stack button[type=submit]").await;
    until("the run's page", Duration::from_secs(10), || async {
        text_of(&browser, "h1").await == "faces-v1-1"
    })
    .await;
    browser
        .execute("window.__sameLoad = true; return null;", vec![])
        .await
        .unwrap();
    // The step counter and the curves move while the page stays loaded.
    let mut steps_seen = std::collections::BTreeSet::new();
    let since = Instant::now();
    loop {
        steps_seen.insert(text_of(&browser, "#run-step").await);
        if text_of(&browser, "#run-state").await == "completed" {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(180),
            "the run did not finish: {}",
            text_of(&browser, "#live").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        steps_seen.len() >= 3,
        "the step counter did not move: {steps_seen:?}"
    );
    let same = browser
        .execute("return window.__sameLoad === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same,
        json!(true),
        "the page updated itself, without a reload"
    );
    let lines = browser
        .find_all(Locator::Css("figure.chart polyline"))
        .await
        .unwrap();
    assert!(lines.len() >= 3, "{} chart lines", lines.len());
    let rows = browser
        .find_all(Locator::Css("#validation tbody tr"))
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        13,
        "before training and after each of 12 epochs"
    );
    screenshot(&browser, "07-training-run").await;
    // The run's live part is swapped in on every job event.
    click_live(&browser, "form[action$='/use'] button").await;
    until(
        "the model to be in use",
        Duration::from_secs(10),
        || async { text_of(&browser, "p.notice").await.contains("active model") },
    )
    .await;
    worker.stop().await;
}

#[tokio::test]
async fn draw_a_box_on_a_shelf_photo_and_review_its_crops_with_the_keyboard() {
    use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let products = crate::datasets::masked_products(&db.pool, &pipeline.storage, 3, 4).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(&db).await,
        pipeline.worker_config(),
    );
    buybuddy::actions::search::backfill(&db.pool, buybuddy::queue::DEFAULT_QUEUE, None)
        .await
        .unwrap();
    until("the products' vectors", Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM product_embeddings")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            == 3
    })
    .await;
    let (photo, labels, names) =
        crate::shelves::shelf(&db.pool, &pipeline.storage, &products).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, bytes) in [
        ("aisle.jpg", photo),
        ("aisle.txt", labels.into_bytes()),
        ("data.yaml", names.into_bytes()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }

    // Uploaded with its labels through the Shelves page's form.
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    sign_in(&browser, &server, &email).await;
    browser.goto(&server.url("/shelves")).await.unwrap();
    browser
        .find(Locator::Css("input[type=file][name=files]"))
        .await
        .unwrap()
        .send_keys(&files.join("\n"))
        .await
        .unwrap();
    fill(&browser, "input[name=store]", "Kadikoy").await;
    click(
        &browser,
        "form[enctype='multipart/form-data'] button[type=submit]",
    )
    .await;
    until(
        "the uploaded photo's page",
        Duration::from_secs(15),
        || async {
            text_of(&browser, "p.notice")
                .await
                .contains("Uploaded 1 photo with 4 boxes")
        },
    )
    .await;
    let image: i32 = sqlx::query_scalar("SELECT id FROM shelf_images")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let (status, matched) = crate::datasets::post(&server, "/api/shelves/match", json!({})).await;
    assert_eq!(status, 202, "{matched}");
    crate::shelves::wait_job(&db.pool, matched["job_id"].as_str().unwrap()).await;
    browser
        .goto(&server.url(&format!("/shelves/{image}")))
        .await
        .unwrap();
    let boxes = || async {
        browser
            .find_all(Locator::Css("#boxes tbody tr"))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(boxes().await, 4);
    // Drag across the brown band under the products: a new box.
    let canvas = browser
        .find(Locator::Css("#shelf-canvas img"))
        .await
        .unwrap();
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: canvas.clone(),
            duration: None,
            x: -200.0,
            y: 90.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveToElement {
            element: canvas,
            duration: Some(Duration::from_millis(200)),
            x: -120.0,
            y: 104.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    browser.perform_actions(drag).await.unwrap();
    until(
        "the drawn box in the list",
        Duration::from_secs(10),
        || async { boxes().await == 5 },
    )
    .await;
    assert!(text_of(&browser, "p.notice").await.contains("added"));
    let drawn = text_of(&browser, "#boxes tbody tr:last-child").await;
    assert!(drawn.contains("drawn") && drawn.contains("new"), "{drawn}");
    screenshot(&browser, "08-shelf-photo").await;

    // Review with the keyboard: 1 takes the top suggestion, n says the
    // directory lacks it; the page swaps the next crop in without a reload.
    browser
        .goto(&server.url(&format!("/shelves/review?image={image}")))
        .await
        .unwrap();
    browser
        .execute("window.__sameLoad = true; return null;", vec![])
        .await
        .unwrap();
    assert!(
        text_of(&browser, ".review-counter")
            .await
            .starts_with("5 left")
    );
    let body = browser.find(Locator::Css("body")).await.unwrap();
    body.send_keys("1").await.unwrap();
    until("one crop confirmed", Duration::from_secs(10), || async {
        text_of(&browser, ".review-counter")
            .await
            .starts_with("4 left")
    })
    .await;
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("n")
        .await
        .unwrap();
    until(
        "one crop not in the directory",
        Duration::from_secs(10),
        || async {
            text_of(&browser, ".review-counter")
                .await
                .contains("1 not in the directory")
        },
    )
    .await;
    let same = browser
        .execute("return window.__sameLoad === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "reviewed without a reload");
    screenshot(&browser, "09-shelf-review").await;
    let decided: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT b.status, p.barcode FROM shelf_boxes b LEFT JOIN products p ON p.id = b.product_id
         WHERE b.status IN ('confirmed', 'absent') ORDER BY b.id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        decided,
        [
            ("confirmed".to_owned(), Some(products[0].1.clone())),
            ("absent".to_owned(), None)
        ]
    );
    browser.close().await.unwrap();
    worker.stop().await;
}

#[tokio::test]
async fn import_a_merchants_list_accept_its_barcode_matches_and_review_the_rest_with_the_keyboard()
{
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    for (barcode, brand, name, size) in [
        ("5449000131805", "Coca-Cola", "Coca-Cola Zero", "330 ml"),
        ("4060800001231", "Pepsi", "Pepsi Max", "330 ml"),
        ("5449000011527", "Fanta", "Fanta Orange", "330 ml"),
    ] {
        sqlx::query(
            "INSERT INTO products (barcode, brand_name, product_name, net_quantity, status)
             VALUES ($1, $2, $3, $4, 'approved')",
        )
        .bind(barcode)
        .bind(brand)
        .bind(name)
        .bind(size)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(
        &crate::datasets::worker_pool(&db).await,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["merchant_suggest", "merchant_images"],
            ..pipeline.worker_config()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("a101.csv");
    std::fs::write(
        &list,
        "Item code;Description;EAN\n\
         S1;COCA COLA ZERO 33CL;5449000131805\n\
         ;no code;\n\
         S2;Pepsi max 330ml;\n\
         S3;Ayran 250 ml;\n\
         S4;Bad;12AB\n",
    )
    .unwrap();

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let email = user(&db).await;
    sign_in(&browser, &server, &email).await;
    browser.goto(&server.url("/merchants")).await.unwrap();
    fill(&browser, "input[name=code]", "a101").await;
    fill(&browser, "input[name=name]", "A101").await;
    click(&browser, "form[action='/merchants'] button").await;
    until("the merchant's page", Duration::from_secs(10), || async {
        text_of(&browser, "h1").await.starts_with("A101")
    })
    .await;
    browser
        .find(Locator::Css("input[type=file][name=file]"))
        .await
        .unwrap()
        .send_keys(list.to_str().unwrap())
        .await
        .unwrap();
    click(&browser, "form[enctype='multipart/form-data'] button").await;
    until("the mapping step", Duration::from_secs(10), || async {
        text_of(&browser, "h1").await.contains("Import a101.csv")
    })
    .await;
    // The header names were guessed: the SKU, the name and the barcode.
    let chosen = browser
        .execute(
            "return ['sku', 'name', 'barcode'].map(f => document.querySelector(`select[name='map.${f}']`).value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(chosen, json!(["Item code", "Description", "EAN"]));
    click(&browser, "button[value=refuse]").await;
    until("the bad lines", Duration::from_secs(10), || async {
        text_of(&browser, "#bad-lines")
            .await
            .contains("2 lines cannot be imported")
    })
    .await;
    screenshot(&browser, "10-merchant-bad-lines").await;
    click(&browser, "button[value=import_good]").await;
    until("the import's report", Duration::from_secs(10), || async {
        text_of(&browser, "p.notice").await.contains("3 added")
    })
    .await;
    until("the suggestions", Duration::from_secs(30), || async {
        browser.refresh().await.unwrap();
        text_of(&browser, "form[action$='/bulk'] button")
            .await
            .contains("Accept 1 exact")
    })
    .await;
    click(&browser, "form[action$='/bulk'] button").await;
    until("the bulk acceptance", Duration::from_secs(10), || async {
        text_of(&browser, "p.notice")
            .await
            .contains("1 line assigned to its exact barcode match.")
    })
    .await;

    // The rest with the keyboard: 1 takes Pepsi for S2, n says S3 is not in
    // the directory; the panel is swapped without a reload.
    click(&browser, "a.button[href$='/review']").await;
    until("the review", Duration::from_secs(10), || async {
        text_of(&browser, "#review h2").await == "SKU S2"
    })
    .await;
    browser
        .execute("window.__sameLoad = true; return null;", vec![])
        .await
        .unwrap();
    assert!(
        text_of(&browser, ".review-counter")
            .await
            .starts_with("2 left")
    );
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("1")
        .await
        .unwrap();
    until("S3 next", Duration::from_secs(10), || async {
        text_of(&browser, "#review h2").await == "SKU S3"
    })
    .await;
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("n")
        .await
        .unwrap();
    until("nothing left", Duration::from_secs(10), || async {
        text_of(&browser, "#review")
            .await
            .contains("Nothing left here")
    })
    .await;
    assert_eq!(
        browser
            .execute("return window.__sameLoad === true;", vec![])
            .await
            .unwrap(),
        json!(true)
    );
    screenshot(&browser, "11-merchant-review").await;
    let export = server
        .client
        .get(server.url("/merchants/a101/export/csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<Vec<String>> = csv::Reader::from_reader(export.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let statuses: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("S1", "assigned", "5449000131805"),
            ("S2", "assigned", "4060800001231"),
            ("S3", "absent", "")
        ]
    );
    browser.close().await.unwrap();
    worker.stop().await;
}
