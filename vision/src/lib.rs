//! Models that run on libtorch through tch: SAM 3 segmentation today. CUDA is
//! used when present; everything also runs (slowly) on CPU, which is how CI
//! tests it. Nothing here links FFmpeg, so the benchmark binary runs on GPU
//! machines that have only the NVIDIA driver and libtorch.

pub mod device;
pub mod sam3;
pub mod select;

pub use device::{DeviceChoice, TorchInfo};
pub use sam3::{Sam3, Sam3Options};

/// The libtorch version the binary was built against (from torch's version.py).
pub const LIBTORCH_VERSION: &str = env!("BUYBUDDY_LIBTORCH_VERSION");
