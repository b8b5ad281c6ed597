//! The web UI's markup: Maud components that are pure functions of view structs.
//! Pages are assembled from `render_*` fragments, and the same fragments answer
//! HTMX requests, so a part of a page looks the same however it was loaded.

pub mod coverage;
pub mod dashboard;
pub mod datasets;
pub mod error;
pub mod format;
pub mod jobs;
pub mod layout;
pub mod login;
pub mod merchants;
pub mod paths;
pub mod picker;
pub mod products;
pub mod search;
pub mod shelves;
pub mod sync;
pub mod training;
