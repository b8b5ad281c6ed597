//! What a running job sees of the platform: its identity, the worker process's
//! shared [`Resources`], a way to report progress (which is also where it learns
//! it was cancelled), and its errors.

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use super::Resources;
use crate::db;

/// The running attempt of one job.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job_id: Uuid,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// What the worker process holds for its jobs: storage, clients, models.
    pub resources: Arc<Resources>,
    pool: PgPool,
    /// The queue the job came from, where it queues follow-up jobs.
    queue: String,
    /// Fires when the worker process is asked to stop: long jobs (training)
    /// save their state and hand themselves back instead of being cut off
    /// at the end of the grace period.
    stopping: tokio_util::sync::CancellationToken,
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Someone cancelled the job; it stopped at a stage boundary.
    #[error("cancelled")]
    Cancelled,
    /// Worth another attempt (a timeout, a 503, a lost connection).
    #[error(transparent)]
    Transient(anyhow::Error),
    /// Another attempt would fail the same way (a 404, a file that is not a video).
    #[error(transparent)]
    Permanent(anyhow::Error),
}

impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> Self {
        Self::Transient(error)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

/// How important an event line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl JobContext {
    pub fn new(
        pool: PgPool,
        job_id: Uuid,
        attempt: u32,
        max_attempts: u32,
        resources: Arc<Resources>,
    ) -> Self {
        Self {
            job_id,
            attempt,
            max_attempts,
            resources,
            pool,
            queue: crate::queue::DEFAULT_QUEUE.to_owned(),
            stopping: Default::default(),
        }
    }

    /// The queue follow-up jobs go to (the default queue unless set).
    pub fn on_queue(mut self, queue: &str) -> Self {
        queue.clone_into(&mut self.queue);
        self
    }

    /// The token that fires when the worker is stopping.
    pub fn stopping_with(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.stopping = token;
        self
    }

    /// Whether the worker process is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The database, for jobs that save their own results.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Enters a stage: records it with the overall progress and an event line.
    /// Fails with [`JobError::Cancelled`] when the job was cancelled meanwhile.
    pub async fn stage(&self, stage: &str, progress: u8, message: &str) -> Result<(), JobError> {
        self.report(Some(stage), progress, Some((Level::Info, message)))
            .await
    }

    /// Updates the progress within the current stage.
    pub async fn progress(&self, progress: u8) -> Result<(), JobError> {
        self.report(None, progress, None).await
    }

    /// Adds a line to the job's event log.
    pub async fn event(&self, level: Level, message: &str) -> Result<(), JobError> {
        db::job_events::insert_in_current_stage(&self.pool, self.job_id, level.as_str(), message)
            .await?;
        Ok(())
    }

    async fn report(
        &self,
        stage: Option<&str>,
        progress: u8,
        event: Option<(Level, &str)>,
    ) -> Result<(), JobError> {
        let cancelled = db::attempts::report_progress(
            &self.pool,
            self.job_id,
            stage,
            progress.min(100),
            event.map(|(level, message)| (level.as_str(), message)),
        )
        .await?;
        if cancelled {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }
}
