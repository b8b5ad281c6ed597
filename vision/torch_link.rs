// Shared by the build scripts of every crate whose binaries or tests link libtorch
// (`include!`d, so it has no crate of its own).
//
// A binary links only `libtorch_cpu` and `libc10` unless told otherwise: the
// linker's `--as-needed` drops `libtorch_cuda` (nothing references it by symbol;
// it registers the CUDA backend when loaded), and CUDA is then never available.
// This keeps it, and records libtorch's folder as the runpath so the binary finds
// its libraries without LD_LIBRARY_PATH (which still overrides it).
//
// `DEP_TCH_LIBTORCH_LIB` comes from torch-sys (`links = "tch"`), which the crate
// must depend on directly for cargo to pass it on.

#[allow(dead_code)]
fn link_libtorch() -> String {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys sets DEP_TCH_LIBTORCH_LIB: depend on torch-sys directly");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let has_cuda = std::path::Path::new(&lib).join("libtorch_cuda.so").exists();
    if has_cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // libtorch's own version, from the Python package it came from (torch/version.py).
    let version_py = std::path::Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    // tch 0.24 binds libtorch 2.11.0's C++ API; another version fails at link or run time.
    if version != "unknown" && !version.starts_with("2.11.0") {
        panic!("libtorch {version} in {lib}: tch 0.24 needs 2.11.0 (scripts/setup.sh installs torch==2.11.0)");
    }
    println!("cargo:rustc-env=BUYBUDDY_LIBTORCH_VERSION={version}");
    version
}
