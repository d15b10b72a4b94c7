//! Sinks: standard output, JSON-lines files, Kafka topics and a counting null sink.
//!
//! With checkpoints, a file sink makes its output durable at each barrier (flush + fsync) and
//! saves its length; a resumed run truncates the file to that length, so output written after
//! the last checkpoint — which the replay writes again — appears once.

use std::io::{BufWriter, Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::{Guarantee, SinkKind};
use tokio::sync::mpsc;

use flowlet_types::{Batch, Timestamp};

use crate::checkpoint::TaskCheckpoints;
use crate::task::{Body, Snapshot, Task};
use crate::{CheckpointId, DataflowError, Envelope, NodeCounters};

pub(crate) struct SinkTask {
    pub name: String,
    pub kind: SinkKind,
    pub path: Option<PathBuf>,
    pub inputs: usize,
    pub counters: Arc<NodeCounters>,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: Guarantee,
    /// The topology's transactional producer (Kafka sinks under exactly-once).
    pub producer: Option<crate::kafka::Producer>,
}

enum Writer {
    /// A batch is formatted here, then written to standard output under its lock in one go:
    /// the lock is never held while the sink waits for input (several `stdout` sinks share
    /// it), and lines of different sinks never interleave.
    Stdout(Vec<u8>),
    File {
        w: BufWriter<std::fs::File>,
        /// Bytes in the file (what a checkpoint saves).
        len: u64,
    },
    Kafka(crate::kafka::SinkWriter),
    /// Counts, and sums the number at the pointer (if any) into the `checksum` counter.
    Null(Option<flowlet_manifest::Pointer>),
}

/// An event as one line of a JSON-lines output: as it is when it has no line break (nearly
/// always); JSON text with its line breaks (whitespace between tokens) made spaces; other text
/// as a JSON string of it. A value with a line break — a pretty-printed Kafka record, say —
/// would otherwise become two lines, two broken events for whoever reads the file.
fn one_line(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    // `contains` on bytes is a memchr: two passes over a ~100-byte value, no per-byte branch.
    if !value.contains(&b'\n') && !value.contains(&b'\r') {
        return Cow::Borrowed(value);
    }
    if serde_json::from_slice::<&serde_json::value::RawValue>(value).is_ok() {
        // In valid JSON a line break can only be whitespace between tokens.
        let mut v = value.to_vec();
        v.iter_mut()
            .filter(|b| matches!(b, b'\n' | b'\r'))
            .for_each(|b| *b = b' ');
        return Cow::Owned(v);
    }
    Cow::Owned(serde_json::to_vec(&String::from_utf8_lossy(value)).expect("a string serializes"))
}

impl SinkTask {
    fn fail(&self, message: String) -> DataflowError {
        DataflowError::Sink {
            sink: self.name.clone(),
            message,
        }
    }

    /// Open the file: afresh, or (resuming) cut back to the checkpointed length.
    fn open_file(&self) -> Result<Writer, DataflowError> {
        let path = self.path.clone().expect("file sinks have a path");
        let restored = self
            .ckpt
            .as_ref()
            .and_then(|c| c.restored.as_ref())
            .and_then(|m| m.get("length")?.as_u64());
        let file = match restored {
            None => {
                // Like `mkdir -p`: a sink into `out/x.jsonl` needs no set-up step.
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        self.fail(format!(
                            "cannot create the directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                std::fs::File::create(&path)
                    .map_err(|e| self.fail(format!("cannot create {}: {e}", path.display())))?
            }
            Some(len) => {
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| {
                        self.fail(format!(
                            "cannot open {} to resume it: {e}; it held {len} bytes at the last checkpoint (start again with --from-scratch)",
                            path.display()
                        ))
                    })?;
                let actual = file.metadata().map(|m| m.len()).unwrap_or(0);
                if actual < len {
                    return Err(self.fail(format!(
                        "{} is {actual} bytes but held {len} at the last checkpoint: it was changed outside flowlet (start again with --from-scratch)",
                        path.display()
                    )));
                }
                if self.guarantee != Guarantee::AtMostOnce {
                    // What was written after the checkpoint is about to be written again.
                    file.set_len(len).map_err(|e| {
                        self.fail(format!("cannot truncate {}: {e}", path.display()))
                    })?;
                    if actual > len {
                        tracing::info!(sink = %self.name, "cut {} back from {actual} to {len} bytes (the checkpointed output)", path.display());
                    }
                }
                file.seek(std::io::SeekFrom::End(0))
                    .map_err(|e| self.fail(format!("cannot seek {}: {e}", path.display())))?;
                file
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer::File {
            w: BufWriter::with_capacity(1 << 20, file),
            len,
        })
    }

    pub fn run(mut self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let writer = match &self.kind {
            SinkKind::Stdout => Writer::Stdout(Vec::with_capacity(1 << 16)),
            SinkKind::File { .. } => self.open_file()?,
            SinkKind::Null { checksum } => Writer::Null(checksum.clone()),
            SinkKind::Kafka(spec) => Writer::Kafka(
                crate::kafka::SinkWriter::new(
                    &self.name,
                    spec,
                    self.producer.take(),
                    self.guarantee,
                    self.ckpt.is_some(),
                )
                .map_err(|e| self.fail(e))?,
            ),
        };
        let task = Task {
            ckpt: self.ckpt.clone(),
            guarantee: self.guarantee,
            inputs: self.inputs,
            // Sinks keep no state between checkpoints: nothing to commit on a cadence.
            commit_interval: std::time::Duration::MAX,
            counters: self.counters.clone(),
        };
        let mut body = SinkBody {
            task: self,
            writer,
            unflushed: false,
            stop: false,
        };
        task.run(&mut body, rx)
    }
    /// Make everything written so far durable; what a checkpoint saves of this sink.
    fn durable(&self, writer: &mut Writer) -> Result<Option<serde_json::Value>, DataflowError> {
        match writer {
            Writer::Stdout(_) => {
                std::io::stdout()
                    .lock()
                    .flush()
                    .map_err(|e| self.fail(format!("write error: {e}")))?;
                Ok(None)
            }
            Writer::File { w, len } => {
                w.flush()
                    .map_err(|e| self.fail(format!("write error: {e}")))?;
                if self.ckpt.is_some() {
                    w.get_ref()
                        .sync_data()
                        .map_err(|e| self.fail(format!("cannot sync the file: {e}")))?;
                }
                Ok(Some(serde_json::json!({ "length": *len })))
            }
            Writer::Kafka(k) => {
                k.flush().map_err(|e| self.fail(e))?;
                Ok(None)
            }
            Writer::Null(_) => Ok(None),
        }
    }
}

/// A sink's task body: write each batch; at a barrier make the output durable.
struct SinkBody {
    task: SinkTask,
    writer: Writer,
    /// File output written since the last flush.
    unflushed: bool,
    /// The run is stopping (a transaction was never completed): stop at once.
    stop: bool,
}

impl Body for SinkBody {
    const WATERMARKED: bool = false;

    fn batch(&mut self, batch: Batch, _: Timestamp) -> Result<bool, DataflowError> {
        let c = &self.task.counters;
        c.events_in.fetch_add(batch.len() as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        let written = match &mut self.writer {
            Writer::Stdout(buf) => write_stdout(buf, &batch),
            Writer::File { w, len } => write_file(w, len, &batch),
            Writer::Kafka(k) => {
                let epoch = self.task.ckpt.as_ref().map(|c| {
                    let done = c.completed.borrow();
                    (c.run, done.id + 1, done.lineage.clone())
                });
                k.send(&batch, epoch)
            }
            Writer::Null(None) => Ok(()),
            Writer::Null(Some(p)) => {
                c.checksum.fetch_add(checksum(p, &batch), Relaxed);
                Ok(())
            }
        };
        written.map_err(|e| self.task.fail(e))?;
        self.unflushed = matches!(self.writer, Writer::File { .. });
        Ok(!self.stop)
    }

    fn snapshot(&mut self, _: Timestamp) -> Result<Snapshot, DataflowError> {
        let meta = self.task.durable(&mut self.writer)?;
        self.unflushed = false;
        Ok(Snapshot {
            changes: Vec::new(),
            meta,
        })
    }

    fn barrier_passed(&mut self, id: CheckpointId) -> Result<bool, DataflowError> {
        // A transactional producer writes nothing more until the checkpoint's transaction has
        // committed: the next records belong to the next one.
        if let (Some(c), Writer::Kafka(k)) = (&mut self.task.ckpt, &self.writer)
            && k.transactional()
            && !c.wait_completed(id)
        {
            self.stop = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Without checkpoints: flush at the end.
    fn commit(&mut self) -> Result<(), DataflowError> {
        self.task.durable(&mut self.writer)?;
        Ok(())
    }

    /// Files are flushed whenever nothing more is waiting, so that they can be followed while
    /// the topology runs.
    fn idle(&mut self) -> Result<(), DataflowError> {
        if self.unflushed
            && let Writer::File { w, .. } = &mut self.writer
        {
            w.flush()
                .map_err(|e| self.task.fail(format!("write error: {e}")))?;
        }
        self.unflushed = false;
        Ok(())
    }
}

fn write_stdout(buf: &mut Vec<u8>, batch: &Batch) -> Result<(), String> {
    buf.clear();
    for event in batch.iter() {
        buf.extend_from_slice(&one_line(event.value()));
        buf.push(b'\n');
    }
    let mut out = std::io::stdout().lock();
    out.write_all(buf)
        .and_then(|()| out.flush())
        .map_err(|e| format!("write error: {e}"))
}

fn write_file(
    w: &mut BufWriter<std::fs::File>,
    len: &mut u64,
    batch: &Batch,
) -> Result<(), String> {
    (|| {
        for event in batch.iter() {
            let line = one_line(event.value());
            w.write_all(&line)?;
            w.write_all(b"\n")?;
            *len += line.len() as u64 + 1;
        }
        Ok(())
    })()
    .map_err(|e: std::io::Error| format!("write error: {e}"))
}

/// The sum of the numbers at `p` in a batch (floored), for a null sink's `checksum`.
fn checksum(p: &flowlet_manifest::Pointer, batch: &Batch) -> u64 {
    let mut sum = 0u64;
    for event in batch.iter() {
        if let Some(n) = p
            .find(event.value())
            .ok()
            .flatten()
            .and_then(|raw| raw.get().parse::<f64>().ok())
        {
            sum = sum.wrapping_add(n.floor() as u64);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn every_event_is_one_line() {
        assert_eq!(&*one_line(b"{\"a\":1}"), b"{\"a\":1}");
        assert_eq!(&*one_line(b"{\n  \"a\": 1\r\n}"), b"{   \"a\": 1  }");
        assert_eq!(&*one_line(b"two\nlines"), b"\"two\\nlines\"");
        for v in [&b"{\n\"a\":\"x\"}"[..], b"a\rb", b"\n", b"\xff\n"] {
            assert!(!one_line(v).contains(&b'\n') && !one_line(v).contains(&b'\r'));
        }
    }
}
