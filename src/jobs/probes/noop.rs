//! `noop`: does nothing. Measures the queue itself and checks a worker end to end.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::{Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Noop {}

impl Job for Noop {
    const KIND: &'static str = "noop";
    const PROBE: bool = true;

    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn run(&self, _ctx: &JobContext) -> Result<Value, JobError> {
        Ok(Value::Null)
    }
}
