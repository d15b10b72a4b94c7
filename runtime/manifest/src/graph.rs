//! Checks of the topology as a graph: inputs that exist, no cycles, side outputs that are
//! produced and read, nothing left dangling, plugin and input files present.

use std::collections::{BTreeMap, BTreeSet};

use crate::Options;
use crate::diag::{Diagnostics, Pos, did_you_mean};
use crate::model::*;

pub(crate) fn check(m: &Manifest, d: &mut Diagnostics, opts: &Options) {
    let at = |name: &str| m.positions.get(name).copied().unwrap_or_default();
    let producers: Vec<&str> = m
        .sources
        .keys()
        .chain(m.operators.keys())
        .map(String::as_str)
        .collect();
    let mut read: BTreeSet<(String, Port)> = BTreeSet::new();

    let consumers = m
        .operators
        .iter()
        .map(|(n, o)| (n, "operator", &o.inputs))
        .chain(m.sinks.iter().map(|(n, s)| (n, "sink", &s.inputs)));
    for (name, kind, inputs) in consumers {
        let mut seen = BTreeSet::new();
        for input in inputs {
            if !seen.insert((&input.node, input.port)) {
                d.error_hint(
                    input.pos,
                    format!("{kind} `{name}` lists the input `{input}` twice"),
                    "list each input once",
                );
            }
            read.insert((input.node.clone(), input.port));
            if m.sinks.contains_key(&input.node) {
                d.error_hint(
                    input.pos,
                    format!(
                        "{kind} `{name}` reads from `{}`, which is a sink",
                        input.node
                    ),
                    "sinks have no output; read from the operator that feeds it",
                );
                continue;
            }
            if !m.positions.contains_key(&input.node) {
                let hint = did_you_mean(&input.node, producers.iter().copied())
                    .unwrap_or_else(|| format!("sources and operators: {}", producers.join(", ")));
                d.error_hint(
                    input.pos,
                    format!(
                        "{kind} `{name}` reads from `{}`, which does not exist",
                        input.node
                    ),
                    hint,
                );
                continue;
            }
            if input.port == Port::DeadLetter
                && let Some((producer, policy)) = on_error_of(m, &input.node)
                && policy != OnError::DeadLetter
            {
                d.error_hint(
                    input.pos,
                    format!(
                        "{kind} `{name}` reads `{input}`, but {producer} `{}` does not dead-letter",
                        input.node
                    ),
                    format!("set `on-error: dead-letter` on {producer} `{}`", input.node),
                );
            }
            if input.port == Port::Late
                && m.operators
                    .get(&input.node)
                    .is_some_and(|o| o.window.is_none())
            {
                d.error_hint(
                    input.pos,
                    format!(
                        "{kind} `{name}` reads `{input}`, but operator `{}` has no window",
                        input.node
                    ),
                    "only window aggregates (operators with `window:`) have a late output",
                );
            } else if input.port == Port::Late && m.sources.contains_key(&input.node) {
                d.error_hint(
                    input.pos,
                    format!(
                        "{kind} `{name}` reads `{input}`, but `{}` is a source",
                        input.node
                    ),
                    "only window aggregates have a late output",
                );
            }
            if input.node == *name {
                d.error_hint(
                    input.pos,
                    format!("operator `{name}` reads its own output"),
                    "an operator cannot be its own input",
                );
            }
        }
    }

    // With entries that did not parse, who reads what is not known: skip the "unread" checks
    // rather than report errors that are not there.
    let complete = m.positions.len() == m.sources.len() + m.operators.len() + m.sinks.len();
    for (name, op) in &m.operators {
        if complete
            && op.on_error == OnError::DeadLetter
            && !read.contains(&(name.clone(), Port::DeadLetter))
        {
            unread_dead_letters(d, at(name), "operator", name, "rejected events");
        }
        if op.window.is_some() && op.key_by.is_none() && op.parallelism > 1 {
            d.error_hint(
                at(name),
                format!("operator `{name}` has a window but no `key-by`, so it cannot run {} instances", op.parallelism),
                "add `key-by:` to split the windows by key, or set `parallelism: 1` (one window over all events)",
            );
        }
        match &op.plugin {
            PluginRef::Builtin(b) if !opts.builtins.iter().any(|x| x == b) => {
                let hint = did_you_mean(b, opts.builtins.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("built-in operators: {}", opts.builtins.join(", ")));
                d.error_hint(at(name), format!("operator `{name}`: there is no built-in operator `{b}`"), hint);
            }
            PluginRef::Path(p) if opts.check_files && !m.resolve(p).is_file() => d.error_hint(
                at(name),
                format!("operator `{name}`: plugin file `{}` {}", m.resolve(p).display(), not_a_file(&m.resolve(p))),
                "give the path of the component's .wasm file, relative to the manifest (build the plugin first, see the README)",
            ),
            PluginRef::Digest(hex)
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                d.error_hint(
                    at(name),
                    format!("operator `{name}`: `sha256:{hex}` is not a plugin digest"),
                    "a digest is `sha256:` and 64 hexadecimal digits, as `GET /v1/plugins` lists them",
                )
            }
            PluginRef::Registry { name: plugin, version }
                if !crate::valid_name(plugin) || !crate::valid_name(version) =>
            {
                d.error_hint(
                    at(name),
                    format!("operator `{name}`: `{plugin}@{version}` is not a valid plugin reference"),
                    "names and versions are letters, digits, `.`, `_`, `-` and `+`, starting with a letter or digit",
                )
            }
            PluginRef::Registry { .. } | PluginRef::Digest(_) if !opts.registry => d.error_hint(
                at(name),
                format!(
                    "operator `{name}`: plugin `{}` names a plugin of a `flowlet serve` registry",
                    op.plugin
                ),
                "`flowlet run` loads component files: give the path of the .wasm, or deploy the manifest with `flowlet deploy`",
            ),
            _ => {}
        }
        for host in op.grants.dirs.values() {
            if opts.check_files && !m.resolve(host).is_dir() {
                d.error(
                    at(name),
                    format!(
                        "operator `{name}`: granted directory `{}` does not exist",
                        m.resolve(host).display()
                    ),
                );
            }
        }
    }
    for (name, src) in &m.sources {
        if complete
            && src.on_error == OnError::DeadLetter
            && !read.contains(&(name.clone(), Port::DeadLetter))
        {
            unread_dead_letters(
                d,
                at(name),
                "source",
                name,
                "events without a readable time",
            );
        }
        if let SourceKind::File { path } = &src.kind
            && opts.check_files
            && !m.resolve(path).is_file()
        {
            d.error_hint(
                at(name),
                format!(
                    "source `{name}`: input file `{}` {}",
                    m.resolve(path).display(),
                    not_a_file(&m.resolve(path))
                ),
                "paths are relative to the manifest's folder; a pipe is read with `kind: stdin`",
            );
        }
    }
    if m.checkpoint.is_some() {
        for (name, src) in &m.sources {
            if matches!(src.kind, SourceKind::Stdin) && m.guarantee != Guarantee::AtMostOnce {
                d.error_hint(
                    at(name),
                    format!(
                        "source `{name}` reads standard input, which cannot be read again after a crash, so `guarantee: {}` cannot hold",
                        m.guarantee
                    ),
                    "read a file or a Kafka topic, or choose `guarantee: at-most-once`",
                );
            }
        }
    }
    for name in producers {
        if complete && !read.contains(&(name.to_owned(), Port::Main)) {
            let kind = if m.sources.contains_key(name) {
                "source"
            } else {
                "operator"
            };
            d.error_hint(
                at(name),
                format!("nothing reads the {kind} `{name}`"),
                format!("add `{name}` to the `inputs` of an operator or sink, or remove it"),
            );
        }
    }
    check_shared_files(m, d);
    if let Some(cycle) = find_cycle(m) {
        d.error_hint(
            at(&cycle[0]),
            format!("the operators form a cycle: {}", cycle.join(" -> ")),
            "a topology is a DAG; remove one of these inputs",
        );
    }
}

/// Why `path`, which is not a regular file, cannot be read as one.
fn not_a_file(path: &std::path::Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if m.is_dir() => "is a directory, not a file",
        Ok(m) if m.file_type().is_fifo() => "is a named pipe (FIFO), not a regular file",
        Ok(m) if m.file_type().is_socket() => "is a socket, not a regular file",
        Ok(_) => "is a device, not a regular file",
    }
}

/// `path` made absolute with symbolic links resolved, also when it does not exist yet (its
/// deepest existing ancestor is resolved), so that two spellings of one file compare equal.
pub(crate) fn canonical(path: &std::path::Path) -> std::path::PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut missing = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            let mut c = c;
            for part in missing.iter().rev() {
                c.push(part);
            }
            return lexical(&c);
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                at = parent;
            }
            _ => return lexical(&abs),
        }
    }
}

/// `.` and `..` removed without looking at the file system.
fn lexical(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Nodes sharing a file or standard input in a way that loses data: a file sink writing a file
/// a source reads (it is emptied before it is read) or a plugin is loaded from; two file sinks
/// writing one file (one overwrites the other); two sources reading standard input (each line
/// goes to only one of them).
fn check_shared_files(m: &Manifest, d: &mut Diagnostics) {
    let at = |name: &str| m.positions.get(name).copied().unwrap_or_default();
    // (who, the path as written, the file it is)
    let mut read: Vec<(String, std::path::PathBuf)> = Vec::new();
    for (name, s) in &m.sources {
        if let SourceKind::File { path } = &s.kind {
            read.push((
                format!("source `{name}` reads"),
                canonical(&m.resolve(path)),
            ));
        }
    }
    for (name, op) in &m.operators {
        if let PluginRef::Path(p) = &op.plugin {
            let what = format!("operator `{name}` loads its plugin from");
            read.push((what, canonical(&m.resolve(p))));
        }
    }
    let mut written: Vec<(&str, std::path::PathBuf)> = Vec::new();
    for (name, sink) in &m.sinks {
        let SinkKind::File { path } = &sink.kind else {
            continue;
        };
        let shown = m.resolve(path);
        let file = canonical(&shown);
        for (reader, _) in read.iter().filter(|(_, p)| *p == file) {
            d.error_hint(
                at(name),
                format!(
                    "sink `{name}` writes to `{}`, which {reader}: the sink would empty it first",
                    shown.display()
                ),
                "write the output to another file",
            );
        }
        if let Some((other, _)) = written.iter().find(|(_, p)| *p == file) {
            d.error_hint(
                at(name),
                format!(
                    "sinks `{other}` and `{name}` both write to `{}`: one would overwrite the other's output",
                    shown.display()
                ),
                format!("give each sink its own file, or list both inputs in `{other}`"),
            );
        }
        written.push((name, file));
    }
    // A Kafka sink writing a topic a (never-ending) Kafka source of the topology reads: each
    // event is read again, for ever.
    for (name, sink) in &m.sinks {
        let SinkKind::Kafka(k) = &sink.kind else {
            continue;
        };
        for (source, src) in &m.sources {
            if let SourceKind::Kafka(s) = &src.kind
                && s.brokers == k.brokers
                && !s.bounded
                && s.topics.contains(&k.topic)
            {
                d.error_hint(
                    at(name),
                    format!(
                        "sink `{name}` writes to the Kafka topic `{}`, which source `{source}` reads: every event would be read again, for ever",
                        k.topic
                    ),
                    "write to another topic (or read it `bounded: true`, for a one-off backfill)",
                );
            }
        }
    }
    let stdin: Vec<&str> = m
        .sources
        .iter()
        .filter(|(_, s)| matches!(s.kind, SourceKind::Stdin))
        .map(|(n, _)| n.as_str())
        .collect();
    if let [first, second, ..] = stdin[..] {
        d.error_hint(
            at(second),
            format!("sources `{first}` and `{second}` both read standard input: each line would reach only one of them"),
            format!("read it with one source and list `{first}` in the inputs of every node that needs it"),
        );
    }
}

/// Whether `node` is a source or an operator, and its `on-error` policy.
fn on_error_of(m: &Manifest, node: &str) -> Option<(&'static str, OnError)> {
    match (m.sources.get(node), m.operators.get(node)) {
        (Some(s), _) => Some(("source", s.on_error)),
        (_, Some(o)) => Some(("operator", o.on_error)),
        _ => None,
    }
}

fn unread_dead_letters(d: &mut Diagnostics, at: Pos, kind: &str, name: &str, what: &str) {
    d.error_hint(
        at,
        format!("{kind} `{name}` dead-letters {what}, but nothing reads `{name}.dead-letter`"),
        format!("add a sink with `inputs: [{name}.dead-letter]`, or choose `on-error: skip`"),
    );
}

/// A cycle among operators, as the path from its first node back to it.
fn find_cycle(m: &Manifest) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = m
        .operators
        .keys()
        .map(|k| (k.as_str(), Mark::New))
        .collect();
    fn visit<'a>(
        m: &'a Manifest,
        node: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::Active);
        stack.push(node);
        for input in &m.operators[node].inputs {
            let next = input.node.as_str();
            match marks.get(next) {
                Some(Mark::Active) => {
                    let start = stack
                        .iter()
                        .position(|n| *n == next)
                        .expect("active node is on the stack");
                    // Inputs point upstream; print the cycle in the direction data flows.
                    let mut path = vec![next.to_owned()];
                    path.extend(stack[start + 1..].iter().rev().map(|s| s.to_string()));
                    path.push(next.to_owned());
                    return Some(path);
                }
                Some(Mark::New) => {
                    if let Some(c) = visit(m, next, marks, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let names: Vec<&str> = m.operators.keys().map(String::as_str).collect();
    for name in names {
        if marks[name] == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(m, name, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

impl Manifest {
    /// Operators in an order where every operator comes after the operators it reads from.
    pub fn operator_order(&self) -> Vec<&str> {
        let mut order = Vec::new();
        let mut placed = BTreeSet::new();
        while order.len() < self.operators.len() {
            let before = order.len();
            for (name, op) in &self.operators {
                if placed.contains(name.as_str()) {
                    continue;
                }
                if op.inputs.iter().all(|i| {
                    !self.operators.contains_key(&i.node) || placed.contains(i.node.as_str())
                }) {
                    placed.insert(name.as_str());
                    order.push(name.as_str());
                }
            }
            assert!(order.len() > before, "validated manifests have no cycles");
        }
        order
    }

    pub fn position(&self, name: &str) -> Pos {
        self.positions.get(name).copied().unwrap_or_default()
    }
}
