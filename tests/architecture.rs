//! The architecture, checked: the core crate has no IO dependency, and the
//! node's modules import each other without a cycle (see
//! docs/ARCHITECTURE.md for the layers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates that would put IO (an async runtime, sockets, TLS, a disk store) in the core.
const IO_CRATES: &[&str] =
    &["tokio", "tonic", "sled", "rustls", "tokio-rustls", "hyper", "hyper-util", "mio", "socket2", "axum", "h2"];

#[test]
fn the_core_has_no_io_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "liaison-core", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: BTreeSet<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(names.contains("liaison-core") && names.contains("prost"), "unexpected cargo tree output:\n{tree}");
    let io: Vec<&&str> = IO_CRATES.iter().filter(|c| names.contains(**c)).collect();
    assert!(io.is_empty(), "liaison-core depends on {io:?}:\n{tree}");
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("source directory") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to, `depth` levels deep (`exchange`, `exchange::outbox`).
fn module_of(root: &Path, file: &Path, depth: usize) -> String {
    let rel = file.strip_prefix(root).expect("under the root").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "tests") {
        parts.pop();
    }
    parts.truncate(depth);
    parts.join("::")
}

/// Paths a file names with `crate::`, outside tests and comments: `crate::a::b`
/// and the members of `crate::{a, b::c}`.
fn imports(src: &str) -> Vec<Vec<String>> {
    let code = src.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas; a nested group counts
            // as the path before it (`exchange::{self, outbox}` is `exchange`).
            let (mut depth, mut start) = (0usize, 0usize);
            let mut items = Vec::new();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            for item in items {
                let item = item.split('{').next().unwrap_or_default();
                let path: Vec<String> =
                    item.trim().split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                if !path.is_empty() {
                    out.push(path);
                }
            }
        } else {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            out.push(rest[..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect());
        }
    }
    out
}

fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut done, &mut Vec::new()))
}

fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/liaison-node/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&root, f, depth)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(&root, f, depth);
        let src = std::fs::read_to_string(f).expect("readable source");
        for path in imports(&src) {
            let to = path.iter().take(depth).cloned().collect::<Vec<_>>().join("::");
            // Only the node's own modules; the core's re-exports have no edges back.
            let target = if modules.contains(&to) { to } else { path.first().cloned().unwrap_or_default() };
            if target != from && modules.contains(&target) && !from.starts_with(&format!("{target}::")) {
                edges.entry(from.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

#[test]
fn the_nodes_modules_import_each_other_without_a_cycle() {
    for depth in [1, 2] {
        let edges = graph(depth);
        assert!(edges.len() > 10, "the scan found too few modules: {edges:?}");
        if let Some(c) = cycle(&edges) {
            panic!("import cycle among the node's modules: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&edges), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let src = "use crate::{exchange::{self, outbox}, node::Node};\n// crate::hub\nfn f() { crate::peer::get(); }";
    let found = imports(src);
    assert!(found.contains(&vec!["peer".to_string(), "get".to_string()]), "{found:?}");
    assert!(found.contains(&vec!["node".to_string(), "Node".to_string()]), "{found:?}");
    assert!(found.contains(&vec!["exchange".to_string()]), "{found:?}");
    assert!(found.iter().all(|p| p.first().map(String::as_str) != Some("hub")), "comments are not imports");
}
