//! Calls into a running instance, by world, with the call deadline; traps explained.

use std::sync::Arc;
use std::time::Duration;

use flowlet_operator::{
    Accumulators, Added, Aggregator, FiredWindows, Operator, OperatorError, Setup, Timer,
};
use flowlet_types::{Batch, Output};
use wasmtime::{Store, Trap};

use super::{InstanceSettings, InstanceState, ticks};
use crate::Pre;
use crate::guest_output::GuestOutput;
use crate::versions::{Call, v1, v2};

/// The exports of an instance, by contract version.
pub(super) enum Exports {
    V1(v1::Exports),
    V2(v2::Exports),
}

/// Call `$method` on the version's exports.
macro_rules! dispatch {
    ($e:expr, $store:expr, $method:ident($($arg:expr),*)) => {
        match $e {
            Exports::V1(x) => x.$method($store, $($arg),*),
            Exports::V2(x) => x.$method($store, $($arg),*),
        }
    };
}

impl Exports {
    pub(super) fn instantiate(
        pre: &Pre,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<Self> {
        Ok(match pre {
            Pre::V1(p) => Self::V1(p.instantiate(store)?),
            Pre::V2(p) => Self::V2(p.instantiate(store)?),
        })
    }

    pub(super) fn init(
        &self,
        store: &mut Store<InstanceState>,
        config: &str,
        setup: &Setup,
    ) -> Call<()> {
        dispatch!(self, store, init(config, setup))
    }
}

/// One running instance.
pub struct WasmInstance {
    pub(super) store: Store<InstanceState>,
    pub(super) exports: Exports,
    pub(super) output: GuestOutput,
    pub(super) settings: Arc<InstanceSettings>,
}

/// Explain a trap (or host error) from a call, with the guest's last output lines (a panic
/// message, usually).
pub(super) fn explain(
    err: wasmtime::Error,
    output: &GuestOutput,
    store: &Store<InstanceState>,
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
        None if store.data().limits.refused().is_some() => {
            format!("exceeded its memory limit of {} MiB", settings.memory >> 20)
        }
        None => format!("{err:#}"),
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

impl WasmInstance {
    /// Call into the guest with the call deadline, explaining traps.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&Exports, &mut Store<InstanceState>) -> Call<T>,
    ) -> Result<T, OperatorError> {
        self.store
            .set_epoch_deadline(ticks(self.settings.call_timeout));
        match f(&self.exports, &mut self.store) {
            Ok(result) => result.map_err(|e| match e {
                OperatorError::InvalidConfig(m) => OperatorError::Failed(m),
                e => e,
            }),
            Err(e) => Err(explain(
                e,
                &self.output,
                &self.store,
                &self.settings,
                "call",
                self.settings.call_timeout,
            )),
        }
    }
}

impl Operator for WasmInstance {
    fn process(&mut self, input: &Batch, from: u32) -> Result<Output, OperatorError> {
        self.call(|e, store| dispatch!(e, store, process(input, from)))
    }

    fn on_timer(&mut self, timers: &[Timer]) -> Result<Output, OperatorError> {
        self.call(|e, store| dispatch!(e, store, on_timer(timers)))
    }
}

impl Aggregator for WasmInstance {
    fn create_accumulator(&mut self) -> Result<Vec<u8>, OperatorError> {
        self.call(|e, store| dispatch!(e, store, create_accumulator()))
    }

    fn add(
        &mut self,
        accumulators: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<Added, OperatorError> {
        self.call(|e, store| dispatch!(e, store, add(accumulators, input, slots)))
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, OperatorError> {
        self.call(|e, store| dispatch!(e, store, merge(a, b)))
    }

    fn finish(&mut self, fired: FiredWindows) -> Result<Batch, OperatorError> {
        self.call(|e, store| dispatch!(e, store, finish(fired)))
    }
}
