//! The calls into an instance, once per contract version: [`v1`] (0.1.0, frozen) and [`v2`]
//! (0.2.0). What both versions share (conversions, timers, the aggregate's functions) is
//! written once in [`versioned!`]; `init` and `process`, whose signatures differ, are written
//! for each version below it.

use flowlet_operator::{Accumulators, Added, OperatorError, PluginKind, Setup, Timer};
use flowlet_types::{Batch, FiredWindows, Output};
use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::store::InstanceState;

/// A call's outcome: a trap or host error (outer), or what the guest returned (inner).
pub(super) type Call<T> = wasmtime::Result<Result<T, OperatorError>>;

macro_rules! versioned {
    ($v:ident, $wit_domain:path, $output:path) => {
        pub(crate) mod $v {
            use super::*;
            use crate::bindings::$v::aggregator::exports::flowlet::operator::aggregate as ag;
            use crate::bindings::$v::stateful::exports::flowlet::operator::stateful_handler as sh;
            use crate::bindings::$v::{aggregator, processor, stateful, types as wit};

            /// A component checked against one of this version's worlds.
            #[derive(Clone)]
            pub(crate) enum Pre {
                Processor(processor::ProcessorPre<InstanceState>),
                Stateful(stateful::StatefulProcessorPre<InstanceState>),
                Aggregator(aggregator::AggregatorPre<InstanceState>),
            }

            impl Pre {
                pub(crate) fn new(
                    kind: PluginKind,
                    pre: InstancePre<InstanceState>,
                ) -> wasmtime::Result<Self> {
                    Ok(match kind {
                        PluginKind::Processor => {
                            Self::Processor(processor::ProcessorPre::new(pre)?)
                        }
                        PluginKind::StatefulProcessor => {
                            Self::Stateful(stateful::StatefulProcessorPre::new(pre)?)
                        }
                        PluginKind::Aggregator => {
                            Self::Aggregator(aggregator::AggregatorPre::new(pre)?)
                        }
                    })
                }

                pub(crate) fn instantiate(
                    &self,
                    store: &mut Store<InstanceState>,
                ) -> wasmtime::Result<Exports> {
                    Ok(match self {
                        Self::Processor(p) => Exports::Processor(p.instantiate(store)?),
                        Self::Stateful(p) => Exports::Stateful(p.instantiate(store)?),
                        Self::Aggregator(p) => Exports::Aggregator(p.instantiate(store)?),
                    })
                }
            }

            /// The exports of an instance, by world.
            pub(crate) enum Exports {
                Processor(processor::Processor),
                Stateful(stateful::StatefulProcessor),
                Aggregator(aggregator::Aggregator),
            }

            pub(super) fn to_wit(input: &Batch) -> wit::Batch {
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

            pub(super) fn from_wit(e: wit::Batch) -> Batch {
                Batch {
                    values: e.values,
                    value_ends: e.value_ends,
                    keys: e.keys,
                    key_ends: e.key_ends,
                    timestamps: e.timestamps,
                    headers: e
                        .headers
                        .into_iter()
                        .map(|h| flowlet_types::Header {
                            event: h.event,
                            name: h.name,
                            value: h.value,
                        })
                        .collect(),
                }
            }

            pub(super) fn rejections(r: Vec<wit::Rejection>) -> Vec<flowlet_types::Rejection> {
                r.into_iter()
                    .map(|r| flowlet_types::Rejection {
                        event: r.event,
                        reason: r.reason,
                    })
                    .collect()
            }

            pub(super) fn guest_error(e: wit::Error) -> OperatorError {
                match e {
                    wit::Error::InvalidConfig(m) => OperatorError::InvalidConfig(m),
                    wit::Error::Failed(m) => OperatorError::Failed(m),
                }
            }

            pub(super) use $output as output;

            fn only_aggregators() -> ! {
                unreachable!("only aggregators are aggregators")
            }

            impl Exports {
                pub(crate) fn on_timer(
                    &self,
                    store: &mut Store<InstanceState>,
                    timers: &[Timer],
                ) -> Call<Output> {
                    let Self::Stateful(p) = self else {
                        return Ok(Ok(Output::default()));
                    };
                    let fired: Vec<sh::Timer> = timers
                        .iter()
                        .map(|t| sh::Timer {
                            key: t.key.clone(),
                            domain: $wit_domain(t.domain),
                            at: t.at,
                        })
                        .collect();
                    let out = p
                        .flowlet_operator_stateful_handler()
                        .call_on_timer(store, &fired)?;
                    Ok(out.map(output).map_err(guest_error))
                }

                pub(crate) fn create_accumulator(
                    &self,
                    store: &mut Store<InstanceState>,
                ) -> Call<Vec<u8>> {
                    let Self::Aggregator(a) = self else {
                        only_aggregators()
                    };
                    let r = a
                        .flowlet_operator_aggregate()
                        .call_create_accumulator(store)?;
                    Ok(r.map_err(guest_error))
                }

                pub(crate) fn add(
                    &self,
                    store: &mut Store<InstanceState>,
                    accumulators: Accumulators,
                    input: &Batch,
                    slots: &[u32],
                ) -> Call<Added> {
                    let Self::Aggregator(a) = self else {
                        only_aggregators()
                    };
                    let packed = ag::Accumulators {
                        bytes: accumulators.bytes,
                        ends: accumulators.ends,
                    };
                    let r = a.flowlet_operator_aggregate().call_add(
                        store,
                        &packed,
                        &to_wit(input),
                        slots,
                    )?;
                    Ok(r.map_err(guest_error).map(|added| Added {
                        accumulators: Accumulators {
                            bytes: added.accumulators.bytes,
                            ends: added.accumulators.ends,
                        },
                        rejected: rejections(added.rejected),
                    }))
                }

                pub(crate) fn merge(
                    &self,
                    store: &mut Store<InstanceState>,
                    a: &[u8],
                    b: &[u8],
                ) -> Call<Vec<u8>> {
                    let Self::Aggregator(x) = self else {
                        only_aggregators()
                    };
                    let r = x.flowlet_operator_aggregate().call_merge(store, a, b)?;
                    Ok(r.map_err(guest_error))
                }

                pub(crate) fn finish(
                    &self,
                    store: &mut Store<InstanceState>,
                    fired: FiredWindows,
                ) -> Call<Batch> {
                    let Self::Aggregator(a) = self else {
                        only_aggregators()
                    };
                    let fired = ag::Fired {
                        starts: fired.starts,
                        ends: fired.ends,
                        keys: fired.keys,
                        key_ends: fired.key_ends,
                        accumulators: fired.accumulators,
                        accumulator_ends: fired.accumulator_ends,
                        firings: fired.firings,
                    };
                    let r = a.flowlet_operator_aggregate().call_finish(store, &fired)?;
                    Ok(r.map(from_wit).map_err(guest_error))
                }
            }
        }
    };
}

versioned!(
    v1,
    crate::capability::wit_domain_v1,
    super::output_v1::output
);
versioned!(
    v2,
    crate::capability::wit_domain_v2,
    super::output_v2::output
);

impl v1::Exports {
    /// 0.1's `init` has no setup.
    pub(crate) fn init(
        &self,
        store: &mut Store<InstanceState>,
        config: &str,
        _: &Setup,
    ) -> Call<()> {
        let r = match self {
            Self::Processor(p) => p.flowlet_operator_handler().call_init(store, config)?,
            Self::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_init(store, config)?,
            Self::Aggregator(p) => p.flowlet_operator_aggregate().call_init(store, config)?,
        };
        Ok(r.map_err(v1::guest_error))
    }

    /// 0.1's `process` is not told the input, and cannot route.
    pub(crate) fn process(
        &self,
        store: &mut Store<InstanceState>,
        input: &Batch,
        _: u32,
    ) -> Call<Output> {
        let batch = v1::to_wit(input);
        let r = match self {
            Self::Processor(p) => p.flowlet_operator_handler().call_process(store, &batch)?,
            Self::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_process(store, &batch)?,
            Self::Aggregator(_) => unreachable!("aggregators are not processors"),
        };
        Ok(r.map(v1::output).map_err(v1::guest_error))
    }
}

mod output_v1 {
    use super::*;
    use crate::bindings::v1::types as wit;

    pub(crate) fn output(out: wit::Output) -> Output {
        Output {
            events: super::v1::from_wit(out.events),
            routes: Vec::new(),
            rejected: super::v1::rejections(out.rejected),
        }
    }
}

mod output_v2 {
    use super::*;
    use crate::bindings::v2::types as wit;

    pub(crate) fn output(out: wit::Output) -> Output {
        Output {
            events: super::v2::from_wit(out.events),
            routes: out.routes,
            rejected: super::v2::rejections(out.rejected),
        }
    }

    pub(crate) fn setup(s: &Setup) -> wit::Setup {
        wit::Setup {
            operator: s.operator.clone(),
            inputs: s.inputs.clone(),
            outputs: s.outputs.clone(),
        }
    }
}

impl v2::Exports {
    pub(crate) fn init(
        &self,
        store: &mut Store<InstanceState>,
        config: &str,
        setup: &Setup,
    ) -> Call<()> {
        let setup = output_v2::setup(setup);
        let r = match self {
            Self::Processor(p) => p
                .flowlet_operator_handler()
                .call_init(store, config, &setup)?,
            Self::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_init(store, config, &setup)?,
            Self::Aggregator(p) => p
                .flowlet_operator_aggregate()
                .call_init(store, config, &setup)?,
        };
        Ok(r.map_err(v2::guest_error))
    }

    pub(crate) fn process(
        &self,
        store: &mut Store<InstanceState>,
        input: &Batch,
        from: u32,
    ) -> Call<Output> {
        let batch = v2::to_wit(input);
        let r = match self {
            Self::Processor(p) => p
                .flowlet_operator_handler()
                .call_process(store, &batch, from)?,
            Self::Stateful(p) => p
                .flowlet_operator_stateful_handler()
                .call_process(store, &batch, from)?,
            Self::Aggregator(_) => unreachable!("aggregators are not processors"),
        };
        Ok(r.map(v2::output).map_err(v2::guest_error))
    }
}
