//! The database schema: our migrations (`migrations/`, recorded in
//! `_buybuddy_migrations`) on top of the queue's own (apalis, recorded in
//! `apalis._sqlx_migrations`). `buybuddy migrate` applies both; every other command checks
//! that both are current before it touches the database.

use anyhow::Context;
use apalis_postgres::PostgresStorage;
use sqlx::{PgPool, migrate::Migrator};

const TABLE: &str = "_buybuddy_migrations";

/// Our migrations, recorded in their own table so they never mix with the queue's.
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(TABLE);
    migrator
}

/// Applies the queue's migrations, then ours.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    PostgresStorage::setup(pool)
        .await
        .context("applying the queue's (apalis) migrations")?;
    migrator().run(pool).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("extension \"vector\" is not available") {
            anyhow::anyhow!(
                "pgvector is not installed in this PostgreSQL server: run scripts/setup.sh \
                 for the embedded default, or install pgvector (>= 0.5) on your server"
            )
        } else {
            anyhow::Error::new(e).context("applying the platform's migrations")
        }
    })
}

/// How far a database is from what this binary expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// (applied, known) counts of the platform's migrations.
    pub platform: (usize, usize),
    /// (applied, known) counts of the queue's migrations.
    pub queue: (usize, usize),
    /// Versions recorded in the database that this binary does not know.
    pub unknown: Vec<i64>,
}

impl Status {
    pub fn is_current(&self) -> bool {
        self.platform.0 == self.platform.1
            && self.queue.0 == self.queue.1
            && self.unknown.is_empty()
    }
}

pub async fn status(pool: &PgPool) -> anyhow::Result<Status> {
    let (platform, mut unknown) = compare(pool, &migrator()).await?;
    let (queue, unknown_queue) = compare(pool, &PostgresStorage::migrations()).await?;
    unknown.extend(unknown_queue);
    Ok(Status {
        platform,
        queue,
        unknown,
    })
}

/// Fails with a message that says what to do unless the schema is current.
pub async fn require_current(pool: &PgPool) -> anyhow::Result<()> {
    let status = status(pool).await.context("reading the schema version")?;
    if !status.unknown.is_empty() {
        anyhow::bail!(
            "the database was migrated by a newer buybuddy (unknown migrations {:?}): \
             upgrade this binary",
            status.unknown
        );
    }
    if !status.is_current() {
        anyhow::bail!(
            "the database schema is not current ({} of {} platform migrations, {} of {} queue \
             migrations applied): run `buybuddy migrate`",
            status.platform.0,
            status.platform.1,
            status.queue.0,
            status.queue.1
        );
    }
    Ok(())
}

/// (applied, known) counts, and applied versions the migrator does not know.
async fn compare(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<((usize, usize), Vec<i64>)> {
    let table = &migrator.table_name;
    let known: Vec<i64> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await?;
    let applied: Vec<i64> = if exists {
        let sql = format!("SELECT version FROM {table} WHERE success ORDER BY version");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let unknown = applied
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    let applied_known = applied.iter().filter(|v| known.contains(v)).count();
    Ok(((applied_known, known.len()), unknown))
}
