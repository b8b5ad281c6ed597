//! Links libtorch so that CUDA is usable: see `torch_link.rs`.

include!("torch_link.rs");

fn main() {
    link_libtorch();
}
