//! flowlet's topology manifest: YAML → a validated [`Manifest`], reporting every problem at
//! once with its line, column and a hint. Loads no Wasm.
//!
//! ```
//! let text = "
//! version: 1
//! sources:
//!   gen: {kind: generator, count: 10}
//! sinks:
//!   out: {kind: stdout, inputs: [gen]}
//! ";
//! let m = flowlet_manifest::parse_str(text, "demo.yaml".as_ref(), &Default::default()).unwrap();
//! assert_eq!(m.name, "demo");
//! ```

mod diag;
mod graph;
mod model;
mod parse;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
pub use model::*;

/// What validation may look at besides the text.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names accepted after `builtin:` in `plugin:`.
    pub builtins: Vec<String>,
    /// Check that plugin files, input files and granted directories exist.
    pub check_files: bool,
    /// Whether plugins may be named `name@version` or `sha256:…` (a `flowlet serve` registry
    /// resolves them).
    pub registry: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            builtins: Vec::new(),
            check_files: true,
            registry: false,
        }
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Parse and validate manifest text; `file` names it in messages and anchors relative paths.
pub fn parse_str(text: &str, file: &Path, opts: &Options) -> Result<Manifest, Diagnostics> {
    let (manifest, mut d) = parse::parse(text, file);
    if let Some(m) = &manifest {
        graph::check(m, &mut d, opts);
    }
    d.sort();
    match manifest {
        Some(m) if d.is_empty() => Ok(m),
        _ => Err(d),
    }
}

/// Read, parse and validate the manifest at `path`.
pub fn load(path: &Path, opts: &Options) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text, path, opts).map_err(ManifestError::Invalid)
}

/// The JSON Schema of the manifest (published as `docs/manifest.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Manifest)).expect("a schema is JSON")
}

/// Whether `name` is usable as a plugin name or version, a pipeline or an operator name in
/// the control plane's URLs and files: 1–128 of letters, digits, `.`, `_`, `-`, `+`, starting
/// with a letter or digit (so never `.` or `..`, never a path).
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}
