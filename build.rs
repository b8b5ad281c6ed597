//! Build script: embeds the front-end assets installed from npm by scripts/setup.sh,
//! so the binary serves them without any files beside it, and links libtorch so
//! that CUDA is usable (see `vision/torch_link.rs`).

use std::{env, fs, path::PathBuf};

include!("vision/torch_link.rs");

const ASSETS: &[(&str, &str)] = &[
    ("node_modules/htmx.org/dist/htmx.min.js", "htmx.min.js"),
    (
        "node_modules/htmx-ext-sse/dist/sse.min.js",
        "htmx-sse.min.js",
    ),
];

fn main() {
    if env::var_os("CARGO_FEATURE_SAM3").is_some() {
        link_libtorch();
    }
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for (source, name) in ASSETS {
        let path = root.join(source);
        println!("cargo:rerun-if-changed={}", path.display());
        if !path.exists() {
            panic!(
                "{source} is missing: run scripts/setup.sh, which installs the npm packages \
                 htmx.org and htmx-ext-sse (or `npm ci` in the repository root)"
            );
        }
        fs::copy(&path, out.join(name)).expect("copying a front-end asset");
    }
}
