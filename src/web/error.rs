//! The one error type of the web layer. A handler returns `AppError`; the
//! `render_errors` middleware then shapes it for whoever asked: JSON under `/api`,
//! a fragment for HTMX requests, a whole page otherwise. Internal errors are logged
//! once, with their cause, and shown only as a reference.

use axum::{
    Json,
    extract::Request,
    http::{StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};
use buybuddy_templates::{
    error::{self as error_page, ErrorView},
    paths,
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Input that cannot be used, with a message per field (422; the API's
    /// answer carries `fields`).
    #[error("{}", .0.values().cloned().collect::<Vec<_>>().join(" "))]
    Invalid(crate::actions::FieldErrors),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<crate::actions::ActionError> for AppError {
    fn from(error: crate::actions::ActionError) -> Self {
        use crate::actions::ActionError;
        match error {
            ActionError::Invalid(fields) => Self::Invalid(fields),
            ActionError::Refused(message) => Self::Forbidden(message),
            ActionError::NotFound(message) => Self::NotFound(message),
            ActionError::Conflict(message) => Self::Conflict(message),
            ActionError::Unavailable(message) => Self::Unavailable(message),
            ActionError::Internal(error) => Self::Internal(error),
        }
    }
}

/// What the middleware needs to render an error, carried in the response.
#[derive(Debug, Clone)]
struct Rendered {
    title: &'static str,
    message: String,
    reference: Option<String>,
    /// Messages by field, for invalid input.
    fields: Option<serde_json::Value>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            AppError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid input"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Sign in needed"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "Refused"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            AppError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
        };
        let rendered = match self {
            AppError::Internal(error) => {
                let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
                tracing::error!(reference, error = format!("{error:#}"), "request failed");
                Rendered {
                    title,
                    message: "The server could not complete this request. It has been logged."
                        .to_owned(),
                    reference: Some(reference),
                    fields: None,
                }
            }
            AppError::Invalid(fields) => Rendered {
                title,
                message: fields.values().cloned().collect::<Vec<_>>().join(" "),
                reference: None,
                fields: Some(json!(fields)),
            },
            other => Rendered {
                title,
                message: other.to_string(),
                reference: None,
                fields: None,
            },
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(rendered);
        response
    }
}

/// Marks a response whose error status comes with its own page (a form shown
/// again with its messages), which `render_errors` leaves alone.
#[derive(Debug, Clone, Copy)]
pub struct OwnBody;

/// Gives every error response (ours, and axum's own rejections) a body that
/// suits the request.
pub async fn render_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with(paths::API_PREFIX);
    let htmx = request.headers().contains_key("hx-request");
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<OwnBody>().is_some()
        || (htmx && response.headers().contains_key("hx-redirect"))
    {
        return response;
    }
    let rendered = match response.extensions().get::<Rendered>() {
        Some(rendered) => rendered.clone(),
        // Not ours: a framework rejection (bad JSON, unknown route...). Keep its text.
        None => {
            let (parts, body) = response.into_parts();
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let response = Response::from_parts(parts, axum::body::Body::empty());
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("Error").to_owned()
            } else {
                text
            };
            return shape(
                response,
                status,
                api,
                htmx,
                Rendered {
                    title: status.canonical_reason().unwrap_or("Error"),
                    message,
                    reference: None,
                    fields: None,
                },
            );
        }
    };
    shape(response, status, api, htmx, rendered)
}

fn shape(
    response: Response,
    status: StatusCode,
    api: bool,
    htmx: bool,
    error: Rendered,
) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let view = ErrorView {
        status: status.as_u16(),
        title: error.title.to_owned(),
        message: error.message,
        reference: error.reference,
    };
    let body = if api {
        let mut body = json!({
            "error": { "status": view.status, "title": view.title, "message": view.message,
                       "reference": view.reference }
        });
        if let Some(fields) = error.fields {
            body["error"]["fields"] = fields;
        }
        Json(body).into_response()
    } else if htmx {
        Html(error_page::render_error(&view).into_string()).into_response()
    } else {
        Html(error_page::page(&view).into_string()).into_response()
    };
    let (body_parts, body) = body.into_parts();
    parts.headers.extend(body_parts.headers);
    Response::from_parts(parts, body)
}
