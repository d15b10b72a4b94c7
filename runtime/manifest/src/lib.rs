//! flowlet's topology manifest: YAML → a validated [`Manifest`], reporting every problem at
//! once with its line, column and a hint. Loads no Wasm.
//!
//! The manifest knows sources, operators and sinks as nodes of a graph; what a connector or a
//! window kind is configured with, it leaves to that kind's module, registered in the
//! [`Catalog`] given in [`Options`] (config.rs).

mod config;
mod diag;
pub mod fields;
mod model;
mod parse;
mod validate;

use std::path::Path;

pub use config::{
    Catalog, Config, Kind, Resource, Spec, describe_json, parse_as, schema_of, split_hint,
};
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
    /// The connectors and window kinds a manifest may use.
    pub catalog: Catalog,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            builtins: Vec::new(),
            check_files: true,
            registry: false,
            catalog: Catalog::default(),
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
    let (manifest, mut d) = parse::parse(text, file, &opts.catalog);
    if let Some(m) = &manifest {
        validate::check(m, &mut d, opts);
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
pub fn json_schema(catalog: &Catalog) -> serde_json::Value {
    use serde_json::json;
    let mut root = serde_json::to_value(schemars::schema_for!(Manifest)).expect("a schema is JSON");
    // Referenced by every source kind's schema only.
    let mut event_time = serde_json::to_value(schemars::schema_for!(EventTime)).expect("JSON");
    if let Some(o) = event_time.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    root["$defs"]["EventTime"] = event_time;
    let source = json!({
        "batch-size": {"type": "integer", "minimum": 1, "maximum": 65536, "description": "Events per batch (1–65536)"},
        "event-time": {"$ref": "#/$defs/EventTime"},
        "on-error": {"$ref": "#/$defs/OnError"}
    });
    root["$defs"]["Source"] = union(&catalog.sources, source, &mut root);
    let sink = json!({
        "inputs": {"type": "array", "items": {"type": "string"}, "description": "Sources, operators or side outputs (`OPERATOR.dead-letter`) this sink reads"}
    });
    root["$defs"]["Sink"] = union(&catalog.sinks, sink, &mut root);
    let window = json!({
        "allowed-lateness": {"type": "string", "description": "How long after a window's end (in event time) late events still update it (default 0)"},
        "time": {"enum": ["event", "processing"], "description": "`event` (default): windows of event time; `processing`: of the operator's clock"}
    });
    root["$defs"]["Window"] = union(&catalog.windows, window, &mut root);
    root
}

/// One schema per kind (its own fields, `kind`, and the `common` fields), as `oneOf`; the
/// kinds' definitions move to the root's `$defs`.
fn union(
    kinds: &[Kind],
    common: serde_json::Value,
    root: &mut serde_json::Value,
) -> serde_json::Value {
    let mut variants = Vec::new();
    for kind in kinds {
        let mut s = serde_json::to_value((kind.schema)()).expect("a schema is JSON");
        if let Some(serde_json::Value::Object(defs)) =
            s.as_object_mut().and_then(|o| o.remove("$defs"))
        {
            for (k, v) in defs {
                root["$defs"][k] = v;
            }
        }
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
        }
        s["properties"]["kind"] = serde_json::json!({ "const": kind.name });
        if let Some(c) = common.as_object() {
            for (k, v) in c {
                s["properties"][k] = v.clone();
            }
        }
        let required = s["required"].as_array().cloned().unwrap_or_default();
        let mut required: Vec<serde_json::Value> = required;
        required.insert(0, "kind".into());
        s["required"] = serde_json::Value::Array(required);
        variants.push(s);
    }
    serde_json::json!({ "oneOf": variants })
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
