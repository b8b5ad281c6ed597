//! `/events`: Server-Sent Events carrying the database's change notifications.
//! `?topic=jobs`, `?topic=job:<id>`, `?topic=products`, `?topic=product:<id>`
//! (repeatable) narrow the stream; without a topic everything is sent.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{RawQuery, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt, future};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::AppState;

pub async fn stream(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let topics = topics(query.as_deref().unwrap_or_default());
    let changes = BroadcastStream::new(state.hub.subscribe()).filter_map(move |item| {
        let event = match item {
            Ok(change) if topics.is_empty() || topics.iter().any(|t| change.matches(t)) => Some(
                Event::default()
                    .event(change.kind.as_str())
                    .data(&*change.payload),
            ),
            Ok(_) => None,
            // This client fell behind and missed changes: it should reload.
            Err(BroadcastStreamRecvError::Lagged(_)) => {
                Some(Event::default().event("resync").data("{}"))
            }
        };
        future::ready(event.map(Ok))
    });
    Sse::new(changes).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The `topic` values of a query string.
fn topics(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == "topic")
        .map(|(_, value)| value.replace("%3A", ":").replace("%3a", ":"))
        .filter(|value| !value.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_come_from_repeated_query_parameters() {
        assert_eq!(
            topics("topic=jobs&topic=job%3Aabc&x=1&topic="),
            vec!["jobs".to_owned(), "job:abc".to_owned()]
        );
        assert!(topics("").is_empty());
    }
}
