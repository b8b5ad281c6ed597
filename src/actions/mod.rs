//! What people and scripts do, one function each, called alike by the pages,
//! the JSON API and the CLI: create a video job, retry, cancel, review,
//! reprocess, edit metadata, sync. Handlers parse input, call an action and
//! render its result; the rules live here, so the API and the page check
//! exactly the same things. Actions know nothing of HTTP: they return
//! [`ActionError`], which each caller shapes for its audience.

pub mod datasets;
pub mod jobs;
pub mod merchants;
pub mod metadata;
pub mod products;
pub mod search;
pub mod shelves;
pub mod sync;
pub mod training;

use std::collections::BTreeMap;

use buybuddy_worker::storage::Storage;
use sqlx::PgPool;

/// A message per input field, by the field's name.
pub type FieldErrors = BTreeMap<&'static str, String>;

/// Why an action did not happen. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The input cannot be used: a message per field.
    #[error("{}", joined(.0))]
    Invalid(FieldErrors),
    /// The input is understood but not allowed from where it came.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing is not in a state that allows the action.
    #[error("{0}")]
    Conflict(String),
    /// Something the action needs is not there just now (no model serves,
    /// this process cannot run the model).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ActionError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl ActionError {
    /// An invalid input with one message.
    pub fn field(name: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(FieldErrors::from([(name, message.into())]))
    }
}

/// A sentence from a lower-case error message.
pub(crate) fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn joined(errors: &FieldErrors) -> String {
    errors.values().cloned().collect::<Vec<_>>().join(" ")
}

/// What new work may name, by where the request comes from. People on the web
/// and scripts with a token reach workers that hold storage credentials and
/// read files in place, so they get a narrow intake; the CLI is run by someone
/// on the machine and gets a wide one.
#[derive(Debug, Clone, Default)]
pub struct Intake {
    /// Local paths as video sources (a worker reads them in place).
    pub local_paths: bool,
    /// The buckets `s3://` sources may name; any bucket when `None`.
    pub buckets: Option<Vec<String>>,
    /// Probe kinds (`noop`, `sleep`, `fail`, `crash`), for testing the queue.
    pub probes: bool,
}

impl Intake {
    /// The command line's: local files, any bucket, probe kinds.
    pub fn command_line() -> Self {
        Self {
            local_paths: true,
            buckets: None,
            probes: true,
        }
    }

    /// The web's and the API's: remote sources, the given buckets only, and
    /// probe kinds only on a server started for testing.
    pub fn remote(buckets: Vec<String>, probes: bool) -> Self {
        Self {
            local_paths: false,
            buckets: Some(buckets),
            probes,
        }
    }

    fn bucket_allowed(&self, bucket: &str) -> bool {
        self.buckets
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|b| b == bucket))
    }
}

/// What actions work with: the database, the queue new jobs go to, object
/// storage, and the intake rules of whoever is asking.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub queue: &'a str,
    pub storage: &'a Storage,
    pub intake: &'a Intake,
}
