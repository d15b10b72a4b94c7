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
pub use batch::{Batch, BatchError, EventRef, Header, MAIN_ROUTE, Output, Rejection, Setup};

/// Milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The earliest event time flowlet accepts (about 146 million years before 1970). Event times
/// outside `MIN_EVENT_TIME..=MAX_EVENT_TIME` meet the source's (or the window operator's)
/// `on-error` policy: with durations bounded too (see `MAX_DURATION_MS`), window arithmetic
/// on accepted times can never overflow, and `i64::MIN` / `i64::MAX` stay free as the
/// watermarks "nothing yet" and "end of input".
pub const MIN_EVENT_TIME: Timestamp = -(1 << 62);
/// The latest event time flowlet accepts (about 146 million years after 1970).
pub const MAX_EVENT_TIME: Timestamp = (1 << 62) - 1;
/// The longest duration a window size, slide, gap, allowed lateness or out-of-orderness bound
/// may have: 100 years (365.25 days each), in milliseconds.
pub const MAX_DURATION_MS: u64 = 100 * 36_525 * 86_400_000 / 100;

/// Whether `t` is an event time flowlet accepts.
pub fn event_time_in_range(t: Timestamp) -> bool {
    (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&t)
}

/// SplitMix64: a small, well-mixed deterministic hash (the synthetic workloads' randomness).
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
