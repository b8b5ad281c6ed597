//! The kinds of work a worker runs. Each kind has one home (a file, or a folder
//! for a kind with stages): a serde payload, a stable name, an idempotent
//! `run`, and a `summary` of what the `jobs` row shows of it. `JobSpec` is what
//! is queued. Jobs reach the worker process's shared parts (storage, clients,
//! models) through [`Resources`].

pub mod augment;
pub mod context;
pub mod embed;
pub mod export;
pub mod match_shelf;
pub mod merchant_images;
pub mod merchant_suggest;
pub mod probes;
pub mod propose_boxes;
pub mod resources;
pub mod train;
pub mod video;

use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

pub use context::{JobContext, JobError};
pub use probes::{crash, fail, noop, sleep};
pub use resources::Resources;

/// One kind of job.
pub trait Job: Serialize + DeserializeOwned {
    /// The stable name stored in `jobs.kind`; never change it once jobs exist.
    const KIND: &'static str;

    /// Probe kinds test the queue itself; the web and API refuse them unless
    /// the server runs for testing.
    const PROBE: bool = false;

    /// How many attempts a job gets unless the one who queues it says otherwise.
    fn default_max_attempts(&self) -> u32 {
        5
    }

    /// How long one attempt may run before it is stopped and counted as failed.
    fn timeout(&self) -> Duration;

    /// What the `jobs` row shows of this job, for lists and searches.
    fn summary(&self) -> Summary {
        Summary::default()
    }

    /// Does the work. Running it again after a failure must not duplicate anything.
    fn run(&self, ctx: &JobContext) -> impl Future<Output = Result<Value, JobError>> + Send;
}

/// The columns of a `jobs` row that a kind may fill for people to find the job
/// by; results belong in the kind's own tables, keyed by `job_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub barcode: Option<String>,
    pub video_url: Option<String>,
    pub video_id: Option<i32>,
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
    Embed(embed::Embed),
    Augment(augment::Augment),
    Export(export::Export),
    Train(train::Train),
    MatchShelf(match_shelf::MatchShelf),
    ProposeBoxes(propose_boxes::ProposeBoxes),
    MerchantImages(merchant_images::MerchantImages),
    MerchantSuggest(merchant_suggest::MerchantSuggest),
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
            JobSpec::Embed($job) => $body,
            JobSpec::Augment($job) => $body,
            JobSpec::Export($job) => $body,
            JobSpec::Train($job) => $body,
            JobSpec::MatchShelf($job) => $body,
            JobSpec::ProposeBoxes($job) => $body,
            JobSpec::MerchantImages($job) => $body,
            JobSpec::MerchantSuggest($job) => $body,
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
    embed::Embed::KIND,
    augment::Augment::KIND,
    export::Export::KIND,
    train::Train::KIND,
    match_shelf::MatchShelf::KIND,
    propose_boxes::ProposeBoxes::KIND,
    merchant_images::MerchantImages::KIND,
    merchant_suggest::MerchantSuggest::KIND,
];

/// The stable names of the probe kinds.
pub const PROBE_KINDS: &[&str] = &[
    noop::Noop::KIND,
    sleep::Sleep::KIND,
    fail::Fail::KIND,
    crash::Crash::KIND,
];

/// Reads a list of kind names (e.g. a worker's `--kinds`), refusing unknown ones.
pub fn parse_kinds(names: &[String]) -> Result<Vec<&'static str>, String> {
    let mut kinds = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let kind = KINDS
            .iter()
            .find(|k| **k == name)
            .ok_or_else(|| format!("unknown job kind {name:?}; kinds are {}", KINDS.join(", ")))?;
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    Ok(kinds)
}

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        fn kind_of<J: Job>(_: &J) -> &'static str {
            J::KIND
        }
        with_job!(self, job => kind_of(job))
    }

    /// Whether this is a probe kind (see [`Job::PROBE`]).
    pub fn is_probe(&self) -> bool {
        fn probe<J: Job>(_: &J) -> bool {
            J::PROBE
        }
        with_job!(self, job => probe(job))
    }

    pub fn default_max_attempts(&self) -> u32 {
        with_job!(self, job => job.default_max_attempts())
    }

    pub fn timeout(&self) -> Duration {
        with_job!(self, job => job.timeout())
    }

    pub fn summary(&self) -> Summary {
        with_job!(self, job => job.summary())
    }

    /// Runs the job. Each kind's future is boxed on its own, so a small job
    /// does not carry (and move through the queue's layers) the state of the
    /// largest kind.
    pub fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> futures::future::BoxFuture<'a, Result<Value, JobError>> {
        with_job!(self, job => Box::pin(job.run(ctx)))
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

    fn one_of_each() -> Vec<JobSpec> {
        vec![
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
                video_id: Some(7),
                frames: None,
                background: None,
            }),
            JobSpec::Embed(embed::Embed {
                product_id: uuid::Uuid::nil(),
                model_id: 1,
            }),
            JobSpec::Augment(augment::Augment { version_id: 1 }),
            JobSpec::Export(export::Export { export_id: 1 }),
            JobSpec::Train(train::Train { run_id: 1 }),
            JobSpec::MatchShelf(match_shelf::MatchShelf {
                image_ids: vec![1],
                model_id: 1,
            }),
            JobSpec::ProposeBoxes(propose_boxes::ProposeBoxes {
                image_ids: vec![1],
                prompts: vec!["product".into()],
                min_score: 0.3,
            }),
            JobSpec::MerchantImages(merchant_images::MerchantImages { merchant_id: 1 }),
            JobSpec::MerchantSuggest(merchant_suggest::MerchantSuggest {}),
        ]
    }

    #[test]
    fn every_kind_is_listed_once_and_the_probes_say_so() {
        let specs = one_of_each();
        let kinds: Vec<&str> = specs.iter().map(JobSpec::kind).collect();
        assert_eq!(kinds, KINDS);
        let probes: Vec<&str> = specs
            .iter()
            .filter(|s| s.is_probe())
            .map(JobSpec::kind)
            .collect();
        assert_eq!(probes, PROBE_KINDS);
    }

    #[test]
    fn a_video_job_summarises_itself_for_its_row_and_probes_leave_it_empty() {
        let specs = one_of_each();
        assert_eq!(specs[0].summary(), Summary::default());
        assert_eq!(
            specs[4].summary(),
            Summary {
                barcode: Some("1".into()),
                video_url: Some("clip.mp4".into()),
                video_id: Some(7),
            }
        );
    }

    #[test]
    fn kind_lists_refuse_unknown_names_and_drop_repeats() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_kinds(&names(&["video", " sleep", "video"])).unwrap(),
            vec!["video", "sleep"]
        );
        assert!(
            parse_kinds(&names(&["video", "teleport"]))
                .unwrap_err()
                .contains("unknown job kind \"teleport\"")
        );
    }
}
