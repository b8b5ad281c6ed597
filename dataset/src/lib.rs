//! What turns reviewed product frames into training data, without a database,
//! a network or libtorch, so every rule here is tested on its own:
//!
//! - [`split`]: train/val/test assignment that never leaks a product (or, when
//!   products are the classes, a run of adjacent frames) across splits;
//! - [`geometry`]: a mask's box, area and outline polygons, the labels that
//!   COCO and YOLO files carry;
//! - [`augment`]: seeded per-image transforms whose geometric part moves the
//!   image and the mask by one map, so labels taken from the mask stay exact;
//! - [`composite`]: shelf images pasted together from several products' cutouts,
//!   with a visible mask and a box per product;
//! - [`export`]: COCO, YOLO and recognition-folder archives with a manifest;
//! - [`labels`]: YOLO and COCO box labels that come with uploaded shelf
//!   photos, paired with their images and checked against them;
//! - [`plan`]: which frames, draws and composites a version holds, per split;
//! - [`render`]: one planned image drawn, with its labels taken from its masks;
//! - [`retrieval`]: recall@k and mAP@R of embeddings on unseen products, with
//!   a query's near-duplicate neighbours in its own video left out;
//! - [`sampler`]: P products x K frames training batches, seeded;
//! - [`zip`]: a streaming ZIP writer whose archives are byte-identical for the
//!   same entries, so exporting a version twice gives the same file.

pub mod augment;
pub mod composite;
pub mod export;
pub mod geometry;
pub mod labels;
pub mod plan;
pub mod render;
pub mod retrieval;
pub mod sampler;
pub mod split;
pub mod zip;
