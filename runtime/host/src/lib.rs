//! flowlet's Wasm host.
//!
//! One [`Host`] holds the wasmtime `Engine` (with epoch interruption), the `Linker` with the
//! host interfaces and a minimal WASI, and the on-disk cache of precompiled components.
//! [`Host::load`] turns a component file into a [`Plugin`] (validated against the `processor`
//! world before anything runs); a plugin makes [`flowlet_operator::Operator`] instances, each
//! in its own `Store` with a memory cap, an epoch deadline per call and nothing granted beyond
//! stderr, clocks and randomness unless the manifest says so.

mod bindings;
mod cache;
mod capability;
mod error;
mod guest_output;
mod host;
mod instance;
mod limits;
mod plugin;
mod store;
mod versions;

pub use flowlet_operator::PluginKind;

pub use error::HostError;
pub use host::{EPOCH_TICK, Host};
pub use instance::{InstanceSettings, WasmFactory};
pub use plugin::{CONTRACT_VERSION, CONTRACT_VERSIONS, HANDLER_INTERFACE, Inspection, Plugin};
pub use store::GuestMetrics;

pub(crate) use plugin::Pre;
