//! Credentials, with no web in them: passwords (argon2id), session, CSRF and
//! API tokens, and the names they travel under. The CLI (`user add`, `token
//! create`) uses this module as the server does; checking requests against it
//! is `web::session`. Every page and API route needs a session or a token,
//! except the sign-in page, `/healthz` and static assets.
//!
//! Sessions and API tokens are 32 random bytes, handed out once and stored only
//! as SHA-256 hashes. A session also holds a CSRF token that every unsafe
//! request made with its cookie must send back, as the `_csrf` form field or
//! the `X-CSRF-Token` header (pages set the header for HTMX). Requests with an
//! API token (`Authorization: Bearer ...`) carry no cookie and need no CSRF
//! token.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use base64::Engine as _;
use buybuddy_templates::paths;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "buybuddy_session";
/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = paths::CSRF_FIELD;
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 14;

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

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
}
