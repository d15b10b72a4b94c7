//! What validation may look at besides the text.

use crate::Catalog;

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
