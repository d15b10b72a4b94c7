//! The one task loop of operator instances, window-aggregate instances and sinks.
//!
//! [`run`] owns what every such task does: it reads its inbox (barrier alignment included),
//! keeps the minimum watermark over its inputs, takes checkpoint snapshots at barriers,
//! commits state on a cadence when there are no checkpoints, lets a hot swap take effect at
//! its barrier, and ends when every input has ended. What differs — what to do with a batch,
//! a watermark, a tick — is a [`Body`]; its defaults do nothing.

pub(crate) mod slot;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use flowlet_manifest::Guarantee;
use flowlet_types::{Batch, Timestamp};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::checkpoint::{Inbox, TaskCheckpoints};
use crate::state::Change;
use crate::time::{Change as Mark, Watermarks};
use crate::{CheckpointId, DataflowError, Envelope, Message, NodeCounters};

/// What a task hands a checkpoint: its store changes since the last one, and what it needs to
/// resume (its watermark, a sink's length).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub changes: Vec<Change>,
    pub meta: Option<Value>,
}

/// `{"watermark": w}`: what an operator instance saves besides its state.
pub(crate) fn watermark_meta(w: Timestamp) -> Value {
    serde_json::json!({ "watermark": w })
}

fn restored_watermark(meta: Option<&Value>) -> Option<Timestamp> {
    meta?.get("watermark")?.as_i64()
}

/// What a task does with what its loop hands it.
pub(crate) trait Body {
    /// Whether the task has a watermark of its own (operators do; sinks do not).
    const WATERMARKED: bool = true;

    /// Handle one batch from upstream producer instance `input`; the watermark is the task's
    /// current one. `Ok(false)`: every consumer is gone (the topology is stopping).
    fn batch(
        &mut self,
        batch: Batch,
        input: usize,
        watermark: Timestamp,
    ) -> Result<bool, DataflowError>;

    /// Upstream producer instance `input` sent watermark `w` (before the task's own watermark
    /// is worked out from all of them).
    fn input_watermark(&mut self, input: usize, w: Timestamp) {
        let _ = (input, w);
    }

    /// The run starts from a checkpoint whose watermark was `w`.
    fn restore_watermark(&mut self, w: Timestamp) {
        let _ = w;
    }

    /// The watermark advanced to `w` (before it is forwarded).
    fn watermark(&mut self, w: Timestamp) -> Result<(), DataflowError> {
        let _ = w;
        Ok(())
    }

    /// Processing time moved.
    fn tick(&mut self) -> Result<(), DataflowError> {
        Ok(())
    }

    /// A checkpoint (or the end of the run): what the task saves. `watermark` is the one to
    /// save (not the end of input).
    fn snapshot(&mut self, watermark: Timestamp) -> Result<Snapshot, DataflowError> {
        Ok(Snapshot {
            changes: Vec::new(),
            meta: Some(watermark_meta(watermark)),
        })
    }

    /// Barrier `id` was snapshotted (and forwarded). `Ok(false)`: stop.
    fn barrier_passed(&mut self, id: CheckpointId) -> Result<bool, DataflowError> {
        let _ = id;
        Ok(true)
    }

    /// A hot swap armed for this barrier (`None`: no checkpoints, any message) takes effect.
    fn swap_due(&mut self, barrier: Option<CheckpointId>) {
        let _ = barrier;
    }

    /// Without checkpoints: make the state durable (every `commit-interval` and at the end).
    fn commit(&mut self) -> Result<(), DataflowError> {
        Ok(())
    }

    /// Nothing is waiting in the inbox.
    fn idle(&mut self) -> Result<(), DataflowError> {
        Ok(())
    }

    /// Forward a barrier, a watermark or the end to every output.
    fn forward(&mut self, message: Message) {
        let _ = message;
    }

    /// Every open input is idle: tell the consumers of the main output.
    fn forward_idle(&mut self) {}
}

/// What the loop needs besides the body.
pub(crate) struct Task {
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: Guarantee,
    /// Upstream producer instances (inputs).
    pub inputs: usize,
    pub commit_interval: Duration,
    pub counters: Arc<NodeCounters>,
}

impl Task {
    /// Run `body` over the messages of `rx` until every input ended.
    pub fn run<B: Body>(
        self,
        body: &mut B,
        rx: mpsc::Receiver<Envelope>,
    ) -> Result<(), DataflowError> {
        let mut marks = Watermarks::new(self.inputs);
        if let Some(w) = self
            .ckpt
            .as_ref()
            .and_then(|c| restored_watermark(c.restored.as_ref()))
        {
            marks.restore(w);
            body.restore_watermark(w);
        }
        let mut inbox = Inbox::new(rx, self.inputs, self.guarantee);
        let mut last_commit = Instant::now();
        while marks.open() > 0 {
            let Some(env) = inbox.next_blocking() else {
                break; // every producer is gone: the topology is stopping
            };
            if self.ckpt.is_none() {
                body.swap_due(None);
            }
            let change = match env.message {
                Message::Batch(batch) => {
                    let change = marks.activity(env.input);
                    if !body.batch(batch, env.input, marks.current())? {
                        return Ok(());
                    }
                    change
                }
                Message::Tick => {
                    body.tick()?;
                    Mark::Nothing
                }
                Message::Barrier(id) => {
                    if !self.barrier(body, id, marks.durable())? {
                        return Ok(());
                    }
                    Mark::Nothing
                }
                other => {
                    if let Message::Watermark(w) = other {
                        body.input_watermark(env.input, w);
                    }
                    marks.update(env.input, &other)
                }
            };
            self.advance(body, change)?;
            if self.ckpt.is_none() && last_commit.elapsed() >= self.commit_interval {
                body.commit()?;
                last_commit = Instant::now();
            }
            if inbox.is_empty() {
                body.idle()?;
            }
        }
        match &self.ckpt {
            Some(c) => {
                let s = body.snapshot(marks.durable())?;
                c.finished(s.changes, s.meta);
            }
            None => body.commit()?,
        }
        body.forward(Message::End);
        Ok(())
    }

    /// Checkpoint barrier `id`: snapshot, swap if one is armed for it, forward it.
    fn barrier<B: Body>(
        &self,
        body: &mut B,
        id: CheckpointId,
        durable: Timestamp,
    ) -> Result<bool, DataflowError> {
        if let Some(c) = &self.ckpt {
            let s = body.snapshot(durable)?;
            c.snapshot(id, s.changes, s.meta);
            let _ = crate::fault::hit("task.snapshot");
        }
        // A swap armed for this barrier: the new version handles what follows it.
        body.swap_due(Some(id));
        body.forward(Message::Barrier(id));
        body.barrier_passed(id)
    }

    /// What a control message changed: a new watermark, or idleness, goes on downstream.
    fn advance<B: Body>(&self, body: &mut B, change: Mark) -> Result<(), DataflowError> {
        match change {
            Mark::Watermark(w) => {
                if B::WATERMARKED {
                    self.counters.watermark.store(w, Relaxed);
                }
                body.watermark(w)?;
                body.forward(Message::Watermark(w));
            }
            Mark::Idle => body.forward_idle(),
            Mark::Nothing => {}
        }
        Ok(())
    }
}
