//! flowlet's connectors: where events come from and where they go.
//!
//! Each connector is one module (Kafka a folder) with its configuration as one serde struct
//! (`deny_unknown_fields`, `JsonSchema`) implementing [`SourceConnector`] or
//! [`SinkConnector`], and one line in [`SOURCES`] or [`SINKS`] below. The manifest parses a
//! connector's part of the YAML through the [`catalog`] (line:column diagnostics, "did you
//! mean", the JSON Schema); the executor opens it through [`Connectors`] (its `Connect`
//! trait). Nothing else knows a connector by name.

pub mod file;
mod generate;
pub mod generator;
pub mod http;
pub mod kafka;
mod lines;
pub mod nexmark;
pub mod null;
mod retry;
pub mod stdio;

use std::sync::{Arc, Mutex};

use flowlet_dataflow::{
    BoxFuture, Connect, DataflowError, Prepared, SinkSetup, SinkWriter, Source,
};
use flowlet_manifest::{Component, Config, Diagnostics, Kind, Manifest, Spec};
use serde::de::DeserializeOwned;

/// The sources: one line each.
pub const SOURCES: &[SourceEntry] = &[
    source::<generator::Generator>(),
    source::<nexmark::Nexmark>(),
    source::<file::FileSource>(),
    source::<stdio::Stdin>(),
    source::<kafka::KafkaSource>(),
];

/// The sinks: one line each.
pub const SINKS: &[SinkEntry] = &[
    sink::<stdio::Stdout>(),
    sink::<file::FileSink>(),
    sink::<null::Null>(),
    sink::<http::Http>(),
    sink::<kafka::KafkaSink>(),
];

/// What sets up a transaction spanning a run's sinks (checkpoints under exactly-once): one
/// line each; at most one may answer for a topology.
const COMMITTERS: &[Prepare] = &[kafka::prepare];

type Prepare = for<'a> fn(&'a Manifest) -> BoxFuture<'a, Result<Option<Prepared>, DataflowError>>;

/// A connector's configuration: what every connector is.
pub trait Connector: Spec + DeserializeOwned + schemars::JsonSchema {
    /// `kind:` in the manifest.
    const KIND: &'static str;

    /// Checks across fields, beside those of each field (report with `c` into `d`); `false`
    /// when there was a problem. Looks at the configuration as written, so that its problems
    /// are reported along with those of the fields.
    fn check(c: &Config<'_, '_>, d: &mut Diagnostics) -> bool {
        let _ = (c, d);
        true
    }
}

/// A connector that reads events.
pub trait SourceConnector: Connector {
    /// The reader of source `env.name` (nothing is read until it runs).
    fn open(&self, env: &Env<'_>) -> Result<Box<dyn Source>, String>;
}

/// A connector that writes events.
pub trait SinkConnector: Connector {
    /// The writer of sink `setup.name` (files are created, clients connect lazily).
    fn open(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String>;
}

/// What a source is opened with besides its configuration.
pub struct Env<'a> {
    pub name: &'a str,
    pub manifest: &'a Manifest,
    /// Where `stdin` sources read (tests inject a stream; default: the process's).
    pub stdin: &'a Stdin,
}

/// An injected standard input (taken by the first `stdin` source that runs).
pub type Stdin = Arc<Mutex<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>>;

/// Open a source of one kind from its parsed config.
type OpenSource = fn(&Component, &Env<'_>) -> Result<Box<dyn Source>, String>;
/// Open a sink of one kind from its parsed config.
type OpenSink = fn(&Component, SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String>;

/// A source kind, erased: how the manifest parses it, how the executor opens it.
pub struct SourceEntry {
    pub kind: Kind,
    open: OpenSource,
}

/// A sink kind, erased.
pub struct SinkEntry {
    pub kind: Kind,
    open: OpenSink,
}

/// Register source connector `T`.
pub const fn source<T: SourceConnector>() -> SourceEntry {
    SourceEntry {
        kind: Kind::new(T::KIND, parse::<T>, flowlet_manifest::schema_of::<T>),
        open: open_source::<T>,
    }
}

/// Register sink connector `T`.
pub const fn sink<T: SinkConnector>() -> SinkEntry {
    SinkEntry {
        kind: Kind::new(T::KIND, parse::<T>, flowlet_manifest::schema_of::<T>),
        open: open_sink::<T>,
    }
}

fn parse<T: Connector>(c: &Config<'_, '_>, d: &mut Diagnostics) -> Option<Arc<dyn Spec>> {
    let checked = T::check(c, d);
    let t = c.parse::<T>(d)?;
    checked.then(|| Arc::new(t) as Arc<dyn Spec>)
}

fn open_source<T: SourceConnector>(
    c: &Component,
    env: &Env<'_>,
) -> Result<Box<dyn Source>, String> {
    config::<T>(c).open(env)
}

fn open_sink<T: SinkConnector>(
    c: &Component,
    setup: SinkSetup<'_>,
) -> Result<Box<dyn SinkWriter>, String> {
    config::<T>(c).open(setup)
}

/// The configuration of a component of kind `T` (the manifest parsed it with this catalog).
fn config<T: Connector>(c: &Component) -> &T {
    c.spec::<T>()
        .expect("the manifest was parsed with this catalog")
}

/// The connectors for the manifest's [`flowlet_manifest::Catalog`] (window kinds are the
/// executor's: add them).
pub fn catalog() -> flowlet_manifest::Catalog {
    flowlet_manifest::Catalog {
        sources: SOURCES.iter().map(|e| e.kind.clone()).collect(),
        sinks: SINKS.iter().map(|e| e.kind.clone()).collect(),
        windows: Vec::new(),
    }
}

/// Opens the sources and sinks of a run (the executor's `Connect`).
#[derive(Default, Clone)]
pub struct Connectors {
    stdin: Stdin,
}

impl Connectors {
    /// `stdin` sources read `input` instead of the process's standard input.
    pub fn with_stdin(input: Box<dyn tokio::io::AsyncRead + Send + Unpin>) -> Self {
        Self {
            stdin: Arc::new(Mutex::new(Some(input))),
        }
    }
}

/// The connectors, for `RunOptions::connectors`.
pub fn connectors() -> Arc<dyn Connect> {
    Arc::new(Connectors::default())
}

/// Run options with these connectors (and defaults for the rest).
pub fn run_options() -> flowlet_dataflow::RunOptions {
    flowlet_dataflow::RunOptions {
        connectors: Some(connectors()),
        ..Default::default()
    }
}

impl Connect for Connectors {
    fn prepare<'a>(
        &'a self,
        manifest: &'a Manifest,
    ) -> BoxFuture<'a, Result<Prepared, DataflowError>> {
        Box::pin(async move {
            let mut found = None;
            for prepare in COMMITTERS {
                if let Some(p) = prepare(manifest).await? {
                    if found.is_some() {
                        return Err(DataflowError::Checkpoint {
                            checkpoint: 0,
                            message: "the sinks need two transactions; a topology can write exactly-once to one system only".into(),
                        });
                    }
                    found = Some(p);
                }
            }
            Ok(found.unwrap_or_default())
        })
    }

    fn source(&self, name: &str, manifest: &Manifest) -> Result<Box<dyn Source>, String> {
        let c = &manifest.sources[name].kind;
        let entry = SOURCES.iter().find(|e| e.kind.name == c.kind);
        let entry = entry.ok_or_else(|| format!("no source connector `{}`", c.kind))?;
        let env = Env {
            name,
            manifest,
            stdin: &self.stdin,
        };
        (entry.open)(c, &env)
    }

    fn sink(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        let c = &setup.manifest.sinks[setup.name].kind;
        let entry = SINKS.iter().find(|e| e.kind.name == c.kind);
        let entry = entry.ok_or_else(|| format!("no sink connector `{}`", c.kind))?;
        (entry.open)(c, setup)
    }
}
