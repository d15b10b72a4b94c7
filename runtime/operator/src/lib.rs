//! The operator contract: what the executor (`flowlet-dataflow`) runs and the Wasm host
//! (`flowlet-host`) and the native built-ins implement, below both so that neither depends on
//! the other.
//!
//! - [`Operator`] (the `processor` and `stateful-processor` worlds) and [`Aggregator`] (the
//!   `aggregator` world): one instance each, made by an [`OperatorFactory`];
//! - [`KeyedStateAccess`]: the keyed state and timers of one instance, as the host's state and
//!   timers capabilities call them (the executor implements it);
//! - [`Message`]s on the edges between tasks, and the [`Clock`].

mod clock;
mod contract;
mod message;
mod state;

pub use clock::{Clock, ManualClock, SystemClock, now_ms};
pub use contract::{
    Added, Aggregator, CONTRACT_VERSION, Instance, InstanceContext, Operator, OperatorError,
    OperatorFactory, PluginKind, Setup, SharedFactory,
};
pub use flowlet_types::{Accumulators, Batch, FiredRef, FiredWindows, Output, Timestamp};
pub use message::{CheckpointId, Envelope, Message};
pub use state::{KeyedStateAccess, SharedState, TimeDomain, Timer};
