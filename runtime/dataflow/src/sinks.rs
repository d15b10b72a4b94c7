//! A sink's task: the executor's side of every connector that writes. The connector (a
//! [`crate::SinkWriter`], in the connectors crate) writes batches; the task loop aligns the
//! barriers, and at each the writer makes its output durable and the checkpoint saves what it
//! says (a file's length, say) for a resumed run to start from.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::Guarantee;
use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::checkpoint::TaskCheckpoints;
use crate::connect::{Epoch, SinkWriter};
use crate::task::{Body, Snapshot, Task};
use crate::{CheckpointId, DataflowError, Envelope, NodeCounters};

pub(crate) struct SinkTask {
    pub name: String,
    pub writer: Box<dyn SinkWriter>,
    pub inputs: usize,
    pub counters: Arc<NodeCounters>,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: Guarantee,
}

impl SinkTask {
    pub fn run(self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let task = Task {
            ckpt: self.ckpt.clone(),
            guarantee: self.guarantee,
            inputs: self.inputs,
            // Sinks keep no state between checkpoints: nothing to commit on a cadence.
            commit_interval: std::time::Duration::MAX,
            counters: self.counters.clone(),
        };
        let mut body = SinkBody {
            transactional: self.writer.transactional(),
            task: self,
            stop: false,
        };
        task.run(&mut body, rx)
    }

    fn fail(&self, message: String) -> DataflowError {
        DataflowError::Sink {
            sink: self.name.clone(),
            message,
        }
    }
}

/// A sink's task body: write each batch; at a barrier make the output durable.
struct SinkBody {
    task: SinkTask,
    transactional: bool,
    /// The run is stopping (a transaction was never completed): stop at once.
    stop: bool,
}

impl SinkBody {
    /// The checkpoint the records being written belong to (transactional writers).
    fn epoch(&self) -> Option<Epoch> {
        let c = self.task.ckpt.as_ref().filter(|_| self.transactional)?;
        let done = c.completed.borrow();
        Some(Epoch {
            run: c.run,
            checkpoint: done.id + 1,
            lineage: done.lineage.clone(),
        })
    }
}

impl Body for SinkBody {
    const WATERMARKED: bool = false;

    fn batch(&mut self, batch: Batch, _: usize, _: Timestamp) -> Result<bool, DataflowError> {
        let c = &self.task.counters;
        c.events_in.fetch_add(batch.len() as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        let epoch = self.epoch();
        let written = self.task.writer.write(&batch, epoch.as_ref());
        written.map_err(|e| self.task.fail(e))?;
        Ok(!self.stop)
    }

    fn snapshot(&mut self, _: Timestamp) -> Result<Snapshot, DataflowError> {
        let meta = self.task.writer.durable().map_err(|e| self.task.fail(e))?;
        crate::fault::hit("sink.flushed").map_err(|e| self.task.fail(e))?;
        Ok(Snapshot {
            changes: Vec::new(),
            meta,
        })
    }

    fn barrier_passed(&mut self, id: CheckpointId) -> Result<bool, DataflowError> {
        // A transactional writer writes nothing more until the checkpoint's transaction has
        // committed: the next records belong to the next one.
        if let (Some(c), true) = (&mut self.task.ckpt, self.transactional)
            && !c.wait_completed(id)
        {
            self.stop = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Without checkpoints: flush at the end.
    fn commit(&mut self) -> Result<(), DataflowError> {
        self.task.writer.durable().map_err(|e| self.task.fail(e))?;
        Ok(())
    }

    fn idle(&mut self) -> Result<(), DataflowError> {
        self.task.writer.idle().map_err(|e| self.task.fail(e))
    }
}
