//! Buybuddy AI Platform: turns field videos of retail products into a reviewed
//! product directory, training data and embeddings. PostgreSQL is the center:
//! products, jobs, the queue and realtime updates all live there.

pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod jobs;
pub mod pipeline;
pub mod queue;
pub mod realtime;
pub mod sync;
pub mod web;
