//! The client of the Buybuddy legacy API: the catalog of products filmed in the
//! field, with their barcodes and videos.
//!
//! The API is not publicly documented. Everything this project assumes about it
//! is in this module, so that a change on its side is a change here only:
//!
//! - **Sign-in is two steps.** `POST {base}/user/sign_in` with
//!   `{"user_name": ..., "password": ...}` answers `{"passphrase": ...}`; then
//!   `POST {base}/user/sign_in/token` with `{"passphrase": ...}` answers
//!   `{"token": ...}`. Wrong credentials answer 401 (or 403, or 400).
//! - **Products** come from `GET {base}/ai/product?page=N&page_size=M` with
//!   `Authorization: Bearer <token>`, answering
//!   `{"data": [item, ...], "page_count": K}` with pages counted from 1. An
//!   answer without `page_count` is taken as the whole catalog.
//! - **An item** is `{"processed": bool, "video": {"id": int, "media_url": str,
//!   "product": {"upc": str, "name": str, ...}}}`; items without a barcode
//!   (`upc`) or a video URL are counted and left out.
//! - **A token expires** with a 401 on any call: the client signs in again once
//!   and repeats the call; a second 401 is an error.
//! - 429 (with `Retry-After` seconds), 5xx, timeouts and dropped connections
//!   are retried with backoff; other refusals fail at once.

use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::retry::{self, Backoff, Retried, Try};

const SIGN_IN: &str = "user/sign_in";
const TOKEN: &str = "user/sign_in/token";
const PRODUCTS: &str = "ai/product";

/// How to reach the API.
#[derive(Clone)]
pub struct Settings {
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// Products asked per page.
    pub page_size: u32,
    pub request_timeout: Duration,
    /// Tries in all for one call, counting the first.
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Settings {
    pub fn new(base_url: &str, username: &str, password: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            page_size: 100,
            request_timeout: Duration::from_secs(60),
            attempts: 4,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuybuddyError {
    #[error("the Buybuddy API refused the username or password ({status})")]
    Credentials { status: u16 },
    #[error("the Buybuddy API refused a fresh token too (401 on {path})")]
    Unauthorized { path: String },
    #[error("the Buybuddy API answered {status} on {path}: {message}")]
    Refused {
        status: u16,
        path: String,
        message: String,
    },
    #[error("the Buybuddy API could not be reached after {attempts} attempts on {path}: {last}")]
    Unreachable {
        path: String,
        attempts: u32,
        last: String,
    },
    #[error("the Buybuddy API answered {path} with something unexpected: {message}")]
    Protocol { path: String, message: String },
}

/// One product of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogProduct {
    pub barcode: String,
    pub name: Option<String>,
    pub video_url: String,
    pub video_id: Option<i64>,
    /// Whether the API itself marks the product processed.
    pub processed: bool,
    /// The item as the API sent it, for what this client does not read.
    pub raw: Value,
}

/// The whole catalog as listed.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub products: Vec<CatalogProduct>,
    /// Items without a barcode or a video URL.
    pub skipped: usize,
    pub pages: u32,
}

#[derive(Deserialize)]
struct Passphrase {
    passphrase: String,
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

#[derive(Deserialize)]
struct ProductPage {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    page_count: Option<u32>,
}

/// The API client; signs in on first use and keeps its token.
#[derive(Debug)]
pub struct Buybuddy {
    http: reqwest::Client,
    settings: Settings,
    token: Mutex<Option<String>>,
}

/// A failed try: worth another one, or not.
enum Failure {
    Retry {
        error: String,
        wait: Option<Duration>,
    },
    Fatal(BuybuddyError),
}

impl Buybuddy {
    pub fn new(settings: Settings) -> Result<Self, BuybuddyError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("buybuddy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuybuddyError::Protocol {
                path: String::new(),
                message: format!("building the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            settings,
            token: Mutex::new(None),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    /// Signs in, checking the credentials.
    pub async fn sign_in(&self) -> Result<(), BuybuddyError> {
        let token = self.fresh_token().await?;
        *self.token.lock().await = Some(token);
        Ok(())
    }

    /// Lists the whole catalog, page by page; `progress` hears of each page as
    /// `(page, page_count)`.
    pub async fn list_products(
        &self,
        mut progress: impl FnMut(u32, u32),
    ) -> Result<Catalog, BuybuddyError> {
        let mut catalog = Catalog::default();
        let mut page = 1u32;
        loop {
            let query = [
                ("page", page.to_string()),
                ("page_size", self.settings.page_size.to_string()),
            ];
            let body: ProductPage = self.get(PRODUCTS, &query).await?;
            let pages = body.page_count.unwrap_or(page).max(page);
            let empty = body.data.is_empty();
            for item in body.data {
                match read_item(item) {
                    Some(product) => catalog.products.push(product),
                    None => catalog.skipped += 1,
                }
            }
            catalog.pages = page;
            progress(page, pages);
            if page >= pages || (empty && body.page_count.is_none()) {
                break;
            }
            page += 1;
        }
        Ok(catalog)
    }

    /// A signed-in GET; a 401 signs in again once.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, BuybuddyError> {
        let url = format!("{}/{path}", self.settings.base_url);
        for renewed in [false, true] {
            let token = self.token().await?;
            let answer = self
                .retrying(path, || {
                    self.http
                        .get(&url)
                        .query(query)
                        .bearer_auth(&token)
                        .timeout(self.settings.request_timeout)
                })
                .await;
            match answer {
                Err(BuybuddyError::Refused { status: 401, .. }) if !renewed => {
                    tracing::info!(path, "the Buybuddy token has expired; signing in again");
                    let mut held = self.token.lock().await;
                    if held.as_deref() == Some(token.as_str()) {
                        *held = None;
                    }
                }
                Err(BuybuddyError::Refused { status: 401, .. }) => {
                    return Err(BuybuddyError::Unauthorized { path: path.into() });
                }
                Err(error) => return Err(error),
                Ok(body) => return parse(path, &body),
            }
        }
        unreachable!("the second round returns")
    }

    async fn token(&self) -> Result<String, BuybuddyError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            return Ok(token.clone());
        }
        let token = self.fresh_token().await?;
        *held = Some(token.clone());
        Ok(token)
    }

    async fn fresh_token(&self) -> Result<String, BuybuddyError> {
        let sign_in = format!("{}/{SIGN_IN}", self.settings.base_url);
        let credentials = json!({
            "user_name": self.settings.username,
            "password": self.settings.password,
        });
        let body = self
            .retrying(SIGN_IN, || {
                self.http
                    .post(&sign_in)
                    .json(&credentials)
                    .timeout(self.settings.request_timeout)
            })
            .await
            .map_err(|error| match error {
                BuybuddyError::Refused {
                    status: status @ (400 | 401 | 403),
                    ..
                } => BuybuddyError::Credentials { status },
                other => other,
            })?;
        let Passphrase { passphrase } = parse(SIGN_IN, &body)?;
        let exchange = format!("{}/{TOKEN}", self.settings.base_url);
        let body = self
            .retrying(TOKEN, || {
                self.http
                    .post(&exchange)
                    .json(&json!({ "passphrase": passphrase }))
                    .timeout(self.settings.request_timeout)
            })
            .await?;
        let Token { token } = parse(TOKEN, &body)?;
        Ok(token)
    }

    /// Sends a request until it is answered with success or a refusal that
    /// another try cannot change; returns the body of a success.
    async fn retrying(
        &self,
        path: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, BuybuddyError> {
        let backoff = self.settings.backoff;
        let pause = |attempt: u32, asked: Option<Duration>| {
            Ok(asked
                .unwrap_or_else(|| backoff.delay(attempt))
                .min(Duration::from_secs(300)))
        };
        let tries = || {
            let answer = self.send(path, request());
            async move {
                match answer.await {
                    Ok(body) => Try::Done(body),
                    Err(Failure::Retry { error, wait }) => Try::Again {
                        reason: error,
                        wait,
                    },
                    Err(Failure::Fatal(error)) => Try::Fail(error),
                }
            }
        };
        let what = format!("Buybuddy API call {path}");
        retry::run(self.settings.attempts, &what, pause, tries)
            .await
            .map_err(|ended| match ended {
                Retried::Failed(error) => error,
                Retried::GaveUp { attempts, last } => BuybuddyError::Unreachable {
                    path: path.into(),
                    attempts,
                    last,
                },
            })
    }

    async fn send(&self, path: &str, request: reqwest::RequestBuilder) -> Result<Vec<u8>, Failure> {
        let retry = |error: String| Failure::Retry { error, wait: None };
        let response = request
            .send()
            .await
            .map_err(|e| retry(crate::http::describe(&e, "no answer in time")))?;
        let status = response.status();
        let wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| {
            retry(format!(
                "the answer broke off: {}",
                crate::http::describe(&e, "no answer in time")
            ))
        })?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let message = error_message(&body);
        match status {
            StatusCode::TOO_MANY_REQUESTS => Err(Failure::Retry {
                error: format!("429: {message}"),
                wait,
            }),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Err(retry(format!("{}: {message}", s.as_u16())))
            }
            s => Err(Failure::Fatal(BuybuddyError::Refused {
                status: s.as_u16(),
                path: path.into(),
                message,
            })),
        }
    }
}

/// One catalog item, or `None` when it lacks a barcode or a video URL.
fn read_item(item: Value) -> Option<CatalogProduct> {
    let video = item.get("video")?;
    let product = video.get("product");
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let barcode = text(product.and_then(|p| p.get("upc")))?;
    let video_url = text(video.get("media_url"))?;
    Some(CatalogProduct {
        barcode,
        name: text(product.and_then(|p| p.get("name"))),
        video_url,
        video_id: video.get("id").and_then(Value::as_i64),
        processed: item
            .get("processed")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        raw: item,
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, BuybuddyError> {
    serde_json::from_slice(body).map_err(|e| BuybuddyError::Protocol {
        path: path.into(),
        message: e.to_string(),
    })
}

/// The message of an error answer: its `message`, `error` or `detail` field, or
/// the start of its text.
fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        for key in ["message", "error", "detail"] {
            if let Some(text) = value.get(key).and_then(Value::as_str) {
                return text.to_owned();
            }
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect();
    if text.is_empty() {
        "no message".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_read_from_their_video() {
        let item = json!({
            "processed": true,
            "video": { "id": 77, "media_url": " https://cdn/v.mp4 ", "product": { "upc": "869", "name": "Cola" } }
        });
        let product = read_item(item.clone()).unwrap();
        assert_eq!(product.barcode, "869");
        assert_eq!(product.video_url, "https://cdn/v.mp4");
        assert_eq!((product.video_id, product.processed), (Some(77), true));
        assert_eq!(product.raw, item);
        assert!(read_item(json!({ "video": { "media_url": "u", "product": {} } })).is_none());
        assert!(read_item(json!({ "video": { "product": { "upc": "1" } } })).is_none());
        assert!(read_item(json!({})).is_none());
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let settings = Settings::new("http://api", "me", "hunter2");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
