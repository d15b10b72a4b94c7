//! Checks of a parsed manifest as a topology, as named passes run in order: inputs that exist
//! and side outputs that are produced, outputs that are read, plugins that can be loaded,
//! resources (files, standard input, topics) that nodes would share in a way that loses data,
//! and no cycles. Each pass is one module; a new check is one function plus one line here.

mod cycles;
mod inputs;
mod joins;
mod outputs;
mod plugins;
mod resources;

use std::collections::BTreeSet;

use crate::Options;
use crate::diag::{Diagnostics, Pos};
use crate::model::{Manifest, Port};

/// What every pass sees.
pub(crate) struct Ctx<'m> {
    pub m: &'m Manifest,
    pub opts: &'m Options,
    /// Every (node, port) some operator or sink reads.
    pub read: BTreeSet<(String, Port)>,
    /// Whether every entry parsed: otherwise who reads what is not known, and the "unread"
    /// checks are skipped rather than report errors that are not there.
    pub complete: bool,
    file: std::path::PathBuf,
    /// Allowed but probably not meant (a named output nobody reads).
    pub warnings: std::cell::RefCell<Vec<String>>,
}

impl Ctx<'_> {
    /// Where node `name` is named in the manifest.
    pub fn at(&self, name: &str) -> Pos {
        self.m.position(name)
    }

    /// A warning at `pos`, written like an error line.
    pub fn warn(&self, pos: Pos, message: String) {
        let file = self.file.display();
        self.warnings.borrow_mut().push(format!(
            "{file}:{}:{}: warning: {message}",
            pos.line, pos.col
        ));
    }
}

type Pass = fn(&Ctx<'_>, &mut Diagnostics);

/// The passes, in order: one line each.
const PASSES: &[(&str, Pass)] = &[
    ("inputs", inputs::check),
    ("outputs", outputs::check),
    ("joins", joins::check),
    ("plugins", plugins::check),
    ("resources", resources::check),
    ("cycles", cycles::check),
];

/// Run every pass over `m`; the warnings.
pub(crate) fn check(m: &Manifest, d: &mut Diagnostics, opts: &Options) -> Vec<String> {
    let read = m
        .operators
        .values()
        .flat_map(|o| &o.inputs)
        .chain(m.sinks.values().flat_map(|s| &s.inputs))
        .map(|i| (i.node.clone(), i.port.clone()))
        .collect();
    let complete = m.positions.len() == m.sources.len() + m.operators.len() + m.sinks.len();
    let ctx = Ctx {
        m,
        opts,
        read,
        complete,
        file: d.file.clone(),
        warnings: Default::default(),
    };
    for (_, pass) in PASSES {
        pass(&ctx, d);
    }
    ctx.warnings.take()
}

/// Why `path`, which is not a regular file, cannot be read as one.
pub(crate) fn not_a_file(path: &std::path::Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Err(_) => "does not exist",
        Ok(m) if m.is_dir() => "is a directory, not a file",
        Ok(m) if m.file_type().is_fifo() => "is a named pipe (FIFO), not a regular file",
        Ok(m) if m.file_type().is_socket() => "is a socket, not a regular file",
        Ok(_) => "is a device, not a regular file",
    }
}
