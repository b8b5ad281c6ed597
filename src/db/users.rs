//! Queries on `users`, `sessions`, `api_tokens` and `login_failures`. Tokens
//! arrive here already hashed; nothing secret is stored in the clear.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
}

/// Adds a user, or sets the password of the one with that email. Returns the
/// id and whether the user is new.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    email: &str,
    password_hash: &str,
) -> sqlx::Result<(Uuid, bool)> {
    let row = sqlx::query!(
        r#"
        INSERT INTO users (email, password_hash) VALUES ($1, $2)
        ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash
        RETURNING id, (xmax = 0) AS "created!"
        "#,
        email,
        password_hash
    )
    .fetch_one(db)
    .await?;
    Ok((row.id, row.created))
}

pub async fn by_email(db: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, email, password_hash FROM users WHERE email = $1",
        email
    )
    .fetch_optional(db)
    .await
}

pub async fn count(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM users"#)
        .fetch_one(db)
        .await
}

/// Who a session or token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub user_id: Uuid,
    pub email: String,
    /// The session's CSRF token; `None` for API tokens, which carry no cookie.
    pub csrf_token: Option<String>,
}

pub async fn create_session(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    user_id: Uuid,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        WITH touched AS (UPDATE users SET last_login_at = now() WHERE id = $2)
        INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)
        "#,
        token_hash,
        user_id,
        csrf_token,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The viewer of an unexpired session.
pub async fn session(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<Option<Viewer>> {
    let row = sqlx::query!(
        r#"
        SELECT s.user_id, u.email, s.csrf_token
        FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.token_hash = $1 AND s.expires_at > now()
        "#,
        token_hash
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Viewer {
        user_id: r.user_id,
        email: r.email,
        csrf_token: Some(r.csrf_token),
    }))
}

/// Ends a session, and any expired ones while at it.
pub async fn end_session(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM sessions WHERE token_hash = $1 OR expires_at < now()",
        token_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn create_api_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    name: &str,
    token_hash: &[u8],
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO api_tokens (user_id, name, token_hash) VALUES ($1, $2, $3) RETURNING id",
        user_id,
        name,
        token_hash
    )
    .fetch_one(db)
    .await
}

/// The viewer of an unrevoked API token; marks it used.
pub async fn api_token(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<Option<Viewer>> {
    let row = sqlx::query!(
        r#"
        UPDATE api_tokens t SET last_used_at = now()
        FROM users u
        WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id
        RETURNING t.user_id, u.email
        "#,
        token_hash
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Viewer {
        user_id: r.user_id,
        email: r.email,
        csrf_token: None,
    }))
}

/// Failed sign-ins in the window, for this email and for this address.
pub async fn recent_failures(
    db: impl PgExecutor<'_>,
    email: &str,
    ip: &str,
    window_seconds: i64,
) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query!(
        r#"
        SELECT count(*) FILTER (WHERE email = $1) AS "by_email!",
               count(*) FILTER (WHERE ip = $2) AS "by_ip!"
        FROM login_failures
        WHERE (email = $1 OR ip = $2) AND at > now() - make_interval(secs => $3)
        "#,
        email,
        ip,
        window_seconds as f64
    )
    .fetch_one(db)
    .await?;
    Ok((row.by_email, row.by_ip))
}

pub async fn record_failure(db: impl PgExecutor<'_>, email: &str, ip: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO login_failures (email, ip) VALUES ($1, $2)",
        email,
        ip
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets an email's failures after it signs in, and failures too old to count.
pub async fn clear_failures(
    db: impl PgExecutor<'_>,
    email: &str,
    window_seconds: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_failures WHERE email = $1 OR at < now() - make_interval(secs => $2)",
        email,
        window_seconds as f64
    )
    .execute(db)
    .await?;
    Ok(())
}
