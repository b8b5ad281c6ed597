//! `fail`: fails with a given message, optionally until some attempt. Exercises
//! retries, backoff and the failure path end to end.

use std::time::Duration;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::jobs::{Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fail {
    #[serde(default = "default_message")]
    pub message: String,
    /// Succeed from this attempt on (counting from 1); fail every time when unset.
    #[serde(default)]
    pub succeed_on_attempt: Option<u32>,
    /// Fail for good at once instead of asking for another attempt.
    #[serde(default)]
    pub permanent: bool,
}

impl Default for Fail {
    fn default() -> Self {
        Self {
            message: default_message(),
            succeed_on_attempt: None,
            permanent: false,
        }
    }
}

fn default_message() -> String {
    "failing as asked".to_owned()
}

impl Job for Fail {
    const KIND: &'static str = "fail";
    const PROBE: bool = true;

    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        if self.succeed_on_attempt.is_some_and(|n| ctx.attempt >= n) {
            return Ok(json!({ "succeeded_on_attempt": ctx.attempt }));
        }
        let error = anyhow!("{}", self.message);
        Err(if self.permanent {
            JobError::Permanent(error)
        } else {
            JobError::Transient(error)
        })
    }
}
