//! flowlet's executor.
//!
//! A topology runs as one task per source, operator instance and sink, joined by bounded
//! channels: a slow sink fills its channel and the senders wait, up to the sources, so memory
//! stays bounded and nothing is dropped. Operators do not know whether they are Wasm or native:
//! they are [`Operator`]s made by an [`OperatorFactory`].
//!
//! Channels carry [`Message`]s, not bare batches, so that watermarks (and, with checkpoints,
//! barriers) travel in order with the data.

pub mod bench;
pub mod checkpoint;
mod connect;
mod counters;
mod edge;
mod error;
pub mod fault;
mod join;
mod keymap;
pub mod lock;
mod operator;
mod options;
mod policy;
mod run;
mod sinks;
mod source;
pub mod state;
mod stop;
pub mod swap;
mod task;
mod time;
pub mod window;

pub use connect::{Connect, Epoch, Prepared, SinkSetup, SinkWriter};
pub use counters::{CHECKPOINTS, LatencyHistogram, LiveStats, NodeCounters, NodeStats, RunReport};
pub use edge::{instance_of, key_group};
pub use error::DataflowError;
pub use flowlet_operator::{
    Accumulators, Added, Aggregator, Batch, CheckpointId, Clock, Envelope, FiredRef, FiredWindows,
    Instance, InstanceContext, ManualClock, Message, Operator, OperatorError, OperatorFactory,
    Output, PluginKind, Setup, SystemClock, Timestamp,
};
pub use options::{RunOptions, Savepoints};
pub use run::{CHANNEL_CAPACITY, key_groups_of, run};
pub use source::{BoxFuture, Checkpoints, Source, SourceContext, parse_time};
pub use stop::Stop;
