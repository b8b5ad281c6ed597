//! The server shell over real HTTP against a real database: health, pages,
//! errors in their three shapes, assets, the jobs API, and live updates.

use crate::common;

use std::time::{Duration, Instant};

use buybuddy::{
    jobs::{JobSpec, noop::Noop},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server
        .client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap()
}

async fn post(server: &TestServer, path: &str, body: Option<Value>) -> reqwest::Response {
    let request = server.client.post(format!("{}{path}", server.base));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn health_is_ok_while_the_database_answers_and_503_when_it_does_not() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let response = get(&server, "/healthz").await;
    assert_eq!(response.status(), 200);

    // A pool pointing at a port where nothing listens.
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://nobody:x@127.0.0.1:9/none")
        .unwrap();
    let server = TestServer::start_without_user(&dead).await;
    let response = get(&server, "/healthz").await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn dashboard_renders_on_an_empty_database_and_lists_jobs_once_there_are_some() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let page = get(&server, "/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("No products yet"), "{html}");
    assert!(html.contains("No jobs yet"), "{html}");
    assert!(html.contains("/static/htmx.min.js"));

    let ids = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        vec![Enqueue::from(JobSpec::Noop(Noop {}))],
    )
    .await
    .unwrap();
    label_jobs(&db.pool, &ids, &["8690000000001".to_owned()]).await;
    let fragment = server
        .client
        .get(format!("{}/fragments/dashboard/jobs", server.base))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(fragment.contains("8690000000001"), "{fragment}");
    assert!(!fragment.contains("<html"), "a fragment, not a page");
}

#[tokio::test]
async fn errors_are_a_page_a_fragment_or_json_depending_on_who_asks() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;

    let page = get(&server, "/nowhere").await;
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("There is no page at this address")
    );

    let fragment = server
        .client
        .get(format!("{}/nowhere", server.base))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(fragment.status(), 404);
    let html = fragment.text().await.unwrap();
    assert!(
        !html.contains("<html") && html.contains("role=\"alert\""),
        "{html}"
    );

    let api = get(&server, "/api/jobs/not-a-uuid").await;
    assert_eq!(api.status(), 400);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["error"]["status"], 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("UUID"),
        "{body}"
    );
}

#[tokio::test]
async fn static_assets_come_from_the_binary() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    for (name, kind) in [
        ("htmx.min.js", "text/javascript"),
        ("htmx-sse.min.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let response = get(&server, &format!("/static/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.headers()["content-type"], kind);
        assert!(
            response.bytes().await.unwrap().len() > 100,
            "{name} is empty"
        );
    }
    let missing = get(&server, "/static/nothing.js").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn jobs_can_be_created_read_and_cancelled_through_the_api() {
    let db = TestDb::new().await;
    let server = TestServer::start_with_probes(&db.pool).await;
    let created = post(
        &server,
        "/api/jobs",
        Some(json!({ "kind": "sleep", "millis": 100, "max_attempts": 2 })),
    )
    .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let shown: Value = get(&server, &format!("/api/jobs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["job"]["kind"], "sleep");
    assert_eq!(shown["job"]["status"], "queued");
    assert_eq!(shown["job"]["max_attempts"], 2);

    let cancelled: Value = post(&server, &format!("/api/jobs/{id}/cancel"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["result"], "cancelled");
    let again = post(&server, &format!("/api/jobs/{id}/cancel"), None).await;
    assert_eq!(again.status(), 409);

    let unknown = post(&server, "/api/jobs", Some(json!({ "kind": "teleport" }))).await;
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Not a job"),
        "{body}"
    );
}

/// Reads SSE events (name, data) from a response body.
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    async fn open(server: &TestServer, url: &str) -> Self {
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self, limit: Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !name.is_empty() {
                    return Some((name, data));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

#[tokio::test]
async fn a_job_change_reaches_an_sse_client_within_a_second() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let mut events = SseReader::open(&server, &format!("{}/events?topic=jobs", server.base)).await;
    // The subscription exists once the response started; give the listener a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pushed = Instant::now();
    let id = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        vec![Enqueue::from(JobSpec::Noop(Noop {}))],
    )
    .await
    .unwrap()[0];
    let (name, data) = events
        .next(Duration::from_secs(1))
        .await
        .expect("no event within 1 s");
    println!("event arrived {:?} after the commit", pushed.elapsed());
    assert_eq!(name, "job");
    let payload: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(payload["id"], id.to_string());
    assert_eq!(payload["status"], "queued");
    assert_eq!(payload["op"], "insert");
}

#[tokio::test]
async fn a_job_topic_carries_that_job_and_its_log_only() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let ids = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        vec![
            Enqueue::from(JobSpec::Noop(Noop {})),
            Enqueue::from(JobSpec::Noop(Noop {})),
        ],
    )
    .await
    .unwrap();
    let mut events = SseReader::open(
        &server,
        &format!("{}/events?topic=job:{}", server.base, ids[1]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    buybuddy::db::jobs::cancel(&db.pool, ids[0]).await.unwrap();
    buybuddy::db::jobs::cancel(&db.pool, ids[1]).await.unwrap();
    let mut seen = Vec::new();
    while let Some((name, data)) = events.next(Duration::from_millis(700)).await {
        let payload: Value = serde_json::from_str(&data).unwrap();
        let subject = payload["job_id"]
            .as_str()
            .or(payload["id"].as_str())
            .unwrap()
            .to_owned();
        seen.push((name, subject));
    }
    let wanted = ids[1].to_string();
    assert!(
        seen.iter().all(|(_, subject)| *subject == wanted),
        "{seen:?}"
    );
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"job") && names.contains(&"job_event"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_dropped_listen_connection_is_re_established() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let mut events = SseReader::open(&server, &format!("{}/events?topic=jobs", server.base)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%buybuddy_events%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        killed, 1,
        "the server should hold exactly one LISTEN connection"
    );

    let (name, _) = events
        .next(Duration::from_secs(5))
        .await
        .expect("a resync after the reconnect");
    assert_eq!(name, "resync");
    let id = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        vec![Enqueue::from(JobSpec::Noop(Noop {}))],
    )
    .await
    .unwrap()[0];
    let (name, data) = events
        .next(Duration::from_secs(2))
        .await
        .expect("changes flow again after the reconnect");
    assert_eq!(name, "job");
    assert!(data.contains(&id.to_string()));
}
