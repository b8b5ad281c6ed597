//! The pipeline that Buybuddy workers run: media decoding, segmentation models
//! and the clients of external services, kept apart from the server and the queue
//! so that it can be built and benchmarked on its own.

pub mod retry;
