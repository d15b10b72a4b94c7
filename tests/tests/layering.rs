//! The layout's rules, checked from the source: no import cycle between sibling modules of any
//! crate in `runtime/` (at the crate root and inside every folder), and crate dependencies
//! that point one way (docs/ARCHITECTURE.md).
//!
//! A module's edges are the `crate::…`, `super::…` and `self::…` paths it names outside its
//! tests; a path to a name a parent re-exports (`pub use sub::Name`) counts as a path to the
//! module that defines it, so a cycle cannot hide behind the crate root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside a crate (`[]` is the crate root).
type ModPath = Vec<String>;

struct Crate {
    /// Every module's source (tests cut off), by path.
    modules: BTreeMap<ModPath, String>,
    /// Names re-exported by a module, mapped to the child module they come from.
    reexports: BTreeMap<ModPath, BTreeMap<String, String>>,
}

fn runtime_crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(flowlet_tests::root().join("runtime"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 7, "{dirs:?}");
    dirs
}

/// The source of a file without its `#[cfg(test)]` module and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn load(krate: &Path) -> Crate {
    let mut modules = BTreeMap::new();
    let src = krate.join("src");
    let root = if src.join("lib.rs").is_file() {
        src.join("lib.rs")
    } else {
        src.join("main.rs")
    };
    modules.insert(vec![], code(&root));
    walk(&src, &mut vec![], &mut modules);
    let mut reexports = BTreeMap::new();
    for (path, text) in &modules {
        let children: BTreeSet<&str> = modules
            .keys()
            .filter(|p| p.len() == path.len() + 1 && p.starts_with(path))
            .map(|p| p.last().unwrap().as_str())
            .collect();
        let mut names = BTreeMap::new();
        for (first, rest) in use_trees(text, "pub use ")
            .into_iter()
            .chain(use_trees(text, "pub(crate) use "))
            .chain(use_trees(text, "pub(super) use "))
        {
            if children.contains(first.as_str()) {
                for name in rest {
                    names.insert(name, first.clone());
                }
            }
        }
        reexports.insert(path.clone(), names);
    }
    Crate { modules, reexports }
}

fn walk(dir: &Path, at: &mut ModPath, out: &mut BTreeMap<ModPath, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        if p.is_dir() {
            at.push(name);
            let m = p.join("mod.rs");
            if m.is_file() {
                out.insert(at.clone(), code(&m));
            }
            walk(&p, at, out);
            at.pop();
        } else if p.extension().is_some_and(|e| e == "rs")
            && !["lib", "main", "mod"].contains(&name.as_str())
        {
            at.push(name);
            out.insert(at.clone(), code(&p));
            at.pop();
        }
    }
}

/// For each `PREFIX a::b::{C, d::E}`: the first segment and the last segment of every leaf
/// (`("a", ["C", "E"])`, roughly: enough to map re-exported names to their module).
fn use_trees(text: &str, prefix: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        let Some(end) = rest.find(';') else { continue };
        let tree = &rest[..end];
        let first = tree.split("::").next().unwrap_or("").trim().to_owned();
        let leaves = tree
            .split([',', '{', '}'])
            .filter_map(|s| {
                let s = s.trim();
                let s = s.rsplit(" as ").next().unwrap_or(s);
                s.rsplit("::").next().map(str::trim)
            })
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        out.push((first, leaves));
    }
    out
}

/// The absolute module paths a module's code names (each `crate::`, `super::`, `self::` path,
/// with `{…}` groups expanded to their first segments).
fn references(at: &ModPath, text: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let base_of = |kw: &str| -> Option<ModPath> {
        match kw {
            "crate" => Some(vec![]),
            // In `a/mod.rs` or `a.rs`, `super` is a's parent and `self` is a.
            "super" => at.split_last().map(|(_, p)| p.to_vec()),
            "self" => Some(at.clone()),
            _ => None,
        }
    };
    for kw in ["crate", "super", "self"] {
        let pat = format!("{kw}::");
        for (i, _) in text.match_indices(&pat) {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let Some(mut base) = base_of(kw) else {
                continue;
            };
            let rest = &text[i + pat.len()..];
            let mut segments = Vec::new();
            let mut r = rest;
            // Further `super::` segments climb.
            while let Some(next) = r.strip_prefix("super::") {
                base.pop();
                r = next;
            }
            if let Some(inner) = r.strip_prefix('{') {
                let mut depth = 0;
                let mut group = String::new();
                for c in inner.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    group.push(c);
                }
                let mut d = 0;
                let mut item = String::new();
                for c in group.chars().chain([',']) {
                    match c {
                        '{' => d += 1,
                        '}' => d -= 1,
                        ',' if d == 0 => {
                            let first = item.split("::").next().unwrap_or("").trim().to_owned();
                            if !first.is_empty() && first != "self" {
                                let mut p = base.clone();
                                p.push(first);
                                out.push(p);
                            }
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                continue;
            }
            for seg in r.split("::") {
                let ident: String = seg
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() {
                    break;
                }
                segments.push(ident.clone());
                if ident.len() != seg.len() {
                    break;
                }
            }
            let mut p = base;
            p.extend(segments);
            out.push(p);
        }
    }
    out
}

/// The module a path refers to, as deep as modules go (a re-exported name counts as the
/// module it comes from).
fn module_of(c: &Crate, path: &ModPath) -> ModPath {
    let mut m: ModPath = vec![];
    for seg in path {
        let mut next = m.clone();
        next.push(seg.clone());
        if c.modules.contains_key(&next) {
            m = next;
            continue;
        }
        if let Some(child) = c.reexports.get(&m).and_then(|r| r.get(seg)) {
            let mut next = m.clone();
            next.push(child.clone());
            if c.modules.contains_key(&next) {
                m = next;
                continue;
            }
        }
        break;
    }
    m
}

/// Edges between sibling modules: (parent, from, to).
fn sibling_edges(c: &Crate) -> BTreeSet<(ModPath, String, String)> {
    let mut edges = BTreeSet::new();
    for (at, text) in &c.modules {
        for r in references(at, text) {
            let target = module_of(c, &r);
            let common = at.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < at.len() && common < target.len() {
                edges.insert((
                    at[..common].to_vec(),
                    at[common].clone(),
                    target[common].clone(),
                ));
            }
        }
    }
    edges
}

/// A cycle among the nodes of `edges`, if there is one.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        graph.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_crate_in_runtime_has_a_cycle_between_sibling_modules() {
    let mut problems = Vec::new();
    for krate in runtime_crates() {
        let c = load(&krate);
        assert!(c.modules.len() > 1 || krate.ends_with("types"), "{krate:?}");
        let mut by_parent: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
        for (parent, a, b) in sibling_edges(&c) {
            by_parent.entry(parent).or_default().insert((a, b));
        }
        for (parent, edges) in by_parent {
            if let Some(cycle) = find_cycle(&edges) {
                problems.push(format!(
                    "{}: modules of `{}` import each other: {}",
                    krate.file_name().unwrap().to_string_lossy(),
                    if parent.is_empty() {
                        "crate".to_owned()
                    } else {
                        parent.join("::")
                    },
                    cycle.join(" → ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_cycle_finder_sees_a_cycle_through_a_reexport() {
    // lib.rs re-exports `Host` from host.rs; plugin.rs names `crate::Host`, host.rs names
    // `crate::plugin::Plugin`: a cycle, though plugin.rs never names the module `host`.
    let mut modules = BTreeMap::new();
    modules.insert(
        vec![],
        "mod host; mod plugin; pub use host::{Host};".to_owned(),
    );
    modules.insert(
        vec!["host".to_owned()],
        "use crate::plugin::Plugin;".to_owned(),
    );
    modules.insert(
        vec!["plugin".to_owned()],
        "fn f(h: &crate::Host) {}".to_owned(),
    );
    let mut reexports = BTreeMap::new();
    reexports.insert(
        vec![],
        BTreeMap::from([("Host".to_owned(), "host".to_owned())]),
    );
    let c = Crate { modules, reexports };
    let edges: BTreeSet<(String, String)> = sibling_edges(&c)
        .into_iter()
        .map(|(_, a, b)| (a, b))
        .collect();
    assert!(find_cycle(&edges).is_some(), "{edges:?}");
    // `use super::{a, b::C}` inside a folder names both siblings.
    let refs = references(
        &vec!["window".to_owned(), "fold".to_owned()],
        "use super::{store, assign::Assigner};",
    );
    assert_eq!(
        refs,
        vec![
            vec!["window".to_owned(), "store".to_owned()],
            vec!["window".to_owned(), "assign".to_owned()]
        ]
    );
}

/// The normal (not dev-) dependencies a Cargo.toml names.
fn dependencies(krate: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    let mut deps = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[dependencies]" || l.ends_with(".dependencies]") && !l.contains("dev-");
            continue;
        }
        let name = l.split(['=', '.', ' ']).next().filter(|n| !n.is_empty());
        if let Some(name) = name.filter(|_| inside && !l.starts_with('#')) {
            deps.insert(name.to_owned());
        }
    }
    deps
}

#[test]
fn crate_dependencies_point_one_way() {
    // Each flowlet crate may depend only on crates of a lower layer.
    let layer = |name: &str| match name {
        "flowlet-types" => 0,
        // The SDK and the shipped plugins (the CLI's built-in operators are their native builds).
        sdk if sdk == "flowlet-sdk" || sdk.starts_with("flowlet-plugin-") => 1,
        "flowlet-operator" | "flowlet-manifest" => 1,
        "flowlet-dataflow" | "flowlet-host" => 2,
        "flowlet-connectors" => 3,
        "flowlet-bench" => 4,
        "flowlet" => 5,
        other => panic!("{other} has no layer: give it one in this test"),
    };
    // And never on these (what the layer above must not drag in).
    let forbidden: &[(&str, &[&str])] = &[
        (
            "flowlet-host",
            &["flowlet-dataflow", "rdkafka", "redb", "sled"],
        ),
        ("flowlet-dataflow", &["rdkafka", "ureq", "wasmtime"]),
        (
            "flowlet-manifest",
            &["flowlet-connectors", "rdkafka", "ureq"],
        ),
        ("flowlet-operator", &["wasmtime", "rdkafka"]),
    ];
    let mut problems = Vec::new();
    let mut seen = 0;
    for krate in runtime_crates() {
        let text = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let deps = dependencies(&krate);
        for d in deps.iter().filter(|d| d.starts_with("flowlet")) {
            if layer(d) >= layer(&name) {
                problems.push(format!(
                    "{name} depends on {d}, a crate of its layer or above"
                ));
            }
        }
        for (who, banned) in forbidden {
            if *who == name {
                seen += 1;
                for b in banned.iter().filter(|b| deps.contains(**b)) {
                    problems.push(format!("{name} must not depend on {b}"));
                }
            }
        }
    }
    assert_eq!(seen, forbidden.len(), "a crate of the rules is missing");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_function_length_budget_is_on_for_every_runtime_crate_and_no_lint_is_waived() {
    let root = flowlet_tests::root();
    let clippy = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
    assert!(clippy.contains("too-many-lines-threshold = 80"), "{clippy}");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(workspace.contains("too_many_lines = \"warn\""));
    let mut problems = Vec::new();
    for krate in runtime_crates() {
        let toml = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
        if !toml.contains("[lints]\nworkspace = true") {
            problems.push(format!(
                "{}: no `[lints] workspace = true`",
                krate.display()
            ));
        }
        let c = load(&krate);
        for (path, text) in &c.modules {
            if text.contains("too_many_lines") {
                problems.push(format!(
                    "{}: {path:?} waives too_many_lines",
                    krate.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
