//! The platform's integration tests, built as one binary: each module below
//! was its own test binary, and each of those linked libtorch, FFmpeg and the
//! AWS SDK on its own. One link instead of twelve is most of the clean test
//! build on a 2-core machine. `common` holds the shared set-up against real
//! parts (PostgreSQL, storage, local servers speaking the external protocols).

mod common;

mod api;
mod auth;
mod browser;
mod cli;
mod datasets;
mod embed;
mod gemini;
mod lanes;
mod merchants;
mod pages;
mod queue;
mod sam3;
mod shelves;
mod sql;
mod statuses;
mod sync;
mod training;
mod video;
mod web;
