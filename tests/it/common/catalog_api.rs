//! A local server that speaks the Buybuddy legacy API as the platform assumes
//! it (see `buybuddy_worker::buybuddy`): two-step sign-in, a paged product
//! list behind a bearer token, tokens that expire, and its error answers.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

pub const USERNAME: &str = "field-team";
pub const PASSWORD: &str = "correct horse";

struct Inner {
    items: Mutex<Vec<Value>>,
    /// Token to the product-list calls it still allows; `None`: no limit.
    tokens: Mutex<HashMap<String, Option<u32>>>,
    passphrases: Mutex<Vec<String>>,
    /// Calls each new token allows before it expires.
    token_uses: Mutex<Option<u32>>,
    sign_ins: AtomicU32,
    pages_served: AtomicU32,
    next: AtomicU32,
}

pub struct FakeBuybuddy {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBuybuddy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A catalog item as the API lists it.
pub fn item(barcode: &str, name: &str, video_url: &str, video_id: i64) -> Value {
    json!({
        "id": video_id * 10,
        "processed": false,
        "video": {
            "id": video_id,
            "media_url": video_url,
            "product": { "upc": barcode, "name": name, "brand": "Fizzo" }
        }
    })
}

impl FakeBuybuddy {
    pub async fn start(items: Vec<Value>) -> Self {
        let inner = Arc::new(Inner {
            items: Mutex::new(items),
            tokens: Mutex::new(HashMap::new()),
            passphrases: Mutex::new(Vec::new()),
            token_uses: Mutex::new(None),
            sign_ins: AtomicU32::new(0),
            pages_served: AtomicU32::new(0),
            next: AtomicU32::new(1),
        });
        let app = Router::new()
            .route("/user/sign_in", post(sign_in))
            .route("/user/sign_in/token", post(token))
            .route("/ai/product", get(products))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner, task }
    }

    /// Tokens issued from now on allow this many product-list calls, then 401.
    pub fn tokens_expire_after(&self, calls: u32) {
        *self.inner.token_uses.lock().unwrap() = Some(calls);
    }

    /// Expires every token issued so far.
    pub fn expire_tokens(&self) {
        for left in self.inner.tokens.lock().unwrap().values_mut() {
            *left = Some(0);
        }
    }

    pub fn sign_ins(&self) -> u32 {
        self.inner.sign_ins.load(Ordering::SeqCst)
    }

    pub fn pages_served(&self) -> u32 {
        self.inner.pages_served.load(Ordering::SeqCst)
    }
}

fn refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

async fn sign_in(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    if body["user_name"] != USERNAME || body["password"] != PASSWORD {
        return refusal(StatusCode::UNAUTHORIZED, "Invalid user name or password");
    }
    let passphrase = format!("pass-{}", inner.next.fetch_add(1, Ordering::SeqCst));
    inner.passphrases.lock().unwrap().push(passphrase.clone());
    Json(json!({ "passphrase": passphrase })).into_response()
}

async fn token(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    let given = body["passphrase"].as_str().unwrap_or_default().to_owned();
    let mut passphrases = inner.passphrases.lock().unwrap();
    let Some(at) = passphrases.iter().position(|p| *p == given) else {
        return refusal(StatusCode::UNAUTHORIZED, "Invalid passphrase");
    };
    passphrases.remove(at);
    inner.sign_ins.fetch_add(1, Ordering::SeqCst);
    let token = format!("token-{}", inner.next.fetch_add(1, Ordering::SeqCst));
    let uses = *inner.token_uses.lock().unwrap();
    inner.tokens.lock().unwrap().insert(token.clone(), uses);
    Json(json!({ "token": token, "user": { "user_name": USERNAME } })).into_response()
}

async fn products(
    State(inner): State<Arc<Inner>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    {
        let mut tokens = inner.tokens.lock().unwrap();
        match tokens.get_mut(&bearer) {
            None => return refusal(StatusCode::UNAUTHORIZED, "Unauthorized"),
            Some(Some(0)) => return refusal(StatusCode::UNAUTHORIZED, "Token expired"),
            Some(Some(left)) => *left -= 1,
            Some(None) => {}
        }
    }
    let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = query
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100);
    if page == 0 || size == 0 {
        return refusal(StatusCode::BAD_REQUEST, "page and page_size start at 1");
    }
    let items = inner.items.lock().unwrap();
    let page_count = items.len().div_ceil(size).max(1);
    let data: Vec<Value> = items
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .cloned()
        .collect();
    inner.pages_served.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "data": data,
        "page": page,
        "page_size": size,
        "page_count": page_count,
        "total": items.len()
    }))
    .into_response()
}
