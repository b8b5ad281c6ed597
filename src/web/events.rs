//! `/events`: Server-Sent Events carrying the database's change notifications.
//! `?topic=jobs`, `?topic=job:<id>`, `?topic=products`, `?topic=product:<id>`
//! (repeatable) narrow the stream; without a topic everything is sent.
//!
//! `?coalesce=<ms>` is for pages: at most one event of each kind per window,
//! the first of a burst at once and the last of it when the window closes, so
//! a page that reloads on every event keeps up with thousands of changes a
//! second and still ends on the final state.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{RawQuery, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt, future};
use tokio::{sync::mpsc, time::Instant};
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream, errors::BroadcastStreamRecvError};

use super::AppState;

/// The longest coalescing window a client may ask for.
const MAX_COALESCE: Duration = Duration::from_secs(10);

pub async fn stream(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let query = Query::parse(query.as_deref().unwrap_or_default());
    let topics = query.topics;
    let changes = BroadcastStream::new(state.hub.subscribe()).filter_map(move |item| {
        let event = match item {
            Ok(change) if topics.is_empty() || topics.iter().any(|t| change.matches(t)) => {
                let event = Event::default()
                    .event(change.kind.as_str())
                    .data(&*change.payload);
                Some((change.kind, event))
            }
            Ok(_) => None,
            // This client fell behind and missed changes: it should reload.
            Err(BroadcastStreamRecvError::Lagged(_)) => Some((
                "resync".to_owned(),
                Event::default().event("resync").data("{}"),
            )),
        };
        future::ready(event)
    });
    let events = match query.coalesce {
        Some(window) => coalesced(changes, window).boxed(),
        None => changes.map(|(_, event)| event).boxed(),
    };
    Sse::new(events.map(Ok)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Passes the first event of each burst at once, then holds the rest: when
/// the window closes, the newest held event of each kind goes out and a new
/// window opens; a window with nothing held ends the burst.
fn coalesced(
    changes: impl Stream<Item = (String, Event)> + Send + 'static,
    window: Duration,
) -> impl Stream<Item = Event> {
    let (sender, receiver) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut changes = std::pin::pin!(changes);
        let mut held: Vec<(String, Event)> = Vec::new();
        let mut window_ends: Option<Instant> = None;
        loop {
            let window_closed = async {
                match window_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => future::pending().await,
                }
            };
            tokio::select! {
                change = changes.next() => {
                    let Some((kind, event)) = change else { break };
                    if window_ends.is_none() {
                        window_ends = Some(Instant::now() + window);
                        if sender.send(event).await.is_err() {
                            break;
                        }
                    } else if let Some(slot) = held.iter_mut().find(|(k, _)| *k == kind) {
                        slot.1 = event;
                    } else {
                        held.push((kind, event));
                    }
                }
                () = window_closed => {
                    if held.is_empty() {
                        window_ends = None;
                        continue;
                    }
                    window_ends = Some(Instant::now() + window);
                    for (_, event) in held.drain(..) {
                        if sender.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                () = sender.closed() => break,
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// What a client asked for in the query string.
#[derive(Debug, Default, PartialEq)]
struct Query {
    topics: Vec<String>,
    coalesce: Option<Duration>,
}

impl Query {
    fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            match key {
                "topic" if !value.is_empty() => parsed
                    .topics
                    .push(value.replace("%3A", ":").replace("%3a", ":")),
                "coalesce" => {
                    parsed.coalesce = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(|ms| Duration::from_millis(ms).min(MAX_COALESCE));
                }
                _ => {}
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_the_window_come_from_the_query_string() {
        let query = Query::parse("topic=jobs&topic=job%3Aabc&x=1&topic=&coalesce=500");
        assert_eq!(query.topics, vec!["jobs".to_owned(), "job:abc".to_owned()]);
        assert_eq!(query.coalesce, Some(Duration::from_millis(500)));
        assert_eq!(Query::parse(""), Query::default());
        assert_eq!(Query::parse("coalesce=0").coalesce, None);
        assert_eq!(Query::parse("coalesce=x").coalesce, None);
        assert_eq!(Query::parse("coalesce=999999").coalesce, Some(MAX_COALESCE));
    }

    fn change(kind: &str, n: u32) -> (String, Event) {
        (
            kind.to_owned(),
            Event::default().event(kind).data(n.to_string()),
        )
    }

    /// The text an event goes out as, to compare events.
    fn wire(event: Event) -> String {
        use axum::response::IntoResponse;
        let body = Sse::new(futures::stream::iter([Ok::<_, Infallible>(event)])).into_response();
        let bytes = futures::executor::block_on(axum::body::to_bytes(body.into_body(), 1 << 16));
        String::from_utf8(bytes.unwrap().to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_sends_its_first_and_its_last_change_of_each_kind() {
        let (sender, receiver) = mpsc::channel(64);
        let mut out = coalesced(ReceiverStream::new(receiver), Duration::from_millis(500)).boxed();
        for n in 0..10 {
            sender.send(change("job", n)).await.unwrap();
        }
        sender.send(change("job_event", 1)).await.unwrap();
        sender.send(change("job_event", 2)).await.unwrap();

        // The first goes out at once.
        assert!(wire(out.next().await.unwrap()).contains("data: 0"));
        // The rest wait for the window: the newest of each kind, in first-seen order.
        let started = Instant::now();
        let job = wire(out.next().await.unwrap());
        let line = wire(out.next().await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(499));
        assert!(
            job.contains("event: job\n") && job.contains("data: 9"),
            "{job}"
        );
        assert!(
            line.contains("event: job_event") && line.contains("data: 2"),
            "{line}"
        );

        // After a quiet window, the next change goes out at once again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = Instant::now();
        sender.send(change("job", 42)).await.unwrap();
        assert!(wire(out.next().await.unwrap()).contains("data: 42"));
        assert!(before.elapsed() < Duration::from_millis(10));

        drop(sender);
        assert!(
            out.next().await.is_none(),
            "the stream ends with its source"
        );
    }
}
