//! Helpers more than one test binary needs (`mod support;`).

use std::process::Command;

/// Containers, networks and volumes carrying `label` (`key=value`), as the
/// docker CLI lists them: what a user would see left behind.
pub fn docker_objects(label: &str) -> Vec<String> {
    let mut found = Vec::new();
    for what in [["ps", "-aq"], ["network", "ls"], ["volume", "ls"]] {
        let out = Command::new("docker")
            .args(what)
            .args(["-q", "--filter", &format!("label={label}")])
            .output()
            .expect("docker CLI");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    found
}
