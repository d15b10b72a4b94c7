//! Sources: the generator, JSON-lines files and standard input.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowlet_manifest::SourceKind;
use flowlet_types::{Batch, Timestamp};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::edge::Outputs;
use crate::{DataflowError, Message, NodeCounters, Stop, generator};

pub(crate) struct SourceTask {
    pub name: String,
    pub kind: SourceKind,
    pub path: Option<PathBuf>,
    pub batch_size: usize,
    pub out: Outputs,
    pub counters: Arc<NodeCounters>,
    pub stop: Arc<Stop>,
}

/// Processing time now, in ms since the Unix epoch.
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Timestamp)
}

impl SourceTask {
    pub async fn run(mut self) -> Result<(), DataflowError> {
        let result = match self.kind.clone() {
            SourceKind::Generator { count, rate, seed } => {
                self.generate(count, rate, seed).await;
                Ok(())
            }
            SourceKind::File { .. } => {
                let path = self.path.clone().expect("file sources have a path");
                match tokio::fs::File::open(&path).await {
                    Ok(f) => {
                        self.lines(BufReader::with_capacity(1 << 20, f), false)
                            .await
                    }
                    Err(e) => Err(format!("cannot open {}: {e}", path.display())),
                }
            }
            SourceKind::Stdin => self.lines(BufReader::new(tokio::io::stdin()), true).await,
        };
        // End the stream even after an error, so that everything downstream flushes.
        self.out.broadcast(Message::End).await;
        result.map_err(|message| DataflowError::Source {
            source_name: self.name.clone(),
            message,
        })
    }

    async fn emit(&mut self, batch: Batch) -> bool {
        self.counters
            .events_out
            .fetch_add(batch.len() as u64, Relaxed);
        self.counters.batches.fetch_add(1, Relaxed);
        self.out.send(batch).await
    }

    async fn generate(&mut self, count: Option<u64>, rate: Option<f64>, seed: u64) {
        // With a rate, batches hold at most 50 ms of events so that output stays smooth.
        let batch_size = match rate {
            Some(r) => self.batch_size.min((r / 20.0).ceil().max(1.0) as usize),
            None => self.batch_size,
        };
        let start = tokio::time::Instant::now();
        let mut n = 0u64;
        let mut batch = Batch::with_capacity(batch_size, batch_size * 128);
        while count.is_none_or(|c| n < c) && !self.stop.is_stopped() {
            let end = count.map_or(n + batch_size as u64, |c| c.min(n + batch_size as u64));
            for i in n..end {
                generator::push_event(&mut batch, seed, i);
            }
            n = end;
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(n as f64 / r);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.stop.stopped() => {}
                }
            }
            let full = std::mem::replace(
                &mut batch,
                Batch::with_capacity(batch_size, batch_size * 128),
            );
            if !self.emit(full).await {
                return;
            }
        }
    }

    /// One event per non-empty line, timestamped with processing time. With `interactive`,
    /// a batch is sent as soon as no more input is buffered, so typed lines come out at once.
    async fn lines<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        mut reader: BufReader<R>,
        interactive: bool,
    ) -> Result<(), String> {
        let mut batch = Batch::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = tokio::select! {
                r = reader.read_until(b'\n', &mut line) => r.map_err(|e| format!("read error: {e}"))?,
                _ = self.stop.stopped() => 0,
            };
            if read == 0 {
                break;
            }
            let text = line.trim_ascii();
            if !text.is_empty() {
                batch.push(b"", text, now_ms());
            }
            let drained = interactive && reader.buffer().is_empty();
            let due = batch.len() >= self.batch_size || (drained && !batch.is_empty());
            if due && !self.emit(std::mem::take(&mut batch)).await {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            self.emit(batch).await;
        }
        Ok(())
    }
}
