//! The checked-in compose files (`compose/<scenario>/<variant>.yaml` and
//! their Envoy configs) are exactly what `connlab compose` writes from the
//! scenario files now, for every scenario there is: a changed, added or
//! removed scenario or variant fails here until `make compose-files` runs.

use std::path::{Path, PathBuf};

use connlab::outputs::compose;
use connlab::paths;
use connlab::scenario::{self, Scenario};

fn relative(files: Vec<PathBuf>, root: &Path) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter_map(|f| f.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect()
}

#[test]
fn checked_in_compose_files_are_what_connlab_compose_writes() {
    let root = paths::root();
    let checked_in = root.join("compose");
    let scenarios = scenario::load_all(&root.join("scenarios")).expect("scenario files");
    let fresh = tempfile::tempdir().expect("temp dir");
    let all: Vec<&Scenario> = scenarios.iter().collect();
    compose::write_all(fresh.path(), &scenarios, &all).expect("connlab compose");

    let mut problems = Vec::new();
    for s in &scenarios {
        let want = relative(
            compose::files_under(&fresh.path().join(&s.name)),
            fresh.path(),
        );
        let have = relative(compose::files_under(&checked_in.join(&s.name)), &checked_in);
        for file in &want {
            match std::fs::read_to_string(checked_in.join(file)) {
                Err(_) => problems.push(format!("compose/{} is missing", file.display())),
                Ok(text) if text != std::fs::read_to_string(fresh.path().join(file)).unwrap() => {
                    problems.push(format!("compose/{} differs", file.display()))
                }
                Ok(_) => {}
            }
        }
        for file in have.iter().filter(|f| !want.contains(f)) {
            problems.push(format!("compose/{} is no longer generated", file.display()));
        }
    }
    // A directory of a scenario that is gone.
    for entry in std::fs::read_dir(&checked_in).expect("compose/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = compose::NOT_SCENARIOS.contains(&name.as_str())
            || scenarios.iter().any(|s| s.name == name);
        if entry.path().is_dir() && !known {
            problems.push(format!("compose/{name}/ has no scenario file"));
        }
    }
    assert!(
        problems.is_empty(),
        "the compose files drifted from scenarios/*.toml:\n  {}\nrun `make compose-files` and commit compose/",
        problems.join("\n  ")
    );
}

#[test]
fn no_two_compose_files_share_a_subnet() {
    let root = paths::root();
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    for file in compose::files_under(&root.join("compose")) {
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            if let Some(subnet) = line.trim().strip_prefix("- subnet: ") {
                if let Some((_, other)) = seen.iter().find(|(s, _)| s == subnet) {
                    panic!("{subnet} in {} and {}", file.display(), other.display());
                }
                seen.push((subnet.to_string(), file.clone()));
            }
        }
    }
}
