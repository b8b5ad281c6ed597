//! `crash`: kills the worker process running it, as a native library crash or the
//! out-of-memory killer would. Only runs on workers started with crash jobs enabled;
//! it checks that such jobs end `failed` instead of taking down worker after worker.

use std::time::Duration;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::{Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Crash {}

impl Job for Crash {
    const KIND: &'static str = "crash";
    const PROBE: bool = true;

    fn timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        if !ctx.resources.enable_crash_jobs {
            return Err(JobError::Permanent(anyhow!(
                "crash jobs are disabled on this worker (start it with --enable-crash-jobs)"
            )));
        }
        tracing::warn!(job.id = %ctx.job_id, "crash job: killing this worker");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        unreachable!("SIGKILL ends the process")
    }
}
