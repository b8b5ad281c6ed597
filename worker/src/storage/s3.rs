//! The S3 backend (aws-sdk-s3): any S3-compatible service, reached at its own
//! endpoint with path-style addressing if asked. Credentials come from the usual
//! AWS sources (environment, profile, instance role) unless given explicitly.

use std::path::Path;

use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    error::DisplayErrorContext,
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier},
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::StorageError;

/// How to reach S3.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The service's URL, for S3-compatible services (MinIO, RustFS, ...); AWS when unset.
    pub endpoint: Option<String>,
    /// The region; the AWS sources' (AWS_REGION, profile) or `us-east-1` when unset.
    pub region: Option<String>,
    /// Address buckets in the path (`host/bucket/key`) rather than the host name.
    pub path_style: bool,
    /// An access key and secret; the usual AWS sources when unset.
    pub credentials: Option<(String, String)>,
}

/// Objects larger than this go up in parts.
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The size of each part (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

impl S3Settings {
    /// A client for these settings.
    pub async fn client(&self) -> Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((key, secret)) = &self.credentials {
            loader =
                loader.credentials_provider(Credentials::new(key, secret, None, None, "buybuddy"));
        }
        let shared = loader.load().await;
        let mut config =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(self.path_style);
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }
}

/// A bucket, optionally under a key prefix.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    /// Prepended to every key ("" or ending with '/').
    prefix: String,
}

fn s3_error(error: impl std::error::Error) -> StorageError {
    StorageError::S3(DisplayErrorContext(error).to_string())
}

impl S3Storage {
    pub async fn connect(
        settings: &S3Settings,
        bucket: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let prefix = prefix.trim_matches('/');
        Ok(Self {
            client: settings.client().await,
            bucket: bucket.to_owned(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        })
    }

    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}{key}", self.bucket, self.prefix)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let size = tokio::fs::metadata(path).await?.len();
        if size <= MULTIPART_THRESHOLD {
            let body = ByteStream::from_path(path).await.map_err(s3_error)?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full(key))
                .content_type(content_type)
                .body(body)
                .send()
                .await
                .map_err(s3_error)?;
            return Ok(());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .content_type(content_type)
            .send()
            .await
            .map_err(s3_error)?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        match self.upload_parts(key, path, &upload_id).await {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(self.full(key))
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(s3_error)?;
                Ok(())
            }
            Err(error) => {
                // Leave no stray parts behind (they are billed and invisible).
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(self.full(key))
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(error)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        for number in 1.. {
            let mut chunk = Vec::with_capacity(PART_SIZE);
            let read = (&mut file)
                .take(PART_SIZE as u64)
                .read_to_end(&mut chunk)
                .await?;
            if read == 0 {
                break;
            }
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(self.full(key))
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(s3_error)?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            if read < PART_SIZE {
                break;
            }
        }
        Ok(parts)
    }

    /// The object's GetObject answer (its body not read yet).
    async fn object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StorageError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .send()
            .await
            .map_err(|e| match e.into_service_error() {
                e if e.is_no_such_key() => StorageError::NotFound(key.to_owned()),
                e => s3_error(e),
            })
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let object = self.object(key).await?;
        Ok(object.body.collect().await.map_err(s3_error)?.into_bytes())
    }

    pub async fn get_stream(&self, key: &str) -> Result<super::ObjectStream, StorageError> {
        let object = self.object(key).await?;
        let size = object.content_length.unwrap_or_default().max(0) as u64;
        let reader = object.body.into_async_read();
        Ok(super::ObjectStream {
            size,
            body: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                reader,
                256 * 1024,
            )),
        })
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        self.delete(&keys).await?;
        Ok(keys.len())
    }

    pub async fn delete(&self, keys: &[String]) -> Result<(), StorageError> {
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|key| ObjectIdentifier::builder().key(self.full(key)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(s3_error)?;
            self.client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .map_err(s3_error)?,
                )
                .send()
                .await
                .map_err(s3_error)?;
        }
        Ok(())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(s3_error)?;
            for object in page.contents() {
                if let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    keys.push(key.to_owned());
                }
            }
        }
        Ok(keys)
    }
}

/// Streams `s3://bucket/key` into a file, refusing objects over `limit` bytes.
pub async fn download_object(
    client: &Client,
    bucket: &str,
    key: &str,
    target: &Path,
    limit: u64,
) -> Result<u64, StorageError> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| match e.into_service_error() {
            e if e.is_no_such_key() => StorageError::NotFound(format!("s3://{bucket}/{key}")),
            e => s3_error(e),
        })?;
    let too_large = || StorageError::TooLarge {
        key: format!("s3://{bucket}/{key}"),
        limit,
    };
    if object.content_length().is_some_and(|n| n as u64 > limit) {
        return Err(too_large());
    }
    let mut body = object.body;
    let mut file = tokio::fs::File::create(target).await?;
    let mut written = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(s3_error)? {
        written += chunk.len() as u64;
        if written > limit {
            return Err(too_large());
        }
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    Ok(written)
}
