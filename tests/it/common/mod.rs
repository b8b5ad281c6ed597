//! Shared test set-up against real parts: a scratch PostgreSQL cluster (no
//! fsync) in the repository's data folder, a fresh database per test cloned from
//! a migrated template, worker processes, an in-process server, and local
//! servers speaking the external services' protocols.
#![allow(dead_code)]

pub mod catalog_api;
pub mod gemini;
mod pipeline;
mod server;

pub use pipeline::*;
pub use server::*;

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use buybuddy::{
    config::Secret,
    db::{
        self,
        embedded::{Cluster, Durability},
    },
    jobs::Resources,
    queue::{
        DEFAULT_QUEUE,
        worker::{self, WorkerConfig, backoff_settings},
    },
};
use buybuddy_worker::retry::Backoff;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The loopback port of this checkout's scratch cluster: chosen free the first
/// time and remembered in the data folder, so that two checkouts on one
/// machine (or a checkout and its CI clone) each test against their own.
fn test_port() -> u16 {
    let data = repo_root().join(".data");
    let file = data.join("postgres-test.port");
    if let Some(port) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        return port;
    }
    std::fs::create_dir_all(&data).unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Written aside and linked in place: of test processes racing here, the
    // first link wins and every process reads the same port.
    let aside = data.join(format!("postgres-test.port.{}", std::process::id()));
    std::fs::write(&aside, free.to_string()).unwrap();
    let _ = std::fs::hard_link(&aside, &file);
    let _ = std::fs::remove_file(&aside);
    std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_buybuddy")
}

/// The shared scratch cluster, started on first use.
pub async fn test_cluster() -> Cluster {
    let cluster = Cluster::new(
        &repo_root().join(".data"),
        "postgres-test",
        test_port(),
        None,
        Durability::Scratch,
    )
    .expect("PostgreSQL server programs (run scripts/setup.sh)");
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.ensure_running())
        .await
        .unwrap()
        .expect("starting the test cluster");
    cluster
}

/// A database of its own for one test, migrated and empty.
pub struct TestDb {
    pub name: String,
    pub url: Secret,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        Self::with_settings(&[]).await
    }

    /// With run-time parameters on every connection (as workers set them).
    pub async fn with_settings(settings: &[(&str, String)]) -> Self {
        let cluster = test_cluster().await;
        let template = template(&cluster).await;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = admin(&cluster).await;
        drop_databases_of_dead_tests(&admin).await;
        exec(
            &admin,
            &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"),
        )
        .await;
        admin.close().await;
        let url = cluster.url(&name).unwrap();
        let pool = db::connect(&url, 10, settings).await.unwrap();
        Self { name, url, pool }
    }

    /// An empty database that was never migrated.
    pub async fn unmigrated() -> Self {
        let cluster = test_cluster().await;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_empty_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = admin(&cluster).await;
        exec(&admin, &format!("CREATE DATABASE \"{name}\"")).await;
        admin.close().await;
        let url = cluster.url(&name).unwrap();
        let pool = db::connect(&url, 2, &[]).await.unwrap();
        Self { name, url, pool }
    }
}

async fn admin(cluster: &Cluster) -> PgPool {
    db::connect(&cluster.url("postgres").unwrap(), 1, &[])
        .await
        .unwrap()
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The migrated template, named after the migrations it holds; built once by
/// whichever test process gets there first.
async fn template(cluster: &Cluster) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let platform = db::schema::migrator();
    let queue = apalis_postgres::PostgresStorage::migrations();
    for migration in platform.iter().chain(queue.iter()) {
        for byte in migration.checksum.iter() {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let name = format!("template_{:016x}", hash);
    let admin = admin(cluster).await;
    let mut lock = admin.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(4242)")
        .execute(&mut *lock)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut *lock)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        let drop = format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(&mut *lock)
            .await
            .unwrap();
        let create = format!("CREATE DATABASE \"{building}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *lock)
            .await
            .unwrap();
        let pool = db::connect(&cluster.url(&building).unwrap(), 1, &[])
            .await
            .unwrap();
        db::schema::migrate(&pool)
            .await
            .expect("migrating the template");
        pool.close().await;
        let rename = format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(rename))
            .execute(&mut *lock)
            .await
            .unwrap();
    }
    sqlx::query("SELECT pg_advisory_unlock(4242)")
        .execute(&mut *lock)
        .await
        .unwrap();
    drop(lock);
    admin.close().await;
    name
}

/// Test databases are named after their process; those whose process is gone are dropped.
async fn drop_databases_of_dead_tests(admin: &PgPool) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'")
                .fetch_all(admin)
                .await
                .unwrap();
        for name in names {
            let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(admin).await;
            }
        }
    })
    .await;
}

/// Waits until `check` returns `Some`, polling every 25 ms; panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A job's status.
pub async fn status(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until a job has the given status.
pub async fn wait_for_status(pool: &PgPool, id: Uuid, wanted: &str, limit: Duration) {
    eventually(limit, &format!("job {id} to be {wanted}"), || async {
        (status(pool, id).await == wanted).then_some(())
    })
    .await
}

/// The messages of a job's event log, in order.
pub async fn event_messages(pool: &PgPool, id: Uuid) -> Vec<String> {
    db::job_events::for_job(pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// The queue task behind a job: (status, attempts).
pub async fn task_state(pool: &PgPool, id: Uuid) -> (String, i32) {
    queue_task(pool, id)
        .await
        .unwrap_or_else(|| panic!("job {id} has no queue task"))
}

/// The queue task behind a job, if the queue still holds it (completed tasks
/// leave the queue).
pub async fn queue_task(pool: &PgPool, id: Uuid) -> Option<(String, i32)> {
    sqlx::query_as(
        "SELECT a.status, a.attempts FROM apalis.jobs a JOIN jobs j ON j.task_id = a.id WHERE j.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Worker settings suited to tests: short windows, quick retries.
pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        queue: DEFAULT_QUEUE.to_owned(),
        name: "test".to_owned(),
        concurrency: 4,
        batch_size: 4,
        poll_interval: Duration::from_millis(200),
        dead_worker_after: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(5),
        timeouts: Default::default(),
        kinds: Vec::new(),
        resources: Arc::new(Resources::default()),
    }
}

/// Quick retries for tests.
pub fn test_backoff(base: Duration) -> Vec<(&'static str, String)> {
    backoff_settings(&Backoff::new(base, Duration::from_secs(30)))
}

/// A worker running inside the test process; stopped (gracefully) on drop.
pub struct InProcessWorker {
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessWorker {
    pub fn start(pool: &PgPool, config: WorkerConfig) -> Self {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker::run(config, pool.clone(), shutdown.clone()));
        Self {
            shutdown,
            handle: Some(handle),
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A `buybuddy` process; killed on drop.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts `buybuddy <args>` against a database; its output goes to a log file.
    pub fn spawn(url: &Secret, args: &[&str]) -> Self {
        Self::spawn_with(url, args, &[])
    }

    /// The same, with extra environment variables.
    pub fn spawn_with(url: &Secret, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("buybuddy-test-{}.log", Uuid::new_v4()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary())
            .args(args)
            .envs(env.iter().copied())
            .env("DATABASE_URL", url.expose())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// A worker process with test-friendly windows and extra arguments. The
    /// dead-worker window is short for the tests that kill a worker, but well
    /// above what one commit can take on a loaded two-core machine (seconds, seen
    /// in CI), which would make a live worker look dead.
    pub fn worker(url: &Secret, extra: &[&str]) -> Self {
        let mut args = vec![
            "worker",
            "--dead-worker-after",
            "3s",
            "--poll-interval",
            "200ms",
            "--retry-base",
            "100ms",
        ];
        args.extend_from_slice(extra);
        Self::spawn(url, &args)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id().expect("still running") as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    /// Waits for the process to exit; panics after `limit`.
    pub async fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!(
                "process still running after {limit:?}; its log:\n{}",
                self.output()
            ),
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Gives probe jobs barcodes, as video jobs have, for the lists that filter by
/// barcode (probe kinds leave the column empty).
pub async fn label_jobs(pool: &PgPool, ids: &[Uuid], barcodes: &[String]) {
    sqlx::query("UPDATE jobs SET barcode = b.barcode FROM unnest($1::uuid[], $2::text[]) AS b(id, barcode) WHERE jobs.id = b.id")
        .bind(ids)
        .bind(barcodes)
        .execute(pool)
        .await
        .unwrap();
}

/// A product with `frames` frames (rows only) and a video job behind it.
pub async fn seed_product(pool: &PgPool, barcode: &str, name: &str, frames: i32) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO products (barcode, product_name, status) VALUES ($1, $2, 'needs_review') RETURNING id",
    )
    .bind(barcode)
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap();
    let job = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, barcode, video_url, status, max_attempts, started_at, completed_at)
         VALUES ($1, 'video', '{}', $2, $3, 'completed', 1, now(), now())",
    )
    .bind(job)
    .bind(barcode)
    .bind(format!("https://cdn.example/{barcode}.mp4"))
    .execute(pool)
    .await
    .unwrap();
    for i in 0..frames {
        sqlx::query(
            "INSERT INTO frames (product_id, job_id, frame_index, storage_key, mask_key, width, height, quality)
             VALUES ($1, $2, $3, $4, $5, 518, 518, '{}')",
        )
        .bind(id)
        .bind(job)
        .bind(i)
        .bind(format!("frames/{barcode}/{job}/{i:04}.png"))
        .bind(format!("masks/{barcode}/{job}/{i:04}.png"))
        .execute(pool)
        .await
        .unwrap();
    }
    id
}
