//! What video jobs run on in tests: a worker's resources with local storage,
//! sample videos, and the `buybuddy process` command.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use buybuddy::{
    jobs::{Resources, resources::VideoSettings},
    queue::worker::WorkerConfig,
};
use buybuddy_worker::retry::Backoff;
use tokio::process::Command;

use super::{TestDb, binary, worker_config};

/// A worker's video resources for tests: local storage and scratch folders of
/// their own, the CPU segmenter, 8 frames per video, quick download retries.
pub struct TestPipeline {
    pub resources: Arc<Resources>,
    pub storage: buybuddy_worker::storage::Storage,
    pub storage_dir: tempfile::TempDir,
    pub scratch_dir: tempfile::TempDir,
}

impl TestPipeline {
    pub async fn new() -> Self {
        Self::with_limits(buybuddy_worker::download::Limits {
            max_bytes: 50 << 20,
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_millis(500),
            attempts: 2,
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(50)),
        })
        .await
    }

    pub async fn with_limits(limits: buybuddy_worker::download::Limits) -> Self {
        let storage_dir = tempfile::tempdir().unwrap();
        let scratch_dir = tempfile::tempdir().unwrap();
        let storage = buybuddy_worker::storage::Storage::open(
            storage_dir.path().to_str().unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        let resources = Resources {
            storage: Some(storage.clone()),
            segmenter: Some(Arc::new(
                buybuddy_worker::segment::ClassicSegmenter::default(),
            )),
            video: VideoSettings {
                frames: 8,
                limits,
                scratch: scratch_dir.path().to_owned(),
                ..VideoSettings::default()
            },
            ..Resources::default()
        };
        Self {
            resources: Arc::new(resources),
            storage,
            storage_dir,
            scratch_dir,
        }
    }

    /// The same, embedding with these embedders.
    pub fn with_embedders(mut self, embedders: Arc<buybuddy_worker::embed::Embedders>) -> Self {
        Arc::get_mut(&mut self.resources)
            .expect("resources not shared yet")
            .embedders = embedders;
        self
    }

    /// The same, finding products with this segmenter.
    pub fn with_segmenter(
        mut self,
        segmenter: Arc<dyn buybuddy_worker::segment::Segmenter>,
    ) -> Self {
        Arc::get_mut(&mut self.resources)
            .expect("resources not shared yet")
            .segmenter = Some(segmenter);
        self
    }

    /// Worker settings that run video jobs with these resources.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            resources: self.resources.clone(),
            ..worker_config()
        }
    }

    /// Every object key in storage.
    pub async fn objects(&self) -> Vec<String> {
        self.storage.list("").await.unwrap()
    }

    /// Whether the scratch folder holds anything (downloads must not linger).
    pub fn scratch_is_empty(&self) -> bool {
        std::fs::read_dir(self.scratch_dir.path()).unwrap().count() == 0
    }
}

/// A small sample video (320x240) of `frames` frames.
pub fn sample_video(dir: &std::path::Path, name: &str, frames: usize) -> PathBuf {
    let path = dir.join(name);
    buybuddy_worker::media::synthetic::Scene {
        width: 320,
        height: 240,
        frames,
        ..Default::default()
    }
    .write_video(&path, buybuddy_worker::media::synthetic::Codec::H264, false)
    .unwrap();
    path
}

/// `buybuddy process VIDEO --barcode B --frames N --storage DIR` against the
/// test database, quiet apart from warnings; callers add their own settings.
pub fn process_command(
    db: &TestDb,
    video: &Path,
    barcode: &str,
    frames: usize,
    storage: &Path,
) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("process")
        .arg(video)
        .args(["--barcode", barcode, "--frames", &frames.to_string()])
        .arg("--storage")
        .arg(storage)
        .env("DATABASE_URL", db.url.expose())
        .env("RUST_LOG", "warn");
    command
}
