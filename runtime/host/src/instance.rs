//! Operator instances: one `Store` each, limited and sandboxed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowlet_dataflow::{Operator, OperatorError, OperatorFactory};
use flowlet_types::{Batch, Header, Output, Rejection};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, types as wit};
use crate::guest_output::GuestOutput;
use crate::{EPOCH_TICK, Host, Plugin};

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

/// Operator metrics reported by the guests of one operator (summed over instances).
pub type GuestMetrics = Arc<Mutex<BTreeMap<String, f64>>>;

pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    operator: Arc<str>,
    metrics: GuestMetrics,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::flowlet::operator::types::Host for InstanceState {}

impl bindings::flowlet::operator::log::Host for InstanceState {
    fn log(&mut self, level: bindings::flowlet::operator::log::Level, message: String) {
        use bindings::flowlet::operator::log::Level;
        let op = &*self.operator;
        match level {
            Level::Trace => tracing::trace!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Debug => tracing::debug!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Info => tracing::info!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Warn => tracing::warn!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Error => tracing::error!(target: "flowlet::guest", operator = op, "{message}"),
        }
    }
}

impl bindings::flowlet::operator::metrics::Host for InstanceState {
    fn counter_add(&mut self, name: String, delta: u64) {
        *self
            .metrics
            .lock()
            .expect("metrics lock")
            .entry(name)
            .or_default() += delta as f64;
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        self.metrics
            .lock()
            .expect("metrics lock")
            .insert(name, value);
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
}

fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64 + 1
}

/// One running instance.
pub struct WasmInstance {
    store: Store<InstanceState>,
    processor: bindings::Processor,
    output: GuestOutput,
    settings: Arc<InstanceSettings>,
}

/// Explain a trap (or host error) from a call, with the guest's last output lines (a panic
/// message, usually).
fn explain(
    err: wasmtime::Error,
    output: &GuestOutput,
    settings: &InstanceSettings,
    call: &str,
    deadline: Duration,
) -> OperatorError {
    let what = match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            format!("ran past its {call} deadline of {deadline:?} and was stopped")
        }
        Some(Trap::StackOverflow) => "overflowed its stack (unbounded recursion?)".to_owned(),
        Some(Trap::UnreachableCodeReached) => "panicked (hit `unreachable`)".to_owned(),
        Some(trap) => format!("trapped: {trap}"),
        None => {
            let text = format!("{err:#}");
            if text.contains("growing memory") || text.contains("memory limit") {
                format!("exceeded its memory limit of {} MiB", settings.memory >> 20)
            } else {
                text
            }
        }
    };
    // A Rust panic prints `thread '…' panicked at FILE:LINE:COL:` and the message on the lines
    // after it; other guests print whatever they print last.
    let tail = output.tail();
    let from = tail
        .iter()
        .rposition(|l| l.contains("panicked at"))
        .unwrap_or(tail.len().saturating_sub(1));
    let said: Vec<&str> = tail[from.min(tail.len())..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with("note:"))
        .take(4)
        .collect();
    OperatorError::Trap(if said.is_empty() {
        what
    } else {
        format!("{what}; it printed: {}", said.join(" "))
    })
}

impl OperatorFactory for WasmFactory {
    fn instantiate(&self) -> Result<Box<dyn Operator>, OperatorError> {
        let settings = Arc::new(self.settings.clone());
        let output = GuestOutput::new(&self.operator);
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
            limits: StoreLimitsBuilder::new()
                .memory_size(settings.memory as usize)
                .trap_on_grow_failure(true)
                .instances(16)
                .build(),
            operator: self.operator.clone(),
            metrics: self.metrics.clone(),
        };
        let mut store = Store::new(self.host.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(settings.init_timeout));
        store.epoch_deadline_trap();
        let fail =
            |e, output: &GuestOutput| explain(e, output, &settings, "init", settings.init_timeout);
        let processor = self
            .plugin
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail(e, &output))?;
        let init = processor
            .flowlet_operator_handler()
            .call_init(&mut store, &settings.config)
            .map_err(|e| fail(e, &output))?;
        match init {
            Ok(()) => {}
            Err(wit::Error::InvalidConfig(m)) => return Err(OperatorError::InvalidConfig(m)),
            Err(wit::Error::Failed(m)) => {
                return Err(OperatorError::Failed(format!("init failed: {m}")));
            }
        }
        Ok(Box::new(WasmInstance {
            store,
            processor,
            output,
            settings,
        }))
    }

    fn plugin_id(&self) -> String {
        self.plugin.digest.clone()
    }
}

impl Operator for WasmInstance {
    fn process(&mut self, input: &Batch) -> Result<Output, OperatorError> {
        let batch = wit::Batch {
            values: input.values.clone(),
            value_ends: input.value_ends.clone(),
            keys: input.keys.clone(),
            key_ends: input.key_ends.clone(),
            timestamps: input.timestamps.clone(),
            headers: input
                .headers
                .iter()
                .map(|h| wit::Header {
                    event: h.event,
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        };
        self.store
            .set_epoch_deadline(ticks(self.settings.call_timeout));
        let result = self
            .processor
            .flowlet_operator_handler()
            .call_process(&mut self.store, &batch)
            .map_err(|e| {
                explain(
                    e,
                    &self.output,
                    &self.settings,
                    "call",
                    self.settings.call_timeout,
                )
            })?;
        let out = match result {
            Ok(out) => out,
            Err(wit::Error::Failed(m) | wit::Error::InvalidConfig(m)) => {
                return Err(OperatorError::Failed(m));
            }
        };
        let e = out.events;
        Ok(Output {
            events: Batch {
                values: e.values,
                value_ends: e.value_ends,
                keys: e.keys,
                key_ends: e.key_ends,
                timestamps: e.timestamps,
                headers: e
                    .headers
                    .into_iter()
                    .map(|h| Header {
                        event: h.event,
                        name: h.name,
                        value: h.value,
                    })
                    .collect(),
            },
            rejected: out
                .rejected
                .into_iter()
                .map(|r| Rejection {
                    event: r.event,
                    reason: r.reason,
                })
                .collect(),
        })
    }
}
