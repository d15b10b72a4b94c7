//! Host bindings of `wit/` (the one source of the contract): the `processor`,
//! `stateful-processor` and `aggregator` worlds, sharing the interfaces they have in common.

pub mod processor {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "processor",
    });
}

pub mod stateful {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "stateful-processor",
        with: {
            "flowlet:operator/types": crate::bindings::processor::flowlet::operator::types,
            "flowlet:operator/log": crate::bindings::processor::flowlet::operator::log,
            "flowlet:operator/metrics": crate::bindings::processor::flowlet::operator::metrics,
        },
    });
}

pub mod aggregator {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "aggregator",
        with: {
            "flowlet:operator/types": crate::bindings::processor::flowlet::operator::types,
            "flowlet:operator/log": crate::bindings::processor::flowlet::operator::log,
            "flowlet:operator/metrics": crate::bindings::processor::flowlet::operator::metrics,
        },
    });
}

pub use processor::Processor;
pub use processor::ProcessorPre;
pub use processor::flowlet;
pub use processor::flowlet::operator::types;
