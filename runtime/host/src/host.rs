//! The Wasm engine (epoch interruption), the linker with WASI and the capabilities, and the
//! component cache: loading a file into a checked [`Plugin`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentExtern, ComponentItem};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::plugin::{Pre, WORLDS, compatible};
use crate::versions::{v1, v2};
use crate::{HostError, Inspection, Plugin, cache, capability, store};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The Wasm engine, linker and component cache. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<store::InstanceState>,
    cache: cache::ComponentCache,
}

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
        capability::link_all(&mut linker).map_err(|e| HostError::Engine(e.to_string()))?;
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
        let refuse = |message| HostError::Import {
            path: path.to_owned(),
            digest: digest.clone(),
            message,
        };
        capability::check_imports(kind, &info.imports).map_err(refuse)?;
        // Anything else the linker lacks (an interface that is neither WASI 0.2 nor flowlet's).
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            let text = format!("{e:#}");
            let import = info
                .imports
                .iter()
                .find(|i| text.contains(i.as_str()))
                .cloned()
                .unwrap_or(text);
            refuse(format!(
                "imports {import}, which flowlet does not provide; {}",
                capability::allowed(kind)
            ))
        })?;
        let wrong = |e: wasmtime::Error| HostError::WrongWorld {
            path: path.to_owned(),
            digest: digest.clone(),
            message: format!("{e:#}"),
        };
        let contract = info.contract.expect("a kind implies a contract version");
        let pre = match contract {
            "0.1.0" => Pre::V1(v1::Pre::new(kind, pre).map_err(wrong)?),
            _ => Pre::V2(v2::Pre::new(kind, pre).map_err(wrong)?),
        };
        Ok(Plugin {
            path: path.to_owned(),
            digest: format!("sha256:{digest}"),
            kind,
            contract,
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
        let (kind, contract) = WORLDS
            .iter()
            .find_map(|(interface, kind)| {
                exports
                    .iter()
                    .filter_map(|e| e.strip_prefix(interface))
                    .filter_map(|e| e.strip_prefix('@'))
                    .find_map(compatible)
                    .map(|c| (Some(*kind), Some(c)))
            })
            .unwrap_or_default();
        Inspection {
            digest: format!("sha256:{digest}"),
            world: kind.map(|k| k.to_string()),
            kind,
            contract,
            contract_version: flowlet_version,
            exports,
            imports,
        }
    }
}
