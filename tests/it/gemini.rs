//! The Gemini client against a local server speaking Gemini's protocol: the
//! happy paths (inline and Files API), every failure it must handle, and the
//! metadata stage of `buybuddy process`.
//! Longer than most files: every failure the client must handle, against one
//! local server.

use crate::common;

use std::{path::PathBuf, time::Duration};

use buybuddy::db;
use buybuddy_worker::{
    gemini::{Gemini, GeminiError, Hints, Settings, metadata},
    retry::Backoff,
};
use common::{
    Process, TestDb,
    gemini::{API_KEY, FakeGemini, Reply, fizzo_cola},
    process_command, sample_video,
};
use serde_json::{Value, json};

fn settings(server: &FakeGemini) -> Settings {
    Settings {
        base_url: server.url.clone(),
        model: "test-model".into(),
        attempts: 4,
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(40)),
        max_retry_delay: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        processing_timeout: Duration::from_secs(5),
        ..Settings::new(API_KEY)
    }
}

fn client(settings: Settings) -> Gemini {
    Gemini::new(settings).unwrap()
}

/// A file of `bytes` bytes standing in for a video (the client does not decode).
fn video(bytes: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("product.mp4");
    let content: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn hints() -> Hints {
    Hints {
        barcode: "8690000000001".into(),
        catalog_name: Some("Fizzo Zero 330".into()),
    }
}

async fn describe(settings: Settings) -> Result<metadata::Metadata, GeminiError> {
    let (_dir, path) = video(50_000);
    client(settings)
        .describe_product(&path, "video/mp4", &hints())
        .await
}

#[tokio::test]
async fn a_small_video_goes_inline_and_comes_back_as_validated_metadata() {
    let server = FakeGemini::start().await;
    let found = describe(settings(&server)).await.unwrap();
    assert_eq!(found.brand_name.as_deref(), Some("Fizzo"));
    assert_eq!(found.product_name.as_deref(), Some("Fizzo Zero Cola"));
    assert_eq!(found.grounding_prompt.as_deref(), Some("red soda can"));
    assert_eq!(found.visibility_score, Some(91));
    assert_eq!(found.claims, vec!["zero sugar", "no preservatives"]);

    let calls = server.calls(":generateContent");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.path, "/v1beta/models/test-model:generateContent");
    assert_eq!(call.headers["x-goog-api-key"], API_KEY);
    let body = call.json.as_ref().unwrap();
    let parts = &body["contents"][0]["parts"];
    assert_eq!(parts[0]["inlineData"]["mimeType"], "video/mp4");
    assert!(
        parts[1]["text"]
            .as_str()
            .unwrap()
            .contains("Fizzo Zero 330")
    );
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        body["generationConfig"]["responseJsonSchema"],
        metadata::response_schema()
    );
    assert_eq!(server.videos(), vec![50_000], "the whole video was sent");
    assert!(
        server.calls("/files").is_empty(),
        "no upload for a small video"
    );
}

#[tokio::test]
async fn a_large_video_is_uploaded_waited_for_used_and_deleted() {
    let server = FakeGemini::start().await;
    server.processing_polls(Some(2));
    let found = describe(Settings {
        inline_limit: 10_000,
        ..settings(&server)
    })
    .await
    .unwrap();
    assert_eq!(found.product_name.as_deref(), Some("Fizzo Zero Cola"));

    let kinds: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            let session = if r.query.contains_key("upload_id") {
                "?session"
            } else {
                ""
            };
            let path = r.path.trim_end_matches(|c: char| c.is_ascii_digit());
            format!("{} {path}{session}", r.method)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "POST /upload/v1beta/files",
            "POST /upload/v1beta/files?session",
            "GET /v1beta/files/f",
            "GET /v1beta/files/f",
            "GET /v1beta/files/f",
            "POST /v1beta/models/test-model:generateContent",
            "DELETE /v1beta/files/f",
        ],
        "start, upload, poll until ACTIVE, generate, delete"
    );
    let start = &server.requests()[0];
    assert_eq!(start.headers["x-goog-upload-protocol"], "resumable");
    assert_eq!(
        start.headers["x-goog-upload-header-content-length"],
        "50000"
    );
    assert_eq!(
        start.headers["x-goog-upload-header-content-type"],
        "video/mp4"
    );
    let upload = &server.requests()[1];
    assert_eq!(upload.headers["x-goog-upload-command"], "upload, finalize");
    assert_eq!(upload.body_len, 50_000);
    let generate = &server.calls(":generateContent")[0];
    let part = &generate.json.as_ref().unwrap()["contents"][0]["parts"][0];
    assert!(
        part["fileData"]["fileUri"]
            .as_str()
            .unwrap()
            .contains("/v1beta/files/f")
    );
    assert_eq!(server.files_left(), 0, "the uploaded video is deleted");
}

#[tokio::test]
async fn a_rate_limit_waits_for_the_delay_the_api_asks_for() {
    let server = FakeGemini::start().await;
    server.script([Reply::RateLimited("1.2s")]);
    let since = std::time::Instant::now();
    describe(settings(&server)).await.unwrap();
    let waited = since.elapsed();
    // The backoff alone would wait about 10 ms.
    assert!(
        waited >= Duration::from_millis(1100),
        "waited only {waited:?}"
    );
    assert_eq!(server.calls(":generateContent").len(), 2);
}

#[tokio::test]
async fn a_rate_limit_asking_for_too_long_a_wait_fails_as_transient() {
    let server = FakeGemini::start().await;
    server.script([Reply::RateLimited("3600s")]);
    let error = describe(settings(&server)).await.unwrap_err();
    assert!(matches!(error, GeminiError::RateLimited { .. }), "{error}");
    assert!(error.is_transient());
    assert!(error.to_string().contains("3600s"), "{error}");
}

#[tokio::test]
async fn an_overloaded_model_is_tried_again_with_backoff() {
    let server = FakeGemini::start().await;
    server.script([Reply::Overloaded, Reply::Overloaded]);
    let found = describe(settings(&server)).await.unwrap();
    assert_eq!(found.visibility_score, Some(91));
    assert_eq!(server.calls(":generateContent").len(), 3);

    server.script(std::iter::repeat_n(Reply::Overloaded, 4));
    let error = describe(settings(&server)).await.unwrap_err();
    assert!(
        matches!(error, GeminiError::GaveUp { attempts: 4, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("overloaded"), "{error}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_bad_request_fails_at_once_with_the_apis_message() {
    let server = FakeGemini::start().await;
    server.script([Reply::Error(
        400,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.".into(),
    )]);
    let error = describe(settings(&server)).await.unwrap_err();
    assert_eq!(server.calls(":generateContent").len(), 1, "no retry");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(
        text.contains("400") && text.contains("Request contains an invalid argument."),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_key_or_a_missing_model_fails_at_once() {
    let server = FakeGemini::start().await;
    let error = describe(Settings {
        api_key: "wrong".into(),
        ..settings(&server)
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("API key not valid"), "{error}");
    assert!(!error.is_transient());

    let error = describe(Settings {
        model: "missing-model".into(),
        ..settings(&server)
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, GeminiError::Api { status: 404, .. })
            && error.to_string().contains("missing-model"),
        "{error}"
    );
    assert_eq!(server.calls(":generateContent").len(), 2);
}

#[tokio::test]
async fn malformed_json_is_refused_whole() {
    let server = FakeGemini::start().await;
    server.answer_text("Here is the product: {\"brand_name\": \"Fizzo\"");
    let error = describe(settings(&server)).await.unwrap_err();
    assert!(matches!(error, GeminiError::Metadata(_)), "{error}");
    assert!(error.to_string().contains("not valid JSON"), "{error}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn json_that_breaks_the_schema_is_refused_with_the_field() {
    let server = FakeGemini::start().await;
    let mut answer = fizzo_cola();
    answer["visibility_score"] = json!(250);
    server.answer_with(answer);
    let error = describe(settings(&server)).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("visibility_score must be between 0 and 100, got 250"),
        "{text}"
    );
}

#[tokio::test]
async fn a_truncated_answer_is_fetched_again() {
    let server = FakeGemini::start().await;
    server.script([Reply::Truncated]);
    describe(settings(&server)).await.unwrap();
    assert_eq!(server.calls(":generateContent").len(), 2);

    server.script(std::iter::repeat_n(Reply::Truncated, 4));
    let error = describe(settings(&server)).await.unwrap_err();
    assert!(error.to_string().contains("broke off"), "{error}");
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_is_tried_again() {
    let server = FakeGemini::start().await;
    let patient = Settings {
        request_timeout: Duration::from_millis(300),
        attempts: 2,
        ..settings(&server)
    };
    server.script([Reply::Stall(Duration::from_secs(3))]);
    describe(patient.clone()).await.unwrap();
    assert_eq!(server.calls(":generateContent").len(), 2);

    server.script([
        Reply::Stall(Duration::from_secs(3)),
        Reply::Stall(Duration::from_secs(3)),
    ]);
    let error = describe(patient).await.unwrap_err();
    assert!(error.is_transient());
    assert!(error.to_string().contains("no answer in time"), "{error}");
}

#[tokio::test]
async fn an_oversized_answer_is_refused_without_reading_it_all() {
    let server = FakeGemini::start().await;
    server.script([Reply::Oversized(1 << 20)]);
    let error = describe(Settings {
        max_response_bytes: 64 << 10,
        ..settings(&server)
    })
    .await
    .unwrap_err();
    assert!(matches!(error, GeminiError::TooLarge { .. }), "{error}");
    assert_eq!(server.calls(":generateContent").len(), 1);
}

#[tokio::test]
async fn a_blocked_prompt_says_why() {
    let server = FakeGemini::start().await;
    server.script([Reply::Blocked("PROHIBITED_CONTENT")]);
    let error = describe(settings(&server)).await.unwrap_err();
    assert!(
        error.to_string().contains("blocked (PROHIBITED_CONTENT)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_stuck_in_processing_gives_up_and_is_still_deleted() {
    let server = FakeGemini::start().await;
    server.processing_polls(None);
    let error = describe(Settings {
        inline_limit: 0,
        processing_timeout: Duration::from_millis(300),
        ..settings(&server)
    })
    .await
    .unwrap_err();
    assert!(matches!(error, GeminiError::FileNotReady(_)), "{error}");
    assert!(error.is_transient());
    assert!(server.calls(":generateContent").is_empty());
    assert!(server.calls("/files/f2").len() >= 2, "it polled");
    assert_eq!(server.files_left(), 0, "deleted even so");
}

#[tokio::test]
async fn a_file_that_fails_processing_says_so() {
    let server = FakeGemini::start().await;
    server.fail_processing();
    let error = describe(Settings {
        inline_limit: 0,
        ..settings(&server)
    })
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("The video could not be processed"),
        "{error}"
    );
    assert_eq!(server.files_left(), 0);
}

#[tokio::test]
async fn the_model_check_catches_a_wrong_key() {
    let server = FakeGemini::start().await;
    client(settings(&server)).check_model().await.unwrap();
    let error = client(Settings {
        api_key: "nope".into(),
        ..settings(&server)
    })
    .check_model()
    .await
    .unwrap_err();
    assert!(error.to_string().contains("API key not valid"), "{error}");
}

#[tokio::test]
async fn the_model_check_names_an_unknown_or_retired_model_and_the_default() {
    let server = FakeGemini::start().await;
    for model in ["retired-flash", "embedding-model"] {
        let error = client(Settings {
            model: model.into(),
            ..settings(&server)
        })
        .check_model()
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(model), "{message}");
        assert!(
            message.contains(buybuddy_worker::gemini::DEFAULT_MODEL),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_retired_model_stops_process_before_any_work() {
    let db = TestDb::new().await;
    let server = FakeGemini::start().await;
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "sample.mp4", 12);
    let storage = dir.path().join("storage");
    let output = process_command(&db, &video, "8690000000002", 4, &storage)
        .env("GEMINI_API_KEY", API_KEY)
        .env("GEMINI_BASE_URL", &server.url)
        .env("GEMINI_MODEL", "retired-flash")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("\"retired-flash\""), "{stderr}");
    assert!(stderr.contains("GEMINI_MODEL"), "{stderr}");
    assert!(server.videos().is_empty(), "no video was sent");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(products, 0, "nothing was written");
}

#[tokio::test]
async fn a_worker_with_a_retired_model_refuses_to_start() {
    let db = TestDb::new().await;
    let server = FakeGemini::start().await;
    let mut worker = Process::spawn_with(
        &db.url,
        &["worker"],
        &[
            ("GEMINI_API_KEY", API_KEY),
            ("GEMINI_BASE_URL", &server.url),
            ("GEMINI_MODEL", "retired-flash"),
        ],
    );
    let exit = worker.wait(Duration::from_secs(30)).await;
    assert!(!exit.success());
    let log = worker.output();
    assert!(
        log.contains("retired-flash") && log.contains("GEMINI_MODEL"),
        "{log}"
    );
}

/// Runs `buybuddy process` on a sample video with Gemini at `gemini`.
async fn process(
    db: &TestDb,
    gemini: Option<&FakeGemini>,
    barcode: &str,
) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let video = sample_video(dir.path(), "sample.mp4", 12);
    let storage = dir.path().join("storage");
    let mut command = process_command(db, &video, barcode, 4, &storage);
    command.env_remove("GEMINI_API_KEY");
    if let Some(server) = gemini {
        command
            .env("GEMINI_API_KEY", API_KEY)
            .env("GEMINI_BASE_URL", &server.url)
            .env("GEMINI_MODEL", "test-model");
    }
    (command.output().await.unwrap(), dir)
}

#[tokio::test]
async fn process_fills_the_products_metadata_and_segments_with_its_prompt() {
    let db = TestDb::new().await;
    let server = FakeGemini::start().await;
    let (output, dir) = process(&db, Some(&server), "8690000000001").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Asking Gemini (test-model)"),
        "the stage is shown: {stderr}"
    );
    assert!(
        stderr.contains("segmentation prompt \"red soda can\""),
        "{stderr}"
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["metadata"]["product_name"], "Fizzo Zero Cola");
    assert_eq!(printed["grounding_prompt"], "red soda can");
    let video_size = std::fs::metadata(dir.path().join("sample.mp4"))
        .unwrap()
        .len() as usize;
    assert_eq!(server.videos(), vec![video_size], "Gemini saw the video");

    use sqlx::Row;
    let row = sqlx::query(
        "SELECT brand_name, product_name, net_quantity, grounding_prompt, visibility_score,
                claims, nutrition_facts, status
         FROM products WHERE barcode = '8690000000001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let text = |column: &str| row.get::<Option<String>, _>(column);
    assert_eq!(text("brand_name").as_deref(), Some("Fizzo"));
    assert_eq!(text("product_name").as_deref(), Some("Fizzo Zero Cola"));
    assert_eq!(text("net_quantity").as_deref(), Some("330 ml"));
    assert_eq!(text("grounding_prompt").as_deref(), Some("red soda can"));
    assert_eq!(row.get::<Option<i32>, _>("visibility_score"), Some(91));
    assert_eq!(
        row.get::<Option<Vec<String>>, _>("claims"),
        Some(vec!["zero sugar".to_owned(), "no preservatives".to_owned()])
    );
    assert_eq!(
        row.get::<Option<Value>, _>("nutrition_facts"),
        Some(json!({ "energy_kcal": 1, "sugars_g": 0 }))
    );
    assert_eq!(text("status").as_deref(), Some("needs_review"));
}

#[tokio::test]
async fn bad_json_from_gemini_fails_the_job_at_the_metadata_stage_with_no_product() {
    let db = TestDb::new().await;
    let server = FakeGemini::start().await;
    server.answer_text("{\"brand_name\": \"Fizzo\", \"product_name\": ");
    let (output, _dir) = process(&db, Some(&server), "8690000000002").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("at the metadata stage") && stderr.contains("not valid JSON"),
        "a clear message: {stderr}"
    );
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(products, 0, "no half-filled product");
    let (status, stage, error): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT status, stage, error_message FROM jobs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), stage.as_deref()),
        ("failed", Some("metadata"))
    );
    assert!(error.unwrap().contains("Gemini"));
    let frames: i64 = sqlx::query_scalar("SELECT count(*) FROM frames")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(frames, 0);
}

#[tokio::test]
async fn without_a_key_the_stage_is_skipped_and_the_catalog_name_is_the_prompt() {
    let db = TestDb::new().await;
    db::catalog::upsert(
        &db.pool,
        &[db::catalog::Entry {
            barcode: "8690000000003".into(),
            name: Some("Crispy Chips Paprika".into()),
            video_url: "https://cdn.example/v.mp4".into(),
            video_id: Some(3),
            processed: false,
            raw: json!({}),
        }],
    )
    .await
    .unwrap();
    let (output, _dir) = process(&db, None, "8690000000003").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("Skipped: GEMINI_API_KEY is not set")
            && stderr.contains("prompt is \"Crispy Chips Paprika\" (the catalog name)"),
        "{stderr}"
    );
    let (output, _dir) = process(&db, None, "8690000000004").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("prompt is \"product\" (the default)"),
        "{stderr}"
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(printed["metadata"].is_null());
}

/// What a request is made of, values left out: method, path (ids removed),
/// whether it carries the key, its `x-goog-upload-*` headers, and every field
/// path of its JSON body with the field's type. Field names are compared in
/// lowerCamelCase: the API's JSON mapping takes them either way, and the SDK
/// writes some in snake_case.
fn request_shape(request: &common::gemini::Recorded) -> String {
    fn walk(value: &Value, path: String, out: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, value) in map {
                    walk(value, format!("{path}.{}", camel(key)), out);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for item in items {
                    walk(item, format!("{path}[]"), out);
                }
            }
            other => {
                let kind = match other {
                    Value::Null => "null",
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "[]",
                    Value::Object(_) => "{}",
                };
                out.insert(format!("{path}: {kind}"));
            }
        }
    }
    fn camel(key: &str) -> String {
        let mut out = String::new();
        let mut upper = false;
        for c in key.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                }
                c => out.push(c),
            }
        }
        out
    }
    let path = request.path.trim_end_matches(|c: char| c.is_ascii_digit());
    let session = if request.query.contains_key("upload_id") {
        "?upload_id"
    } else {
        ""
    };
    let key = if request.headers.contains_key("x-goog-api-key") {
        "key"
    } else {
        "no key"
    };
    let upload: Vec<&str> = request
        .headers
        .keys()
        .filter(|h| h.starts_with("x-goog-upload-"))
        .map(String::as_str)
        .collect();
    let mut fields = std::collections::BTreeSet::new();
    if let Some(body) = &request.json {
        walk(body, String::new(), &mut fields);
    }
    format!(
        "{} {path}{session} ({key}; {})\n  {}",
        request.method,
        upload.join(", "),
        fields.into_iter().collect::<Vec<_>>().join("\n  ")
    )
}

/// The shapes of a server's requests, repeated status polls counted once.
fn shapes(server: &FakeGemini) -> Vec<String> {
    let mut shapes: Vec<String> = server.requests().iter().map(request_shape).collect();
    shapes.dedup();
    shapes
}

#[tokio::test]
async fn our_requests_have_the_shape_of_the_official_sdks() {
    let python = common::repo_root().join(".data/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh --test (it installs google-genai)",
        python.display()
    );
    let (dir, video) = video(40_000);
    let hints = hints();
    for (mode, inline_limit) in [("inline", u64::MAX), ("file", 0)] {
        let reference = FakeGemini::start().await;
        reference.processing_polls(Some(1));
        let params = dir.path().join(format!("{mode}.json"));
        std::fs::write(
            &params,
            json!({
                "base_url": reference.url,
                "api_key": API_KEY,
                "model": "test-model",
                "video": video,
                "mime_type": "video/mp4",
                "display_name": format!("product-{}", hints.barcode),
                "mode": mode,
                "system": metadata::SYSTEM_INSTRUCTION,
                "prompt": metadata::instructions(&hints),
                "schema": metadata::response_schema(),
                "temperature": 0.1,
            })
            .to_string(),
        )
        .unwrap();
        let sdk = tokio::process::Command::new(&python)
            .arg(common::repo_root().join("tests/sdk/gemini_requests.py"))
            .arg(&params)
            .output()
            .await
            .unwrap();
        assert!(
            sdk.status.success(),
            "the SDK failed against the test server ({mode}): {}",
            String::from_utf8_lossy(&sdk.stderr)
        );

        let ours = FakeGemini::start().await;
        ours.processing_polls(Some(1));
        client(Settings {
            inline_limit,
            ..settings(&ours)
        })
        .describe_product(&video, "video/mp4", &hints)
        .await
        .unwrap();

        let (expected, actual) = (shapes(&reference), shapes(&ours));
        assert_eq!(
            actual.len(),
            expected.len(),
            "{mode}: the SDK made\n{}\n\nwe made\n{}",
            expected.join("\n"),
            actual.join("\n")
        );
        for (expected, actual) in expected.iter().zip(&actual) {
            assert_eq!(actual, expected, "{mode}: a request differs from the SDK's");
        }
        assert_eq!(reference.files_left(), 0);
        assert_eq!(ours.files_left(), 0);
    }
}
