//! Who is asking: passwords (argon2id), session cookies, CSRF tokens and API
//! tokens. Every page and API route needs a session or a token, except the
//! sign-in page, `/healthz` and static assets.
//!
//! Sessions and API tokens are 32 random bytes, handed out once and stored only
//! as SHA-256 hashes. A session also holds a CSRF token that every unsafe
//! request made with its cookie must send back, as the `_csrf` form field or
//! the `X-CSRF-Token` header (pages set the header for HTMX). Requests with an
//! API token (`Authorization: Bearer ...`) carry no cookie and need no CSRF
//! token.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine as _;
use buybuddy_templates::paths;
use sha2::{Digest, Sha256};

use crate::{
    db::{self, users::Viewer},
    web::{AppError, AppState},
};

/// The session cookie's name.
pub const COOKIE: &str = "buybuddy_session";
/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = paths::CSRF_FIELD;
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 14;
/// Largest form body read to find its CSRF field.
const MAX_FORM_BYTES: usize = 1 << 20;

/// An argon2id hash (PHC string) of the password, with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("making a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Whether the password matches the hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time of a verification, so that an unknown email answers as
/// slowly as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

/// A new random token (43 URL-safe characters).
pub fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// What is stored of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Normalises an email for lookup; `None` when it cannot be one.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (user, domain) = email.split_once('@')?;
    let fine = !user.is_empty()
        && !domain.is_empty()
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace);
    fine.then_some(email)
}

/// The session token in the request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether the request came over TLS (directly or through a proxy that says so).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie_header(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        SESSION_DAYS * 24 * 3600
    ))
    .expect("tokens are URL-safe")
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie_header() -> HeaderValue {
    HeaderValue::from_static("buybuddy_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// The session of a request, if it has a live one.
pub async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, AppError> {
    match session_cookie(headers) {
        Some(token) => Ok(db::users::session(&state.pool, &token_hash(token)).await?),
        None => Ok(None),
    }
}

fn public(path: &str) -> bool {
    path == paths::LOGIN
        || path == paths::HEALTHZ
        || path.starts_with(&format!("{}/", paths::STATIC))
}

/// Lets through requests with a session or an API token (and the public
/// routes); checks the CSRF token of unsafe requests made with a cookie; puts
/// the `Viewer` in the request's extensions.
pub async fn require_viewer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if public(&path) {
        return next.run(request).await;
    }
    let api = path.starts_with("/api/");
    let viewer = match bearer(request.headers()) {
        Some(token) => db::users::api_token(&state.pool, &token_hash(token)).await,
        None => match session_of(&state, request.headers()).await {
            Ok(viewer) => Ok(viewer),
            Err(error) => return error.into_response(),
        },
    };
    let viewer = match viewer {
        Ok(Some(viewer)) => viewer,
        Ok(None) => return refuse_anonymous(&request, api),
        Err(error) => return AppError::from(error).into_response(),
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let request = match (&viewer.csrf_token, safe) {
        (Some(expected), false) => match check_csrf(request, expected).await {
            Ok(request) => request,
            Err(refusal) => return refusal,
        },
        _ => request,
    };
    let mut request = request;
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

fn refuse_anonymous(request: &Request, api: bool) -> Response {
    if api {
        return AppError::Unauthorized(
            "Sign in, or send an API token as `Authorization: Bearer <token>` (create one with `buybuddy token create`)."
                .into(),
        )
        .into_response();
    }
    let here = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let login = format!("{}?next={}", paths::LOGIN, urlencode(here));
    if request.headers().contains_key("hx-request") {
        // HTMX follows this header with a full page load.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&login) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    Redirect::to(&login).into_response()
}

/// Finds the CSRF token in the header, the query or a urlencoded form body;
/// gives the request back, body intact, when it matches.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, Response> {
    let refuse = || {
        AppError::Forbidden(
            "This form has expired or did not come from this site. Reload the page and try again."
                .into(),
        )
        .into_response()
    };
    let matches = |given: &str| constant_time_eq(given.as_bytes(), expected.as_bytes());
    if let Some(given) = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return if matches(given) {
            Ok(request)
        } else {
            Err(refuse())
        };
    }
    if let Some(given) = query_field(request.uri().query().unwrap_or(""), CSRF_FIELD) {
        return if matches(&given) {
            Ok(request)
        } else {
            Err(refuse())
        };
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(refuse());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| AppError::BadRequest("The form is too large.".into()).into_response())?;
    let given = query_field(&String::from_utf8_lossy(&bytes), CSRF_FIELD);
    if given.as_deref().is_some_and(matches) {
        Ok(Request::from_parts(parts, Body::from(bytes)))
    } else {
        Err(refuse())
    }
}

fn query_field(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A local path to go to after signing in; anything else goes to the dashboard.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') => {
            next.to_owned()
        }
        _ => paths::DASHBOARD.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "correct horse"));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), a.as_bytes());
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/products?status=approved")),
            "/products?status=approved"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "jobs",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(normalize_email("ada"), None);
        assert_eq!(normalize_email("a b@c"), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; buybuddy_session=tok; b=2"),
        );
        assert_eq!(session_cookie(&headers), Some("tok"));
    }
}
