//! Sinks: standard output, JSON-lines files, and a counting null sink.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::SinkKind;
use tokio::sync::mpsc;

use crate::{DataflowError, Envelope, Message, NodeCounters};

pub(crate) fn run(
    name: String,
    kind: SinkKind,
    path: Option<PathBuf>,
    mut rx: mpsc::Receiver<Envelope>,
    inputs: usize,
    counters: Arc<NodeCounters>,
) -> Result<(), DataflowError> {
    let fail = |message: String| DataflowError::Sink {
        sink: name.clone(),
        message,
    };
    let (mut writer, flush_each_batch): (Option<Box<dyn Write>>, bool) = match &kind {
        SinkKind::Stdout => (
            Some(Box::new(BufWriter::new(std::io::stdout().lock()))),
            true,
        ),
        SinkKind::File { .. } => {
            let path = path.expect("file sinks have a path");
            let file = std::fs::File::create(&path)
                .map_err(|e| fail(format!("cannot create {}: {e}", path.display())))?;
            (
                Some(Box::new(BufWriter::with_capacity(1 << 20, file))),
                false,
            )
        }
        SinkKind::Null => (None, false),
    };
    let mut open = inputs;
    let mut unflushed = false;
    let mut ended = vec![false; inputs];
    while open > 0 {
        let Some(env) = rx.blocking_recv() else { break };
        match env.message {
            Message::Batch(batch) => {
                counters.events_in.fetch_add(batch.len() as u64, Relaxed);
                counters.batches.fetch_add(1, Relaxed);
                if let Some(w) = writer.as_mut() {
                    let written: std::io::Result<()> = (|| {
                        for event in batch.iter() {
                            w.write_all(event.value())?;
                            w.write_all(b"\n")?;
                        }
                        if flush_each_batch {
                            w.flush()?;
                        }
                        Ok(())
                    })();
                    written.map_err(|e| fail(format!("write error: {e}")))?;
                    unflushed = !flush_each_batch;
                }
            }
            Message::Watermark(_) | Message::Idle | Message::Tick => {}
            Message::End => {
                if !std::mem::replace(&mut ended[env.input], true) {
                    open -= 1;
                }
            }
        }
        // Files are flushed whenever nothing more is waiting, so that they can be followed
        // while the topology runs.
        if unflushed && rx.is_empty() {
            if let Some(w) = writer.as_mut() {
                w.flush().map_err(|e| fail(format!("write error: {e}")))?;
            }
            unflushed = false;
        }
    }
    if let Some(w) = writer.as_mut() {
        w.flush().map_err(|e| fail(format!("write error: {e}")))?;
    }
    Ok(())
}
