//! The kinds of work a worker runs. Each kind lives in its own file: a serde
//! payload, a stable name, an idempotent `run`. `JobSpec` is what is queued.

pub mod context;
pub mod crash;
pub mod fail;
pub mod noop;
pub mod sleep;
pub mod video;

use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

pub use context::{JobContext, JobError};

/// One kind of job.
pub trait Job: Serialize + DeserializeOwned {
    /// The stable name stored in `jobs.kind`; never change it once jobs exist.
    const KIND: &'static str;

    /// How many attempts a job gets unless the one who queues it says otherwise.
    fn default_max_attempts(&self) -> u32 {
        5
    }

    /// How long one attempt may run before it is stopped and counted as failed.
    fn timeout(&self) -> Duration;

    /// Does the work. Running it again after a failure must not duplicate anything.
    fn run(&self, ctx: &JobContext) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// Every job kind, as queued: `{"kind": "sleep", "millis": 500, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    Noop(noop::Noop),
    Sleep(sleep::Sleep),
    Fail(fail::Fail),
    Crash(crash::Crash),
    Video(video::Video),
}

/// Calls `$body` with the job of whichever kind `$spec` holds, bound to `$job`.
macro_rules! with_job {
    ($spec:expr, $job:ident => $body:expr) => {
        match $spec {
            JobSpec::Noop($job) => $body,
            JobSpec::Sleep($job) => $body,
            JobSpec::Fail($job) => $body,
            JobSpec::Crash($job) => $body,
            JobSpec::Video($job) => $body,
        }
    };
}

/// The stable names of all kinds.
pub const KINDS: &[&str] = &[
    noop::Noop::KIND,
    sleep::Sleep::KIND,
    fail::Fail::KIND,
    crash::Crash::KIND,
    video::Video::KIND,
];

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        fn kind_of<J: Job>(_: &J) -> &'static str {
            J::KIND
        }
        with_job!(self, job => kind_of(job))
    }

    pub fn default_max_attempts(&self) -> u32 {
        with_job!(self, job => job.default_max_attempts())
    }

    pub fn timeout(&self) -> Duration {
        with_job!(self, job => job.timeout())
    }

    pub async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        with_job!(self, job => job.run(ctx).await)
    }
}

/// What the queue carries for one job: the job's id and its spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job_id: uuid::Uuid,
    #[serde(flatten)]
    pub spec: JobSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_job_reads_back_as_written() {
        let job = QueuedJob {
            job_id: uuid::Uuid::now_v7(),
            spec: JobSpec::Sleep(sleep::Sleep {
                millis: 250,
                steps: 5,
            }),
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["kind"], "sleep");
        assert_eq!(json["millis"], 250);
        assert_eq!(serde_json::from_value::<QueuedJob>(json).unwrap(), job);
    }

    #[test]
    fn every_kind_is_listed_once() {
        let specs = [
            JobSpec::Noop(noop::Noop {}),
            JobSpec::Sleep(sleep::Sleep {
                millis: 1,
                steps: 1,
            }),
            JobSpec::Fail(fail::Fail::default()),
            JobSpec::Crash(crash::Crash {}),
            JobSpec::Video(video::Video {
                video_url: "clip.mp4".into(),
                barcode: "1".into(),
                video_id: None,
                frames: None,
                background: None,
            }),
        ];
        let kinds: Vec<&str> = specs.iter().map(JobSpec::kind).collect();
        assert_eq!(kinds, KINDS);
    }
}
