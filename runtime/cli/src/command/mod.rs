//! The `flowlet` subcommands, one module each. To add a command, write `command/NAME.rs` with
//! `pub struct Args` (clap) and `async fn run(self, g: &Globals)`, and add one line to
//! [`commands!`] below (its doc comment is the command's help).

use std::path::PathBuf;

use flowlet_host::Host;

/// Declares the command modules, the [`Command`] enum and its dispatch from one list.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)*) => {
        $(mod $module;)*

        #[derive(clap::Subcommand)]
        pub enum Command {
            $($(#[$doc])* $variant($module::Args),)*
        }

        impl Command {
            pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
                match self {
                    $(Self::$variant(args) => args.run(g).await,)*
                }
            }
        }
    };
}

commands! {
    /// Run a topology until its bounded sources end, or until Ctrl-C (every output is flushed).
    ///
    /// With `checkpoint:` in the manifest, a run resumes from the last complete checkpoint of
    /// the state directory.
    Run => run,
    /// Take a savepoint of a topology: of the running one (through its control socket in the
    /// state directory), or, when none runs, a copy of its last checkpoint.
    Savepoint => savepoint,
    /// Check a manifest and report every problem at once (loads no Wasm).
    Validate => validate,
    /// Show the world, contract version, exports and imports of a component.
    Inspect => inspect,
    /// Run one component over a file of events and compare its output with the expected
    /// events (`--bless` writes them): a plugin's test in any language, with only flowlet.
    Test => test,
    /// Print the JSON Schema of the manifest.
    Schema => schema,
    /// Run the control plane: an HTTP API to store plugins, run pipelines, swap plugins while
    /// they run, take savepoints, query state, and serve metrics (docs/CONTROL-PLANE.md).
    Serve => serve,
    /// Deploy a manifest to a server (its plugin files are uploaded first).
    Deploy => deploy,
    /// Swap an operator's plugin while its pipeline runs (name@version, sha256:…, or a file,
    /// which is uploaded first).
    Swap => swap,
    /// Show a pipeline's status (or list the pipelines).
    Status => status,
    /// Create an operator project in Rust, C, Python or JavaScript (docs/LANGUAGES.md).
    New => new,
    /// Tools for operator authors: the WIT contract, C bindings, components from core modules.
    Sdk => sdk,
    /// Benchmarks (see docs/BENCHMARKS.md).
    Bench => bench,
}

/// What every command may use: the global options.
pub struct Globals {
    /// Where compiled components are cached (`None`: the default).
    pub cache_dir: Option<PathBuf>,
    /// Logs are JSON lines (`--log-format json`): what a command reports on stderr is too.
    pub json_logs: bool,
}

impl Globals {
    /// The Wasm host with its component cache.
    pub fn host(&self) -> anyhow::Result<Host> {
        crate::host(self.cache_dir.clone())
    }
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
    /// A client of the server; `call` runs on a blocking thread and its JSON answer is printed.
    async fn print<F>(&self, call: F) -> anyhow::Result<()>
    where
        F: FnOnce(crate::client::Client) -> anyhow::Result<serde_json::Value> + Send + 'static,
    {
        let token = self
            .token_file
            .as_deref()
            .map(crate::serve::read_token)
            .transpose()?;
        let client = crate::client::Client::new(&self.server, token);
        let v = tokio::task::spawn_blocking(move || call(client)).await??;
        println!("{}", serde_json::to_string_pretty(&v)?);
        Ok(())
    }
}
