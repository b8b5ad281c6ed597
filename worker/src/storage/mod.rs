//! Object storage for frames, masks and uploaded videos: a local folder (the
//! embedded default, served by the server) or an S3 bucket (AWS, MinIO, RustFS,
//! ...). Keys are chosen by the caller and deterministic, so writing a key again
//! replaces the object instead of adding another.

mod local;
mod s3;

use std::path::Path;

use bytes::Bytes;

pub use local::LocalStorage;
pub use s3::{S3Settings, S3Storage, download_object};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no object {0}")]
    NotFound(String),
    #[error("invalid object key {0:?}: keys are relative paths without '..'")]
    BadKey(String),
    #[error("object {key} is larger than {limit} bytes")]
    TooLarge { key: String, limit: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
}

/// An object being read: its size and its bytes, chunk by chunk.
pub struct ObjectStream {
    pub size: u64,
    pub body: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

/// Where objects live.
#[derive(Debug, Clone)]
pub enum Storage {
    Local(LocalStorage),
    S3(S3Storage),
}

impl Storage {
    /// Opens `location`: `s3://bucket[/prefix]`, or a folder (a path or `file://` URL).
    pub async fn open(location: &str, s3: &S3Settings) -> anyhow::Result<Self> {
        Ok(match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                anyhow::ensure!(!bucket.is_empty(), "{location:?} names no bucket");
                Self::S3(S3Storage::connect(s3, bucket, prefix).await?)
            }
            None => {
                let path = location.strip_prefix("file://").unwrap_or(location);
                Self::Local(LocalStorage::new(Path::new(path))?)
            }
        })
    }

    /// Where the storage is, for people.
    pub fn describe(&self) -> String {
        match self {
            Storage::Local(local) => format!("local folder {}", local.root().display()),
            Storage::S3(s3) => format!("S3 {}", s3.url("")),
        }
    }

    /// The S3 bucket, for S3 storage.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Storage::Local(_) => None,
            Storage::S3(s3) => Some(s3.bucket()),
        }
    }

    /// The URL of a key (`file:///...` or `s3://bucket/...`).
    pub fn url(&self, key: &str) -> String {
        match self {
            Storage::Local(local) => format!("file://{}", local.root().join(key).display()),
            Storage::S3(s3) => s3.url(key),
        }
    }

    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            Storage::Local(local) => local.put(key, &body).await,
            Storage::S3(s3) => s3.put(key, body, content_type).await,
        }
    }

    /// Stores a file (in parts, on S3, when it is large).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            Storage::Local(local) => local.put_file(key, path).await,
            Storage::S3(s3) => s3.put_file(key, path, content_type).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        check_key(key)?;
        match self {
            Storage::Local(local) => local.get(key).await,
            Storage::S3(s3) => s3.get(key).await,
        }
    }

    /// Reads an object as a stream of chunks, with its size: constant memory
    /// however large the object (what downloads of exports are served from).
    pub async fn get_stream(&self, key: &str) -> Result<ObjectStream, StorageError> {
        check_key(key)?;
        match self {
            Storage::Local(local) => local.get_stream(key).await,
            Storage::S3(s3) => s3.get_stream(key).await,
        }
    }

    /// Deletes the given objects (missing ones are no error).
    pub async fn delete(&self, keys: &[String]) -> Result<(), StorageError> {
        for key in keys {
            check_key(key)?;
        }
        match self {
            Storage::Local(local) => local.delete(keys).await,
            Storage::S3(s3) => s3.delete(keys).await,
        }
    }

    /// Deletes every object whose key starts with `prefix` (a folder: it should
    /// end with `/`); returns how many went.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        check_key(prefix)?;
        match self {
            Storage::Local(local) => local.delete_prefix(prefix).await,
            Storage::S3(s3) => s3.delete_prefix(prefix).await,
        }
    }

    /// Keys under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        check_key(prefix)?;
        let mut keys = match self {
            Storage::Local(local) => local.list(prefix).await?,
            Storage::S3(s3) => s3.list(prefix).await?,
        };
        keys.sort();
        Ok(keys)
    }

    /// Writes, reads back and deletes a probe object.
    pub async fn check(&self) -> anyhow::Result<()> {
        let key = format!(".probe/{}", rand::random::<u64>());
        self.put(&key, Bytes::from_static(b"ok"), "text/plain")
            .await?;
        let read = self.get(&key).await?;
        self.delete_prefix(".probe/").await?;
        anyhow::ensure!(read.as_ref() == b"ok", "the probe object read back wrong");
        Ok(())
    }
}

/// Keys are relative paths: no leading '/', no '..' segment, no backslashes.
fn check_key(key: &str) -> Result<(), StorageError> {
    let bad = key.starts_with('/')
        || key.contains('\\')
        || key
            .split('/')
            .any(|segment| segment == ".." || segment == ".");
    if bad {
        Err(StorageError::BadKey(key.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_storage() {
        assert!(check_key("frames/869/job/0001.png").is_ok());
        assert!(check_key("").is_ok());
        for bad in ["/etc/passwd", "frames/../../x", "a/./b", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }
}
