//! Keyed state and timers as an operator instance sees them (the host's `state` and `timers`
//! capabilities). The executor implements [`KeyedStateAccess`] over its store.

use std::sync::{Arc, Mutex};

use flowlet_types::Timestamp;

/// Time domains of timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

/// A timer of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub domain: TimeDomain,
    pub at: Timestamp,
    pub key: Vec<u8>,
}

/// The keyed state and timers of one operator instance. Calls take the key explicitly (a
/// per-event "set current key" call would double the host calls on the hot path). TTLs are in
/// milliseconds of processing time.
pub trait KeyedStateAccess {
    fn value_get(&mut self, key: &[u8], name: &str) -> Option<Vec<u8>>;
    fn value_put(&mut self, key: &[u8], name: &str, value: &[u8], ttl: Option<u64>);
    fn value_delete(&mut self, key: &[u8], name: &str);
    fn map_get(&mut self, key: &[u8], name: &str, map_key: &[u8]) -> Option<Vec<u8>>;
    fn map_put(&mut self, key: &[u8], name: &str, map_key: &[u8], value: &[u8], ttl: Option<u64>);
    fn map_delete(&mut self, key: &[u8], name: &str, map_key: &[u8]);
    /// Entries with `start <= map key < end` (`end` empty: to the end of the map).
    fn map_range(
        &mut self,
        key: &[u8],
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn register_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp);
    fn cancel_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp);
    /// The instance's current watermark (`Timestamp::MIN` before the first).
    fn watermark(&self) -> Timestamp;
    /// Processing time now.
    fn now(&self) -> Timestamp;
}

/// The keyed state of one instance, shared by its task and its plugin instance.
pub type SharedState = Arc<Mutex<dyn KeyedStateAccess + Send>>;
