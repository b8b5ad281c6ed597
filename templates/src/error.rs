//! How errors look: a whole page for browsers, a fragment for HTMX swaps.

use maud::{Markup, html};

use crate::layout;

/// An error to show a person.
#[derive(Debug, Clone)]
pub struct ErrorView {
    pub status: u16,
    pub title: String,
    pub message: String,
    /// For internal errors: what to quote when reporting it.
    pub reference: Option<String>,
}

pub fn page(error: &ErrorView) -> Markup {
    layout::page(&error.title, render_error(error))
}

pub fn render_error(error: &ErrorView) -> Markup {
    html! {
        section.error role="alert" {
            h1 { (error.title) }
            p { (error.message) }
            @if let Some(reference) = &error.reference {
                p.muted { "Reference: " code { (reference) } }
            }
        }
    }
}
