//! A client of the Gemini API (REST, v1beta) that reads a product's catalog
//! metadata from its video.
//!
//! Small videos travel inline (base64 in the request); larger ones go through
//! the Files API: a resumable upload (start, then upload and finalize in one
//! request), polling the file until it is `ACTIVE`, and deleting it afterwards.
//! The answer is constrained by `responseMimeType: application/json` and a JSON
//! schema, then validated (see [`metadata`]).
//!
//! Failures: a 429 waits for the `RetryInfo.retryDelay` the error body asks
//! for; 500, 502, 503, 504, timeouts and dropped connections are retried with
//! exponential backoff and jitter; other refusals (400, 403, 404, ...) fail at
//! once with the API's own message. The API key travels only in the
//! `x-goog-api-key` header and is never logged.

pub mod metadata;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use base64::Engine as _;
use futures::StreamExt;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::retry::Backoff;
pub use metadata::{Hints, ProductMetadata};

/// The model asked when none is configured.
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash";
/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
const API_VERSION: &str = "v1beta";

/// How the client reaches Gemini and how patient it is.
#[derive(Clone)]
pub struct Settings {
    pub api_key: String,
    pub model: String,
    /// Scheme, host and optional path prefix; `/v1beta/...` is appended.
    pub base_url: String,
    /// Videos up to this many bytes are sent inline; larger ones are uploaded.
    pub inline_limit: u64,
    /// Longest wait for one answer.
    pub request_timeout: Duration,
    /// Tries in all for one request, counting the first.
    pub attempts: u32,
    pub backoff: Backoff,
    /// A 429 asking for a longer wait than this fails instead.
    pub max_retry_delay: Duration,
    /// Between two looks at an uploaded file that is still processing.
    pub poll_interval: Duration,
    /// Longest wait for an uploaded file to become usable.
    pub processing_timeout: Duration,
    /// Largest answer read, in bytes.
    pub max_response_bytes: usize,
}

impl Settings {
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            model: DEFAULT_MODEL.to_owned(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            inline_limit: 14 << 20,
            request_timeout: Duration::from_secs(120),
            attempts: 5,
            backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(60)),
            max_retry_delay: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            processing_timeout: Duration::from_secs(300),
            max_response_bytes: 4 << 20,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &"[redacted]")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("inline_limit", &self.inline_limit)
            .field("request_timeout", &self.request_timeout)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GeminiError {
    /// The API refused the request; `message` is its own words.
    #[error("Gemini answered {status} {reason}: {message}")]
    Api {
        status: u16,
        reason: String,
        message: String,
    },
    #[error("Gemini was still refusing after {attempts} attempts; last: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("Gemini asked to wait {wait:?} before trying again, longer than the {limit:?} allowed")]
    RateLimited { wait: Duration, limit: Duration },
    #[error("Gemini's answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Gemini's answer is not what the API sends: {0}")]
    Protocol(String),
    #[error("Gemini gave no usable answer: {0}")]
    NoAnswer(String),
    #[error("Gemini's metadata was refused: {0}")]
    Metadata(#[from] metadata::MetadataError),
    #[error("Gemini could not process the video: {0}")]
    FileFailed(String),
    #[error("the uploaded video was still processing after {0:?}")]
    FileNotReady(Duration),
    #[error("reading the video failed: {0}")]
    Io(#[from] std::io::Error),
}

impl GeminiError {
    /// Whether the same request may succeed later (the job is worth retrying).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::GaveUp { .. } | Self::RateLimited { .. } | Self::FileNotReady(_) | Self::Io(_)
        )
    }
}

/// One failed try, and whether another may help.
enum Failure {
    Retry {
        error: String,
        wait: Option<Duration>,
    },
    Fatal(GeminiError),
}

impl From<GeminiError> for Failure {
    fn from(error: GeminiError) -> Self {
        Self::Fatal(error)
    }
}

/// The Gemini client; cheap to clone.
#[derive(Clone, Debug)]
pub struct Gemini {
    http: reqwest::Client,
    settings: Settings,
    /// The key as a header value, marked sensitive (kept out of debug output).
    key: reqwest::header::HeaderValue,
}

/// A file in the Files API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteFile {
    pub name: String,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error: Option<Status>,
}

/// `google.rpc.Status`, as found in error bodies and failed files.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub details: Vec<Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Status,
}

#[derive(Deserialize)]
struct UploadedFile {
    file: RemoteFile,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
}

/// How the video reaches the model.
enum VideoPart {
    Inline { mime_type: String, data: String },
    File { mime_type: String, uri: String },
}

impl VideoPart {
    fn to_json(&self) -> Value {
        match self {
            Self::Inline { mime_type, data } => {
                json!({ "inlineData": { "mimeType": mime_type, "data": data } })
            }
            Self::File { mime_type, uri } => {
                json!({ "fileData": { "mimeType": mime_type, "fileUri": uri } })
            }
        }
    }
}

impl Gemini {
    pub fn new(settings: Settings) -> Result<Self, GeminiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("buybuddy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GeminiError::Protocol(format!("building the HTTP client: {e}")))?;
        let mut key = reqwest::header::HeaderValue::from_str(&settings.api_key).map_err(|_| {
            GeminiError::Protocol("the API key holds characters a header cannot carry".into())
        })?;
        key.set_sensitive(true);
        Ok(Self {
            http,
            settings,
            key,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Reads the product's catalog metadata from its video.
    pub async fn describe_product(
        &self,
        video: &Path,
        mime_type: &str,
        hints: &Hints,
    ) -> Result<ProductMetadata, GeminiError> {
        let size = tokio::fs::metadata(video).await?.len();
        if size <= self.settings.inline_limit {
            let bytes = tokio::fs::read(video).await?;
            let part = VideoPart::Inline {
                mime_type: mime_type.to_owned(),
                data: base64::engine::general_purpose::STANDARD.encode(&bytes),
            };
            return self.generate(&part, hints).await;
        }
        let display_name = format!("product-{}", hints.barcode);
        let file = self
            .upload_file(video, size, mime_type, &display_name)
            .await?;
        let outcome = async {
            let file = self.wait_until_active(file.clone()).await?;
            let uri = file.uri.clone().ok_or_else(|| {
                GeminiError::Protocol(format!("the file {} has no uri", file.name))
            })?;
            let part = VideoPart::File {
                mime_type: file
                    .mime_type
                    .clone()
                    .unwrap_or_else(|| mime_type.to_owned()),
                uri,
            };
            self.generate(&part, hints).await
        }
        .await;
        if let Err(error) = self.delete_file(&file.name).await {
            tracing::warn!(file = %file.name, %error, "deleting the uploaded video from Gemini failed; it expires on its own");
        }
        outcome
    }

    /// Asks the model and validates its answer.
    async fn generate(
        &self,
        video: &VideoPart,
        hints: &Hints,
    ) -> Result<ProductMetadata, GeminiError> {
        let body = json!({
            "contents": [{
                "role": "user",
                "parts": [video.to_json(), { "text": metadata::instructions(hints) }],
            }],
            "systemInstruction": {
                "role": "user",
                "parts": [{ "text": metadata::SYSTEM_INSTRUCTION }],
            },
            "generationConfig": {
                "temperature": 0.1,
                "responseMimeType": "application/json",
                "responseJsonSchema": metadata::response_schema(),
            },
        });
        let url = self.url(&format!(
            "{API_VERSION}/models/{}:generateContent",
            self.settings.model
        ));
        let answer: GenerateContentResponse = self
            .retrying("generateContent", || async {
                let response = self
                    .send(self.request(Method::POST, &url).json(&body))
                    .await?;
                parse_json(&response.body).map_err(Failure::Fatal)
            })
            .await?;
        let text = answer_text(answer)?;
        Ok(ProductMetadata::from_answer(&text)?)
    }

    /// Starts a resumable upload and sends the whole video in one request.
    pub async fn upload_file(
        &self,
        video: &Path,
        size: u64,
        mime_type: &str,
        display_name: &str,
    ) -> Result<RemoteFile, GeminiError> {
        let start_url = self.url(&format!("upload/{API_VERSION}/files"));
        let file_name = video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".to_owned());
        // The upload headers of the start request go with the upload as well,
        // as the official SDK sends them.
        let upload_headers = [
            ("X-Goog-Upload-Protocol", "resumable".to_owned()),
            ("X-Goog-Upload-Header-Content-Length", size.to_string()),
            ("X-Goog-Upload-Header-Content-Type", mime_type.to_owned()),
            ("X-Goog-Upload-File-Name", file_name),
        ];
        self.retrying("file upload", || async {
            let mut start = self
                .request(Method::POST, &start_url)
                .header("X-Goog-Upload-Command", "start")
                .json(&json!({ "file": {
                    "displayName": display_name,
                    "mimeType": mime_type,
                    "sizeBytes": size,
                } }));
            for (name, value) in &upload_headers {
                start = start.header(*name, value);
            }
            let started = self.send(start).await?;
            let upload_url = started
                .headers
                .get("x-goog-upload-url")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    GeminiError::Protocol("the upload start gave no x-goog-upload-url".into())
                })?
                .to_owned();
            let file = tokio::fs::File::open(video)
                .await
                .map_err(GeminiError::Io)?;
            // The session URL carries the upload's authorisation; no key is sent.
            let mut upload = self
                .http
                .post(&upload_url)
                .timeout(self.settings.request_timeout)
                .header("Content-Length", size.to_string())
                .header("X-Goog-Upload-Offset", "0")
                .header("X-Goog-Upload-Command", "upload, finalize")
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(file),
                ));
            for (name, value) in &upload_headers {
                upload = upload.header(*name, value);
            }
            let finished = self.send(upload).await?;
            let status = finished
                .headers
                .get("x-goog-upload-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if status != "final" {
                return Err(Failure::Retry {
                    error: format!("the upload ended with status {status:?}, not \"final\""),
                    wait: None,
                });
            }
            let uploaded: UploadedFile = parse_json(&finished.body)?;
            Ok(uploaded.file)
        })
        .await
    }

    /// Polls an uploaded file until it can be used.
    pub async fn wait_until_active(&self, mut file: RemoteFile) -> Result<RemoteFile, GeminiError> {
        let since = Instant::now();
        loop {
            match file.state.as_deref() {
                Some("ACTIVE") => return Ok(file),
                Some("FAILED") => {
                    let why = file
                        .error
                        .as_ref()
                        .and_then(|e| e.message.clone())
                        .unwrap_or_else(|| "no reason given".into());
                    return Err(GeminiError::FileFailed(why));
                }
                _ => {}
            }
            if since.elapsed() >= self.settings.processing_timeout {
                return Err(GeminiError::FileNotReady(self.settings.processing_timeout));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
            let url = self.url(&format!("{API_VERSION}/{}", file.name));
            file = self
                .retrying("file status", || async {
                    let response = self.send(self.request(Method::GET, &url)).await?;
                    parse_json(&response.body).map_err(Failure::Fatal)
                })
                .await?;
        }
    }

    /// Looks up the configured model, which checks the key and the model name.
    pub async fn check_model(&self) -> Result<(), GeminiError> {
        let url = self.url(&format!("{API_VERSION}/models/{}", self.settings.model));
        self.retrying("model lookup", || async {
            self.send(self.request(Method::GET, &url)).await?;
            Ok(())
        })
        .await
    }

    pub async fn delete_file(&self, name: &str) -> Result<(), GeminiError> {
        let url = self.url(&format!("{API_VERSION}/{name}"));
        self.retrying("file delete", || async {
            self.send(self.request(Method::DELETE, &url)).await?;
            Ok(())
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.settings.base_url.trim_end_matches('/'))
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, url)
            .timeout(self.settings.request_timeout);
        builder.header("x-goog-api-key", self.key.clone())
    }

    /// Runs one try of an operation at a time until it succeeds, fails for
    /// good, or runs out of attempts.
    async fn retrying<T, F, Fut>(&self, what: &str, mut operation: F) -> Result<T, GeminiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let attempts = self.settings.attempts.max(1);
        for attempt in 1..=attempts {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry { error, wait }) => {
                    if attempt == attempts {
                        return Err(GeminiError::GaveUp {
                            attempts,
                            last: error,
                        });
                    }
                    let wait = match wait {
                        Some(asked) if asked > self.settings.max_retry_delay => {
                            return Err(GeminiError::RateLimited {
                                wait: asked,
                                limit: self.settings.max_retry_delay,
                            });
                        }
                        Some(asked) => asked,
                        None => self.settings.backoff.delay(attempt),
                    };
                    tracing::warn!(attempt, %error, ?wait, "Gemini {what} failed; trying again");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Sends one request and reads its whole answer, sorting failures into
    /// worth another try or not.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let response = request.send().await.map_err(|e| Failure::Retry {
            error: describe_reqwest(&e),
            wait: None,
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_limited(response, self.settings.max_response_bytes).await?;
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        let error: Status = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_default();
        let message = error.message.clone().unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.trim().chars().take(200).collect();
            if text.is_empty() {
                "no message".to_owned()
            } else {
                text
            }
        });
        let reason = error
            .status
            .clone()
            .or_else(|| status.canonical_reason().map(str::to_owned))
            .unwrap_or_default();
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(Failure::Retry {
                error: format!("429 {reason}: {message}"),
                wait: retry_delay(&error),
            }),
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::REQUEST_TIMEOUT => Err(Failure::Retry {
                error: format!("{} {reason}: {message}", status.as_u16()),
                wait: None,
            }),
            _ => Err(Failure::Fatal(GeminiError::Api {
                status: status.as_u16(),
                reason,
                message,
            })),
        }
    }
}

struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Failure> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Failure::Fatal(GeminiError::TooLarge { limit }));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::Retry {
            error: format!("the answer broke off: {}", describe_reqwest(&e)),
            wait: None,
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Failure::Fatal(GeminiError::TooLarge { limit }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, GeminiError> {
    serde_json::from_slice(body).map_err(|e| GeminiError::Protocol(format!("unreadable JSON: {e}")))
}

/// The text of the first candidate, or why there is none.
fn answer_text(answer: GenerateContentResponse) -> Result<String, GeminiError> {
    let Some(candidate) = answer.candidates.into_iter().next() else {
        let why = match answer.prompt_feedback {
            Some(PromptFeedback {
                block_reason: Some(reason),
                block_reason_message,
            }) => format!(
                "the request was blocked ({reason}){}",
                block_reason_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            _ => "the answer has no candidates".to_owned(),
        };
        return Err(GeminiError::NoAnswer(why));
    };
    let finish = candidate.finish_reason.as_deref().unwrap_or("STOP");
    if finish != "STOP" {
        let why = match finish {
            "MAX_TOKENS" => "the answer was cut off at the output token limit".to_owned(),
            other => format!(
                "the answer stopped early ({other}){}",
                candidate
                    .finish_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        };
        return Err(GeminiError::NoAnswer(why));
    }
    let text: String = candidate
        .content
        .map(|c| c.parts)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.thought != Some(true))
        .filter_map(|p| p.text)
        .collect();
    if text.trim().is_empty() {
        return Err(GeminiError::NoAnswer("the answer is empty".into()));
    }
    Ok(text)
}

/// The wait asked for by a `google.rpc.RetryInfo` detail, e.g. `"37s"` or `"1.5s"`.
fn retry_delay(status: &Status) -> Option<Duration> {
    status
        .details
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_proto_duration)
}

/// Reads the JSON form of `google.protobuf.Duration`: seconds with an `s`.
fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        // The key travels in a header, never in the URL: the text is safe to show.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_read_as_protobuf_durations() {
        assert_eq!(parse_proto_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(
            parse_proto_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_proto_duration("37"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        let status: Status = serde_json::from_value(json!({
            "code": 429,
            "details": [
                { "@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [] },
                { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s" }
            ]
        }))
        .unwrap();
        assert_eq!(retry_delay(&status), Some(Duration::from_secs(2)));
    }

    #[test]
    fn blocked_and_cut_off_answers_say_why() {
        let blocked: GenerateContentResponse =
            serde_json::from_value(json!({ "promptFeedback": { "blockReason": "SAFETY" } }))
                .unwrap();
        let error = answer_text(blocked).unwrap_err().to_string();
        assert!(error.contains("blocked (SAFETY)"), "{error}");

        let cut: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{ "content": { "parts": [{ "text": "{\"a\":" }] }, "finishReason": "MAX_TOKENS" }]
        }))
        .unwrap();
        let error = answer_text(cut).unwrap_err().to_string();
        assert!(error.contains("output token limit"), "{error}");

        let thinking: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{ "content": { "parts": [
                { "text": "let me look", "thought": true },
                { "text": "{\"a\"" }, { "text": ": 1}" }
            ] }, "finishReason": "STOP" }]
        }))
        .unwrap();
        assert_eq!(answer_text(thinking).unwrap(), "{\"a\": 1}");
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let settings = Settings::new("very-secret-key");
        assert!(!format!("{settings:?}").contains("very-secret-key"));
    }
}
