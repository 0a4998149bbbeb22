//! Where the project's own build outputs live.

use std::path::PathBuf;

/// The project root: `$CONNLAB_ROOT`, else the checkout this was built from.
pub fn root() -> PathBuf {
    std::env::var_os("CONNLAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let lab = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            lab.parent().map(PathBuf::from).unwrap_or(lab)
        })
}

/// The filter module `make filter` builds: `$CONNLAB_FILTER_WASM`, else its
/// place under `target/`.
pub fn filter_wasm() -> PathBuf {
    std::env::var_os("CONNLAB_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wasm32-unknown-unknown/wasm/connlab_filter.wasm"))
}
