//! Window aggregates: the host assigns events to windows and keeps one accumulator per
//! (key, window); the operator says how to start, fold, merge and finish an accumulator.
//!
//! ```
//! use flowlet_sdk::aggregate::{Aggregate, Fired};
//! use flowlet_sdk::{Config, Emitter, Error, Event};
//!
//! /// Events per key and window.
//! pub struct Count;
//!
//! impl Aggregate for Count {
//!     type Acc = u64;
//!     fn init(_: Config) -> Result<Self, Error> { Ok(Count) }
//!     fn create_accumulator(&self) -> u64 { 0 }
//!     fn add(&self, acc: &mut u64, _: &Event<'_>) -> Result<(), Error> { *acc += 1; Ok(()) }
//!     fn merge(&self, a: u64, b: u64) -> u64 { a + b }
//!     fn finish(&self, w: &Fired<'_>, acc: u64, out: &mut Emitter) -> Result<(), Error> {
//!         out.emit_json(&serde_json::json!({"key": w.key_str(), "count": acc, "end": w.end}))
//!     }
//! }
//!
//! flowlet_sdk::export_aggregate!(Count);
//! ```

pub use flowlet_types::{Accumulators, FiredWindows};
use flowlet_types::{Batch, Rejection, Timestamp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Config, Emitter, Error, Event};

/// A window aggregate.
///
/// `add` must leave the accumulator unchanged when it rejects an event.
pub trait Aggregate: Sized + 'static {
    /// The accumulator: what the host keeps per (key, window) between batches.
    type Acc: Accumulator;

    fn init(config: Config) -> Result<Self, Error>;
    /// The accumulator of an empty window.
    fn create_accumulator(&self) -> Self::Acc;
    /// Fold one event into its window's accumulator; [`Error::Reject`] for a bad event.
    fn add(&self, acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), Error>;
    /// Combine the accumulators of two sessions that an event bridges.
    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// Emit the result of a window that fired.
    fn finish(&self, window: &Fired<'_>, acc: Self::Acc, out: &mut Emitter) -> Result<(), Error>;
}

/// A window that fired: its bounds, its key and how many times it fired before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired<'a> {
    /// First millisecond of the window.
    pub start: Timestamp,
    /// End of the window (exclusive).
    pub end: Timestamp,
    /// The window's key (empty for a window over all events).
    pub key: &'a [u8],
    /// 0 on time; 1, 2, … for updates caused by late events within the allowed lateness.
    pub firing: u32,
}

impl Fired<'_> {
    /// The key as text (lossy).
    pub fn key_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.key)
    }
}

/// How an accumulator crosses the boundary: as bytes the host stores and hands back.
pub trait Accumulator: Sized {
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Result<Self, Error>;
}

fn short(what: &str) -> Error {
    Error::Failed(format!("corrupt accumulator: not a {what}"))
}

macro_rules! fixed {
    ($($t:ty),*) => {$(
        impl Accumulator for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Result<Self, Error> {
                // The empty accumulator of a fresh slot is the encoded `create_accumulator`.
                Ok(<$t>::from_le_bytes(bytes.try_into().map_err(|_| short(stringify!($t)))?))
            }
        }
    )*};
}
fixed!(u64, i64, f64, u32);

impl Accumulator for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        Ok(bytes.to_vec())
    }
}

/// Any serde type, encoded as JSON: convenient for maps and structs (slower than fixed-size
/// numbers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize + DeserializeOwned> Accumulator for Json<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.0).expect("serializing an accumulator to a Vec");
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| Error::Failed(format!("corrupt accumulator: {e}")))
    }
}

/// Pairs of fixed-size accumulators (e.g. sum and count for an average).
impl<A: Accumulator + Fixed, B: Accumulator + Fixed> Accumulator for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != A::SIZE + B::SIZE {
            return Err(short("pair"));
        }
        Ok((A::decode(&bytes[..A::SIZE])?, B::decode(&bytes[A::SIZE..])?))
    }
}

/// Accumulators of a fixed encoded size.
pub trait Fixed {
    const SIZE: usize;
}
impl Fixed for u64 {
    const SIZE: usize = 8;
}
impl Fixed for i64 {
    const SIZE: usize = 8;
}
impl Fixed for f64 {
    const SIZE: usize = 8;
}
impl Fixed for u32 {
    const SIZE: usize = 4;
}

/// The encoded empty accumulator.
pub fn create<A: Aggregate>(agg: &A) -> Vec<u8> {
    let mut out = Vec::new();
    agg.create_accumulator().encode(&mut out);
    out
}

/// Fold `input` into the packed `accumulators` (event `i` into slot `slots[i]`): what the Wasm
/// glue, the host's built-ins and the test harness call.
pub fn add<A: Aggregate>(
    agg: &A,
    accumulators: &Accumulators,
    input: &Batch,
    slots: &[u32],
) -> Result<(Accumulators, Vec<Rejection>), Error> {
    if slots.len() != input.len() {
        return Err(Error::Failed(format!(
            "{} slots for {} events",
            slots.len(),
            input.len()
        )));
    }
    if accumulators
        .ends
        .last()
        .is_some_and(|e| *e as usize != accumulators.bytes.len())
    {
        return Err(Error::Failed("malformed packed accumulators".into()));
    }
    let mut accs = accumulators
        .iter()
        .map(A::Acc::decode)
        .collect::<Result<Vec<_>, _>>()?;
    let mut rejected = Vec::new();
    for (event, &slot) in input.iter().zip(slots) {
        let acc = accs
            .get_mut(slot as usize)
            .ok_or_else(|| Error::Failed(format!("slot {slot} of {}", accumulators.len())))?;
        match agg.add(acc, &Event::new(event, "")) {
            Ok(()) => {}
            Err(Error::Reject(reason)) => rejected.push(Rejection {
                event: event.index() as u32,
                reason,
            }),
            Err(e) => return Err(e),
        }
    }
    let mut out = Accumulators {
        bytes: Vec::with_capacity(accumulators.bytes.len()),
        ends: Vec::with_capacity(accs.len()),
    };
    for acc in &accs {
        acc.encode(&mut out.bytes);
        out.ends.push(out.bytes.len() as u32);
    }
    Ok((out, rejected))
}

pub fn merge<A: Aggregate>(agg: &A, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
    let merged = agg.merge(A::Acc::decode(a)?, A::Acc::decode(b)?);
    let mut out = Vec::new();
    merged.encode(&mut out);
    Ok(out)
}

/// Finish fired windows.
pub fn finish<A: Aggregate>(agg: &A, fired: &FiredWindows) -> Result<Batch, Error> {
    let mut out = Emitter::new();
    for f in fired.iter() {
        let w = Fired {
            start: f.start,
            end: f.end,
            key: f.key,
            firing: f.firing,
        };
        out.set(w.key, w.end - 1);
        agg.finish(&w, A::Acc::decode(f.accumulator)?, &mut out)?;
    }
    Ok(out.into_batch())
}
