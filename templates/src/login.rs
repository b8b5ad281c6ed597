//! The sign-in page.

use maud::{Markup, html};

use crate::{layout, paths};

/// What the sign-in form shows.
#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    /// As typed, kept when the form comes back with an error.
    pub email: String,
    /// Where to go once signed in.
    pub next: String,
    pub error: Option<String>,
}

pub fn page(form: &LoginForm) -> Markup {
    layout::page(
        "Sign in",
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                @if let Some(error) = &form.error {
                    p.error role="alert" { (error) }
                }
                form method="post" action=(paths::LOGIN) {
                    input type="hidden" name="next" value=(form.next);
                    label {
                        "Email"
                        input type="email" name="email" value=(form.email) required autofocus autocomplete="username";
                    }
                    label {
                        "Password"
                        input type="password" name="password" required autocomplete="current-password";
                    }
                    button type="submit" { "Sign in" }
                }
                p.muted { "Accounts are made with " code { "buybuddy user add <email>" } "." }
            }
        },
    )
}
