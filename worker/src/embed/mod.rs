//! Embeddings: one unit vector per image, so that cosine similarity finds the
//! same product. `Embedder` is the seam the backends plug into: `dinov2`
//! (DINOv2 through libtorch) when a model folder is configured, `classic` (a
//! colour and edge descriptor on the CPU) otherwise.

pub mod classic;
#[cfg(feature = "sam3")]
pub mod dinov2;

use image::{GrayImage, RgbImage};
use serde::Serialize;

pub use classic::ClassicEmbedder;
#[cfg(feature = "sam3")]
pub use dinov2::Dinov2Embedder;

/// What made a set of vectors: the registry row's identity. Two embedders with
/// the same kind, name and weights hash make the same vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// `classic` or `dinov2`.
    pub kind: &'static str,
    pub name: String,
    pub dims: usize,
    /// What the model was built from (its config, where it was loaded from).
    pub config: serde_json::Value,
    /// A hash of the weights (of the descriptor's version for `classic`).
    pub weights_hash: String,
}

/// An image to embed, with the product's mask when it is known (frames);
/// a query photo has none.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub image: &'a RgbImage,
    pub mask: Option<&'a GrayImage>,
}

/// Turns images into unit vectors of `info().dims` values.
pub trait Embedder: Send + Sync {
    fn info(&self) -> &ModelInfo;

    /// One L2-normalised vector per subject, in order.
    fn embed(&self, subjects: &[Subject<'_>]) -> anyhow::Result<Vec<Vec<f32>>>;
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The mean of unit vectors, re-normalised: a product's prototype.
pub fn prototype(vectors: &[Vec<f32>]) -> Option<Vec<f32>> {
    let dims = vectors.first()?.len();
    let mut mean = vec![0f32; dims];
    for v in vectors {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += x;
        }
    }
    normalise(&mut mean);
    Some(mean)
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Which model a set of vectors needs, as the registry names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub kind: String,
    pub name: String,
    pub weights_hash: String,
    /// Where the model was loaded from when it was registered.
    pub path: Option<std::path::PathBuf>,
}

/// How DINOv2 models are run when one is loaded on demand.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    #[cfg(feature = "sam3")]
    pub dinov2: buybuddy_vision::Dinov2Options,
}

/// The embedders a process holds: the classic descriptor, the configured
/// model, and models of the registry loaded the first time a job or a search
/// needs them (from the folder they were registered from, checked against
/// their weights hash).
pub struct Embedders {
    loaded: std::sync::Mutex<Vec<std::sync::Arc<dyn Embedder>>>,
    options: LoadOptions,
}

impl Embedders {
    pub fn new(configured: Option<std::sync::Arc<dyn Embedder>>, options: LoadOptions) -> Self {
        let mut loaded: Vec<std::sync::Arc<dyn Embedder>> =
            vec![std::sync::Arc::new(ClassicEmbedder::default())];
        loaded.extend(configured);
        Self {
            loaded: std::sync::Mutex::new(loaded),
            options,
        }
    }

    /// The configured model, else the classic descriptor.
    pub fn default_embedder(&self) -> std::sync::Arc<dyn Embedder> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded
            .last()
            .cloned()
            .expect("the classic descriptor is always there")
    }

    /// Every embedder loaded so far.
    pub fn loaded(&self) -> Vec<ModelInfo> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.iter().map(|e| e.info().clone()).collect()
    }

    /// The embedder that makes the vectors `wanted` names, loading it if it
    /// must (blocking: call from a blocking thread). The error says why this
    /// process cannot.
    pub fn get(&self, wanted: &Wanted) -> anyhow::Result<std::sync::Arc<dyn Embedder>> {
        let matches = |info: &ModelInfo| {
            info.kind == wanted.kind
                && info.name == wanted.name
                && info.weights_hash == wanted.weights_hash
        };
        if let Some(found) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| matches(e.info()))
        {
            return Ok(found.clone());
        }
        let embedder = self.load(wanted)?;
        anyhow::ensure!(
            matches(embedder.info()),
            "the model at {} is no longer the one registered as {} (its weights changed)",
            wanted
                .path
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string()),
            wanted.name
        );
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(embedder.clone());
        Ok(embedder)
    }

    fn load(&self, wanted: &Wanted) -> anyhow::Result<std::sync::Arc<dyn Embedder>> {
        match wanted.kind.as_str() {
            "classic" => anyhow::bail!(
                "the classic descriptor {:?} is not this build's ({:?})",
                wanted.weights_hash,
                ClassicEmbedder::default().info().weights_hash
            ),
            "dinov2" => {
                let Some(path) = &wanted.path else {
                    anyhow::bail!("model {} has no folder on record", wanted.name);
                };
                anyhow::ensure!(
                    path.is_dir(),
                    "model {} is at {} on the machine that registered it, which this machine \
                     lacks (start this process with EMBED_MODEL_PATH pointing at a copy)",
                    wanted.name,
                    path.display()
                );
                #[cfg(feature = "sam3")]
                {
                    let embedder = Dinov2Embedder::load(path, self.options.dinov2)?;
                    Ok(std::sync::Arc::new(embedder))
                }
                #[cfg(not(feature = "sam3"))]
                {
                    let _ = self.options;
                    anyhow::bail!(
                        "model {} is a DINOv2 model and this build has no libtorch (the `sam3` \
                         feature, as in the server image); search from a worker image",
                        wanted.name
                    )
                }
            }
            other => anyhow::bail!("no embedder of kind {other:?}"),
        }
    }
}

impl Default for Embedders {
    /// The classic descriptor only.
    fn default() -> Self {
        Self::new(None, LoadOptions::default())
    }
}
