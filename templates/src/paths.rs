//! Route paths, shared by the router and the links and `hx-*` attributes that
//! point at them.

pub const DASHBOARD: &str = "/";
pub const DASHBOARD_JOBS: &str = "/fragments/dashboard/jobs";
pub const EVENTS: &str = "/events";
pub const HEALTHZ: &str = "/healthz";
pub const STATIC: &str = "/static";
pub const MEDIA: &str = "/media";
pub const API_JOBS: &str = "/api/jobs";
pub const API_JOB: &str = "/api/jobs/{id}";
pub const API_JOB_CANCEL: &str = "/api/jobs/{id}/cancel";

/// A path with its `{id}` filled in.
pub fn with_id(path: &str, id: impl std::fmt::Display) -> String {
    path.replace("{id}", &id.to_string())
}

/// The URL of a stored object (a frame, a mask).
pub fn media(key: &str) -> String {
    format!("{MEDIA}/{key}")
}

/// The URL of a static asset.
pub fn asset(name: &str) -> String {
    format!("{STATIC}/{name}")
}
