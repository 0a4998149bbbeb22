//! The lab image: built locally (no registry) by compose/lab-image/build.sh,
//! tagged by a content hash of its inputs; the script skips the build when
//! that tag exists and prints it.

use std::process::Command;

use crate::paths;
use crate::run::runtime::LabError;

/// The image to run: `$CONNLAB_IMAGE`, else the one build.sh makes (or
/// finds) for the current inputs.
/// Asked once per process: parallel tests share the answer.
pub fn ensure() -> Result<String, LabError> {
    static IMAGE: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| find_or_build().map_err(|e| e.to_string()))
        .clone()
        .map_err(LabError::NoImage)
}

fn find_or_build() -> Result<String, LabError> {
    if let Ok(image) = std::env::var("CONNLAB_IMAGE") {
        return Ok(image);
    }
    let script = paths::root().join("compose/lab-image/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| LabError::NoImage(format!("{}: {e}", script.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tag = stdout.lines().last().unwrap_or_default().trim().to_string();
    if !out.status.success() || tag.is_empty() {
        return Err(LabError::NoImage(format!(
            "{} failed (run `make image` to see why)",
            script.display()
        )));
    }
    Ok(tag)
}
