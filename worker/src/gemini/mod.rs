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
//! Longer than most files: the client, its one request loop (retry, backoff,
//! 429 delays) and the error mapping belong together; the Files API and the
//! wire types are in their own files.

mod files;
pub mod metadata;
mod wire;

use std::{path::Path, time::Duration};

use base64::Engine as _;
use futures::StreamExt;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::retry::{self, Backoff, Retried, Try};
pub use metadata::{Hints, Metadata};
use wire::{ErrorBody, GenerateContentResponse, answer_text, parse_json, retry_delay};
pub use wire::{RemoteFile, Status};

/// The model asked when none is configured: the stable 3.x Flash model.
/// `gemini-2.5-flash` was shut down on 2026-12-01 (Google's deprecations page,
/// <https://ai.google.dev/gemini-api/docs/deprecations>).
pub const DEFAULT_MODEL: &str = "gemini-3.5-flash";
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
    /// The model is not served (unknown, retired) or cannot generate content.
    #[error(
        "Gemini does not serve the model {model:?} for generateContent (unknown or retired); \
         set GEMINI_MODEL to a current model such as {default:?}"
    )]
    UnknownModel {
        model: String,
        default: &'static str,
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
    ) -> Result<Metadata, GeminiError> {
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
    async fn generate(&self, video: &VideoPart, hints: &Hints) -> Result<Metadata, GeminiError> {
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
        Ok(metadata::from_answer(&text)?)
    }

    /// Looks up the configured model, which checks the key and the model name,
    /// and that the model answers `generateContent` (what the video job asks).
    pub async fn check_model(&self) -> Result<(), GeminiError> {
        let model = &self.settings.model;
        let url = self.url(&format!("{API_VERSION}/models/{model}"));
        let found: Value = self
            .retrying("model lookup", || async {
                let answer = self.send(self.request(Method::GET, &url)).await?;
                parse_json(&answer.body).map_err(Failure::Fatal)
            })
            .await
            .map_err(|error| match error {
                GeminiError::Api { status: 404, .. } => GeminiError::UnknownModel {
                    model: model.clone(),
                    default: DEFAULT_MODEL,
                },
                other => other,
            })?;
        let methods = found
            .get("supportedGenerationMethods")
            .and_then(Value::as_array);
        let generates = methods.is_none_or(|methods| {
            methods
                .iter()
                .any(|m| m.as_str() == Some("generateContent"))
        });
        if !generates {
            return Err(GeminiError::UnknownModel {
                model: model.clone(),
                default: DEFAULT_MODEL,
            });
        }
        Ok(())
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
        let settings = &self.settings;
        let pause = |attempt: u32, asked: Option<Duration>| match asked {
            Some(asked) if asked > settings.max_retry_delay => Err(GeminiError::RateLimited {
                wait: asked,
                limit: settings.max_retry_delay,
            }),
            Some(asked) => Ok(asked),
            None => Ok(settings.backoff.delay(attempt)),
        };
        let tries = || {
            let answer = operation();
            async move {
                match answer.await {
                    Ok(value) => Try::Done(value),
                    Err(Failure::Retry { error, wait }) => Try::Again {
                        reason: error,
                        wait,
                    },
                    Err(Failure::Fatal(error)) => Try::Fail(error),
                }
            }
        };
        retry::run(settings.attempts, &format!("Gemini {what}"), pause, tries)
            .await
            .map_err(|ended| match ended {
                Retried::Failed(error) => error,
                Retried::GaveUp { attempts, last } => GeminiError::GaveUp { attempts, last },
            })
    }

    /// Sends one request and reads its whole answer, sorting failures into
    /// worth another try or not.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
        let response = request.send().await.map_err(|e| Failure::Retry {
            error: crate::http::describe(&e, "no answer in time"),
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
            error: format!(
                "the answer broke off: {}",
                crate::http::describe(&e, "no answer in time")
            ),
            wait: None,
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Failure::Fatal(GeminiError::TooLarge { limit }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::wire::parse_proto_duration;
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
