//! The shell around every page: head, assets, navigation.

use maud::{DOCTYPE, Markup, html};

use crate::paths;

/// The signed-in person a page is made for.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub email: String,
    /// Sent back with every unsafe request: a hidden field in forms, and a
    /// header on HTMX requests.
    pub csrf_token: String,
}

/// A whole page for a signed-in person. `body` is the page's main content.
pub fn page_for(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    shell(Some(viewer), title, body)
}

/// A whole page for anyone (sign-in, errors).
pub fn page(title: &str, body: Markup) -> Markup {
    shell(None, title, body)
}

/// The hidden field that carries the CSRF token in a plain form post.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(paths::CSRF_FIELD) value=(viewer.csrf_token); }
}

/// The action of a multipart form (a file upload): the CSRF token rides in
/// the URL, because the server does not read a multipart body to find it.
pub fn multipart_action(path: &str, viewer: &Viewer) -> String {
    format!("{path}?{}={}", paths::CSRF_FIELD, viewer.csrf_token)
}

const HTMX_CONFIG: &str = r#"{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"422","swap":true},{"code":"[45]..","swap":false,"error":true}]}"#;

fn shell(viewer: Option<&Viewer>, title: &str, body: Markup) -> Markup {
    // HTMX sends this header with every request it makes; a JSON attribute
    // value, escaped as any attribute is.
    let hx_headers = viewer.map(|v| format!(r#"{{"X-CSRF-Token": "{}"}}"#, v.csrf_token));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Buybuddy" }
                link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%232f6fed'/%3E%3C/svg%3E";
                link rel="stylesheet" href=(paths::asset("app.css"));
                // Forms answered with 422 come back with their messages: swap them in.
                meta name="htmx-config" content=(HTMX_CONFIG);
                script src=(paths::asset("htmx.min.js")) defer {}
                script src=(paths::asset("htmx-sse.min.js")) defer {}
            }
            body hx-ext="sse" hx-headers=[hx_headers] {
                header.topbar {
                    a.brand href=(paths::DASHBOARD) { "Buybuddy" }
                    @if let Some(viewer) = viewer {
                        nav {
                            a href=(paths::DASHBOARD) { "Dashboard" }
                            a href=(paths::JOBS) { "Jobs" }
                            a href=(paths::PRODUCTS) { "Products" }
                            a href=(paths::SEARCH) { "Search" }
                            a href=(paths::DATASETS) { "Datasets" }
                            a href=(paths::TRAINING) { "Training" }
                            a href=(paths::SHELVES) { "Shelves" }
                            a href=(paths::COVERAGE) { "Coverage" }
                            a href=(paths::MERCHANTS) { "Merchants" }
                            a href=(paths::SYNC) { "Sync" }
                        }
                        form.signout method="post" action=(paths::LOGOUT) {
                            (csrf_field(viewer))
                            span.muted { (viewer.email) }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}
