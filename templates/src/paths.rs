//! Route paths, shared by the router and the links and `hx-*` attributes that
//! point at them.

pub const DASHBOARD: &str = "/";
pub const DASHBOARD_JOBS: &str = "/fragments/dashboard/jobs";
pub const EVENTS: &str = "/events";
pub const JOBS: &str = "/jobs";
pub const JOBS_LIST: &str = "/fragments/jobs";
pub const JOB: &str = "/jobs/{id}";
pub const JOB_LIVE: &str = "/fragments/jobs/{id}";
pub const JOB_CANCEL: &str = "/jobs/{id}/cancel";
pub const JOB_RETRY: &str = "/jobs/{id}/retry";
pub const PRODUCTS: &str = "/products";
pub const PRODUCT: &str = "/products/{id}";
pub const PRODUCTS_LIST: &str = "/fragments/products";
pub const PRODUCTS_BULK: &str = "/products/bulk";
pub const PRODUCT_REVIEW: &str = "/fragments/products/{id}/review";
pub const PRODUCT_APPROVE: &str = "/products/{id}/approve";
pub const PRODUCT_REJECT: &str = "/products/{id}/reject";
pub const PRODUCT_REPROCESS: &str = "/products/{id}/reprocess";
pub const SEARCH: &str = "/search";
pub const SEARCH_DUPLICATES: &str = "/fragments/search/duplicates";
pub const SEARCH_BACKFILL: &str = "/search/backfill";
pub const MODEL_ACTIVATE: &str = "/models/{id}/activate";
pub const PRODUCT_SIMILAR: &str = "/fragments/products/{id}/similar";
pub const DATASETS: &str = "/datasets";
pub const DATASET: &str = "/datasets/{id}";
pub const DATASET_PREVIEW: &str = "/fragments/datasets/{id}/preview";
pub const DATASET_VERSIONS: &str = "/datasets/{id}/versions";
pub const DATASET_VERSIONS_LIST: &str = "/fragments/datasets/{id}/versions";
pub const DATASET_VERSION_RENDER: &str = "/datasets/{id}/versions/{number}/render";
pub const DATASET_EXPORTS: &str = "/datasets/{id}/versions/{number}/exports";
pub const DATASET_DOWNLOAD: &str = "/datasets/exports/{id}/download";
pub const DATASET_BACKGROUNDS: &str = "/datasets/backgrounds";
pub const TRAINING: &str = "/training";
pub const TRAINING_RUN: &str = "/training/{id}";
pub const TRAINING_RUN_LIVE: &str = "/fragments/training/{id}";
pub const TRAINING_RUN_CANCEL: &str = "/training/{id}/cancel";
pub const TRAINING_RUN_USE: &str = "/training/{id}/use";
pub const SHELVES: &str = "/shelves";
pub const SHELF: &str = "/shelves/{id}";
pub const SHELF_DELETE: &str = "/shelves/{id}/delete";
pub const SHELF_BOXES: &str = "/shelves/{id}/boxes";
pub const SHELF_PROPOSE: &str = "/shelves/{id}/propose";
pub const SHELF_BOX: &str = "/shelves/boxes/{id}";
pub const SHELF_BOX_DELETE: &str = "/shelves/boxes/{id}/delete";
pub const SHELVES_MATCH: &str = "/shelves/match";
pub const SHELF_REVIEW: &str = "/shelves/review";
pub const SHELF_REVIEW_DECIDE: &str = "/shelves/review/{id}";
pub const SHELF_PRODUCT_PICKER: &str = "/fragments/shelves/review/{id}/products";
pub const COVERAGE: &str = "/coverage";
pub const MERCHANTS: &str = "/merchants";
pub const MERCHANT: &str = "/merchants/{id}";
pub const MERCHANT_IMPORT: &str = "/merchants/{id}/import";
pub const MERCHANT_IMPORT_MAP: &str = "/merchants/{id}/import/map";
pub const MERCHANT_REVIEW: &str = "/merchants/{id}/review";
pub const MERCHANT_BULK: &str = "/merchants/{id}/bulk";
pub const MERCHANT_SUGGEST: &str = "/merchants/{id}/suggest";
pub const MERCHANT_EXPORT: &str = "/merchants/{id}/export/{format}";
pub const MERCHANT_LINE_DECIDE: &str = "/merchants/lines/{id}/decide";
pub const MERCHANT_PICKER: &str = "/fragments/merchants/lines/{id}/products";
pub const SYNC: &str = "/sync";
pub const SYNC_ENQUEUE: &str = "/sync/enqueue";
pub const HEALTHZ: &str = "/healthz";
pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const STATIC: &str = "/static";
pub const MEDIA: &str = "/media";
/// Every JSON API route starts with this.
pub const API_PREFIX: &str = "/api/";
pub const API_JOBS: &str = "/api/jobs";
pub const API_JOB: &str = "/api/jobs/{id}";
pub const API_JOB_CANCEL: &str = "/api/jobs/{id}/cancel";
pub const API_JOB_RETRY: &str = "/api/jobs/{id}/retry";
pub const API_PRODUCTS: &str = "/api/products";
pub const API_PRODUCTS_REVIEW: &str = "/api/products/review";
pub const API_PRODUCT: &str = "/api/products/{id}";
pub const API_PRODUCT_APPROVE: &str = "/api/products/{id}/approve";
pub const API_PRODUCT_REJECT: &str = "/api/products/{id}/reject";
pub const API_PRODUCT_REPROCESS: &str = "/api/products/{id}/reprocess";
pub const API_PRODUCT_SIMILAR: &str = "/api/products/{id}/similar";
pub const API_SEARCH: &str = "/api/search";
pub const API_SEARCH_DUPLICATES: &str = "/api/search/duplicates";
pub const API_MODELS: &str = "/api/models";
pub const API_MODEL_ACTIVATE: &str = "/api/models/{id}/activate";
pub const API_EMBED: &str = "/api/embed";
pub const API_DATASETS: &str = "/api/datasets";
pub const API_TRAINING: &str = "/api/training";
pub const API_TRAINING_RUN: &str = "/api/training/{id}";
pub const API_TRAINING_RUN_CANCEL: &str = "/api/training/{id}/cancel";
pub const API_TRAINING_RUN_USE: &str = "/api/training/{id}/use";
pub const API_DATASET: &str = "/api/datasets/{id}";
pub const API_DATASET_PREVIEW: &str = "/api/datasets/{id}/preview";
pub const API_DATASET_VERSIONS: &str = "/api/datasets/{id}/versions";
pub const API_DATASET_VERSION: &str = "/api/datasets/{id}/versions/{number}";
pub const API_DATASET_EXPORTS: &str = "/api/datasets/{id}/versions/{number}/exports";
pub const API_EXPORT: &str = "/api/exports/{id}";
pub const API_EXPORT_DOWNLOAD: &str = "/api/exports/{id}/download";
pub const API_BACKGROUNDS: &str = "/api/backgrounds";
pub const API_SHELVES: &str = "/api/shelves";
pub const API_SHELF: &str = "/api/shelves/{id}";
pub const API_SHELF_BOXES: &str = "/api/shelves/{id}/boxes";
pub const API_SHELF_PROPOSE: &str = "/api/shelves/{id}/propose";
pub const API_SHELF_BOX: &str = "/api/shelves/boxes/{id}";
pub const API_SHELF_BOX_REVIEW: &str = "/api/shelves/boxes/{id}/review";
pub const API_SHELVES_MATCH: &str = "/api/shelves/match";
pub const API_SHELVES_REVIEW: &str = "/api/shelves/review";
pub const API_COVERAGE: &str = "/api/coverage";
pub const API_MERCHANTS: &str = "/api/merchants";
pub const API_MERCHANT: &str = "/api/merchants/{id}";
pub const API_MERCHANT_IMPORTS: &str = "/api/merchants/{id}/imports";
pub const API_MERCHANT_LINES: &str = "/api/merchants/{id}/lines";
pub const API_MERCHANT_REVIEW: &str = "/api/merchants/{id}/review";
pub const API_MERCHANT_BULK: &str = "/api/merchants/{id}/bulk";
pub const API_MERCHANT_SUGGEST: &str = "/api/merchants/{id}/suggest";
pub const API_MERCHANT_EXPORT: &str = "/api/merchants/{id}/export";
pub const API_MERCHANT_LINE: &str = "/api/merchants/lines/{id}";
pub const API_MERCHANT_LINE_DECIDE: &str = "/api/merchants/lines/{id}/decide";
pub const API_SYNC: &str = "/api/sync";
pub const API_SYNC_ENQUEUE: &str = "/api/sync/enqueue";

/// A path with its `{id}` filled in.
pub fn with_id(path: &str, id: impl std::fmt::Display) -> String {
    path.replace("{id}", &id.to_string())
}

/// A dataset version's path with its dataset id and number filled in.
pub fn with_version(path: &str, id: i32, number: i32) -> String {
    path.replace("{id}", &id.to_string())
        .replace("{number}", &number.to_string())
}

/// The URL of a stored object (a frame, a mask).
pub fn media(key: &str) -> String {
    format!("{MEDIA}/{key}")
}

/// The URL of a static asset.
pub fn asset(name: &str) -> String {
    format!("{STATIC}/{name}")
}
