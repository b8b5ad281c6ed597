//! The pipeline that Buybuddy workers run: media decoding, segmentation models
//! and the clients of external services, kept apart from the server and the queue
//! so that it can be built and benchmarked on its own.

pub mod buybuddy;
pub mod download;
pub mod embed;
pub mod gemini;
pub mod http;
pub mod media;
pub mod postprocess;
pub mod quality;
pub mod retry;
pub mod segment;
pub mod storage;
