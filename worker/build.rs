//! Links libtorch so that CUDA is usable and the tests find it: see
//! `vision/torch_link.rs`.

include!("../vision/torch_link.rs");

fn main() {
    if std::env::var_os("CARGO_FEATURE_SAM3").is_some() {
        link_libtorch();
    }
}
