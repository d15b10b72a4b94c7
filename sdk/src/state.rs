//! Keyed state and timers kept by the host, for operators of the `stateful-processor` world
//! (exported with [`export_stateful_operator!`](crate::export_stateful_operator)).
//!
//! State belongs to a key: [`Event::state`](crate::Event::state) is the state of the event's key
//! (from the operator's `key-by:`), [`Timer::state`] that of a timer's key.
//!
//! ```
//! use flowlet_sdk::{Config, Error, Event, Operator, Output};
//!
//! /// Numbers the events of each key: 1, 2, 3, …
//! pub struct RunningCount;
//!
//! impl Operator for RunningCount {
//!     fn init(_: Config) -> Result<Self, Error> { Ok(RunningCount) }
//!     fn process(&mut self, e: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
//!         let state = e.state();
//!         let n = state.get_u64("count") + 1;
//!         state.put("count", &n.to_le_bytes());
//!         out.emit_json(&serde_json::json!({"n": n}))
//!     }
//! }
//! ```
//!
//! Natively (tests) the state lives in a per-thread map, and the clocks are set with
//! [`crate::testing`].

use std::time::Duration;

use flowlet_types::Timestamp;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// Fires when the operator's watermark reaches the time.
    EventTime,
    /// Fires when the operator's clock reaches the time.
    ProcessingTime,
}

/// A timer that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub key: Vec<u8>,
    pub domain: TimeDomain,
    pub at: Timestamp,
}

impl Timer {
    /// The state of the timer's key.
    pub fn state(&self) -> KeyState<'_> {
        KeyState { key: &self.key }
    }
}

/// The state of one key.
#[derive(Debug, Clone, Copy)]
pub struct KeyState<'k> {
    key: &'k [u8],
}

fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| d.as_millis().max(1) as u64)
}

impl<'k> KeyState<'k> {
    pub fn new(key: &'k [u8]) -> Self {
        Self { key }
    }

    pub fn key(&self) -> &'k [u8] {
        self.key
    }

    /// Value state `name`.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        imp::value_get(self.key, name)
    }

    /// Value state `name` as a little-endian u64 (0 when absent).
    pub fn get_u64(&self, name: &str) -> u64 {
        self.get(name)
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }

    pub fn put(&self, name: &str, value: &[u8]) {
        imp::value_put(self.key, name, value, None);
    }

    /// Put a value that reads as absent `ttl` after this write (processing time).
    pub fn put_with_ttl(&self, name: &str, value: &[u8], ttl: Duration) {
        imp::value_put(self.key, name, value, ttl_ms(Some(ttl)));
    }

    pub fn delete(&self, name: &str) {
        imp::value_delete(self.key, name);
    }

    /// Entry `map_key` of map state `name`.
    pub fn map_get(&self, name: &str, map_key: &[u8]) -> Option<Vec<u8>> {
        imp::map_get(self.key, name, map_key)
    }

    pub fn map_put(&self, name: &str, map_key: &[u8], value: &[u8]) {
        imp::map_put(self.key, name, map_key, value, None);
    }

    pub fn map_put_with_ttl(&self, name: &str, map_key: &[u8], value: &[u8], ttl: Duration) {
        imp::map_put(self.key, name, map_key, value, ttl_ms(Some(ttl)));
    }

    pub fn map_delete(&self, name: &str, map_key: &[u8]) {
        imp::map_delete(self.key, name, map_key);
    }

    /// Entries of map state `name` with `start <= map key < end` (`end` empty: unbounded), in
    /// order of their keys' bytes, at most `limit`.
    pub fn map_range(
        &self,
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        imp::map_range(self.key, name, start, end, limit)
    }

    /// Have `on_timer` called for this key when `domain`'s time reaches `at`.
    pub fn register_timer(&self, domain: TimeDomain, at: Timestamp) {
        imp::register(self.key, domain, at);
    }

    pub fn cancel_timer(&self, domain: TimeDomain, at: Timestamp) {
        imp::cancel(self.key, domain, at);
    }
}

/// The operator's watermark: no event older than this is expected.
pub fn current_watermark() -> Timestamp {
    imp::current_watermark()
}

/// The operator's processing time (ms since the Unix epoch).
pub fn now() -> Timestamp {
    imp::now()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::TimeDomain;
    use crate::__wasm::stateful::flowlet::operator::{state, timers};
    use flowlet_types::Timestamp;

    pub fn value_get(key: &[u8], name: &str) -> Option<Vec<u8>> {
        state::value_get(key, name)
    }
    pub fn value_put(key: &[u8], name: &str, value: &[u8], ttl: Option<u64>) {
        state::value_put(key, name, value, ttl);
    }
    pub fn value_delete(key: &[u8], name: &str) {
        state::value_delete(key, name);
    }
    pub fn map_get(key: &[u8], name: &str, k: &[u8]) -> Option<Vec<u8>> {
        state::map_get(key, name, k)
    }
    pub fn map_put(key: &[u8], name: &str, k: &[u8], v: &[u8], ttl: Option<u64>) {
        state::map_put(key, name, k, v, ttl);
    }
    pub fn map_delete(key: &[u8], name: &str, k: &[u8]) {
        state::map_delete(key, name, k);
    }
    pub fn map_range(
        key: &[u8],
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        state::map_range(key, name, start, end, limit)
    }
    fn domain(d: TimeDomain) -> timers::TimeDomain {
        match d {
            TimeDomain::EventTime => timers::TimeDomain::EventTime,
            TimeDomain::ProcessingTime => timers::TimeDomain::ProcessingTime,
        }
    }
    pub fn register(key: &[u8], d: TimeDomain, at: Timestamp) {
        timers::register(key, domain(d), at);
    }
    pub fn cancel(key: &[u8], d: TimeDomain, at: Timestamp) {
        timers::cancel(key, domain(d), at);
    }
    pub fn current_watermark() -> Timestamp {
        timers::current_watermark()
    }
    pub fn now() -> Timestamp {
        timers::current_processing_time()
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    //! The native stand-in: a per-thread ordered map and clocks set by the tests.
    use super::TimeDomain;
    use flowlet_types::Timestamp;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    /// (key, state name, map key for map state).
    type Slot = (Vec<u8>, String, Option<Vec<u8>>);

    #[derive(Default)]
    pub(crate) struct Native {
        /// Entries → (value, expiry).
        pub entries: BTreeMap<Slot, (Vec<u8>, Option<Timestamp>)>,
        pub timers: BTreeSet<(TimeDomain, Timestamp, Vec<u8>)>,
        pub watermark: Timestamp,
        pub now: Timestamp,
    }

    thread_local! {
        pub(crate) static NATIVE: RefCell<Native> = RefCell::new(Native {
            watermark: Timestamp::MIN,
            ..Native::default()
        });
    }

    fn get(k: Slot) -> Option<Vec<u8>> {
        NATIVE.with_borrow(|n| {
            n.entries
                .get(&k)
                .filter(|(_, exp)| exp.is_none_or(|e| e > n.now))
                .map(|(v, _)| v.clone())
        })
    }
    fn put(k: Slot, v: &[u8], ttl: Option<u64>) {
        NATIVE.with_borrow_mut(|n| {
            let exp = ttl.map(|t| n.now + t as Timestamp);
            n.entries.insert(k, (v.to_vec(), exp));
        });
    }
    pub fn value_get(key: &[u8], name: &str) -> Option<Vec<u8>> {
        get((key.to_vec(), name.to_owned(), None))
    }
    pub fn value_put(key: &[u8], name: &str, value: &[u8], ttl: Option<u64>) {
        put((key.to_vec(), name.to_owned(), None), value, ttl);
    }
    pub fn value_delete(key: &[u8], name: &str) {
        NATIVE.with_borrow_mut(|n| n.entries.remove(&(key.to_vec(), name.to_owned(), None)));
    }
    pub fn map_get(key: &[u8], name: &str, k: &[u8]) -> Option<Vec<u8>> {
        get((key.to_vec(), name.to_owned(), Some(k.to_vec())))
    }
    pub fn map_put(key: &[u8], name: &str, k: &[u8], v: &[u8], ttl: Option<u64>) {
        put((key.to_vec(), name.to_owned(), Some(k.to_vec())), v, ttl);
    }
    pub fn map_delete(key: &[u8], name: &str, k: &[u8]) {
        NATIVE.with_borrow_mut(|n| {
            n.entries
                .remove(&(key.to_vec(), name.to_owned(), Some(k.to_vec())))
        });
    }
    pub fn map_range(
        key: &[u8],
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        NATIVE.with_borrow(|n| {
            let from = (key.to_vec(), name.to_owned(), Some(start.to_vec()));
            n.entries
                .range(from..)
                .take_while(|((k, nm, mk), _)| {
                    k == key
                        && nm == name
                        && (end.is_empty() || mk.as_deref().is_some_and(|m| m < end))
                })
                .filter(|(_, (_, exp))| exp.is_none_or(|e| e > n.now))
                .take(limit as usize)
                .map(|((_, _, mk), (v, _))| (mk.clone().unwrap_or_default(), v.clone()))
                .collect()
        })
    }
    pub fn register(key: &[u8], d: TimeDomain, at: Timestamp) {
        NATIVE.with_borrow_mut(|n| n.timers.insert((d, at, key.to_vec())));
    }
    pub fn cancel(key: &[u8], d: TimeDomain, at: Timestamp) {
        NATIVE.with_borrow_mut(|n| n.timers.remove(&(d, at, key.to_vec())));
    }
    pub fn current_watermark() -> Timestamp {
        NATIVE.with_borrow(|n| n.watermark)
    }
    pub fn now() -> Timestamp {
        NATIVE.with_borrow(|n| n.now)
    }
}
