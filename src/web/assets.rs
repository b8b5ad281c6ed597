//! Static assets embedded in the binary: htmx (from npm, at build time), our
//! stylesheet, the shelf photos' box tool and the review screens' keys.

use axum::{
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
};

use super::AppError;

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript",
        include_bytes!(concat!(env!("OUT_DIR"), "/htmx.min.js")),
    ),
    (
        "htmx-sse.min.js",
        "text/javascript",
        include_bytes!(concat!(env!("OUT_DIR"), "/htmx-sse.min.js")),
    ),
    (
        "shelves.js",
        "text/javascript",
        include_bytes!("../../static/shelves.js"),
    ),
    (
        "review.js",
        "text/javascript",
        include_bytes!("../../static/review.js"),
    ),
    (
        "app.css",
        "text/css",
        include_bytes!("../../static/app.css"),
    ),
];

pub async fn serve(Path(name): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| AppError::NotFound(format!("No asset named {name}.")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *body,
    )
        .into_response())
}
