//! Host bindings of `wit/` (the one source of the contract), world `processor`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "processor",
});

pub use flowlet::operator::types;
