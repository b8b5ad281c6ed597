//! The download stage against a local HTTP server that behaves like real ones
//! do on bad days: missing files, refusals, 503s, rate limits, stalls, floods.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use buybuddy_worker::{
    download::{DownloadError, Limits, fetch},
    retry::Backoff,
    storage::S3Settings,
};
use futures::stream;

const VIDEO: &[u8] = b"not really a video, but bytes are bytes";

#[derive(Clone, Default)]
struct Counters {
    flaky: Arc<AtomicU32>,
    limited: Arc<AtomicU32>,
}

async fn server() -> (SocketAddr, Counters) {
    let counters = Counters::default();
    let app = Router::new()
        .route("/video.mp4", get(|| async { VIDEO }))
        .route("/missing.mp4", get(|| async { StatusCode::NOT_FOUND }))
        .route("/private.mp4", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/flaky.mp4",
            get(|State(c): State<Counters>| async move {
                if c.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    VIDEO.into_response()
                }
            }),
        )
        .route(
            "/limited.mp4",
            get(|State(c): State<Counters>| async move {
                if c.limited.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
                } else {
                    VIDEO.into_response()
                }
            }),
        )
        .route(
            "/stall.mp4",
            get(|| async {
                // A few bytes, then nothing, forever.
                let body = stream::once(async { Ok::<_, std::io::Error>(b"first bytes".to_vec()) })
                    .chain(stream::pending());
                Response::new(Body::from_stream(body))
            }),
        )
        .route(
            "/huge.mp4",
            // Announced up front: refused before reading.
            get(|| async { vec![0u8; 200_000] }),
        )
        .route(
            "/flood.mp4",
            get(|| async {
                // No length announced: the limit must be enforced while reading.
                let chunks =
                    stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![7u8; 4096])));
                Response::new(Body::from_stream(chunks))
            }),
        )
        .with_state(counters.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, counters)
}

use futures::StreamExt;

fn limits() -> Limits {
    Limits {
        max_bytes: 100_000,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(100)),
    }
}

async fn get_it(address: SocketAddr, path: &str) -> Result<Vec<u8>, DownloadError> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{address}{path}");
    let done = fetch(&url, dir.path(), &limits(), &S3Settings::default()).await?;
    Ok(std::fs::read(done.path).unwrap())
}

#[tokio::test]
async fn a_video_downloads_to_a_file() {
    let (address, _) = server().await;
    assert_eq!(get_it(address, "/video.mp4").await.unwrap(), VIDEO);
}

#[tokio::test]
async fn missing_and_refused_videos_fail_at_once_for_good() {
    let (address, _) = server().await;
    let started = Instant::now();
    let missing = get_it(address, "/missing.mp4").await.unwrap_err();
    assert!(matches!(missing, DownloadError::NotFound(_)), "{missing}");
    assert!(missing.is_permanent());
    assert!(missing.to_string().contains("was not found"));
    let private = get_it(address, "/private.mp4").await.unwrap_err();
    assert!(
        matches!(private, DownloadError::Refused { status: 403, .. }),
        "{private}"
    );
    assert!(private.is_permanent());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no retries for these"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let (address, counters) = server().await;
    assert_eq!(get_it(address, "/flaky.mp4").await.unwrap(), VIDEO);
    assert_eq!(counters.flaky.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_the_server_asks() {
    let (address, counters) = server().await;
    let started = Instant::now();
    assert_eq!(get_it(address, "/limited.mp4").await.unwrap(), VIDEO);
    assert_eq!(counters.limited.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn a_stalled_download_times_out_and_is_reported_as_worth_retrying_later() {
    let (address, _) = server().await;
    let started = Instant::now();
    let stalled = get_it(address, "/stall.mp4").await.unwrap_err();
    println!("{stalled} (after {:?})", started.elapsed());
    assert!(
        matches!(stalled, DownloadError::Unreachable { attempts: 3, .. }),
        "{stalled}"
    );
    assert!(stalled.to_string().contains("timed out"), "{stalled}");
    assert!(!stalled.is_permanent());
}

#[tokio::test]
async fn videos_over_the_size_limit_are_refused_announced_or_not() {
    let (address, _) = server().await;
    for path in ["/huge.mp4", "/flood.mp4"] {
        let error = get_it(address, path).await.unwrap_err();
        assert!(
            matches!(error, DownloadError::TooLarge { limit: 100_000 }),
            "{path}: {error}"
        );
        assert!(
            error
                .to_string()
                .contains("larger than the limit of 97.7 KiB"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn nothing_is_left_in_the_folder_after_a_failed_download() {
    let (address, _) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{address}/flood.mp4");
    assert!(
        fetch(&url, dir.path(), &limits(), &S3Settings::default())
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
