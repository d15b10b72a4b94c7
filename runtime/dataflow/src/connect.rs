//! What the executor asks of connectors — the connectors crate implements it: open a source or
//! a sink of the manifest, and before a run with checkpoints set up what spans them (the
//! [`Committer`] that makes each checkpoint's output visible). The executor names no connector.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use flowlet_manifest::{Guarantee, Manifest};
use flowlet_types::Batch;
use serde_json::Value;

use crate::checkpoint::Committer;
use crate::source::{BoxFuture, Source};
use crate::{DataflowError, NodeCounters};

/// Opens the sources and sinks of a manifest.
pub trait Connect: Send + Sync {
    /// Before a run with checkpoints, and before anything is read: the committer that decides
    /// each checkpoint (a transaction spanning the sinks), and what the sinks share (by sink
    /// name, handed to [`Connect::sink`]).
    fn prepare<'a>(
        &'a self,
        manifest: &'a Manifest,
    ) -> BoxFuture<'a, Result<Prepared, DataflowError>>;

    /// The reader of source `name`; Err says why it cannot be opened.
    fn source(&self, name: &str, manifest: &Manifest) -> Result<Box<dyn Source>, String>;

    /// The writer of sink `setup.name`; Err says why it cannot be opened.
    fn sink(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String>;
}

/// What [`Connect::prepare`] set up.
#[derive(Default)]
pub struct Prepared {
    pub committer: Option<Box<dyn Committer>>,
    /// Per sink: a handle it shares with the committer (a transactional producer).
    pub shared: BTreeMap<String, Box<dyn Any + Send>>,
}

/// The checkpoint a transactional sink's records belong to (written with them).
#[derive(Debug, Clone)]
pub struct Epoch {
    /// The run (process start) writing.
    pub run: u64,
    pub checkpoint: u64,
    /// Every run's last committed checkpoint, as a header value.
    pub lineage: Arc<str>,
}

/// A connector that writes events. Runs on a thread of its own: it may block.
pub trait SinkWriter: Send {
    /// Write a batch. `epoch` is given to a [`SinkWriter::transactional`] writer under
    /// checkpoints.
    fn write(&mut self, batch: &Batch, epoch: Option<&Epoch>) -> Result<(), String>;

    /// Make everything written so far durable (at each checkpoint barrier, and at the end of
    /// a run); what the checkpoint saves of the sink, handed back at [`SinkSetup::restored`].
    fn durable(&mut self) -> Result<Option<Value>, String> {
        Ok(None)
    }

    /// Whether the writer writes inside the checkpoint's transaction: it then waits at each
    /// barrier until the checkpoint has committed.
    fn transactional(&self) -> bool {
        false
    }

    /// Nothing more is waiting for the sink right now (a file is flushed so that it can be
    /// followed).
    fn idle(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// What a sink is opened with.
pub struct SinkSetup<'a> {
    pub name: &'a str,
    pub manifest: &'a Manifest,
    pub guarantee: Guarantee,
    /// Whether the topology has checkpoints.
    pub checkpointing: bool,
    /// What the last checkpoint saved of this sink ([`SinkWriter::durable`]); `None` on a
    /// fresh start.
    pub restored: Option<&'a Value>,
    pub counters: Arc<NodeCounters>,
    /// What [`Connect::prepare`] set up for this sink.
    pub shared: Option<Box<dyn Any + Send>>,
}
