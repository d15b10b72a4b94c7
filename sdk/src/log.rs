//! Logging into the host's log, tagged with the operator and instance.
//!
//! In Wasm these call the host's `log` interface; natively (tests, built-in operators) the
//! records are kept in a per-thread buffer that [`take`] drains.

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

pub fn log(level: Level, message: &str) {
    imp::log(level, message);
}

pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message.as_ref());
}
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message.as_ref());
}

/// Drain the records logged natively on this thread (empty in Wasm, where the host has them).
pub fn take() -> Vec<(Level, String)> {
    imp::take()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::__wasm::bindings::flowlet::operator::log as host;

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => host::Level::Trace,
            Level::Debug => host::Level::Debug,
            Level::Info => host::Level::Info,
            Level::Warn => host::Level::Warn,
            Level::Error => host::Level::Error,
        };
        host::log(level, message);
    }

    pub fn take() -> Vec<(Level, String)> {
        Vec::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use std::cell::RefCell;

    /// Records kept per thread before the oldest are dropped, so a chatty operator that nobody
    /// drains cannot grow memory without bound.
    const CAPACITY: usize = 10_000;

    thread_local! {
        static RECORDS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(level: Level, message: &str) {
        RECORDS.with_borrow_mut(|r| {
            if r.len() == CAPACITY {
                r.remove(0);
            }
            r.push((level, message.to_owned()));
        });
    }

    pub fn take() -> Vec<(Level, String)> {
        RECORDS.with_borrow_mut(std::mem::take)
    }
}
