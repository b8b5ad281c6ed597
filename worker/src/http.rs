//! What the worker crate's HTTP clients share: a `reqwest` error in words a
//! person understands, with its whole chain of causes.

/// Describes a failed request. `timed_out` says what a timeout means for this
/// caller ("no answer in time" for an API call, "the server stopped sending"
/// for a download). URLs carry no secrets here (keys travel in headers), so
/// the text is safe to show and log.
pub fn describe(error: &reqwest::Error, timed_out: &str) -> String {
    if error.is_timeout() {
        timed_out.to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }
}
