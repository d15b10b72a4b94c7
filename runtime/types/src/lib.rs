//! The event batch that flowlet moves between sources, operators and sinks, and across the Wasm
//! boundary.
//!
//! A [`Batch`] has the same column-wise layout as the WIT `batch` record in `wit/types.wit`, so
//! the host hands it to a component by moving its vectors, and the Rust SDK reads it in the guest
//! without an allocation per event. This crate is shared by the host and the SDK so that the
//! layout is written down once.

mod aggregate;
mod batch;
pub mod json;

pub use aggregate::{Accumulators, FiredRef, FiredWindows};
pub use batch::{Batch, BatchError, EventRef, Header, Output, Rejection};

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;
