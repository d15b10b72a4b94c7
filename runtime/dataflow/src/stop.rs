//! Stopping a running topology: the sources end their streams and everything downstream
//! drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Asks the sources to stop; they end their streams and everything downstream drains.
#[derive(Debug, Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub async fn stopped(&self) {
        let notified = self.notify.notified();
        if self.is_stopped() {
            return;
        }
        notified.await;
    }
}
