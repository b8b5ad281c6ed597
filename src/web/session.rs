//! Checking requests against the credentials of `crate::auth`: session cookies,
//! API tokens and CSRF tokens, as the middleware every route sits behind.
//! Requests with an API token (`Authorization: Bearer ...`) carry no cookie and
//! need no CSRF token; unsafe requests made with a session cookie must send the
//! session's CSRF token back (the `_csrf` field or the `X-CSRF-Token` header).

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use buybuddy_templates::paths;

use super::{AppError, AppState};
use crate::{
    auth::{COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_DAYS, constant_time_eq, token_hash},
    db::{self, users::Viewer},
};

/// Largest form body read to find its CSRF field.
const MAX_FORM_BYTES: usize = 1 << 20;

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
    let api = path.starts_with(paths::API_PREFIX);
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

#[cfg(test)]
mod tests {
    use super::*;

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
