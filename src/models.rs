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
/// whole (files are written beside and renamed, so a half-copied folder is
/// never taken for a model).
pub async fn fetch_folder(storage: &Storage, prefix: &str, folder: &Path) -> anyhow::Result<()> {
    if FILES.iter().all(|f| folder.join(f).is_file()) {
        return Ok(());
    }
    tokio::fs::create_dir_all(folder)
        .await
        .with_context(|| format!("creating {}", folder.display()))?;
    for file in FILES {
        let key = format!("{prefix}{file}");
        let bytes = storage
            .get(&key)
            .await
            .with_context(|| format!("reading the model file {key}"))?;
        let partial = folder.join(format!("{file}.partial"));
        tokio::fs::write(&partial, &bytes)
            .await
            .with_context(|| format!("writing {}", partial.display()))?;
        tokio::fs::rename(&partial, folder.join(file)).await?;
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
