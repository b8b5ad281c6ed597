//! Database access: where the database is, connection pools, the schema, and
//! one module of queries per table.

pub mod attempts;
pub mod catalog;
pub mod datasets;
pub mod embedded;
pub mod embeddings;
pub mod frames;
pub mod job_events;
pub mod jobs;
pub mod merchants;
pub mod products;
pub mod queue;
pub mod schema;
pub mod shelves;
pub mod training;
pub mod users;
pub mod workers;

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::{DbArgs, Secret};

/// The name of the database the embedded cluster serves.
pub const EMBEDDED_DATABASE: &str = "buybuddy";

/// Where this process's database is: the URL, and the embedded cluster if it is one.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Secret,
    pub cluster: Option<embedded::Cluster>,
}

impl Target {
    /// Resolves the configured database, starting the embedded cluster (and creating
    /// its database) when no `DATABASE_URL` is given.
    pub async fn resolve(args: &DbArgs) -> anyhow::Result<Self> {
        if let Some(url) = &args.database_url {
            return Ok(Self {
                url: url.clone(),
                cluster: None,
            });
        }
        let cluster = embedded_cluster(args)?;
        let started = cluster.clone();
        tokio::task::spawn_blocking(move || started.ensure_running()).await??;
        create_database(&cluster, EMBEDDED_DATABASE).await?;
        Ok(Self {
            url: cluster.url(EMBEDDED_DATABASE)?,
            cluster: Some(cluster),
        })
    }

    /// A description safe to print: the URL without its password.
    pub fn describe(&self) -> String {
        let shown = redact_url(self.url.expose());
        match &self.cluster {
            Some(_) => format!("{shown} (embedded cluster)"),
            None => shown,
        }
    }
}

/// The embedded cluster described by the arguments (not started).
pub fn embedded_cluster(args: &DbArgs) -> anyhow::Result<embedded::Cluster> {
    embedded::Cluster::new(
        &args.data_dir,
        "postgres",
        args.embedded_pg_port,
        args.pg_bin_dir.as_deref(),
        embedded::Durability::Durable,
    )
}

/// Creates a database in a local cluster unless it exists.
pub async fn create_database(cluster: &embedded::Cluster, name: &str) -> anyhow::Result<()> {
    let admin = connect_options(&cluster.url("postgres")?)?;
    let mut conn = sqlx::ConnectOptions::connect(&admin)
        .await
        .context("connecting to the embedded cluster")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => {}
            // Another process created it at the same moment.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e).context("creating the database"),
        }
    }
    Ok(())
}

/// Parses a connection URL, with a message that never shows the password.
pub fn connect_options(url: &Secret) -> anyhow::Result<PgConnectOptions> {
    url.expose().parse::<PgConnectOptions>().map_err(|e| {
        anyhow::anyhow!(
            "DATABASE_URL is not a valid PostgreSQL URL ({}): {e}",
            redact_url(url.expose())
        )
    })
}

/// Opens a pool of at most `size` connections. `settings` are sent as run-time
/// parameters on every connection (`SET name = value`).
pub async fn connect(
    url: &Secret,
    size: u32,
    settings: &[(&str, String)],
) -> anyhow::Result<PgPool> {
    connect_with(url, size, Duration::from_secs(10), settings).await
}

/// Like [`connect`], with the pool size and acquire timeout of the arguments.
pub async fn connect_configured(
    args: &DbArgs,
    url: &Secret,
    settings: &[(&str, String)],
) -> anyhow::Result<PgPool> {
    connect_with(url, args.db_pool_size, args.db_acquire_timeout, settings).await
}

async fn connect_with(
    url: &Secret,
    size: u32,
    acquire_timeout: Duration,
    settings: &[(&str, String)],
) -> anyhow::Result<PgPool> {
    let options = connect_options(url)?
        .application_name(&application_name())
        .options(settings.iter().map(|(k, v)| (*k, v.as_str())));
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url.expose())))
}

/// A pool of its own beside `pool`, on the same server with the same settings
/// and acquire timeout, opened lazily: for work that must never wait behind the
/// main pool's users (the queue's heartbeat, its ledger). `options` adds run-time
/// parameters.
pub fn side_pool(pool: &PgPool, size: u32, options: &[(&str, &str)]) -> PgPool {
    let connect = (*pool.connect_options())
        .clone()
        .options(options.iter().copied());
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_lazy_with(connect)
}

/// Whether the database answers a trivial query.
pub async fn ping(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(db)
        .await?;
    Ok(())
}

/// How this process shows up in `pg_stat_activity`.
pub fn application_name() -> String {
    let command = std::env::args().nth(1).unwrap_or_default();
    format!("buybuddy {command}").trim().to_owned()
}

/// The URL with its password replaced, fit for logs and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[unparsable URL]".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Ends a list query over a table with `created_at` and `id`: only rows older
/// than `before` (the previous page's last row), newest first, `limit` rows.
pub fn push_newest_first(
    query: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    before: Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>,
    limit: i64,
) -> &mut sqlx::QueryBuilder<sqlx::Postgres> {
    if let Some((at, id)) = before {
        query
            .push(" AND (created_at, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_everything_but_the_password() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/buybuddy"),
            "postgres://app:***@db.internal:5432/buybuddy"
        );
        assert_eq!(
            redact_url("postgres://localhost/buybuddy"),
            "postgres://localhost/buybuddy"
        );
        assert_eq!(redact_url("not a url"), "[unparsable URL]");
    }
}
