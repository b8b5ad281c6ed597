//! The platform's shared vocabulary, used alike by the database layer, the
//! job kinds, the web pages and the external clients: barcodes, the statuses
//! of jobs and products, and a product's catalog metadata. Pure types: no I/O.

mod barcode;
pub mod metadata;
mod status;

pub use barcode::{Barcode, BarcodeError, BarcodeKind};
pub use metadata::{Metadata, MetadataForm};
pub use status::{JobStatus, ProductStatus, UnknownStatus};
