//! What flows on the edges between tasks.

use flowlet_types::{Batch, Timestamp};

/// A checkpoint's number (1, 2, …; 0: none yet).
pub type CheckpointId = u64;

/// What flows on an edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Batch(Batch),
    /// No event with a smaller timestamp will follow on this input.
    Watermark(Timestamp),
    /// The producer has been idle for its source's `idle-timeout`: until its next batch or
    /// watermark it does not hold back the consumer's watermark.
    Idle,
    /// This input is finished.
    End,
    /// Processing time moved (sent by the executor to operators that use it).
    Tick,
    /// Checkpoint `n`: everything before it on this input belongs to the checkpoint.
    Barrier(CheckpointId),
}

/// A message and the input it arrived on (an index into the receiver's inputs).
#[derive(Debug)]
pub struct Envelope {
    pub input: usize,
    pub message: Message,
}
