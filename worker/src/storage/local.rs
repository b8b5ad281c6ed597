//! The local-folder backend. Writes go to a temporary file first and are renamed
//! into place, so a reader never sees half an object.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::StorageError;

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: std::path::absolute(root)?,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding a key.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn put(&self, key: &str, body: &[u8]) -> Result<(), StorageError> {
        let target = self.path(key);
        let staging = self.staging(&target).await?;
        tokio::fs::write(&staging, body).await?;
        tokio::fs::rename(&staging, &target).await?;
        Ok(())
    }

    pub async fn put_file(&self, key: &str, source: &Path) -> Result<(), StorageError> {
        let target = self.path(key);
        let staging = self.staging(&target).await?;
        tokio::fs::copy(source, &staging).await?;
        tokio::fs::rename(&staging, &target).await?;
        Ok(())
    }

    /// A temporary name beside the target, its folder created.
    async fn staging(&self, target: &Path) -> Result<PathBuf, StorageError> {
        let folder = target.parent().expect("keys live under the root");
        tokio::fs::create_dir_all(folder).await?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        Ok(folder.join(format!(".{name}.{:016x}.part", rand::random::<u64>())))
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(bytes) => Ok(bytes.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StorageError::NotFound(key.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_stream(&self, key: &str) -> Result<super::ObjectStream, StorageError> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        Ok(super::ObjectStream {
            size,
            body: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file,
                256 * 1024,
            )),
        })
    }

    pub async fn delete(&self, keys: &[String]) -> Result<(), StorageError> {
        for key in keys {
            match tokio::fs::remove_file(self.path(key)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        self.delete(&keys).await?;
        // Remove the folders the prefix emptied, deepest first, up to the root.
        let mut folder = self.path(prefix.trim_end_matches('/'));
        if !prefix.ends_with('/') {
            folder.pop();
        }
        while folder.starts_with(&self.root) && folder != self.root {
            if tokio::fs::remove_dir(&folder).await.is_err() {
                break;
            }
            folder.pop();
        }
        Ok(keys.len())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            // Walk only the folder the prefix points into.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut keys = Vec::new();
            let mut folders = vec![start];
            while let Some(folder) = folders.pop() {
                let entries = match std::fs::read_dir(&folder) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let entry = entry?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        folders.push(path);
                        continue;
                    }
                    let name = entry.file_name();
                    if name.to_string_lossy().ends_with(".part") {
                        continue;
                    }
                    let key = path
                        .strip_prefix(&root)
                        .expect("under the root")
                        .to_string_lossy()
                        .into_owned();
                    if key.starts_with(&prefix) {
                        keys.push(key);
                    }
                }
            }
            Ok(keys)
        })
        .await
        .expect("listing does not panic")
    }
}
