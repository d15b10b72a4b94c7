//! Operator instances: one `Store` each, limited ([`crate::limits`]) and sandboxed, with the
//! host capabilities ([`crate::capability`]) acting on its [`Ctx`].

mod call;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowlet_operator::{Instance, InstanceContext, OperatorError, OperatorFactory, PluginKind};
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;

use crate::guest_output::GuestOutput;
use crate::limits::Limits;
use crate::store::{Ctx, GuestMetrics, InstanceState};
use crate::{EPOCH_TICK, Host, Plugin};

use call::{Exports, WasmInstance, explain};

/// What an instance is given: limits, grants and its configuration.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// The operator's `config:` as JSON text.
    pub config: String,
    pub memory: u64,
    pub call_timeout: Duration,
    pub init_timeout: Duration,
    /// Environment variables (name, value) the guest sees.
    pub env: Vec<(String, String)>,
    /// Read-only directories: guest path → host path.
    pub dirs: BTreeMap<String, PathBuf>,
}

impl InstanceSettings {
    /// Settings from a manifest operator (grants resolved against the manifest's folder).
    pub fn from_manifest(
        manifest: &flowlet_manifest::Manifest,
        op: &flowlet_manifest::Operator,
    ) -> Self {
        Self {
            config: op.config.to_string(),
            memory: op.limits.memory,
            call_timeout: op.limits.call_timeout,
            init_timeout: op.limits.init_timeout,
            env: op
                .grants
                .env
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                .collect(),
            dirs: op
                .grants
                .dirs
                .iter()
                .map(|(g, h)| (g.clone(), manifest.resolve(h)))
                .collect(),
        }
    }
}

/// Makes sandboxed instances of one plugin for one operator.
pub struct WasmFactory {
    host: Host,
    plugin: Plugin,
    operator: Arc<str>,
    settings: InstanceSettings,
    metrics: GuestMetrics,
}

impl WasmFactory {
    pub(crate) fn new(
        host: Host,
        plugin: Plugin,
        operator: &str,
        settings: InstanceSettings,
    ) -> Self {
        Self {
            host,
            plugin,
            operator: operator.into(),
            settings,
            metrics: GuestMetrics::default(),
        }
    }

    /// What the operator's guests reported through the metrics interface.
    pub fn metrics(&self) -> GuestMetrics {
        self.metrics.clone()
    }

    /// A store for one instance: WASI with nothing granted beyond stdout/stderr (captured),
    /// clocks, randomness and the manifest's grants; the memory cap; the init deadline.
    fn store(
        &self,
        ctx: &InstanceContext,
        settings: &InstanceSettings,
        output: &GuestOutput,
    ) -> Result<Store<InstanceState>, OperatorError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .envs(&settings.env);
        for (guest, host) in &settings.dirs {
            wasi.preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| {
                    OperatorError::InvalidConfig(format!("cannot grant {}: {e}", host.display()))
                })?;
        }
        let state = InstanceState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: Limits::new(settings.memory),
            caps: Ctx {
                operator: self.operator.clone(),
                metrics: self.metrics.clone(),
                state: ctx.state.clone(),
            },
        };
        let mut store = Store::new(self.host.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(settings.init_timeout));
        store.epoch_deadline_trap();
        Ok(store)
    }
}

/// An error of the operating system (memory images, mappings), not a trap of the guest.
fn is_io(e: &wasmtime::Error) -> bool {
    e.downcast_ref::<wasmtime::Trap>().is_none()
        && e.chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some())
}

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

impl OperatorFactory for WasmFactory {
    fn instantiate(&self, ctx: &InstanceContext) -> Result<Instance, OperatorError> {
        let settings = Arc::new(self.settings.clone());
        let output = GuestOutput::new(&self.operator);
        let mut store = self.store(ctx, &settings, &output)?;
        let fail = |e, store: &Store<InstanceState>| {
            explain(e, &output, store, &settings, "init", settings.init_timeout)
        };
        let mut attempt = 0;
        let exports = loop {
            match Exports::instantiate(&self.plugin.pre, &mut store) {
                Ok(e) => break e,
                // The host's resources, not the plugin: the kernel refusing for a moment to
                // seal the memfd of the memory image (EBUSY while it holds the pages) failed
                // one instantiation in a test run. A few tries on a fresh store.
                Err(e) if attempt < 3 && is_io(&e) => {
                    attempt += 1;
                    tracing::warn!(operator = %self.operator, "instantiating failed ({e:#}); trying again");
                    std::thread::sleep(Duration::from_millis(20 * attempt));
                    store = self.store(ctx, &settings, &output)?;
                }
                Err(e) => return Err(fail(e, &store)),
            }
        };
        let init = match exports.init(&mut store, &settings.config, &ctx.setup) {
            Ok(r) => r,
            Err(e) => return Err(fail(e, &store)),
        };
        match init {
            Ok(()) => {}
            Err(OperatorError::Failed(m)) => {
                return Err(OperatorError::Failed(format!("init failed: {m}")));
            }
            Err(e) => return Err(e),
        }
        let instance = WasmInstance {
            store,
            exports,
            output,
            settings,
        };
        Ok(match self.plugin.kind {
            PluginKind::Aggregator => Instance::Aggregator(Box::new(instance)),
            _ => Instance::Processor(Box::new(instance)),
        })
    }

    fn plugin_id(&self) -> String {
        self.plugin.digest.clone()
    }

    fn kind(&self) -> PluginKind {
        self.plugin.kind
    }

    fn contract(&self) -> &'static str {
        self.plugin.contract
    }
}

impl Plugin {
    /// A factory of instances of this plugin for operator `operator`.
    pub fn factory(&self, host: &Host, operator: &str, settings: InstanceSettings) -> WasmFactory {
        WasmFactory::new(host.clone(), self.clone(), operator, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::is_io;

    #[test]
    fn only_the_systems_errors_are_tried_again() {
        let io = std::io::Error::from_raw_os_error(16); // EBUSY
        let e = wasmtime::Error::new(io).context("cannot add seals to the memfd");
        assert!(is_io(&e));
        assert!(!is_io(&wasmtime::Error::new(
            wasmtime::Trap::UnreachableCodeReached
        )));
        assert!(!is_io(&wasmtime::Error::msg(
            "the component has no export `init`"
        )));
    }
}
