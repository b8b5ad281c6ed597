//! Models that run on libtorch through tch: SAM 3 segmentation, DINOv2
//! embeddings and metric-learning training of them. CUDA is used when present; everything also runs on CPU, which
//! is how CI tests it. Nothing here links FFmpeg, so the benchmark binaries
//! run on GPU machines that have only the NVIDIA driver and libtorch.

pub mod device;
pub mod dinov2;
pub mod sam3;
pub mod select;
pub mod train;

/// The libtorch bindings the models are written with, for callers that pass tensors.
pub use tch;

pub use device::{DeviceChoice, TorchInfo};
pub use dinov2::{Dinov2, Dinov2Config, Dinov2Options};
pub use sam3::{Sam3, Sam3Options};

/// The libtorch version the binary was built against (from torch's version.py).
pub const LIBTORCH_VERSION: &str = env!("BUYBUDDY_LIBTORCH_VERSION");
