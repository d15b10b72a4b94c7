//! What one instance's `Store` holds: WASI, its limits, and the context the host
//! capabilities act on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flowlet_operator::{KeyedStateAccess, SharedState};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::Limits;

/// Operator metrics reported by the guests of one operator (summed over instances).
pub type GuestMetrics = Arc<Mutex<BTreeMap<String, f64>>>;

/// What the capabilities of one instance act on.
pub(crate) struct Ctx {
    /// The operator the instance belongs to (named in its log lines).
    pub operator: Arc<str>,
    pub metrics: GuestMetrics,
    /// Keyed state and timers (stateful processors only).
    pub state: Option<SharedState>,
}

impl Ctx {
    /// Run `f` on the instance's keyed state (`R::default()` without state: a world without
    /// the `state` capability cannot reach here, see `capability::check_imports`).
    pub(crate) fn with_state<R: Default>(
        &mut self,
        f: impl FnOnce(&mut (dyn KeyedStateAccess + Send)) -> R,
    ) -> R {
        match &self.state {
            Some(s) => f(&mut *s.lock().expect("state lock")),
            None => R::default(),
        }
    }
}

/// The data of one instance's store.
pub(crate) struct InstanceState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: Limits,
    pub caps: Ctx,
}

impl InstanceState {
    /// What the capabilities act on (the getter they are linked with).
    pub(crate) fn caps(&mut self) -> &mut Ctx {
        &mut self.caps
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
