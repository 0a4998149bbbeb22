//! One-way layers: no module of `lab/src` or `filter/src` reaches a module
//! that reaches back, and each lab layer uses only the layers under it (the
//! stack in `lab/src/lib.rs`). Reads the `crate::` and `super::` paths of the
//! sources as text (comments and literals blanked), so it needs no build and
//! no tool; a child module reached by its parent's relative path (`mod x;
//! use x::Y;`) is containment, not a dependency. Tests (`tests` modules) may
//! drive the layers above theirs (a checker test reads the human line), but
//! never in a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `lab/src/lib.rs`'s stack, bottom first: a module may use its own layer and
/// the ones before it.
const LAB_STACK: [&str; 12] = [
    "paths", "programs", "evidence", "envoy", "outcome", "scenario", "check", "run", "outputs",
    "replay", "diagnose", "audit",
];

#[test]
fn lab_has_no_module_cycles() {
    let graph = Graph::read(&crate_src("lab"));
    assert_eq!(graph.cycles(), Vec::<String>::new());
}

#[test]
fn filter_has_no_module_cycles() {
    let graph = Graph::read(&crate_src("filter"));
    assert_eq!(graph.cycles(), Vec::<String>::new());
}

#[test]
fn each_lab_layer_uses_only_the_layers_under_it() {
    let graph = Graph::read(&crate_src("lab"));
    let layer = |module: &str| {
        let top = module.split("::").next().unwrap_or_default();
        LAB_STACK.iter().position(|l| *l == top)
    };
    let mut wrong = Vec::new();
    for module in graph.edges.keys().filter(|m| !m.is_empty()) {
        if layer(module).is_none() {
            wrong.push(format!(
                "{module}: not in the stack (add it to lib.rs's list and LAB_STACK)"
            ));
        }
    }
    for (from, uses) in &graph.code_edges {
        for to in uses {
            if let (Some(a), Some(b)) = (layer(from), layer(to)) {
                if b > a {
                    wrong.push(format!("{from} uses {to}, a layer above it"));
                }
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

#[test]
fn a_cycle_is_found_through_crate_and_super_paths() {
    let files = [
        ("a", "use crate::b::{self, c::Thing};\n"),
        (
            "b",
            "// crate::a in a comment is not a use\nfn f() { let s = \"crate::a\"; }\n",
        ),
        ("b::c", "use super::super::a;\n"),
        (
            "d",
            "mod tests {\n    use super::*;\n    fn t() { crate::a::x(); }\n}\n",
        ),
    ];
    let graph = Graph::of(
        files
            .iter()
            .map(|(m, text)| (m.to_string(), text.to_string())),
    );
    assert_eq!(
        graph.edges["a"],
        BTreeSet::from(["b".into(), "b::c".into()])
    );
    assert_eq!(graph.edges["b"], BTreeSet::new());
    // `super` inside an inline module is the file's own module; a test's
    // paths count for cycles, not for layers.
    assert_eq!(graph.edges["d"], BTreeSet::from(["a".into()]));
    assert_eq!(graph.code_edges["d"], BTreeSet::new());
    assert_eq!(graph.cycles(), ["a → b::c → a"]);
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

/// Module → the other modules its paths name: all of them, and those
/// named outside its tests.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
    code_edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Every module file under `src` (binaries are crates of their own).
    fn read(src: &Path) -> Graph {
        let mut files = Vec::new();
        let mut dirs = vec![src.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() && path != src.join("bin") {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let relative = path.strip_prefix(src).expect("under src");
                    let text = std::fs::read_to_string(&path).expect("read module");
                    files.push((module_of(relative), text));
                }
            }
        }
        Graph::of(files.into_iter())
    }

    fn of(files: impl Iterator<Item = (String, String)>) -> Graph {
        let files: Vec<(String, String)> = files.collect();
        let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
        let mut graph = Graph {
            edges: BTreeMap::new(),
            code_edges: BTreeMap::new(),
        };
        for (module, text) in &files {
            let all = graph.edges.entry(module.clone()).or_default();
            let code = graph.code_edges.entry(module.clone()).or_default();
            for (path, in_tests) in paths_in(module, text) {
                let Some(used) = resolve(&modules, &path).filter(|used| used != module) else {
                    continue;
                };
                if !in_tests {
                    code.insert(used.clone());
                }
                all.insert(used);
            }
        }
        graph
    }

    /// One line per module that reaches a module reaching back: the
    /// shortest way round, from the module first in name order.
    fn cycles(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for start in self.edges.keys() {
            if seen.contains(start) {
                continue;
            }
            let Some(path) = self.shortest_back(start) else {
                continue;
            };
            seen.extend(path.iter().cloned());
            found.push(path.join(" → "));
        }
        found
    }

    /// The shortest path from `start` back to itself, if any.
    fn shortest_back(&self, start: &str) -> Option<Vec<String>> {
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            for next in self.edges.get(at).into_iter().flatten() {
                if next == start {
                    let mut path = vec![start.to_string()];
                    let mut step = at;
                    while step != start {
                        path.insert(1, step.to_string());
                        step = came_from[step];
                    }
                    path.push(start.to_string());
                    return Some(path);
                }
                if !came_from.contains_key(next.as_str()) {
                    came_from.insert(next, at);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// `run/roles/envoy.rs` → `run::roles::envoy`; `lib.rs` → `` (the root).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The longest declared module a path names (`crate::run::roles::envoy::X`
/// → `run::roles::envoy`); `None` for the root and for other crates.
fn resolve(modules: &BTreeSet<String>, path: &[String]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// The absolute module paths (`["run", "roles", "envoy"]`) every `crate::`
/// and `super::` path in `text` names, use trees expanded; with whether the
/// path is inside a `tests` module.
fn paths_in(module: &str, text: &str) -> Vec<(Vec<String>, bool)> {
    let tokens = tokens(&blank(text));
    let own: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    // Inline modules (`mod tests { ... }`) open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i].as_str();
        match token {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                inline.retain(|(_, d)| *d <= depth);
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth + 1));
            }
            "crate" | "super" if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let previous = i.checked_sub(1).map(|p| tokens[p].as_str());
                // `x::super` cannot occur; `pub(crate)` is no path.
                if previous != Some("::") {
                    let mut base = if token == "crate" {
                        Vec::new()
                    } else {
                        let mut here = own.clone();
                        here.extend(inline.iter().map(|(name, _)| name.clone()));
                        here.pop();
                        here
                    };
                    let mut j = i + 2;
                    if token == "crate" {
                        // nothing more to climb
                    } else {
                        while tokens.get(j).is_some_and(|t| t == "super")
                            && tokens.get(j + 1).is_some_and(|t| t == "::")
                        {
                            base.pop();
                            j += 2;
                        }
                    }
                    let (tree, next) = use_tree(&tokens, j);
                    let in_tests = own
                        .iter()
                        .chain(inline.iter().map(|(name, _)| name))
                        .any(|name| name == "tests");
                    for tail in tree {
                        let mut path = base.clone();
                        path.extend(tail);
                        paths.push((path, in_tests));
                    }
                    i = next;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

/// A path's rest from `at`: `a::b::c`, or `a::{b, c::{d, self}}` expanded;
/// returns the paths and the index after them.
fn use_tree(tokens: &[String], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match tokens.get(at).map(String::as_str) {
            Some("{") => {
                let mut all = Vec::new();
                at += 1;
                while tokens.get(at).is_some_and(|t| t != "}") {
                    let (inner, next) = use_tree(tokens, at);
                    for tail in inner {
                        let mut path = prefix.clone();
                        path.extend(tail.into_iter().filter(|s| s != "self"));
                        all.push(path);
                    }
                    at = next;
                    if tokens.get(at).is_some_and(|t| t == ",") {
                        at += 1;
                    }
                }
                return (all, at + 1);
            }
            Some(word) if is_ident(word) => {
                prefix.push(word.to_string());
                at += 1;
                if tokens.get(at).is_some_and(|t| t == "::") {
                    at += 1;
                    continue;
                }
                return (vec![prefix], at);
            }
            _ => return (vec![prefix], at),
        }
    }
}

fn is_ident(word: &str) -> bool {
    word.chars().all(|c| c.is_alphanumeric() || c == '_')
        && word.chars().next().is_some_and(|c| !c.is_ascii_digit())
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// `text` with comments, strings and character literals blanked out, so a
/// brace or a path inside them counts for nothing.
fn blank(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        let c = chars[i];
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut nest = 0;
            loop {
                if at(i, "/*") {
                    nest += 1;
                    i += 2;
                } else if at(i, "*/") {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else if i >= chars.len() {
                    break;
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (at(i + 1, "\"") || at(i + 1, "#\"") || at(i + 1, "##\"")) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !at(i, &close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || chars.get(i + 1) == Some(&'\\'))
        {
            // A character literal ('{', '\n', '\''); a lifetime has no
            // closing quote after one character.
            i += if chars[i + 1] == '\\' {
                3 + chars[i + 3..].iter().take_while(|c| **c != '\'').count() + 1
            } else {
                3
            };
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}
