//! Calls into a running instance, by world, with the call deadline; traps explained.

use std::sync::Arc;
use std::time::Duration;

use flowlet_operator::{
    Accumulators, Added, Aggregator, FiredWindows, Operator, OperatorError, Timer,
};
use flowlet_types::{Batch, Output};
use wasmtime::{Store, Trap};

use super::convert::{from_wit, from_wit_output, from_wit_rejections, guest_error, to_wit};
use super::{InstanceSettings, InstanceState, ticks};
use crate::Pre;
use crate::bindings::{self, types as wit};
use crate::guest_output::GuestOutput;

/// The exports of an instance, by world.
pub(super) enum Exports {
    Processor(bindings::Processor),
    Stateful(bindings::stateful::StatefulProcessor),
    Aggregator(bindings::aggregator::Aggregator),
}

impl Exports {
    pub(super) fn instantiate(
        pre: &Pre,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<Self> {
        Ok(match pre {
            Pre::Processor(p) => Self::Processor(p.instantiate(store)?),
            Pre::Stateful(p) => Self::Stateful(p.instantiate(store)?),
            Pre::Aggregator(p) => Self::Aggregator(p.instantiate(store)?),
        })
    }

    /// Every world's `init` has the same signature.
    pub(super) fn init(
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
        f: impl FnOnce(&Exports, &mut Store<InstanceState>) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, OperatorError> {
        self.store
            .set_epoch_deadline(ticks(self.settings.call_timeout));
        match f(&self.exports, &mut self.store) {
            Ok(result) => result.map_err(guest_error),
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
                domain: crate::capability::wit_domain(t.domain),
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
