//! HTMX on the server side: whether a request came from HTMX, and redirects
//! that HTMX follows as page loads.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};

/// Whether the request was made by HTMX (it sends `HX-Request`).
#[derive(Debug, Clone, Copy)]
pub struct HxRequest(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for HxRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.contains_key("hx-request")))
    }
}

/// A redirect that HTMX follows as a page load, and browsers as usual.
pub fn go_to(path: &str, htmx: HxRequest) -> Response {
    if htmx.0 {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Ok(value) = path.parse() {
            response.headers_mut().insert("hx-redirect", value);
        }
        response
    } else {
        Redirect::to(path).into_response()
    }
}
