//! How a topology runs beyond its manifest, and the handle to ask it for savepoints while it
//! runs (stopping it: stop.rs).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::counters::LiveStats;
use crate::{Clock, SystemClock, checkpoint, lock, swap};

#[derive(Clone)]
pub struct RunOptions {
    /// Processing time (windows with `time: processing`, timers, state TTL).
    pub clock: Arc<dyn Clock>,
    /// Opens the sources and sinks (the connectors crate's catalog).
    pub connectors: Option<Arc<dyn crate::Connect>>,
    /// How often operators with processing-time windows or timers look at the clock.
    pub tick: std::time::Duration,
    /// Filled with the counters of every node when the run starts, to be read while it runs.
    pub live: LiveStats,
    /// Ignore the state and positions of earlier runs (and start file sinks afresh).
    pub from_scratch: bool,
    /// Start from this savepoint (implies `from_scratch`).
    pub from_savepoint: Option<std::path::PathBuf>,
    /// Where savepoints are asked for while the topology runs.
    pub savepoints: Arc<Savepoints>,
    /// Where operators' plugins are swapped while the topology runs.
    pub swaps: Arc<swap::Swaps>,
    /// The lock of the state directory, when the caller took it already (`flowlet run` takes
    /// it before it opens its control socket); else the run takes it when it opens the state.
    pub state_lock: Option<Arc<lock::StateLock>>,
}

/// Asks a running topology for savepoints.
#[derive(Debug)]
pub struct Savepoints {
    tx: mpsc::Sender<checkpoint::SavepointRequest>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<checkpoint::SavepointRequest>>>,
}

impl Default for Savepoints {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(16);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Savepoints {
    /// Where the run's coordinator receives the requests (once per run).
    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<checkpoint::SavepointRequest>> {
        self.rx.lock().expect("savepoints lock").take()
    }

    /// Take a savepoint (and stop, with `stop`); returns the file written.
    pub async fn take(
        &self,
        stop: bool,
        path: Option<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = checkpoint::SavepointRequest { stop, path, reply };
        self.tx
            .send(req)
            .await
            .map_err(|_| "the topology has no checkpoints configured or has ended".to_string())?;
        rx.await
            .map_err(|_| "the topology ended before the savepoint was taken".to_string())?
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            connectors: None,
            tick: std::time::Duration::from_millis(50),
            live: LiveStats::default(),
            from_scratch: false,
            from_savepoint: None,
            savepoints: Arc::default(),
            swaps: Arc::default(),
            state_lock: None,
        }
    }
}
