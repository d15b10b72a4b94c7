//! Operator instances: one `Store` each, limited and sandboxed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowlet_operator::{
    Accumulators, Added, Aggregator, FiredWindows, Instance, InstanceContext, KeyedStateAccess,
    Operator, OperatorError, OperatorFactory, PluginKind, SharedState, TimeDomain, Timer,
};
use flowlet_types::{Batch, Header, Output, Rejection, Timestamp};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, types as wit};
use crate::guest_output::GuestOutput;
use crate::{EPOCH_TICK, Host, Plugin, Pre};

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
    /// Keyed state and timers (stateful processors).
    state: Option<SharedState>,
}

impl InstanceState {
    fn with_state<R: Default>(
        &mut self,
        f: impl FnOnce(&mut (dyn KeyedStateAccess + Send)) -> R,
    ) -> R {
        match &self.state {
            Some(s) => f(&mut *s.lock().expect("state lock")),
            None => R::default(),
        }
    }
}

mod state_host {
    use super::*;
    use crate::bindings::stateful::flowlet::operator::{state, timers};

    impl state::Host for InstanceState {
        fn value_get(&mut self, key: Vec<u8>, name: String) -> Option<Vec<u8>> {
            self.with_state(|s| s.value_get(&key, &name))
        }
        fn value_put(&mut self, key: Vec<u8>, name: String, value: Vec<u8>, ttl: Option<u64>) {
            self.with_state(|s| s.value_put(&key, &name, &value, ttl));
        }
        fn value_delete(&mut self, key: Vec<u8>, name: String) {
            self.with_state(|s| s.value_delete(&key, &name));
        }
        fn map_get(&mut self, key: Vec<u8>, name: String, map_key: Vec<u8>) -> Option<Vec<u8>> {
            self.with_state(|s| s.map_get(&key, &name, &map_key))
        }
        fn map_put(
            &mut self,
            key: Vec<u8>,
            name: String,
            map_key: Vec<u8>,
            value: Vec<u8>,
            ttl: Option<u64>,
        ) {
            self.with_state(|s| s.map_put(&key, &name, &map_key, &value, ttl));
        }
        fn map_delete(&mut self, key: Vec<u8>, name: String, map_key: Vec<u8>) {
            self.with_state(|s| s.map_delete(&key, &name, &map_key));
        }
        fn map_range(
            &mut self,
            key: Vec<u8>,
            name: String,
            start: Vec<u8>,
            end: Vec<u8>,
            limit: u32,
        ) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.with_state(|s| s.map_range(&key, &name, &start, &end, limit))
        }
    }

    pub(super) fn domain(d: timers::TimeDomain) -> TimeDomain {
        match d {
            timers::TimeDomain::EventTime => TimeDomain::EventTime,
            timers::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
        }
    }

    pub(super) fn wit_domain(d: TimeDomain) -> timers::TimeDomain {
        match d {
            TimeDomain::EventTime => timers::TimeDomain::EventTime,
            TimeDomain::ProcessingTime => timers::TimeDomain::ProcessingTime,
        }
    }

    impl timers::Host for InstanceState {
        fn current_watermark(&mut self) -> Timestamp {
            match &self.state {
                Some(s) => s.lock().expect("state lock").watermark(),
                None => Timestamp::MIN,
            }
        }
        fn current_processing_time(&mut self) -> Timestamp {
            match &self.state {
                Some(s) => s.lock().expect("state lock").now(),
                None => flowlet_operator::now_ms(),
            }
        }
        fn register(&mut self, key: Vec<u8>, d: timers::TimeDomain, at: Timestamp) {
            self.with_state(|s| s.register_timer(&key, domain(d), at));
        }
        fn cancel(&mut self, key: Vec<u8>, d: timers::TimeDomain, at: Timestamp) {
            self.with_state(|s| s.cancel_timer(&key, domain(d), at));
        }
    }
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

/// The exports of an instance, by world.
enum Exports {
    Processor(bindings::Processor),
    Stateful(bindings::stateful::StatefulProcessor),
    Aggregator(bindings::aggregator::Aggregator),
}

impl Exports {
    fn instantiate(pre: &Pre, store: &mut Store<InstanceState>) -> wasmtime::Result<Self> {
        Ok(match pre {
            Pre::Processor(p) => Self::Processor(p.instantiate(store)?),
            Pre::Stateful(p) => Self::Stateful(p.instantiate(store)?),
            Pre::Aggregator(p) => Self::Aggregator(p.instantiate(store)?),
        })
    }

    /// Every world's `init` has the same signature.
    fn init(
        &self,
        store: &mut Store<InstanceState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), wit::Error>> {
        match self {
            Self::Processor(p) => p.flowlet_operator_handler().call_init(store, config),
            Self::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_init(store, config),
            Self::Aggregator(p) => p.flowlet_operator_aggregate().call_init(store, config),
        }
    }
}

/// One running instance.
pub struct WasmInstance {
    store: Store<InstanceState>,
    exports: Exports,
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
    fn instantiate(&self, ctx: &InstanceContext) -> Result<Instance, OperatorError> {
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
            state: ctx.state.clone(),
        };
        let mut store = Store::new(self.host.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(settings.init_timeout));
        store.epoch_deadline_trap();
        let fail =
            |e, output: &GuestOutput| explain(e, output, &settings, "init", settings.init_timeout);
        let config = settings.config.clone();
        let exports =
            Exports::instantiate(&self.plugin.pre, &mut store).map_err(|e| fail(e, &output))?;
        let init = exports
            .init(&mut store, &config)
            .map_err(|e| fail(e, &output))?;
        match init {
            Ok(()) => {}
            Err(wit::Error::InvalidConfig(m)) => return Err(OperatorError::InvalidConfig(m)),
            Err(wit::Error::Failed(m)) => {
                return Err(OperatorError::Failed(format!("init failed: {m}")));
            }
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
}

pub(crate) fn to_wit(input: &Batch) -> wit::Batch {
    wit::Batch {
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
    }
}

pub(crate) fn from_wit(e: wit::Batch) -> Batch {
    Batch {
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
    }
}

fn from_wit_rejections(rejected: Vec<wit::Rejection>) -> Vec<Rejection> {
    rejected
        .into_iter()
        .map(|r| Rejection {
            event: r.event,
            reason: r.reason,
        })
        .collect()
}

fn from_wit_output(out: wit::Output) -> Output {
    Output {
        events: from_wit(out.events),
        rejected: from_wit_rejections(out.rejected),
    }
}

fn guest_error(e: wit::Error) -> OperatorError {
    match e {
        wit::Error::Failed(m) | wit::Error::InvalidConfig(m) => OperatorError::Failed(m),
    }
}

impl WasmInstance {
    /// Call into the guest with the call deadline, explaining traps.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&Exports, &mut Store<InstanceState>) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, OperatorError> {
        self.store
            .set_epoch_deadline(ticks(self.settings.call_timeout));
        let result = f(&self.exports, &mut self.store).map_err(|e| {
            explain(
                e,
                &self.output,
                &self.settings,
                "call",
                self.settings.call_timeout,
            )
        })?;
        result.map_err(guest_error)
    }
}

impl Operator for WasmInstance {
    fn process(&mut self, input: &Batch) -> Result<Output, OperatorError> {
        let batch = to_wit(input);
        let out = self.call(|e, store| match e {
            Exports::Processor(p) => p.flowlet_operator_handler().call_process(store, &batch),
            Exports::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_process(store, &batch),
            Exports::Aggregator(_) => unreachable!("aggregators are not processors"),
        })?;
        Ok(from_wit_output(out))
    }

    fn on_timer(&mut self, timers: &[Timer]) -> Result<Batch, OperatorError> {
        use crate::bindings::stateful::exports::flowlet::operator::stateful_handler as sh;
        let fired: Vec<sh::Timer> = timers
            .iter()
            .map(|t| sh::Timer {
                key: t.key.clone(),
                domain: state_host::wit_domain(t.domain),
                at: t.at,
            })
            .collect();
        let out = self.call(|e, store| match e {
            Exports::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_on_timer(store, &fired),
            _ => Ok(Ok(wit::Output {
                events: to_wit(&Batch::new()),
                rejected: Vec::new(),
            })),
        })?;
        Ok(from_wit(out.events))
    }
}

impl Aggregator for WasmInstance {
    fn create_accumulator(&mut self) -> Result<Vec<u8>, OperatorError> {
        self.call(|e, store| match e {
            Exports::Aggregator(a) => a
                .flowlet_operator_aggregate()
                .call_create_accumulator(store),
            _ => unreachable!("only aggregators are aggregators"),
        })
    }

    fn add(
        &mut self,
        accumulators: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<Added, OperatorError> {
        use crate::bindings::aggregator::exports::flowlet::operator::aggregate as ag;
        let batch = to_wit(input);
        let packed = ag::Accumulators {
            bytes: accumulators.bytes,
            ends: accumulators.ends,
        };
        let added = self.call(|e, store| match e {
            Exports::Aggregator(a) => a
                .flowlet_operator_aggregate()
                .call_add(store, &packed, &batch, slots),
            _ => unreachable!("only aggregators are aggregators"),
        })?;
        Ok(Added {
            accumulators: Accumulators {
                bytes: added.accumulators.bytes,
                ends: added.accumulators.ends,
            },
            rejected: from_wit_rejections(added.rejected),
        })
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, OperatorError> {
        self.call(|e, store| match e {
            Exports::Aggregator(x) => x.flowlet_operator_aggregate().call_merge(store, a, b),
            _ => unreachable!("only aggregators are aggregators"),
        })
    }

    fn finish(&mut self, fired: FiredWindows) -> Result<Batch, OperatorError> {
        use crate::bindings::aggregator::exports::flowlet::operator::aggregate as ag;
        let fired = ag::Fired {
            starts: fired.starts,
            ends: fired.ends,
            keys: fired.keys,
            key_ends: fired.key_ends,
            accumulators: fired.accumulators,
            accumulator_ends: fired.accumulator_ends,
            firings: fired.firings,
        };
        let out = self.call(|e, store| match e {
            Exports::Aggregator(a) => a.flowlet_operator_aggregate().call_finish(store, &fired),
            _ => unreachable!("only aggregators are aggregators"),
        })?;
        Ok(from_wit(out))
    }
}
