//! Host bindings of the contracts this host runs: `v2` from `wit/` (0.2.0, what the SDKs build)
//! and `v1` from `wit/v0.1/` (0.1.0, frozen, so that plugins built for it keep running). Each
//! has the `processor`, `stateful-processor` and `aggregator` worlds, sharing the interfaces
//! they have in common.

macro_rules! contract {
    ($version:ident, $path:literal) => {
        pub mod $version {
            pub mod processor {
                wasmtime::component::bindgen!({
                    path: $path,
                    world: "processor",
                });
            }

            pub mod stateful {
                wasmtime::component::bindgen!({
                    path: $path,
                    world: "stateful-processor",
                    with: {
                        "flowlet:operator/types": crate::bindings::$version::processor::flowlet::operator::types,
                        "flowlet:operator/log": crate::bindings::$version::processor::flowlet::operator::log,
                        "flowlet:operator/metrics": crate::bindings::$version::processor::flowlet::operator::metrics,
                    },
                });
            }

            pub mod aggregator {
                wasmtime::component::bindgen!({
                    path: $path,
                    world: "aggregator",
                    with: {
                        "flowlet:operator/types": crate::bindings::$version::processor::flowlet::operator::types,
                        "flowlet:operator/log": crate::bindings::$version::processor::flowlet::operator::log,
                        "flowlet:operator/metrics": crate::bindings::$version::processor::flowlet::operator::metrics,
                    },
                });
            }

            pub use processor::flowlet::operator::types;
        }
    };
}

contract!(v1, "../../wit/v0.1");
contract!(v2, "../../wit");
