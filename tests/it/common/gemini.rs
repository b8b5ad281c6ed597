//! A local server that speaks the Gemini API (v1beta) as far as the platform
//! uses it: the Files API's resumable upload (start, upload, finalize), file
//! state polling and deletion, model lookup and `generateContent`, with the
//! API's error bodies (`google.rpc.Status`, `RetryInfo`). Each test scripts its
//! answers and reads back the requests it received.
//! Longer than most files: a local server speaking Gemini's whole protocol
//! (generateContent, the Files API, errors and rate limits).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, Query, Request, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use base64::Engine as _;
use serde_json::{Value, json};

/// One scripted answer to `generateContent`.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A candidate whose text is this (valid or not).
    Text(String),
    /// 429 RESOURCE_EXHAUSTED with a `RetryInfo.retryDelay`, e.g. "1s".
    RateLimited(&'static str),
    /// 503 UNAVAILABLE, "The model is overloaded".
    Overloaded,
    /// An error answer with this status and message.
    Error(u16, &'static str, String),
    /// No candidates; the prompt was blocked for this reason.
    Blocked(&'static str),
    /// Waits this long before answering with the default metadata.
    Stall(Duration),
    /// Declares a body, sends half of it and drops the connection.
    Truncated,
    /// A valid answer padded to this many bytes.
    Oversized(usize),
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub json: Option<Value>,
    pub body_len: usize,
}

#[derive(Debug, Clone)]
struct File {
    display_name: Option<String>,
    mime_type: String,
    size: usize,
    /// Status reads left before it turns ACTIVE; `None` never does.
    polls_left: Option<u32>,
    failed: bool,
}

/// An upload started and not yet finished.
struct Session {
    size: usize,
    mime_type: String,
    display_name: Option<String>,
}

struct Inner {
    api_key: String,
    replies: Mutex<VecDeque<Reply>>,
    answer: Mutex<Value>,
    files: Mutex<HashMap<String, File>>,
    sessions: Mutex<HashMap<String, Session>>,
    polls_until_active: Mutex<Option<u32>>,
    fail_processing: Mutex<bool>,
    requests: Mutex<Vec<Recorded>>,
    /// Video bytes received, inline or uploaded.
    videos: Mutex<Vec<usize>>,
    next_id: AtomicU64,
    base: Mutex<String>,
}

/// The server; it stops when dropped.
pub struct FakeGemini {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const API_KEY: &str = "test-gemini-key";

/// The metadata the server answers with unless told otherwise.
pub fn fizzo_cola() -> Value {
    json!({
        "brand_name": "Fizzo",
        "sub_brand": "Zero",
        "product_name": "Fizzo Zero Cola",
        "variant_flavor": "cola",
        "category": "soft drinks",
        "container_type": "can",
        "net_quantity": "330 ml",
        "nutrition_facts": { "energy_kcal": 1, "sugars_g": 0 },
        "claims": ["zero sugar", "no preservatives"],
        "grounding_prompt": "red soda can",
        "visibility_score": 91
    })
}

impl FakeGemini {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            api_key: API_KEY.to_owned(),
            replies: Mutex::new(VecDeque::new()),
            answer: Mutex::new(fizzo_cola()),
            files: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            polls_until_active: Mutex::new(Some(1)),
            fail_processing: Mutex::new(false),
            requests: Mutex::new(Vec::new()),
            videos: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            base: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/upload/v1beta/files", post(upload))
            .route("/v1beta/files/{id}", get(file_status).delete(delete_file))
            .route("/v1beta/models/{*rest}", any(models))
            .fallback(unknown)
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        *inner.base.lock().unwrap() = url.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner, task }
    }

    /// Answers the next `generateContent` calls with these, in order; the
    /// default metadata afterwards.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.replies.lock().unwrap().extend(replies);
    }

    /// The metadata answered when nothing is scripted.
    pub fn answer_with(&self, metadata: Value) {
        *self.inner.answer.lock().unwrap() = metadata;
    }

    /// Answers every call with this text, JSON or not.
    pub fn answer_text(&self, text: &str) {
        *self.inner.answer.lock().unwrap() = Value::String(text.to_owned());
    }

    /// Uploaded files turn ACTIVE after this many status reads; `None`: never.
    pub fn processing_polls(&self, polls: Option<u32>) {
        *self.inner.polls_until_active.lock().unwrap() = polls;
    }

    /// Uploaded files end in the FAILED state.
    pub fn fail_processing(&self) {
        *self.inner.fail_processing.lock().unwrap() = true;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Requests whose path ends with this.
    pub fn calls(&self, path_end: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with(path_end))
            .collect()
    }

    /// Files uploaded and not deleted.
    pub fn files_left(&self) -> usize {
        self.inner.files.lock().unwrap().len()
    }

    /// Sizes of the videos received (inline or uploaded), in bytes.
    pub fn videos(&self) -> Vec<usize> {
        self.inner.videos.lock().unwrap().clone()
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    inner.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        headers,
        json: serde_json::from_slice(&bytes).ok(),
        body_len: bytes.len(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A `google.rpc.Status` error answer.
fn status(code: u16, status: &str, message: &str, details: Value) -> Response {
    let mut error = json!({ "code": code, "message": message, "status": status });
    if details.as_array().is_some_and(|d| !d.is_empty()) {
        error["details"] = details;
    }
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

/// The API's answer to a missing or wrong key, if it is.
fn refuse_bad_key(inner: &Inner, headers: &HeaderMap) -> Option<Response> {
    let key = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok());
    if key == Some(inner.api_key.as_str()) {
        return None;
    }
    Some(status(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": { "service": "generativelanguage.googleapis.com" }
        }]),
    ))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a field by its JSON name or its proto field name, as the API does.
fn field<'a>(value: &'a Value, camel: &str) -> Option<&'a Value> {
    value.get(camel).or_else(|| value.get(snake(camel)))
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

async fn upload(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let command = header(&headers, "x-goog-upload-command").unwrap_or("");
    match query.get("upload_id") {
        None => {
            if let Some(refused) = refuse_bad_key(&inner, &headers) {
                return refused;
            }
            if command != "start" || header(&headers, "x-goog-upload-protocol") != Some("resumable")
            {
                return status(
                    400,
                    "INVALID_ARGUMENT",
                    "Expected a resumable upload start.",
                    json!([]),
                );
            }
            let Some(size) = header(&headers, "x-goog-upload-header-content-length")
                .and_then(|v| v.parse::<usize>().ok())
            else {
                return status(
                    400,
                    "INVALID_ARGUMENT",
                    "Missing X-Goog-Upload-Header-Content-Length.",
                    json!([]),
                );
            };
            let mime = header(&headers, "x-goog-upload-header-content-type")
                .unwrap_or("application/octet-stream")
                .to_owned();
            let display_name = serde_json::from_slice::<Value>(&body).ok().and_then(|b| {
                field(&b["file"], "displayName")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            let id = format!("up{}", inner.next_id.fetch_add(1, Ordering::Relaxed));
            inner.sessions.lock().unwrap().insert(
                id.clone(),
                Session {
                    size,
                    mime_type: mime,
                    display_name,
                },
            );
            let base = inner.base.lock().unwrap().clone();
            Response::builder()
                .status(200)
                .header(
                    "x-goog-upload-url",
                    format!("{base}/upload/v1beta/files?upload_id={id}&upload_protocol=resumable"),
                )
                .header("x-goog-upload-status", "active")
                .body(Body::empty())
                .unwrap()
        }
        Some(id) => {
            let Some(Session {
                size,
                mime_type: mime,
                display_name,
            }) = inner.sessions.lock().unwrap().remove(id)
            else {
                return (StatusCode::NOT_FOUND, "unknown upload session").into_response();
            };
            if header(&headers, "x-goog-upload-offset") != Some("0")
                || command != "upload, finalize"
            {
                return status(
                    400,
                    "INVALID_ARGUMENT",
                    "Expected one upload, finalize request at offset 0.",
                    json!([]),
                );
            }
            if body.len() != size {
                return status(
                    400,
                    "INVALID_ARGUMENT",
                    &format!(
                        "Upload of {} bytes does not match the declared {size}.",
                        body.len()
                    ),
                    json!([]),
                );
            }
            let name = format!("files/f{}", inner.next_id.fetch_add(1, Ordering::Relaxed));
            let polls_left = *inner.polls_until_active.lock().unwrap();
            let file = File {
                display_name,
                mime_type: mime,
                size,
                polls_left,
                failed: *inner.fail_processing.lock().unwrap(),
            };
            inner.videos.lock().unwrap().push(size);
            let base = inner.base.lock().unwrap().clone();
            let json = file_json(&base, &name, &file);
            inner.files.lock().unwrap().insert(name, file);
            Response::builder()
                .status(200)
                .header("x-goog-upload-status", "final")
                .header("content-type", "application/json; charset=UTF-8")
                .body(Body::from(json!({ "file": json }).to_string()))
                .unwrap()
        }
    }
}

fn file_state(file: &File) -> &'static str {
    match (file.failed, file.polls_left) {
        (_, Some(0)) if !file.failed => "ACTIVE",
        (true, Some(0)) => "FAILED",
        _ => "PROCESSING",
    }
}

fn file_json(base: &str, name: &str, file: &File) -> Value {
    let mut value = json!({
        "name": name,
        "mimeType": file.mime_type,
        "sizeBytes": file.size.to_string(),
        "createTime": "2026-11-24T10:00:00.000000Z",
        "updateTime": "2026-11-24T10:00:00.000000Z",
        "expirationTime": "2026-11-26T10:00:00.000000Z",
        "sha256Hash": "ZmFrZQ==",
        "uri": format!("{base}/v1beta/{name}"),
        "state": file_state(file),
        "source": "UPLOADED"
    });
    if let Some(display_name) = &file.display_name {
        value["displayName"] = json!(display_name);
    }
    if file_state(file) == "FAILED" {
        value["error"] = json!({ "code": 3, "message": "The video could not be processed." });
    }
    value
}

async fn file_status(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_bad_key(&inner, &headers) {
        return refused;
    }
    let name = format!("files/{id}");
    let mut files = inner.files.lock().unwrap();
    let Some(file) = files.get_mut(&name) else {
        return status(
            403,
            "PERMISSION_DENIED",
            &format!("You do not have permission to access the File {id} or it may not exist."),
            json!([]),
        );
    };
    let json = file_json(&inner.base.lock().unwrap(), &name, file);
    if let Some(left) = file.polls_left.as_mut() {
        *left = left.saturating_sub(1);
    }
    Json(json).into_response()
}

async fn delete_file(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_bad_key(&inner, &headers) {
        return refused;
    }
    match inner.files.lock().unwrap().remove(&format!("files/{id}")) {
        Some(_) => Json(json!({})).into_response(),
        None => status(
            403,
            "PERMISSION_DENIED",
            &format!("You do not have permission to access the File {id} or it may not exist."),
            json!([]),
        ),
    }
}

async fn models(
    State(inner): State<Arc<Inner>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_bad_key(&inner, &headers) {
        return refused;
    }
    if method == Method::GET && !rest.contains(':') {
        // As the API answers for a name it does not serve, unknown or shut down.
        if rest.starts_with("missing") || rest.starts_with("retired") {
            return status(
                404,
                "NOT_FOUND",
                &format!(
                    "models/{rest} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."
                ),
                json!([]),
            );
        }
        if rest.starts_with("embedding") {
            return Json(json!({
                "name": format!("models/{rest}"),
                "displayName": rest,
                "supportedGenerationMethods": ["embedContent"]
            }))
            .into_response();
        }
        return Json(json!({
            "name": format!("models/{rest}"),
            "displayName": rest,
            "supportedGenerationMethods": ["generateContent", "countTokens"]
        }))
        .into_response();
    }
    let Some(model) = rest.strip_suffix(":generateContent") else {
        return status(
            404,
            "NOT_FOUND",
            &format!("Method {rest} not found."),
            json!([]),
        );
    };
    if method != Method::POST {
        return status(405, "METHOD_NOT_ALLOWED", "Use POST.", json!([]));
    }
    if model.starts_with("missing") {
        return status(
            404,
            "NOT_FOUND",
            &format!(
                "models/{model} is not found for API version v1beta, or is not supported for generateContent."
            ),
            json!([]),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return status(
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            json!([]),
        );
    };
    if let Err(message) = check_generate_request(&inner, &request) {
        return status(400, "INVALID_ARGUMENT", &message, json!([]));
    }
    let reply = inner.replies.lock().unwrap().pop_front();
    let answer = match &*inner.answer.lock().unwrap() {
        Value::String(text) => text.clone(),
        metadata => metadata.to_string(),
    };
    match reply {
        None => candidate(&answer),
        Some(Reply::Text(text)) => candidate(&text),
        Some(Reply::RateLimited(delay)) => status(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            json!([
                { "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                  "violations": [{ "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                   "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" }] },
                { "@type": "type.googleapis.com/google.rpc.Help",
                  "links": [{ "description": "Learn more about Gemini API quotas",
                              "url": "https://ai.google.dev/gemini-api/docs/rate-limits" }] },
                { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay }
            ]),
        ),
        Some(Reply::Overloaded) => status(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            json!([]),
        ),
        Some(Reply::Error(code, name, message)) => status(code, name, &message, json!([])),
        Some(Reply::Blocked(reason)) => Json(json!({
            "promptFeedback": { "blockReason": reason },
            "usageMetadata": { "promptTokenCount": 1200, "totalTokenCount": 1200 },
            "modelVersion": model
        }))
        .into_response(),
        Some(Reply::Stall(wait)) => {
            tokio::time::sleep(wait).await;
            candidate(&answer)
        }
        Some(Reply::Truncated) => {
            let full = candidate_json(&answer).to_string();
            let half = Bytes::from(full.as_bytes()[..full.len() / 2].to_vec());
            // The first half goes out, then the connection drops.
            let stream = futures::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("connection dropped")), None))
                    }
                }
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json; charset=UTF-8")
                .header("content-length", full.len().to_string())
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Some(Reply::Oversized(bytes)) => {
            let mut body = candidate_json(&answer);
            body["padding"] = json!("x".repeat(bytes));
            Json(body).into_response()
        }
    }
}

/// What the real API checks before answering: the parts, and that a file is
/// ready to be used.
fn check_generate_request(inner: &Inner, request: &Value) -> Result<(), String> {
    let parts = request["contents"][0]["parts"]
        .as_array()
        .ok_or("contents[0].parts is missing")?;
    let mut video = false;
    for part in parts {
        if let Some(inline) = field(part, "inlineData") {
            let data = inline["data"]
                .as_str()
                .ok_or("inlineData.data is missing")?;
            // Proto JSON takes bytes in standard or URL-safe base64 (the SDK
            // writes the latter).
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(data))
                .map_err(|_| "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 decoding failed".to_owned())?;
            field(inline, "mimeType").ok_or("inlineData.mimeType is missing")?;
            inner.videos.lock().unwrap().push(bytes.len());
            video = true;
        } else if let Some(file) = field(part, "fileData") {
            let uri = field(file, "fileUri")
                .and_then(Value::as_str)
                .ok_or("fileData.fileUri is missing")?;
            let name = uri
                .rsplit_once("/v1beta/")
                .map(|(_, n)| n.to_owned())
                .ok_or("fileData.fileUri is not a file URI")?;
            let files = inner.files.lock().unwrap();
            let file = files
                .get(&name)
                .ok_or_else(|| format!("File {name} not found."))?;
            if file_state(file) != "ACTIVE" {
                return Err(format!(
                    "The File {name} is not in an ACTIVE state and usage is not allowed."
                ));
            }
            video = true;
        } else if part.get("text").and_then(Value::as_str).is_none() {
            return Err(format!("unsupported part {part}"));
        }
    }
    if !video {
        return Err("no video part".into());
    }
    let config = field(request, "generationConfig").ok_or("generationConfig is missing")?;
    if field(config, "responseMimeType").and_then(Value::as_str) != Some("application/json") {
        return Err("responseMimeType must be application/json".into());
    }
    if field(config, "responseJsonSchema").is_none() && field(config, "responseSchema").is_none() {
        return Err("a response schema is required for this test server".into());
    }
    Ok(())
}

fn candidate_json(text: &str) -> Value {
    json!({
        "candidates": [{
            "content": { "parts": [{ "text": text }], "role": "model" },
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": { "promptTokenCount": 1200, "candidatesTokenCount": 90, "totalTokenCount": 1290 },
        "modelVersion": "test-model",
        "responseId": "r1"
    })
}

fn candidate(text: &str) -> Response {
    Json(candidate_json(text)).into_response()
}

async fn unknown(method: Method, uri: axum::http::Uri) -> Response {
    status(
        404,
        "NOT_FOUND",
        &format!("{method} {uri} is not part of this API."),
        json!([]),
    )
}
