//! Loading a manifest: parse, then validate; every problem at once.

use std::path::Path;

use crate::{Diagnostics, Manifest, Options, parse, validate};

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
    let (mut manifest, mut d) = parse::parse(text, file, &opts.catalog);
    if let Some(m) = &mut manifest {
        m.warnings = validate::check(m, &mut d, opts);
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
