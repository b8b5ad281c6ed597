//! The worker crate's integration tests as one binary (one link, not three):
//! downloads against local HTTP servers, decoding and post-processing of real
//! video files, and object storage against a local S3-compatible server.

mod download;
mod media;
mod storage;
