//! Operator metrics, exported by the host next to its own.
//!
//! In Wasm these call the host's `metrics` interface; natively they accumulate in a per-thread
//! table that [`take`] drains.

/// Add `delta` to the counter `name`.
pub fn counter_add(name: &str, delta: u64) {
    imp::counter_add(name, delta);
}

/// Set the gauge `name`.
pub fn gauge_set(name: &str, value: f64) {
    imp::gauge_set(name, value);
}

/// What was recorded natively on this thread since the last call.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    pub counters: std::collections::BTreeMap<String, u64>,
    pub gauges: std::collections::BTreeMap<String, f64>,
}

/// Drain the metrics recorded natively on this thread (empty in Wasm, where the host has them).
pub fn take() -> Recorded {
    imp::take()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__wasm::bindings::flowlet::operator::metrics as host;

    pub fn counter_add(name: &str, delta: u64) {
        host::counter_add(name, delta);
    }

    pub fn gauge_set(name: &str, value: f64) {
        host::gauge_set(name, value);
    }

    pub fn take() -> super::Recorded {
        super::Recorded::default()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Recorded;
    use std::cell::RefCell;

    thread_local! {
        static RECORDED: RefCell<Recorded> = RefCell::new(Recorded::default());
    }

    pub fn counter_add(name: &str, delta: u64) {
        RECORDED.with_borrow_mut(|r| *r.counters.entry(name.to_owned()).or_default() += delta);
    }

    pub fn gauge_set(name: &str, value: f64) {
        RECORDED.with_borrow_mut(|r| {
            r.gauges.insert(name.to_owned(), value);
        });
    }

    pub fn take() -> Recorded {
        RECORDED.with_borrow_mut(std::mem::take)
    }
}
