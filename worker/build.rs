//! Links libtorch so that CUDA is usable and the tests find it: see
//! `vision/torch_link.rs`.

include!("../vision/torch_link.rs");

fn main() {
    link_libtorch();
}
