//! Reading a new video job from a multipart form, as the Jobs page and
//! `POST /api/jobs` both take it: text fields, and a video file streamed to a
//! temporary file under the upload limit (never held in memory).

use axum::{
    extract::{Multipart, multipart::Field},
    http::StatusCode,
};
use tokio::io::AsyncWriteExt;

use super::AppError;
use crate::actions::{
    FieldErrors,
    jobs::{NewVideoJob, VideoSource},
};

/// A video file the client sent, in a temporary file (removed on drop).
#[derive(Debug)]
pub struct Uploaded {
    pub file: tempfile::NamedTempFile,
    /// The client's file name (only ever shown, never a key).
    pub name: String,
}

/// A new-job form as read: the typed text, the file, and what was wrong with
/// the file (too large, empty).
#[derive(Debug, Default)]
pub struct JobForm {
    pub barcode: String,
    pub video_url: String,
    pub video_id: Option<String>,
    pub upload: Option<Uploaded>,
    pub errors: FieldErrors,
}

impl JobForm {
    /// Reads every field; a broken request is an error, a bad file a field message.
    pub async fn read(multipart: &mut Multipart, max_upload: u64) -> Result<Self, AppError> {
        let mut form = Self::default();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))?
        {
            match field.name().unwrap_or_default() {
                "barcode" => form.barcode = text(field).await,
                "video_url" => form.video_url = text(field).await,
                "video_id" => form.video_id = Some(text(field).await).filter(|t| !t.is_empty()),
                "video" => {
                    let name = field.file_name().unwrap_or_default().to_owned();
                    if name.is_empty() {
                        continue;
                    }
                    match stream_to_file(field, max_upload).await? {
                        Streamed::TooLarge => {
                            form.errors.insert(
                                "video",
                                format!(
                                    "The file is larger than the limit of {}.",
                                    human_bytes(max_upload)
                                ),
                            );
                        }
                        Streamed::Empty => {
                            form.errors.insert("video", "The file is empty.".into());
                        }
                        Streamed::Done(file) => form.upload = Some(Uploaded { file, name }),
                    }
                }
                _ => {}
            }
        }
        if !form.video_url.is_empty() && form.upload.is_some() {
            form.errors
                .insert("video", "Give a URL or a file, not both.".into());
        }
        if let Some(id) = &form.video_id
            && id.parse::<i32>().is_err()
        {
            form.errors.insert(
                "video_id",
                format!("A video id is a whole number, not {id:?}."),
            );
        }
        Ok(form)
    }

    /// The job the form asks for: the file, else the URL, else the catalog's video.
    pub fn job(&self) -> NewVideoJob {
        let source = match (&self.upload, self.video_url.is_empty()) {
            (Some(upload), _) => VideoSource::Upload {
                file: upload.file.path().to_owned(),
                name: upload.name.clone(),
            },
            (None, false) => VideoSource::Url(self.video_url.clone()),
            (None, true) => VideoSource::Catalog,
        };
        NewVideoJob {
            barcode: self.barcode.clone(),
            source,
            video_id: self.video_id.as_deref().and_then(|id| id.parse().ok()),
            max_attempts: None,
        }
    }
}

pub(super) async fn text(field: Field<'_>) -> String {
    field.text().await.unwrap_or_default().trim().to_owned()
}

pub(super) enum Streamed {
    Done(tempfile::NamedTempFile),
    TooLarge,
    Empty,
}

pub(super) async fn stream_to_file(
    mut field: Field<'_>,
    max_upload: u64,
) -> Result<Streamed, AppError> {
    let temp = tempfile::NamedTempFile::new().map_err(|e| AppError::Internal(e.into()))?;
    let mut file = tokio::fs::File::create(temp.path())
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut size = 0u64;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The request's own size limit, a little above ours.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Ok(Streamed::TooLarge),
            Err(e) => {
                return Err(AppError::BadRequest(format!("The upload broke off: {e}.")));
            }
        };
        size += chunk.len() as u64;
        if size > max_upload {
            return Ok(Streamed::TooLarge);
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    file.flush()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(if size == 0 {
        Streamed::Empty
    } else {
        Streamed::Done(temp)
    })
}

pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}
