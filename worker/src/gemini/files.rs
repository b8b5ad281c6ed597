//! The Files API, for videos too large to travel inline: a resumable upload
//! (start, then upload and finalize in one request), polling until the file is
//! `ACTIVE`, and deletion once the answer is in.

use std::{path::Path, time::Instant};

use reqwest::Method;
use serde_json::json;

use super::{
    API_VERSION, Failure, Gemini, GeminiError,
    wire::{RemoteFile, UploadedFile, parse_json},
};

impl Gemini {
    /// Starts a resumable upload and sends the whole video in one request.
    pub async fn upload_file(
        &self,
        video: &Path,
        size: u64,
        mime_type: &str,
        display_name: &str,
    ) -> Result<RemoteFile, GeminiError> {
        let start_url = self.url(&format!("upload/{API_VERSION}/files"));
        let file_name = video
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".to_owned());
        // The upload headers of the start request go with the upload as well,
        // as the official SDK sends them.
        let upload_headers = [
            ("X-Goog-Upload-Protocol", "resumable".to_owned()),
            ("X-Goog-Upload-Header-Content-Length", size.to_string()),
            ("X-Goog-Upload-Header-Content-Type", mime_type.to_owned()),
            ("X-Goog-Upload-File-Name", file_name),
        ];
        self.retrying("file upload", || async {
            let mut start = self
                .request(Method::POST, &start_url)
                .header("X-Goog-Upload-Command", "start")
                .json(&json!({ "file": {
                    "displayName": display_name,
                    "mimeType": mime_type,
                    "sizeBytes": size,
                } }));
            for (name, value) in &upload_headers {
                start = start.header(*name, value);
            }
            let started = self.send(start).await?;
            let upload_url = started
                .headers
                .get("x-goog-upload-url")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    GeminiError::Protocol("the upload start gave no x-goog-upload-url".into())
                })?
                .to_owned();
            let file = tokio::fs::File::open(video)
                .await
                .map_err(GeminiError::Io)?;
            // The session URL carries the upload's authorisation; no key is sent.
            let mut upload = self
                .http
                .post(&upload_url)
                .timeout(self.settings.request_timeout)
                .header("Content-Length", size.to_string())
                .header("X-Goog-Upload-Offset", "0")
                .header("X-Goog-Upload-Command", "upload, finalize")
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(file),
                ));
            for (name, value) in &upload_headers {
                upload = upload.header(*name, value);
            }
            let finished = self.send(upload).await?;
            let status = finished
                .headers
                .get("x-goog-upload-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if status != "final" {
                return Err(Failure::Retry {
                    error: format!("the upload ended with status {status:?}, not \"final\""),
                    wait: None,
                });
            }
            let uploaded: UploadedFile = parse_json(&finished.body)?;
            Ok(uploaded.file)
        })
        .await
    }

    /// Polls an uploaded file until it can be used.
    pub async fn wait_until_active(&self, mut file: RemoteFile) -> Result<RemoteFile, GeminiError> {
        let since = Instant::now();
        loop {
            match file.state.as_deref() {
                Some("ACTIVE") => return Ok(file),
                Some("FAILED") => {
                    let why = file
                        .error
                        .as_ref()
                        .and_then(|e| e.message.clone())
                        .unwrap_or_else(|| "no reason given".into());
                    return Err(GeminiError::FileFailed(why));
                }
                _ => {}
            }
            if since.elapsed() >= self.settings.processing_timeout {
                return Err(GeminiError::FileNotReady(self.settings.processing_timeout));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
            let url = self.url(&format!("{API_VERSION}/{}", file.name));
            file = self
                .retrying("file status", || async {
                    let response = self.send(self.request(Method::GET, &url)).await?;
                    parse_json(&response.body).map_err(Failure::Fatal)
                })
                .await?;
        }
    }

    pub async fn delete_file(&self, name: &str) -> Result<(), GeminiError> {
        let url = self.url(&format!("{API_VERSION}/{name}"));
        self.retrying("file delete", || async {
            self.send(self.request(Method::DELETE, &url)).await?;
            Ok(())
        })
        .await
    }
}
