//! An in-process server on a free loopback port against a test database, with
//! a signed-in user, as the page and API tests use it.

use std::sync::Arc;

use buybuddy::{
    actions::Intake,
    db,
    queue::DEFAULT_QUEUE,
    realtime::Hub,
    web::{self, App, AppState},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The password of the users test servers make.
pub const TEST_PASSWORD: &str = "a test password";

/// An in-process server on a free loopback port, with a signed-in user.
pub struct TestServer {
    pub base: String,
    pub state: AppState,
    /// Sends the user's session cookie and CSRF header with every request.
    pub client: reqwest::Client,
    pub email: String,
    pub csrf_token: String,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start(pool: &PgPool) -> Self {
        let storage = scratch_storage().await;
        Self::start_with(pool, storage).await
    }

    /// A server whose Sync page reads the catalog at this API.
    pub async fn start_with_catalog(
        pool: &PgPool,
        catalog: buybuddy_worker::buybuddy::Buybuddy,
    ) -> Self {
        let storage = scratch_storage().await;
        Self::build_with(pool, storage, true, Some(Arc::new(catalog)), production()).await
    }

    /// A server reading objects from the given storage.
    pub async fn start_with(pool: &PgPool, storage: buybuddy_worker::storage::Storage) -> Self {
        Self::build(pool, storage, true).await
    }

    /// A server started for testing the queue: it accepts probe jobs
    /// (`--enable-probe-jobs`).
    pub async fn start_with_probes(pool: &PgPool) -> Self {
        Self::build_with(
            pool,
            scratch_storage().await,
            true,
            None,
            Intake::remote(Vec::new(), true),
        )
        .await
    }

    /// A server that takes `s3://` videos from these buckets only.
    pub async fn start_with_buckets(pool: &PgPool, buckets: &[&str]) -> Self {
        let buckets = buckets.iter().map(|b| b.to_string()).collect();
        Self::build_with(
            pool,
            scratch_storage().await,
            true,
            None,
            Intake::remote(buckets, false),
        )
        .await
    }

    /// A server without a signed-in user (its client sends no session), for
    /// databases that cannot hold one.
    pub async fn start_without_user(pool: &PgPool) -> Self {
        let storage = scratch_storage().await;
        Self::build(pool, storage, false).await
    }

    async fn build(pool: &PgPool, storage: buybuddy_worker::storage::Storage, user: bool) -> Self {
        Self::build_with(pool, storage, user, None, production()).await
    }

    async fn build_with(
        pool: &PgPool,
        storage: buybuddy_worker::storage::Storage,
        user: bool,
        catalog: Option<Arc<buybuddy_worker::buybuddy::Buybuddy>>,
        intake: Intake,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let state = AppState(Arc::new(App {
            pool: pool.clone(),
            hub: Hub::start(pool.clone(), shutdown.clone()),
            queue: DEFAULT_QUEUE.to_owned(),
            storage,
            max_upload: 8 << 20,
            catalog,
            intake,
            dashboard: Default::default(),
            embedders: Default::default(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(web::serve(listener, state.clone(), shutdown.clone()));
        let email = format!("tester-{}@example.com", Uuid::new_v4().simple());
        if !user {
            return Self {
                base,
                state,
                client: reqwest::Client::new(),
                email,
                csrf_token: String::new(),
                shutdown,
            };
        }
        let (session, csrf_token) = sign_in_directly(pool, &email).await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::COOKIE,
            format!("{}={session}", buybuddy::auth::COOKIE)
                .parse()
                .unwrap(),
        );
        headers.insert(buybuddy::auth::CSRF_HEADER, csrf_token.parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            base,
            state,
            client,
            email,
            csrf_token,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The intake of a server started as in production: remote sources only, no
/// bucket (its storage is a folder), no probe jobs.
fn production() -> Intake {
    Intake::remote(Vec::new(), false)
}

/// Local storage in a fresh temporary folder.
async fn scratch_storage() -> buybuddy_worker::storage::Storage {
    buybuddy_worker::storage::Storage::open(
        std::env::temp_dir()
            .join(format!("buybuddy-test-storage-{}", Uuid::new_v4()))
            .to_str()
            .unwrap(),
        &Default::default(),
    )
    .await
    .unwrap()
}

/// Adds a user with `TEST_PASSWORD` and opens a session for them; returns the
/// session token and its CSRF token.
pub async fn sign_in_directly(pool: &PgPool, email: &str) -> (String, String) {
    use buybuddy::auth;
    let hash = auth::hash_password(TEST_PASSWORD).unwrap();
    let (user_id, _) = db::users::upsert(pool, email, &hash).await.unwrap();
    let (session, csrf) = (auth::new_token(), auth::new_token());
    db::users::create_session(
        pool,
        &auth::token_hash(&session),
        user_id,
        &csrf,
        chrono::Utc::now() + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    (session, csrf)
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
