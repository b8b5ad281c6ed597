//! Registry models kept in object storage (the models training runs leave):
//! a Hugging Face DINOv2 folder under a storage prefix, copied to a local
//! folder the first time a process needs it, so the embedders load it like
//! any other folder (and check its weights hash as they do).

use std::path::{Path, PathBuf};

use anyhow::Context;
use buybuddy_worker::{embed::Wanted, storage::Storage};

use crate::db::embeddings::Model;

/// The files of a model folder, in the order they are written.
pub const FILES: [&str; 2] = ["config.json", "model.safetensors"];

/// Where stored models are copied to: `BUYBUDDY_MODEL_CACHE`, else a folder
/// in the temporary directory.
pub fn cache_root() -> PathBuf {
    std::env::var_os("BUYBUDDY_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("buybuddy-models"))
}

/// The storage prefix of a model that lives in storage.
pub fn stored_prefix(model: &Model) -> Option<&str> {
    model.config.get("storage").and_then(|s| s.as_str())
}

/// What the embedders need to make `model`'s vectors; a stored model is
/// copied to the local cache first (once per weights hash).
pub async fn wanted(storage: Option<&Storage>, model: &Model) -> anyhow::Result<Wanted> {
    let mut wanted = crate::jobs::embed::wanted(model);
    if let Some(prefix) = stored_prefix(model) {
        let storage = storage.with_context(|| {
            format!(
                "{} is kept in object storage and this process has none",
                model.label()
            )
        })?;
        let folder = cache_root().join(&model.weights_hash).join(&model.name);
        fetch_folder(storage, prefix, &folder).await?;
        wanted.path = Some(folder);
    }
    Ok(wanted)
}

/// Copies a stored model folder to `folder` unless it is already there
/// whole. The files are written into a staging folder of this call's own,
/// which is renamed into place: several jobs fetching the same model at once
/// never see (or leave) a half-copied folder.
pub async fn fetch_folder(storage: &Storage, prefix: &str, folder: &Path) -> anyhow::Result<()> {
    let complete = |folder: &Path| FILES.iter().all(|f| folder.join(f).is_file());
    if complete(folder) {
        return Ok(());
    }
    let parent = folder.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(parent)
        .await
        .with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".fetching-{}", uuid::Uuid::now_v7()));
    tokio::fs::create_dir_all(&staging).await?;
    let fetched = async {
        for file in FILES {
            let key = format!("{prefix}{file}");
            let bytes = storage
                .get(&key)
                .await
                .with_context(|| format!("reading the model file {key}"))?;
            tokio::fs::write(staging.join(file), &bytes)
                .await
                .with_context(|| format!("writing {}", staging.display()))?;
        }
        anyhow::Ok(())
    }
    .await;
    let placed = match fetched {
        Ok(()) => tokio::fs::rename(&staging, folder).await,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(e);
        }
    };
    if let Err(e) = placed {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        // Another fetch put it there first.
        if !complete(folder) {
            return Err(anyhow::Error::from(e).context(format!("placing {}", folder.display())));
        }
    }
    Ok(())
}

/// Stores a model folder under `prefix`; returns the bytes written.
pub async fn store_folder(storage: &Storage, prefix: &str, folder: &Path) -> anyhow::Result<u64> {
    let mut size = 0;
    for file in FILES {
        let path = folder.join(file);
        size += tokio::fs::metadata(&path)
            .await
            .with_context(|| format!("{} is missing", path.display()))?
            .len();
        let kind = if file.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        storage
            .put_file(&format!("{prefix}{file}"), &path, kind)
            .await
            .with_context(|| format!("storing {file}"))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_fetching_one_model_at_once_all_get_it_whole() {
        let stored = tempfile::tempdir().unwrap();
        let storage = Storage::open(stored.path().to_str().unwrap(), &Default::default())
            .await
            .unwrap();
        for file in FILES {
            storage
                .put(&format!("models/m/{file}"), vec![7u8; 1 << 16].into(), "x")
                .await
                .unwrap();
        }
        let cache = tempfile::tempdir().unwrap();
        let folder = cache.path().join("hash").join("m");
        let fetches = (0..8).map(|_| fetch_folder(&storage, "models/m/", &folder));
        for outcome in futures::future::join_all(fetches).await {
            outcome.unwrap();
        }
        for file in FILES {
            assert_eq!(std::fs::read(folder.join(file)).unwrap().len(), 1 << 16);
        }
        // No staging folder is left behind.
        let left: Vec<_> = std::fs::read_dir(cache.path().join("hash"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("m")]);
    }
}
