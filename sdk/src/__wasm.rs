//! Glue between the generated bindings and [`Operator`](crate::Operator); used by
//! [`export_operator!`](crate::export_operator). Not public API.

use std::any::Any;
use std::cell::RefCell;

pub use wit_bindgen;

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "processor",
        pub_export_macro: true,
        default_bindings_module: "flowlet_sdk::__wasm::bindings",
        runtime_path: "flowlet_sdk::__wasm::wit_bindgen::rt",
    });
}

/// The `stateful-processor` world: the same types, plus state, timers and `on-timer`.
pub mod stateful {
    wit_bindgen::generate!({
        path: "../wit",
        world: "stateful-processor",
        pub_export_macro: true,
        default_bindings_module: "flowlet_sdk::__wasm::stateful",
        runtime_path: "flowlet_sdk::__wasm::wit_bindgen::rt",
        with: {
            "flowlet:operator/types@0.2.0": crate::__wasm::bindings::flowlet::operator::types,
            "flowlet:operator/log@0.2.0": crate::__wasm::bindings::flowlet::operator::log,
            "flowlet:operator/metrics@0.2.0": crate::__wasm::bindings::flowlet::operator::metrics,
        },
    });
}

/// The `aggregator` world.
pub mod aggregator {
    wit_bindgen::generate!({
        path: "../wit",
        world: "aggregator",
        pub_export_macro: true,
        default_bindings_module: "flowlet_sdk::__wasm::aggregator",
        runtime_path: "flowlet_sdk::__wasm::wit_bindgen::rt",
        with: {
            "flowlet:operator/types@0.2.0": crate::__wasm::bindings::flowlet::operator::types,
            "flowlet:operator/log@0.2.0": crate::__wasm::bindings::flowlet::operator::log,
            "flowlet:operator/metrics@0.2.0": crate::__wasm::bindings::flowlet::operator::metrics,
        },
    });
}

use bindings::flowlet::operator::types as wit;

thread_local! {
    /// The one operator of this component instance (Wasm instances are single-threaded).
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Its inputs' names (what `process`'s `origin` indexes).
    static INPUTS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn to_wit_error(e: crate::Error) -> wit::Error {
    match e {
        crate::Error::InvalidConfig(m) => wit::Error::InvalidConfig(m),
        // A rejection outside `process` (e.g. from a `process_batch` override) fails the batch.
        crate::Error::Reject(m) | crate::Error::Failed(m) => wit::Error::Failed(m),
    }
}

/// Build the instance's operator (or aggregate) from its JSON configuration.
fn install<T: 'static>(
    config: &str,
    setup: wit::Setup,
    make: impl FnOnce(crate::Config) -> Result<T, crate::Error>,
) -> Result<(), wit::Error> {
    let value: serde_json::Value = serde_json::from_str(config)
        .map_err(|e| wit::Error::InvalidConfig(format!("config is not JSON: {e}")))?;
    let setup = crate::Setup {
        operator: setup.operator,
        inputs: setup.inputs,
        outputs: setup.outputs,
    };
    INPUTS.with_borrow_mut(|i| *i = setup.inputs.clone());
    let op = make(crate::Config::with_setup(value, setup)).map_err(to_wit_error)?;
    INSTANCE.with_borrow_mut(|slot| *slot = Some(Box::new(op)));
    Ok(())
}

pub fn init<O: crate::Operator>(config: String, setup: wit::Setup) -> Result<(), wit::Error> {
    install(&config, setup, O::init)
}

fn from_wit(input: wit::Batch) -> flowlet_types::Batch {
    flowlet_types::Batch {
        values: input.values,
        value_ends: input.value_ends,
        keys: input.keys,
        key_ends: input.key_ends,
        timestamps: input.timestamps,
        headers: input
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

fn to_wit(e: flowlet_types::Batch) -> wit::Batch {
    wit::Batch {
        values: e.values,
        value_ends: e.value_ends,
        keys: e.keys,
        key_ends: e.key_ends,
        timestamps: e.timestamps,
        headers: e
            .headers
            .into_iter()
            .map(|h| wit::Header {
                event: h.event,
                name: h.name,
                value: h.value,
            })
            .collect(),
    }
}

fn with_instance<T: 'static, R>(
    f: impl FnOnce(&mut T) -> Result<R, wit::Error>,
) -> Result<R, wit::Error> {
    INSTANCE.with_borrow_mut(|slot| {
        let op = slot
            .as_mut()
            .and_then(|op| op.downcast_mut::<T>())
            .ok_or_else(|| wit::Error::Failed("called before init".into()))?;
        f(op)
    })
}

pub fn process<O: crate::Operator>(
    input: wit::Batch,
    origin: u32,
) -> Result<wit::Output, wit::Error> {
    let input = from_wit(input);
    let name = INPUTS.with_borrow(|i| i.get(origin as usize).cloned().unwrap_or_default());
    with_instance::<O, _>(|op| {
        let out = crate::run_batch(op, &input, &name).map_err(to_wit_error)?;
        Ok(wit::Output {
            events: to_wit(out.events),
            routes: out.routes,
            rejected: out
                .rejected
                .into_iter()
                .map(|r| wit::Rejection {
                    event: r.event,
                    reason: r.reason,
                })
                .collect(),
        })
    })
}

pub fn on_timer<O: crate::Operator>(
    fired: Vec<stateful::exports::flowlet::operator::stateful_handler::Timer>,
) -> Result<wit::Output, wit::Error> {
    use stateful::flowlet::operator::timers::TimeDomain as D;
    let timers: Vec<crate::Timer> = fired
        .into_iter()
        .map(|t| crate::Timer {
            key: t.key,
            domain: match t.domain {
                D::EventTime => crate::TimeDomain::EventTime,
                D::ProcessingTime => crate::TimeDomain::ProcessingTime,
            },
            at: t.at,
        })
        .collect();
    with_instance::<O, _>(|op| {
        let out = crate::run_timers(op, &timers).map_err(to_wit_error)?;
        Ok(wit::Output {
            events: to_wit(out.events),
            routes: out.routes,
            rejected: Vec::new(),
        })
    })
}

use aggregator::exports::flowlet::operator::aggregate as agg;

pub fn aggregate_init<A: crate::aggregate::Aggregate>(
    config: String,
    setup: wit::Setup,
) -> Result<(), wit::Error> {
    install(&config, setup, A::init)
}

pub fn aggregate_create<A: crate::aggregate::Aggregate>() -> Result<Vec<u8>, wit::Error> {
    with_instance::<A, _>(|a| Ok(crate::aggregate::create(a)))
}

pub fn aggregate_add<A: crate::aggregate::Aggregate>(
    accumulators: agg::Accumulators,
    input: wit::Batch,
    slots: Vec<u32>,
) -> Result<agg::Added, wit::Error> {
    let input = from_wit(input);
    let packed = crate::aggregate::Accumulators {
        bytes: accumulators.bytes,
        ends: accumulators.ends,
    };
    with_instance::<A, _>(|a| {
        let (out, rejected) =
            crate::aggregate::add(a, &packed, &input, &slots).map_err(to_wit_error)?;
        Ok(agg::Added {
            accumulators: agg::Accumulators {
                bytes: out.bytes,
                ends: out.ends,
            },
            rejected: rejected
                .into_iter()
                .map(|r| wit::Rejection {
                    event: r.event,
                    reason: r.reason,
                })
                .collect(),
        })
    })
}

pub fn aggregate_merge<A: crate::aggregate::Aggregate>(
    a: Vec<u8>,
    b: Vec<u8>,
) -> Result<Vec<u8>, wit::Error> {
    with_instance::<A, _>(|agg| crate::aggregate::merge(agg, &a, &b).map_err(to_wit_error))
}

pub fn aggregate_finish<A: crate::aggregate::Aggregate>(
    fired: agg::Fired,
) -> Result<wit::Batch, wit::Error> {
    let fired = crate::aggregate::FiredWindows {
        starts: fired.starts,
        ends: fired.ends,
        keys: fired.keys,
        key_ends: fired.key_ends,
        accumulators: fired.accumulators,
        accumulator_ends: fired.accumulator_ends,
        firings: fired.firings,
    };
    if !fired.is_well_formed() {
        return Err(wit::Error::Failed("malformed fired windows".into()));
    }
    with_instance::<A, _>(|a| {
        let batch = crate::aggregate::finish(a, &fired).map_err(to_wit_error)?;
        Ok(to_wit(batch))
    })
}
