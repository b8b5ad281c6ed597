//! Buybuddy AI Platform: turns field videos of retail products into a reviewed
//! product directory, training data and embeddings. PostgreSQL is the center:
//! products, jobs, the queue and realtime updates all live there.
//!
//! Layers, each using only those below it: `cli` and `web` parse and render;
//! `actions` are what people and scripts do; `jobs` are what workers run, on
//! the `queue`; `db` holds the queries; `keys` names every stored object.

pub mod actions;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod jobs;
pub mod keys;
pub mod models;
pub mod queue;
pub mod realtime;
pub mod training;
pub mod web;
