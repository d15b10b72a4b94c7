//! What the benchmarks ask of the `flowlet` command (which depends on this crate), and running
//! a manifest with it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use flowlet_dataflow::{BoxFuture, OperatorFactory, RunOptions, RunReport, Stop};
use flowlet_host::Host;
use flowlet_manifest::{Manifest, Options};

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
    /// Run `manifest` to its end (or `stop`) as `flowlet run` does: its factories, flowlet's
    /// connectors unless `options` has others.
    fn run<'a>(
        &'a self,
        host: &'a Host,
        manifest: &'a Manifest,
        options: RunOptions,
        stop: Arc<Stop>,
    ) -> BoxFuture<'a, anyhow::Result<RunReport>>;
}

/// Load and validate a manifest file (an invalid one's error lists every diagnostic).
pub(crate) fn load(r: &dyn Runner, path: &Path) -> anyhow::Result<Manifest> {
    Ok(flowlet_manifest::load(path, &r.options())?)
}

/// Parse and validate a manifest given as text.
pub(crate) fn parse(r: &dyn Runner, text: &str) -> anyhow::Result<Manifest> {
    flowlet_manifest::parse_str(text, "bench.yaml".as_ref(), &r.options())
        .map_err(|d| anyhow::anyhow!("{d}"))
}

/// Run `manifest` once: the report, wall seconds and process CPU seconds (plugins loaded before
/// the clock starts).
pub(crate) async fn timed_run(
    fl: &dyn Runner,
    host: &Host,
    manifest: &flowlet_manifest::Manifest,
) -> anyhow::Result<(flowlet_dataflow::RunReport, f64, f64)> {
    let factories = fl.factories(host, manifest)?;
    let cpu0 = flowlet_dataflow::bench::process_cpu().as_secs_f64();
    let t0 = Instant::now();
    let report = flowlet_dataflow::run(
        manifest,
        factories,
        flowlet_dataflow::Stop::new(),
        flowlet_connectors::run_options(),
    )
    .await?;
    Ok((
        report,
        t0.elapsed().as_secs_f64(),
        flowlet_dataflow::bench::process_cpu().as_secs_f64() - cpu0,
    ))
}
