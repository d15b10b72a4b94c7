//! What the benchmarks ask of the `flowlet` command (which depends on this crate), and running
//! a manifest with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use flowlet_dataflow::{OperatorFactory, RunOptions, RunReport, Stop};
use flowlet_host::Host;
use flowlet_manifest::{Manifest, ManifestError, Options};

/// Operator factories by operator name.
pub type Factories = BTreeMap<String, Arc<dyn OperatorFactory>>;

/// What the `flowlet` command provides to the benchmarks.
pub trait Runner: Send + Sync + 'static {
    /// How manifests are validated: the connectors, window kinds and built-in operators.
    fn options(&self) -> Options;
    /// Every operator's factory (plugins loaded, built-ins linked).
    fn factories(&self, host: &Host, manifest: &Manifest) -> anyhow::Result<Factories>;
    /// A built-in operator (`builtin:NAME`) with its configuration.
    fn builtin(&self, name: &str, config: serde_json::Value) -> Option<Arc<dyn OperatorFactory>>;
}

/// Load and validate a manifest file.
pub(crate) fn load(r: &dyn Runner, path: &Path) -> anyhow::Result<Manifest> {
    match flowlet_manifest::load(path, &r.options()) {
        Ok(m) => Ok(m),
        Err(ManifestError::Invalid(d)) => bail!("{d}"),
        Err(e) => Err(e.into()),
    }
}

/// Parse and validate a manifest given as text.
pub(crate) fn parse(r: &dyn Runner, text: &str) -> anyhow::Result<Manifest> {
    flowlet_manifest::parse_str(text, "bench.yaml".as_ref(), &r.options())
        .map_err(|d| anyhow::anyhow!("{d}"))
}

/// Run options with flowlet's connectors.
pub(crate) fn run_options() -> RunOptions {
    RunOptions {
        connectors: Some(flowlet_connectors::connectors()),
        ..RunOptions::default()
    }
}

/// Run `manifest` to its end (or `stop`) with `options` (flowlet's connectors unless set).
pub(crate) async fn run(
    r: &dyn Runner,
    host: &Host,
    manifest: &Manifest,
    mut options: RunOptions,
    stop: Arc<Stop>,
) -> anyhow::Result<RunReport> {
    let factories = r.factories(host, manifest)?;
    options
        .connectors
        .get_or_insert_with(flowlet_connectors::connectors);
    Ok(flowlet_dataflow::run(manifest, factories, stop, options).await?)
}
