//! The `flowlet` command, as a library so that the integration tests in `tests/` can drive it
//! in-process; `main.rs` only calls [`main`].

pub mod builtins;
pub mod client;
mod command;
pub mod control;
mod new_project;
mod sdks;
pub mod serve;
pub mod toolkit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use flowlet_dataflow::{OperatorFactory, RunOptions, RunReport, Stop};
use flowlet_host::{Host, InstanceSettings};
use flowlet_manifest::{Manifest, ManifestError, Options, PluginRef};

#[derive(Parser)]
#[command(
    name = "flowlet",
    version,
    about = "Run stream topologies whose operators are WebAssembly components"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Where compiled components are cached [default: $FLOWLET_CACHE_DIR, ~/.cache/flowlet].
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: command::Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWLET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Validation options: the built-in operator names, files checked.
pub fn options() -> Options {
    Options {
        builtins: builtins::NAMES.iter().map(|s| s.to_string()).collect(),
        check_files: true,
        registry: false,
        catalog: catalog(),
    }
}

/// The connectors and window kinds a manifest may use.
pub fn catalog() -> flowlet_manifest::Catalog {
    flowlet_manifest::Catalog {
        windows: flowlet_dataflow::window::kinds(),
        ..flowlet_connectors::catalog()
    }
}

/// Load and validate a manifest; invalid manifests print every diagnostic.
pub fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let m = flowlet_manifest::load(path, &options())?;
    for w in &m.warnings {
        eprintln!("{w}");
    }
    Ok(m)
}

/// Load every operator's plugin and make its instance factory.
pub fn factories(
    host: &Host,
    manifest: &Manifest,
) -> anyhow::Result<BTreeMap<String, Arc<dyn OperatorFactory>>> {
    let mut out = BTreeMap::new();
    // A join without a plugin is the executor's own (it merges the pairs).
    for (name, op) in manifest.operators.iter().filter(|(_, o)| o.join.is_none()) {
        let factory: Arc<dyn OperatorFactory> = match &op.plugin {
            PluginRef::Builtin(b) => builtins::factory(b, op.config.clone())
                .with_context(|| format!("operator `{name}`: no built-in operator `{b}`"))?,
            PluginRef::Registry { .. } | PluginRef::Digest(_) => bail!(
                "operator `{name}`: plugin `{}` names a plugin of a `flowlet serve` registry; `flowlet run` loads files",
                op.plugin
            ),
            PluginRef::Path(p) => {
                let plugin = host
                    .load(&manifest.resolve(p))
                    .with_context(|| format!("operator `{name}`"))?;
                Arc::new(plugin.factory(host, name, InstanceSettings::from_manifest(manifest, op)))
            }
        };
        out.insert(name.clone(), factory);
    }
    Ok(out)
}

/// Run a validated manifest; Ctrl-C stops the sources and lets everything drain.
pub async fn run_manifest(
    host: &Host,
    manifest: &Manifest,
    options: RunOptions,
) -> anyhow::Result<RunReport> {
    let stop = Stop::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!(
                "stopping: the sources end and every output is flushed (Ctrl-C again to abort)"
            );
            on_signal.stop();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let mut options = options;
    let control = match &manifest.checkpoint {
        Some(_) => {
            if options.state_lock.is_none() {
                options.state_lock = Some(lock_state_dir(manifest).await?);
            }
            control::serve(&manifest.state_dir(), options.savepoints.clone())
        }
        None => None,
    };
    let report = run_manifest_with(host, manifest, options, stop).await;
    // A stopping savepoint is answered as the run ends: its reply must be out before we exit.
    if let Some(control) = control {
        control.close().await;
    }
    report
}

/// Take the lock of a checkpointed topology's state directory: it is this process's from here
/// on, before its control socket exists, so that `flowlet savepoint` tells a starting topology
/// from a stopped one, and a second `flowlet run` of it is refused, naming this one.
pub async fn lock_state_dir(
    manifest: &Manifest,
) -> anyhow::Result<Arc<flowlet_dataflow::lock::StateLock>> {
    let dir = manifest.state_dir();
    let lock = tokio::task::spawn_blocking(move || {
        flowlet_dataflow::lock::StateLock::acquire(&dir, &flowlet_dataflow::lock::this_process())
    })
    .await?
    .map_err(flowlet_dataflow::state::StateError::from)?;
    Ok(Arc::new(lock))
}

/// [`run_manifest`] with the caller's clock, standard input and stop handle (tests,
/// embedding). Stopping ends the sources without completing their input: open windows stay
/// open in the state directory for the next run.
pub async fn run_manifest_with(
    host: &Host,
    manifest: &Manifest,
    options: RunOptions,
    stop: Arc<Stop>,
) -> anyhow::Result<RunReport> {
    let factories = factories(host, manifest)?;
    let mut options = options;
    options
        .connectors
        .get_or_insert_with(flowlet_connectors::connectors);
    Ok(flowlet_dataflow::run(manifest, factories, stop, options).await?)
}

/// The Wasm host with its component cache.
pub fn host(cache_dir: Option<PathBuf>) -> anyhow::Result<Host> {
    Ok(Host::new(
        &cache_dir.unwrap_or_else(Host::default_cache_dir),
    )?)
}

/// Parse the command line and run it.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Failpoints for fault-injection tests (docs/RELIABILITY.md); none unless the variable is set.
    if let Err(e) = flowlet_dataflow::fault::from_env() {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let globals = command::Globals {
        cache_dir: cli.cache_dir,
        json_logs: matches!(cli.log_format, LogFormat::Json),
    };
    match runtime.block_on(cli.command.run(&globals)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Diagnostics are already `FILE:LINE:COL: error: …` lines: no second prefix.
        Err(e) if matches!(e.downcast_ref(), Some(ManifestError::Invalid(_))) => {
            eprintln!("{e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What `flowlet bench` needs of this command: its manifest options and operator factories.
pub struct BenchRunner;

impl flowlet_bench::Runner for BenchRunner {
    fn options(&self) -> Options {
        options()
    }

    fn factories(
        &self,
        host: &Host,
        manifest: &Manifest,
    ) -> anyhow::Result<BTreeMap<String, Arc<dyn OperatorFactory>>> {
        factories(host, manifest)
    }

    fn builtin(&self, name: &str, config: serde_json::Value) -> Option<Arc<dyn OperatorFactory>> {
        builtins::factory(name, config)
    }

    fn run<'a>(
        &'a self,
        host: &'a Host,
        manifest: &'a Manifest,
        options: RunOptions,
        stop: Arc<Stop>,
    ) -> flowlet_dataflow::BoxFuture<'a, anyhow::Result<RunReport>> {
        Box::pin(run_manifest_with(host, manifest, options, stop))
    }
}
