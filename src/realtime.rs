//! Realtime updates: the database announces every change on one channel (see
//! migrations/*_realtime.sql); the server LISTENs on one connection and fans the
//! notifications out to subscribers, re-establishing the connection when it drops.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The channel the database's triggers notify on.
pub const CHANNEL: &str = "buybuddy_events";

/// One change, as announced by the database.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What changed: `job`, `job_event`, `product`, or `resync` when changes may
    /// have been missed (after a reconnect) and views should reload.
    pub kind: String,
    /// The changed row's id (for `job_event`, the job's id).
    pub subject: Option<String>,
    /// The notification's JSON, passed on as is.
    pub payload: Arc<str>,
}

#[derive(Deserialize)]
struct Envelope {
    topic: String,
    id: Option<serde_json::Value>,
    job_id: Option<String>,
}

/// A notification announcing several rows' changes, each as one change's JSON.
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    batch: Vec<&'a serde_json::value::RawValue>,
}

impl Change {
    /// The changes one notification announces: a single change, or a batch
    /// (`{"batch": [...]}`, as the job triggers send them) of single changes.
    pub fn parse_all(payload: &str) -> Vec<Self> {
        match serde_json::from_str::<Batch>(payload) {
            Ok(batch) => batch
                .batch
                .iter()
                .filter_map(|change| Self::parse(change.get()))
                .collect(),
            Err(_) => Self::parse(payload).into_iter().collect(),
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        let envelope: Envelope = serde_json::from_str(payload).ok()?;
        let subject = match envelope.topic.as_str() {
            "job_event" => envelope.job_id,
            _ => envelope.id.map(|id| match id {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
        };
        Some(Self {
            kind: envelope.topic,
            subject,
            payload: payload.into(),
        })
    }

    fn resync() -> Self {
        Self {
            kind: "resync".to_owned(),
            subject: None,
            payload: r#"{"topic":"resync"}"#.into(),
        }
    }

    /// Whether a subscriber to `topic` wants this change. Topics: `jobs` (every
    /// job), `job:<id>` (one job and its log), `products`, `product:<id>`.
    /// `resync` goes to everyone.
    pub fn matches(&self, topic: &str) -> bool {
        let subject = self.subject.as_deref().unwrap_or_default();
        match (self.kind.as_str(), topic.split_once(':')) {
            ("resync", _) => true,
            ("job", None) => topic == "jobs",
            ("job" | "job_event", Some(("job", id))) => id == subject,
            ("product", None) => topic == "products",
            ("product", Some(("product", id))) => id == subject,
            _ => false,
        }
    }
}

/// Fans database notifications out to any number of subscribers.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Change>,
    state: Arc<Listening>,
}

/// Whether the listener is connected, and how many changes it has seen.
#[derive(Default)]
struct Listening {
    connected: AtomicBool,
    changes: AtomicU64,
}

impl Hub {
    /// Starts listening; the listener runs until `shutdown` fires.
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(4096);
        let state = Arc::new(Listening::default());
        tokio::spawn(listen(pool, sender.clone(), state.clone(), shutdown));
        Self { sender, state }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A number that grows with every change the database announces; while
    /// the listener is not connected, changes may go unseen and there is none.
    /// Two equal readings mean nothing changed in between.
    pub fn generation(&self) -> Option<u64> {
        self.state
            .connected
            .load(Ordering::Acquire)
            .then(|| self.state.changes.load(Ordering::Acquire))
    }
}

async fn listen(
    pool: PgPool,
    sender: broadcast::Sender<Change>,
    state: Arc<Listening>,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(250);
    let mut connected_before = false;
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            if connected_before {
                tracing::info!("realtime listener reconnected");
                // Changes made while we were away are lost: tell views to reload.
                let _ = sender.send(Change::resync());
            }
            connected_before = true;
            delay = Duration::from_millis(250);
            // Anything computed before now may be out of date.
            state.changes.fetch_add(1, Ordering::AcqRel);
            state.connected.store(true, Ordering::Release);
            loop {
                match listener.try_recv().await? {
                    Some(notification) => {
                        state.changes.fetch_add(1, Ordering::AcqRel);
                        for change in Change::parse_all(notification.payload()) {
                            let _ = sender.send(change);
                        }
                    }
                    None => return Ok::<(), sqlx::Error>(()),
                }
            }
        };
        let result = tokio::select! {
            result = session => result,
            _ = shutdown.cancelled() => return,
        };
        state.connected.store(false, Ordering::Release);
        match result {
            Ok(()) => tracing::warn!("realtime listener lost its connection; reconnecting"),
            Err(error) => tracing::warn!(%error, "realtime listener failed; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_reach_the_topics_that_asked_for_them() {
        let job = Change::parse(r#"{"topic":"job","id":"a1","status":"running"}"#).unwrap();
        assert!(job.matches("jobs"));
        assert!(job.matches("job:a1"));
        assert!(!job.matches("job:b2"));
        assert!(!job.matches("products"));

        let line = Change::parse(r#"{"topic":"job_event","id":7,"job_id":"a1"}"#).unwrap();
        assert!(line.matches("job:a1"));
        assert!(!line.matches("jobs"));

        let product = Change::parse(r#"{"topic":"product","id":"p9"}"#).unwrap();
        assert!(product.matches("products") && product.matches("product:p9"));
        assert!(!product.matches("jobs"));

        assert!(Change::resync().matches("job:a1"));
        assert!(Change::parse("not json").is_none());
    }

    #[test]
    fn a_batch_notification_is_each_of_its_changes_with_its_own_payload() {
        let changes = Change::parse_all(
            r#"{"batch":[{"topic":"job","id":"a1","status":"completed"},{"topic":"job_event","id":7,"job_id":"a1"}]}"#,
        );
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].kind, "job");
        assert_eq!(
            &*changes[0].payload,
            r#"{"topic":"job","id":"a1","status":"completed"}"#
        );
        assert!(changes[1].matches("job:a1") && !changes[1].matches("jobs"));

        let single = Change::parse_all(r#"{"topic":"product","id":"p9"}"#);
        assert_eq!(single.len(), 1);
        assert!(single[0].matches("product:p9"));
        assert!(Change::parse_all("not json").is_empty());
    }
}
