//! flowlet's Wasm host.
//!
//! One [`Host`] holds the wasmtime `Engine` (with epoch interruption), the `Linker` with the
//! host interfaces and a minimal WASI, and the on-disk cache of precompiled components.
//! [`Host::load`] turns a component file into a [`Plugin`] (validated against the `processor`
//! world before anything runs); a plugin makes [`flowlet_operator::Operator`] instances, each
//! in its own `Store` with a memory cap, an epoch deadline per call and nothing granted beyond
//! stderr, clocks and randomness unless the manifest says so.

mod bindings;
mod cache;
mod guest_output;
mod instance;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentExtern, ComponentItem};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

pub use flowlet_operator::PluginKind;

pub use instance::{InstanceSettings, WasmFactory};

impl Inspection {
    /// Why the component is not an operator this flowlet runs (`None` when it is one).
    pub fn not_an_operator(&self) -> Option<String> {
        if self.kind.is_some() {
            return None;
        }
        Some(match &self.contract_version {
            Some(v) => format!(
                "it was built for flowlet contract {v}, and this flowlet implements {CONTRACT_VERSION}; rebuild it against this flowlet's wit/"
            ),
            None => format!(
                "it exports none of {} at version {CONTRACT_VERSION} (it exports: {}); build it with flowlet-sdk or against a world of wit/",
                WORLDS.map(|(i, _)| i).join(", "),
                if self.exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    self.exports.join(", ")
                }
            ),
        })
    }
}

/// The WIT package version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The export that makes a component a flowlet `processor`.
pub const HANDLER_INTERFACE: &str = "flowlet:operator/handler";

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a plugin could not be loaded or inspected.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read plugin {path}: it is {what}; give the path of a .wasm component file")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{path} is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for `wasm32-wasip2` (Rust) or wrap it with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} (sha256:{digest}) is not a valid component: {message}")]
    Invalid {
        path: PathBuf,
        digest: String,
        message: String,
    },
    #[error("{path} (sha256:{digest}) does not implement flowlet's `processor` world: {message}")]
    WrongWorld {
        path: PathBuf,
        digest: String,
        message: String,
    },
    #[error(
        "{path} (sha256:{digest}) imports {import}, which flowlet does not provide; an operator may import only flowlet:operator/{{log,metrics}} and WASI 0.2"
    )]
    UnknownImport {
        path: PathBuf,
        digest: String,
        import: String,
    },
    #[error("cannot set up the Wasm engine: {0}")]
    Engine(String),
}

/// What `flowlet inspect` shows about a component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub digest: String,
    /// The flowlet world the component implements, if any.
    pub world: Option<String>,
    #[serde(skip)]
    pub kind: Option<PluginKind>,
    /// The contract version of the flowlet interfaces it uses.
    pub contract_version: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

/// The Wasm engine, linker and component cache. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<instance::InstanceState>,
    cache: cache::ComponentCache,
}

/// A component loaded and checked against one of flowlet's worlds.
#[derive(Clone)]
pub struct Plugin {
    pub path: PathBuf,
    /// `sha256:<hex>` of the component file.
    pub digest: String,
    pub kind: PluginKind,
    pre: Pre,
}

#[derive(Clone)]
pub(crate) enum Pre {
    Processor(bindings::ProcessorPre<instance::InstanceState>),
    Stateful(bindings::stateful::StatefulProcessorPre<instance::InstanceState>),
    Aggregator(bindings::aggregator::AggregatorPre<instance::InstanceState>),
}

/// The exported interface that makes a component implement each world.
const WORLDS: [(&str, PluginKind); 3] = [
    ("flowlet:operator/handler", PluginKind::Processor),
    (
        "flowlet:operator/stateful-handler",
        PluginKind::StatefulProcessor,
    ),
    ("flowlet:operator/aggregate", PluginKind::Aggregator),
];

fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Deep but bounded: unbounded recursion traps instead of taking the host thread down.
    config.max_wasm_stack(1 << 20);
    config
}

impl Host {
    /// A host whose compiled components are cached under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<Self, HostError> {
        let engine = Engine::new(&engine_config()).map_err(|e| HostError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        bindings::Processor::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| HostError::Engine(e.to_string()))?;
        bindings::stateful::flowlet::operator::state::add_to_linker::<
            _,
            wasmtime::component::HasSelf<_>,
        >(&mut linker, |s| s)
        .map_err(|e| HostError::Engine(e.to_string()))?;
        bindings::stateful::flowlet::operator::timers::add_to_linker::<
            _,
            wasmtime::component::HasSelf<_>,
        >(&mut linker, |s| s)
        .map_err(|e| HostError::Engine(e.to_string()))?;
        // Advance the epoch while the engine lives; deadlines are counted in ticks.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("flowlet-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| HostError::Engine(e.to_string()))?;
        let cache = cache::ComponentCache::new(cache_dir, &engine);
        Ok(Self {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache,
            }),
        })
    }

    /// The default cache directory: `$FLOWLET_CACHE_DIR`, else `$XDG_CACHE_HOME/flowlet`, else
    /// `~/.cache/flowlet`, else `.flowlet/cache`.
    pub fn default_cache_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("FLOWLET_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("flowlet");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache").join("flowlet");
        }
        PathBuf::from(".flowlet/cache")
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Read a component file and compile it (or take it from the cache).
    fn component(&self, path: &Path) -> Result<(Component, String), HostError> {
        use std::os::unix::fs::FileTypeExt;
        let read_error = |source| HostError::Read {
            path: path.to_owned(),
            source,
        };
        // Only regular files: reading a FIFO or a device would wait or never end.
        let ty = std::fs::metadata(path).map_err(read_error)?.file_type();
        let what = if ty.is_dir() {
            Some("a directory")
        } else if ty.is_fifo() {
            Some("a named pipe (FIFO)")
        } else if ty.is_socket() {
            Some("a socket")
        } else if !ty.is_file() {
            Some("a device")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(HostError::NotAFile {
                path: path.to_owned(),
                what,
            });
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        self.component_of(path, &bytes)
    }

    /// Compile `bytes` (or take them from the cache); `path` names them in errors.
    fn component_of(&self, path: &Path, bytes: &[u8]) -> Result<(Component, String), HostError> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(HostError::NotWasm {
                path: path.to_owned(),
            });
        }
        // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
        if bytes[6..8] == [0, 0] {
            return Err(HostError::CoreModule {
                path: path.to_owned(),
            });
        }
        let digest = hex::encode(Sha256::digest(bytes));
        let component = self
            .inner
            .cache
            .load(&self.inner.engine, &digest, bytes)
            .map_err(|message| HostError::Invalid {
                path: path.to_owned(),
                digest: digest.clone(),
                message,
            })?;
        Ok((component, digest))
    }

    /// Load a component and check that it implements one of flowlet's worlds (`processor`,
    /// `stateful-processor`, `aggregator`) and imports only what flowlet provides. Nothing is
    /// instantiated yet.
    pub fn load(&self, path: &Path) -> Result<Plugin, HostError> {
        let (component, digest) = self.component(path)?;
        self.plugin(path, component, digest)
    }

    /// [`Host::load`] of a component held in memory (an upload); `label` names it in errors.
    pub fn load_bytes(&self, label: &Path, bytes: &[u8]) -> Result<Plugin, HostError> {
        let (component, digest) = self.component_of(label, bytes)?;
        self.plugin(label, component, digest)
    }

    fn plugin(
        &self,
        path: &Path,
        component: Component,
        digest: String,
    ) -> Result<Plugin, HostError> {
        let info = self.describe(&component, &digest);
        let Some(kind) = info.kind else {
            return Err(HostError::WrongWorld {
                path: path.to_owned(),
                digest,
                message: info.not_an_operator().unwrap_or_default(),
            });
        };
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            let text = format!("{e:#}");
            let import = info
                .imports
                .iter()
                .find(|i| text.contains(i.as_str()))
                .cloned()
                .unwrap_or(text);
            HostError::UnknownImport {
                path: path.to_owned(),
                digest: digest.clone(),
                import,
            }
        })?;
        let wrong = |e: wasmtime::Error| HostError::WrongWorld {
            path: path.to_owned(),
            digest: digest.clone(),
            message: format!("{e:#}"),
        };
        let pre = match kind {
            PluginKind::Processor => {
                Pre::Processor(bindings::ProcessorPre::new(pre).map_err(wrong)?)
            }
            PluginKind::StatefulProcessor => {
                Pre::Stateful(bindings::stateful::StatefulProcessorPre::new(pre).map_err(wrong)?)
            }
            PluginKind::Aggregator => {
                Pre::Aggregator(bindings::aggregator::AggregatorPre::new(pre).map_err(wrong)?)
            }
        };
        Ok(Plugin {
            path: path.to_owned(),
            digest: format!("sha256:{digest}"),
            kind,
            pre,
        })
    }

    /// What a component exports and imports, and which flowlet world it implements.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, HostError> {
        let (component, digest) = self.component(path)?;
        Ok(self.describe(&component, &digest))
    }

    fn describe(&self, component: &Component, digest: &str) -> Inspection {
        let ty = component.component_type();
        let engine = &self.inner.engine;
        let name = |(n, item): (&str, ComponentExtern<'_>)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("{n} (function)"),
            _ => n.to_owned(),
        };
        let exports: Vec<String> = ty.exports(engine).map(name).collect();
        let imports: Vec<String> = ty.imports(engine).map(name).collect();
        let flowlet_version = exports
            .iter()
            .chain(&imports)
            .filter_map(|n| n.strip_prefix("flowlet:operator/"))
            .filter_map(|n| n.split_once('@').map(|(_, v)| v.to_owned()))
            .next();
        let kind = WORLDS.iter().find_map(|(interface, kind)| {
            exports
                .iter()
                .filter_map(|e| e.strip_prefix(interface))
                .filter_map(|e| e.strip_prefix('@'))
                .any(compatible)
                .then_some(*kind)
        });
        Inspection {
            digest: format!("sha256:{digest}"),
            world: kind.map(|k| k.to_string()),
            kind,
            contract_version: flowlet_version,
            exports,
            imports,
        }
    }
}

/// Whether a contract version is one this host speaks: same major and minor (0.x: minor is
/// breaking), any patch.
fn compatible(version: &str) -> bool {
    let mine: Vec<&str> = CONTRACT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split('.').collect();
    theirs.len() == 3 && theirs[..2] == mine[..2]
}

impl Plugin {
    /// A factory of instances of this plugin for operator `operator`.
    pub fn factory(&self, host: &Host, operator: &str, settings: InstanceSettings) -> WasmFactory {
        WasmFactory::new(host.clone(), self.clone(), operator, settings)
    }
}
