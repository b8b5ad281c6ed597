//! `sleep`: waits, in steps, reporting progress at each. Stands in for long work
//! when checking progress, cancellation, timeouts and shutdown.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::jobs::{Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sleep {
    /// Total time to wait.
    pub millis: u64,
    /// Stage boundaries along the way (progress reports and cancellation checks).
    #[serde(default = "one")]
    pub steps: u32,
}

fn one() -> u32 {
    1
}

impl Job for Sleep {
    const KIND: &'static str = "sleep";
    const PROBE: bool = true;

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.millis) * 2 + Duration::from_secs(10)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let steps = self.steps.max(1);
        let step = Duration::from_millis(self.millis) / steps;
        for i in 0..steps {
            let progress = (i * 100 / steps) as u8;
            ctx.stage("sleep", progress, &format!("Step {} of {steps}", i + 1))
                .await?;
            tokio::time::sleep(step).await;
        }
        Ok(json!({ "slept_ms": self.millis }))
    }
}
