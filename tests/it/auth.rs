//! Signing in: sessions, CSRF, API tokens, rate limits, and the commands that
//! make users and tokens.

use crate::common;

use std::process::Stdio;

use buybuddy::db;
use common::*;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// A client with no session that does not follow redirects.
fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn add_user(db: &TestDb, email: &str, password: &str) {
    let mut child = tokio::process::Command::new(binary())
        .args(["user", "add", email])
        .env("DATABASE_URL", db.url.expose())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn sign_in(
    server: &TestServer,
    email: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    anonymous()
        .post(server.url("/login"))
        .form(&[("email", email), ("password", password), ("next", next)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_and_the_api_need_a_session_or_a_token() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let client = anonymous();

    let page = client.get(server.url("/?x=1")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login?next=%2F%3Fx%3D1");

    let api = client.get(server.url("/api/jobs")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let body: Value = api.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API token")
    );

    let htmx = client
        .get(server.url("/fragments/dashboard/jobs"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(htmx.status(), StatusCode::UNAUTHORIZED);
    assert!(
        htmx.headers()["hx-redirect"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );

    for open in ["/login", "/healthz", "/static/app.css"] {
        let response = client.get(server.url(open)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{open}");
    }
    for closed in ["/events?topic=jobs", "/media/frames/x.png"] {
        let response = client.get(server.url(closed)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{closed}");
    }
}

#[tokio::test]
async fn signing_in_sets_a_session_cookie_and_goes_where_asked() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    add_user(&db, "Ada@Example.com", "correct horse battery").await;

    let response = sign_in(
        &server,
        " ada@example.COM ",
        "correct horse battery",
        "/?from=login",
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/?from=login");
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag: {set}");
    let cookie = session_cookie(&response);

    let page = anonymous()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("ada@example.com"),
        "the page names who is signed in"
    );
    assert!(
        html.contains("name=\"_csrf\""),
        "forms carry the CSRF token"
    );

    // Behind a TLS proxy the cookie is Secure; a foreign `next` is ignored.
    let response = anonymous()
        .post(server.url("/login"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("email", "ada@example.com"),
            ("password", "correct horse battery"),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn a_wrong_password_says_so_and_keeps_the_email() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    add_user(&db, "ada@example.com", "correct horse battery").await;
    for (email, expected) in [
        ("ada@example.com", "Wrong email or password."),
        ("nobody@example.com", "Wrong email or password."),
    ] {
        let response = sign_in(&server, email, "guess", "/").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("set-cookie").is_none());
        let html = response.text().await.unwrap();
        assert!(html.contains(expected), "{html}");
        assert!(
            html.contains(&format!("value=\"{email}\"")),
            "typed email kept"
        );
    }
    let response = sign_in(&server, "<script>alert(1)</script>", "x", "/").await;
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "what was typed is escaped");
}

#[tokio::test]
async fn repeated_failures_lock_the_email_out_for_a_while() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    add_user(&db, "ada@example.com", "correct horse battery").await;
    for _ in 0..5 {
        let response = sign_in(&server, "ada@example.com", "guess", "/").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = sign_in(&server, "ada@example.com", "correct horse battery", "/").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    // Other accounts are not locked by it.
    add_user(&db, "bob@example.com", "another good password").await;
    let response = sign_in(&server, "bob@example.com", "another good password", "/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn unsafe_requests_with_a_cookie_need_the_csrf_token() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (session, csrf) = sign_in_directly(&db.pool, "carol@example.com").await;
    let cookie = format!("{}={session}", buybuddy::auth::COOKIE);
    let job = buybuddy::queue::enqueue(
        &db.pool,
        buybuddy::queue::DEFAULT_QUEUE,
        vec![buybuddy::jobs::JobSpec::Noop(buybuddy::jobs::noop::Noop {}).into()],
    )
    .await
    .unwrap()[0];
    let cancel = server.url(&format!("/api/jobs/{job}/cancel"));

    let refused = anonymous()
        .post(&cancel)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let wrong = anonymous()
        .post(&cancel)
        .header("cookie", &cookie)
        .header("x-csrf-token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(status(&db.pool, job).await, "queued", "nothing happened");
    let allowed = anonymous()
        .post(&cancel)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(status(&db.pool, job).await, "cancelled");

    // A plain form post carries it as a field; signing out ends the session.
    let out = anonymous()
        .post(server.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = anonymous()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the session is over");
}

#[tokio::test]
async fn api_tokens_act_as_their_user_without_cookies() {
    let db = TestDb::new().await;
    let server = TestServer::start_with_probes(&db.pool).await;
    add_user(&db, "dave@example.com", "correct horse battery").await;
    let output = tokio::process::Command::new(binary())
        .args([
            "token",
            "create",
            "--user",
            "dave@example.com",
            "--name",
            "nightly export",
        ])
        .env("DATABASE_URL", db.url.expose())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 43);

    let listed = anonymous()
        .get(server.url("/api/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let pushed = anonymous()
        .post(server.url("/api/jobs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "kind": "noop" }))
        .send()
        .await
        .unwrap();
    assert!(
        pushed.status().is_success(),
        "no CSRF token needed: {}",
        pushed.status()
    );
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_tokens")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(used.is_some());

    let forged = anonymous()
        .get(server.url("/api/jobs"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let revoked = anonymous()
        .get(server.url("/api/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn user_add_stores_a_hash_and_refuses_weak_passwords() {
    let db = TestDb::new().await;
    add_user(&db, "Eve@Example.com", "a long enough password").await;
    let user = db::users::by_email(&db.pool, "eve@example.com")
        .await
        .unwrap()
        .expect("stored lower-cased");
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(!user.password_hash.contains("a long enough password"));
    // Adding again sets a new password.
    add_user(&db, "eve@example.com", "another long password").await;
    let again = db::users::by_email(&db.pool, "eve@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again.password_hash, user.password_hash);
    assert_eq!(db::users::count(&db.pool).await.unwrap(), 1);

    let mut child = tokio::process::Command::new(binary())
        .args(["user", "add", "frank@example.com"])
        .env("DATABASE_URL", db.url.expose())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"short\n")
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 10 characters"));
}
