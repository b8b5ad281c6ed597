//! Wake-ups for a worker's lanes from one LISTEN connection. apalis's own
//! `Pubsub` holds a connection per apalis worker, and a worker runs one per
//! lane: with a pool of 10 and five kinds, half the pool would sit listening.
//! Here one listener per process hears every pushed task
//! (`apalis::job::insert`, whose payload names the task's queue) and wakes the
//! lane it belongs to. Lost notifications (while reconnecting) only delay a
//! task until the lane's next poll.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, stream::BoxStream};
use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The channel apalis-postgres notifies on when tasks are pushed.
const CHANNEL: &str = "apalis::job::insert";

/// What apalis sends with each pushed task.
#[derive(Deserialize)]
struct Pushed {
    job_type: String,
}

/// The lanes of one process, each with its wake-up.
#[derive(Clone, Default)]
pub struct WakeUps {
    lanes: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl WakeUps {
    /// Starts listening; stops when `stop` fires.
    pub fn listen(pool: PgPool, stop: CancellationToken) -> Self {
        let wake_ups = Self::default();
        tokio::spawn(wake_ups.clone().run(pool, stop));
        wake_ups
    }

    /// A stream that yields whenever a task is pushed to `lane`.
    pub fn subscribe(&self, lane: &str) -> impl Stream<Item = ()> + Unpin + Send + Sync + 'static {
        let notify = self
            .lanes
            .lock()
            .expect("not poisoned")
            .entry(lane.to_owned())
            .or_default()
            .clone();
        let stream = futures::stream::unfold(notify, |notify| async move {
            notify.notified().await;
            Some(((), notify))
        });
        Synced(Mutex::new(Box::pin(stream)))
    }

    fn wake(&self, lane: &str) {
        if let Some(notify) = self.lanes.lock().expect("not poisoned").get(lane) {
            // A permit is kept when the lane is busy: its next look finds the task.
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self.lanes.lock().expect("not poisoned").values() {
            notify.notify_one();
        }
    }

    async fn run(self, pool: PgPool, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            let error = tokio::select! {
                ended = self.listen_once(&pool, &mut failures) => ended.err(),
                _ = stop.cancelled() => return,
            };
            failures += 1;
            if let Some(error) = error {
                tracing::warn!(%error, "listening for new jobs failed; lanes poll meanwhile");
            }
            let wait = Duration::from_millis(200 * 2u64.pow(failures.min(6)));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Listens until the connection fails.
    async fn listen_once(
        &self,
        pool: &PgPool,
        failures: &mut u32,
    ) -> Result<std::convert::Infallible, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        *failures = 0;
        // Tasks pushed while no one listened: every lane looks once.
        self.wake_all();
        loop {
            let notification = listener.recv().await?;
            if let Ok(pushed) = serde_json::from_str::<Pushed>(notification.payload()) {
                self.wake(&pushed.job_type);
            }
        }
    }
}

/// A stream that apalis may share between threads (it asks for `Sync`).
struct Synced(Mutex<BoxStream<'static, ()>>);

impl Stream for Synced {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.0.lock().expect("not poisoned").as_mut().poll_next(cx)
    }
}
