//! Pass `resources`: what the sources and sinks read and write outside the topology, as their
//! connectors declare it ([`crate::Spec::resources`]): input files that exist; no standard
//! input under a guarantee it cannot keep; no two nodes sharing a file, standard input or a
//! topic in a way that loses data.

use std::path::PathBuf;

use super::{Ctx, not_a_file};
use crate::config::Resource;
use crate::diag::Diagnostics;
use crate::model::{Guarantee, PluginRef};

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    input_files(cx, d);
    replay(cx, d);
    shared_files(cx, d);
    topic_loops(cx, d);
    shared_stdin(cx, d);
}

/// The resources of every source (`true`) and sink (`false`), by name.
fn resources<'m>(cx: &Ctx<'m>) -> impl Iterator<Item = (&'m String, bool, Resource)> {
    let sources = cx.m.sources.iter().flat_map(|(n, s)| {
        s.kind
            .spec
            .resources()
            .into_iter()
            .map(move |r| (n, true, r))
    });
    let sinks = cx.m.sinks.iter().flat_map(|(n, s)| {
        s.kind
            .spec
            .resources()
            .into_iter()
            .map(move |r| (n, false, r))
    });
    sources.chain(sinks)
}

fn input_files(cx: &Ctx<'_>, d: &mut Diagnostics) {
    if !cx.opts.check_files {
        return;
    }
    for (name, _, r) in resources(cx) {
        let Resource::ReadsFile(path) = r else {
            continue;
        };
        let file = cx.m.resolve(&path);
        if !file.is_file() {
            d.error_hint(
                cx.at(name),
                format!(
                    "source `{name}`: input file `{}` {}",
                    file.display(),
                    not_a_file(&file)
                ),
                "paths are relative to the manifest's folder; a pipe is read with `kind: stdin`",
            );
        }
    }
}

/// Under a guarantee, a source's input must be readable again after a crash.
fn replay(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let m = cx.m;
    if m.checkpoint.is_none() || m.guarantee == Guarantee::AtMostOnce {
        return;
    }
    for (name, src) in &m.sources {
        if src.kind.spec.replayable() {
            continue;
        }
        let what = if src.kind.spec.resources().contains(&Resource::Stdin) {
            "standard input"
        } else {
            "an input"
        };
        d.error_hint(
            cx.at(name),
            format!(
                "source `{name}` reads {what}, which cannot be read again after a crash, so `guarantee: {}` cannot hold",
                m.guarantee
            ),
            "read a file or a Kafka topic, or choose `guarantee: at-most-once`",
        );
    }
}

/// A file sink must not write a file a source reads or a plugin is loaded from (it is emptied
/// first), nor a file another sink writes (one overwrites the other).
fn shared_files(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let m = cx.m;
    // (who, the file it is)
    let mut read: Vec<(String, PathBuf)> = Vec::new();
    let mut writes = Vec::new();
    for (name, _, r) in resources(cx) {
        match r {
            Resource::ReadsFile(p) => {
                read.push((format!("source `{name}` reads"), canonical(&m.resolve(&p))));
            }
            Resource::WritesFile(p) => writes.push((name, p)),
            _ => {}
        }
    }
    for (name, op) in &m.operators {
        if let PluginRef::Path(p) = &op.plugin {
            let what = format!("operator `{name}` loads its plugin from");
            read.push((what, canonical(&m.resolve(p))));
        }
    }
    let mut written: Vec<(&str, PathBuf)> = Vec::new();
    for (name, path) in writes {
        let shown = m.resolve(&path);
        let file = canonical(&shown);
        for (reader, _) in read.iter().filter(|(_, p)| *p == file) {
            d.error_hint(
                cx.at(name),
                format!(
                    "sink `{name}` writes to `{}`, which {reader}: the sink would empty it first",
                    shown.display()
                ),
                "write the output to another file",
            );
        }
        if let Some((other, _)) = written.iter().find(|(_, p)| *p == file) {
            d.error_hint(
                cx.at(name),
                format!(
                    "sinks `{other}` and `{name}` both write to `{}`: one would overwrite the other's output",
                    shown.display()
                ),
                format!("give each sink its own file, or list both inputs in `{other}`"),
            );
        }
        written.push((name, file));
    }
}

/// A sink writing a topic a never-ending source of the topology reads: each event would be read
/// again, for ever.
fn topic_loops(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let all: Vec<_> = resources(cx).collect();
    for (name, _, w) in &all {
        let Resource::WritesTopic { brokers, topic } = w else {
            continue;
        };
        for (source, _, r) in &all {
            if let Resource::ReadsTopic {
                brokers: b,
                topic: t,
                bounded: false,
            } = r
                && b == brokers
                && t == topic
            {
                d.error_hint(
                    cx.at(name),
                    format!(
                        "sink `{name}` writes to the Kafka topic `{topic}`, which source `{source}` reads: every event would be read again, for ever"
                    ),
                    "write to another topic (or read it `bounded: true`, for a one-off backfill)",
                );
            }
        }
    }
}

/// Two sources reading standard input would each get some of its lines.
fn shared_stdin(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let stdin: Vec<&str> = resources(cx)
        .filter(|(_, is_source, r)| *is_source && *r == Resource::Stdin)
        .map(|(n, _, _)| n.as_str())
        .collect();
    if let [first, second, ..] = stdin[..] {
        d.error_hint(
            cx.at(second),
            format!("sources `{first}` and `{second}` both read standard input: each line would reach only one of them"),
            format!("read it with one source and list `{first}` in the inputs of every node that needs it"),
        );
    }
}

/// `path` made absolute with symbolic links resolved, also when it does not exist yet (its
/// deepest existing ancestor is resolved), so that two spellings of one file compare equal.
pub(crate) fn canonical(path: &std::path::Path) -> PathBuf {
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
fn lexical(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
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
