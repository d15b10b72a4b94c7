//! The `flowlet` command, as a library so that the integration tests in `tests/` can drive it
//! in-process; `main.rs` only calls [`main`].

pub mod bench;
pub mod builtins;
pub mod client;
pub mod control;
mod kafka_bench;
mod new_project;
pub mod nexmark_bench;
pub mod serve;
mod swap_bench;
pub mod toolkit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
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
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a topology until its bounded sources end, or until Ctrl-C (every output is flushed).
    ///
    /// With `checkpoint:` in the manifest, a run resumes from the last complete checkpoint of
    /// the state directory.
    Run {
        manifest: PathBuf,
        /// Print the per-node counters as JSON on stderr at the end.
        #[arg(long)]
        stats: bool,
        /// Ignore the state, positions and outputs of earlier runs.
        #[arg(long)]
        from_scratch: bool,
        /// Start from a savepoint written by `flowlet savepoint`.
        #[arg(long, value_name = "FILE", conflicts_with = "from_scratch")]
        from_savepoint: Option<PathBuf>,
    },
    /// Take a savepoint of a topology: of the running one (through its control socket in the
    /// state directory), or, when none runs, a copy of its last checkpoint.
    Savepoint {
        manifest: PathBuf,
        /// Stop the running topology once the savepoint is taken.
        #[arg(long)]
        stop: bool,
        /// Where to write it [default: <state dir>/savepoints/savepoint-<checkpoint>.flowlet].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check a manifest and report every problem at once (loads no Wasm).
    Validate { manifest: PathBuf },
    /// Show the world, contract version, exports and imports of a component.
    Inspect {
        plugin: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the manifest.
    Schema,
    /// Run the control plane: an HTTP API to store plugins, run pipelines, swap plugins while
    /// they run, take savepoints, query state, and serve metrics (docs/CONTROL-PLANE.md).
    Serve {
        /// Where to listen; a non-loopback address needs --token-file.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where plugins, pipelines and their state are kept.
        #[arg(long, default_value = ".flowlet/server")]
        data_dir: PathBuf,
        /// A file whose first line is the bearer token mutating requests must carry.
        #[arg(long, env = "FLOWLET_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// Largest plugin upload (interpreted-language components are 12–18 MB).
        #[arg(long, default_value = "64MiB")]
        max_upload: bytesize::ByteSize,
        /// How long a client may take to send a request's headers; slower connections are closed.
        #[arg(long, default_value = "10s")]
        header_timeout: humantime::Duration,
    },
    /// Deploy a manifest to a server (its plugin files are uploaded first).
    Deploy {
        manifest: PathBuf,
        /// The pipeline's name [default: the manifest's].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Swap an operator's plugin while its pipeline runs (name@version, sha256:…, or a file,
    /// which is uploaded first).
    Swap {
        pipeline: String,
        operator: String,
        plugin: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a pipeline's status (or list the pipelines).
    Status {
        pipeline: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Create an operator project in Rust, C, Python or JavaScript (docs/LANGUAGES.md).
    New {
        /// The operator's name (also the project's directory).
        name: String,
        /// rust | c | python | js
        #[arg(long, value_enum)]
        lang: new_project::Lang,
        /// Where to create the project [default: the current directory].
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Rust: the flowlet SDK crate the project depends on [default: the one of the source
        /// tree this flowlet was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Tools for operator authors: the WIT contract, C bindings, components from core modules.
    Sdk {
        #[command(subcommand)]
        which: toolkit::Sdk,
    },
    /// Benchmarks (see docs/BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        which: bench::Bench,
    },
}

/// Which server the client commands talk to.
#[derive(clap::Args)]
struct ServerArgs {
    /// The server's URL.
    #[arg(long, env = "FLOWLET_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A file whose first line is the server's bearer token.
    #[arg(long, env = "FLOWLET_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl ServerArgs {
    fn client(&self) -> anyhow::Result<client::Client> {
        let token = self
            .token_file
            .as_deref()
            .map(serve::read_token)
            .transpose()?;
        Ok(client::Client::new(&self.server, token))
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWLET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

/// Run options with flowlet's connectors (and defaults for the rest).
pub fn run_options() -> RunOptions {
    RunOptions {
        connectors: Some(flowlet_connectors::connectors()),
        ..RunOptions::default()
    }
}

/// Load and validate a manifest; invalid manifests print every diagnostic.
pub fn load_manifest(path: &Path) -> anyhow::Result<Manifest> {
    match flowlet_manifest::load(path, &options()) {
        Ok(m) => Ok(m),
        Err(ManifestError::Invalid(d)) => bail!("{d}"),
        Err(e) => Err(e.into()),
    }
}

/// Load every operator's plugin and make its instance factory.
pub fn factories(
    host: &Host,
    manifest: &Manifest,
) -> anyhow::Result<BTreeMap<String, Arc<dyn OperatorFactory>>> {
    let mut out = BTreeMap::new();
    for (name, op) in &manifest.operators {
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
    let _control = match &manifest.checkpoint {
        Some(_) => {
            if options.state_lock.is_none() {
                options.state_lock = Some(lock_state_dir(manifest).await?);
            }
            control::serve(&manifest.state_dir(), options.savepoints.clone())
        }
        None => None,
    };
    run_manifest_with(host, manifest, options, stop).await
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
    let started = std::time::Instant::now();
    let mut options = options;
    options
        .connectors
        .get_or_insert_with(flowlet_connectors::connectors);
    let report = flowlet_dataflow::run(manifest, factories, stop, options).await?;
    let secs = started.elapsed().as_secs_f64();
    for (name, s) in &report.nodes {
        tracing::info!(
            node = %name,
            events_in = s.events_in,
            events_out = s.events_out,
            rejected = s.rejected,
            skipped = s.skipped,
            dead_lettered = s.dead_lettered,
            restarts = s.restarts,
            late = s.late,
            windows_fired = s.windows_fired,
            "done"
        );
    }
    tracing::info!("topology `{}` finished in {secs:.3}s", manifest.name);
    Ok(report)
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(real_main(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { manifest } => {
            let m = load_manifest(&manifest)?;
            println!(
                "{}: ok — {} source(s), {} operator(s), {} sink(s)",
                manifest.display(),
                m.sources.len(),
                m.operators.len(),
                m.sinks.len()
            );
        }
        Command::Run {
            manifest,
            stats,
            from_scratch,
            from_savepoint,
        } => {
            let m = load_manifest(&manifest)?;
            if m.checkpoint.is_none() && (from_scratch || from_savepoint.is_some()) {
                bail!(
                    "{} has no `checkpoint:`, so there is nothing to resume or restore: add `checkpoint: {{interval: 5s}}` or drop the flag",
                    manifest.display()
                );
            }
            // Before the (possibly slow) engine start: the state directory is taken at once.
            let state_lock = match m.checkpoint {
                Some(_) => Some(lock_state_dir(&m).await?),
                None => None,
            };
            let host = host(cli.cache_dir)?;
            let options = RunOptions {
                from_scratch,
                from_savepoint,
                state_lock,
                ..RunOptions::default()
            };
            let report = run_manifest(&host, &m, options).await?;
            if stats {
                eprintln!("{}", serde_json::to_string(&report)?);
            }
        }
        Command::Inspect { plugin, json } => {
            let host = host(cli.cache_dir)?;
            let info = host.inspect(&plugin)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("plugin:    {}", plugin.display());
                println!("digest:    {}", info.digest);
                println!(
                    "world:     {}",
                    info.world
                        .as_deref()
                        .unwrap_or("none (not a flowlet operator)")
                );
                println!(
                    "contract:  {}",
                    info.contract_version.as_deref().unwrap_or("none")
                );
                println!("exports:");
                for e in &info.exports {
                    println!("  {e}");
                }
                println!("imports:");
                for i in &info.imports {
                    println!("  {i}");
                }
            }
            if let Some(why) = info.not_an_operator() {
                bail!("{} is not a flowlet operator: {why}", plugin.display());
            }
        }
        Command::Savepoint {
            manifest,
            stop,
            output,
        } => {
            let m = load_manifest(&manifest)?;
            if m.checkpoint.is_none() {
                bail!(
                    "{} has no `checkpoint:`; savepoints need checkpoints (add `checkpoint: {{interval: 5s}}`)",
                    manifest.display()
                );
            }
            let path = control::savepoint(&m.state_dir(), stop, output).await?;
            println!("{}", path.display());
        }
        Command::Schema => println!(
            "{}",
            serde_json::to_string_pretty(&flowlet_manifest::json_schema(&catalog()))?
        ),
        Command::New {
            name,
            lang,
            dir,
            sdk,
        } => {
            let path = new_project::create(&name, lang, &dir, sdk.as_deref())?;
            println!("{}", new_project::next_steps(&name, lang, &path));
        }
        Command::Sdk { which } => toolkit::run(which)?,
        Command::Bench { which } => bench::run(which, host(cli.cache_dir)?).await?,
        Command::Serve {
            listen,
            data_dir,
            token_file,
            max_upload,
            header_timeout,
        } => {
            let token = token_file.as_deref().map(serve::read_token).transpose()?;
            let config = serve::ServeConfig {
                data_dir,
                token,
                max_upload: max_upload.as_u64() as usize,
                header_timeout: header_timeout.into(),
            };
            serve::serve(host(cli.cache_dir)?, listen, config).await?;
        }
        Command::Deploy {
            manifest,
            name,
            server,
        } => {
            let c = server.client()?;
            let v =
                tokio::task::spawn_blocking(move || c.deploy(&manifest, name.as_deref())).await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Swap {
            pipeline,
            operator,
            plugin,
            server,
        } => {
            let c = server.client()?;
            let v = tokio::task::spawn_blocking(move || c.swap(&pipeline, &operator, &plugin))
                .await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Command::Status { pipeline, server } => {
            let c = server.client()?;
            let path = match &pipeline {
                Some(p) => format!("/v1/pipelines/{p}"),
                None => "/v1/pipelines".to_owned(),
            };
            let v = tokio::task::spawn_blocking(move || c.get(&path)).await??;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}
