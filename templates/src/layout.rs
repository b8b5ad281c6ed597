//! The shell around every page: head, assets, navigation.

use maud::{DOCTYPE, Markup, html};

use crate::paths;

/// A whole page. `body` is the page's main content.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Buybuddy" }
                link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%232f6fed'/%3E%3C/svg%3E";
                link rel="stylesheet" href=(paths::asset("app.css"));
                script src=(paths::asset("htmx.min.js")) defer {}
                script src=(paths::asset("htmx-sse.min.js")) defer {}
            }
            body hx-ext="sse" {
                header.topbar {
                    a.brand href=(paths::DASHBOARD) { "Buybuddy" }
                    nav {
                        a href=(paths::DASHBOARD) { "Dashboard" }
                    }
                }
                main { (body) }
            }
        }
    }
}
