//! The download stage: a video from `http(s)://`, `s3://` or the local disk
//! into a file the decoder can read. Remote videos are streamed to a file under
//! a size limit, with connect and read timeouts; timeouts, dropped connections,
//! 429 and 5xx answers are retried with backoff, other refusals fail at once.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::{
    retry::{self, Backoff, Retried, Try},
    storage::{S3Settings, StorageError, download_object},
};

/// How far a download may go.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest video accepted, in bytes.
    pub max_bytes: u64,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of an answer.
    pub read_timeout: Duration,
    /// Tries in all, for errors worth another try.
    pub attempts: u32,
    pub backoff: Backoff,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 2 << 30,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{url} refused the download ({status})")]
    Refused { url: String, status: u16 },
    #[error("the video is larger than the limit of {}", human_bytes(*limit))]
    TooLarge { limit: u64 },
    #[error("{url} could not be downloaded after {attempts} attempts: {last}")]
    Unreachable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{0:?} is not a video location: use http(s)://, s3://bucket/key or a file path")]
    Unsupported(String),
    #[error("writing the download failed: {0}")]
    Io(#[from] std::io::Error),
}

impl DownloadError {
    /// Whether trying the whole job again later cannot help.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Unreachable { .. } | Self::Io(_))
    }
}

/// A video on the local disk, ready to decode.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Fetches `source` into `folder` (remote videos) or checks it in place (local
/// files, which are not copied).
pub async fn fetch(
    source: &str,
    folder: &Path,
    limits: &Limits,
    s3: &S3Settings,
) -> Result<Downloaded, DownloadError> {
    if source.starts_with("http://") || source.starts_with("https://") {
        return http(source, &folder.join("video"), limits).await;
    }
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| DownloadError::Unsupported(source.to_owned()))?;
        return from_s3(source, bucket, key, &folder.join("video"), limits, s3).await;
    }
    if source.contains("://") && !source.starts_with("file://") {
        return Err(DownloadError::Unsupported(source.to_owned()));
    }
    let path = PathBuf::from(source.strip_prefix("file://").unwrap_or(source));
    let bytes = match tokio::fs::metadata(&path).await {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => return Err(DownloadError::Unsupported(source.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DownloadError::NotFound(path.display().to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    if bytes > limits.max_bytes {
        return Err(DownloadError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok(Downloaded { path, bytes })
}

async fn http(url: &str, target: &Path, limits: &Limits) -> Result<Downloaded, DownloadError> {
    let client = reqwest::Client::builder()
        .connect_timeout(limits.connect_timeout)
        .read_timeout(limits.read_timeout)
        .user_agent(concat!("buybuddy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DownloadError::Unreachable {
            url: url.to_owned(),
            attempts: 0,
            last: e.to_string(),
        })?;
    let backoff = limits.backoff;
    // A Retry-After is a floor: the backoff still grows between tries.
    let pause = |attempt: u32, asked: Option<Duration>| {
        Ok(backoff.delay(attempt).max(asked.unwrap_or_default()))
    };
    let client = &client;
    let tries = || async move {
        let tried = http_once(client, url, target, limits.max_bytes).await;
        if !matches!(tried, Try::Done(_)) {
            // Nothing half written is left behind, whatever comes next.
            let _ = tokio::fs::remove_file(target).await;
        }
        tried
    };
    retry::run(limits.attempts, &format!("download of {url}"), pause, tries)
        .await
        .map_err(|ended| match ended {
            Retried::Failed(error) => error,
            Retried::GaveUp { attempts, last } => DownloadError::Unreachable {
                url: url.to_owned(),
                attempts,
                last,
            },
        })
}

async fn http_once(
    client: &reqwest::Client,
    url: &str,
    target: &Path,
    limit: u64,
) -> Try<Downloaded, DownloadError> {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) => {
            return Try::Again {
                reason: describe(&e),
                wait: None,
            };
        }
    };
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Try::Fail(DownloadError::NotFound(url.to_owned()));
    }
    if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
        let after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        return Try::Again {
            reason: format!("the server answered {status}"),
            wait: after,
        };
    }
    if !status.is_success() {
        return Try::Fail(DownloadError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Try::Fail(DownloadError::TooLarge { limit });
    }
    let mut file = match tokio::fs::File::create(target).await {
        Ok(file) => file,
        Err(e) => return Try::Fail(e.into()),
    };
    let mut body = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return Try::Again {
                    reason: describe(&e),
                    wait: None,
                };
            }
        };
        written += chunk.len() as u64;
        if written > limit {
            return Try::Fail(DownloadError::TooLarge { limit });
        }
        if let Err(e) = file.write_all(&chunk).await {
            return Try::Fail(e.into());
        }
    }
    if let Err(e) = file.flush().await {
        return Try::Fail(e.into());
    }
    Try::Done(Downloaded {
        path: target.to_owned(),
        bytes: written,
    })
}

/// A reqwest error in words a person understands.
fn describe(error: &reqwest::Error) -> String {
    crate::http::describe(error, "the server stopped sending (timed out)")
}

async fn from_s3(
    url: &str,
    bucket: &str,
    key: &str,
    target: &Path,
    limits: &Limits,
    s3: &S3Settings,
) -> Result<Downloaded, DownloadError> {
    let client = s3.client().await;
    let mut last = String::new();
    let attempts = limits.attempts.max(1);
    for attempt in 1..=attempts {
        match download_object(&client, bucket, key, target, limits.max_bytes).await {
            Ok(bytes) => {
                return Ok(Downloaded {
                    path: target.to_owned(),
                    bytes,
                });
            }
            Err(StorageError::NotFound(_)) => return Err(DownloadError::NotFound(url.to_owned())),
            Err(StorageError::TooLarge { limit, .. }) => {
                let _ = tokio::fs::remove_file(target).await;
                return Err(DownloadError::TooLarge { limit });
            }
            Err(error) => {
                let _ = tokio::fs::remove_file(target).await;
                last = error.to_string();
                if attempt < attempts {
                    tokio::time::sleep(limits.backoff.delay(attempt)).await;
                }
            }
        }
    }
    Err(DownloadError::Unreachable {
        url: url.to_owned(),
        attempts,
        last,
    })
}

/// "2 GiB", "300 MiB", "512 bytes".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value.fract() == 0.0 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(human_bytes(512), "512 bytes");
    }

    #[tokio::test]
    async fn local_files_are_checked_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("clip.mp4");
        std::fs::write(&video, vec![0u8; 2048]).unwrap();
        let settings = S3Settings::default();
        let limits = Limits::default();
        let found = fetch(video.to_str().unwrap(), dir.path(), &limits, &settings)
            .await
            .unwrap();
        assert_eq!((found.path.as_path(), found.bytes), (video.as_path(), 2048));
        let url = format!("file://{}", video.display());
        assert!(fetch(&url, dir.path(), &limits, &settings).await.is_ok());

        let missing = fetch("/no/such/clip.mp4", dir.path(), &limits, &settings).await;
        assert!(matches!(missing, Err(DownloadError::NotFound(_))));
        let small = Limits {
            max_bytes: 1024,
            ..Limits::default()
        };
        let big = fetch(video.to_str().unwrap(), dir.path(), &small, &settings).await;
        assert!(matches!(big, Err(DownloadError::TooLarge { limit: 1024 })));
        let ftp = fetch("ftp://example.com/clip.mp4", dir.path(), &limits, &settings).await;
        assert!(matches!(ftp, Err(DownloadError::Unsupported(_))));
        assert!(ftp.unwrap_err().is_permanent());
    }
}
