//! DINOv2 through libtorch (see the `buybuddy-vision` crate): the frame as
//! filmed, its CLS token as the vector.

use std::{io::Read, path::Path};

use anyhow::Context;
use buybuddy_vision::{Dinov2, Dinov2Options};
use sha2::{Digest, Sha256};

use super::{Embedder, ModelInfo, Subject};

pub struct Dinov2Embedder {
    model: Dinov2,
    info: ModelInfo,
}

impl Dinov2Embedder {
    /// Loads a Hugging Face DINOv2 folder; a broken one fails here, naming
    /// what is wrong.
    pub fn load(folder: &Path, options: Dinov2Options) -> anyhow::Result<Self> {
        let model = Dinov2::load(folder, options)?;
        let weights_hash = hash_files(model.weight_files())?;
        let folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_owned());
        let name = folder
            .file_name()
            .map_or_else(|| "dinov2".to_owned(), |n| n.to_string_lossy().into_owned());
        let info = ModelInfo {
            kind: "dinov2",
            name,
            dims: model.dims(),
            config: serde_json::json!({
                "path": folder,
                "architecture": model.config().size_name(),
                "config": model.config(),
            }),
            weights_hash,
        };
        Ok(Self { model, info })
    }

    pub fn describe(&self) -> String {
        self.model.describe()
    }
}

impl Embedder for Dinov2Embedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, subjects: &[Subject<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let images: Vec<image::RgbImage> = subjects.iter().map(|s| s.image.clone()).collect();
        self.model.embed(&images)
    }
}

/// SHA-256 over the weight files, in order, as hex.
fn hash_files(files: &[std::path::PathBuf]) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    for file in files {
        let mut reader =
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}
