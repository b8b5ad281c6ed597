//! Video in: decoding frames with FFmpeg, and the sample videos made here.

pub mod decode;
pub mod synthetic;
