//! A source's task: the executor's side of every connector that reads. The connector (a
//! [`crate::Source`], in the connectors crate) reads its input and hands batches to the
//! [`SourceContext`], which owns what every source does alike: event times and watermarks,
//! the `on-error` policy for events without a readable time, positions for checkpoints,
//! barriers, idleness and the end of the stream.

mod emit;
mod event_time;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use flowlet_manifest::{EventTime, Guarantee, OnError};
use flowlet_types::Timestamp;
use serde_json::{Value, json};

use crate::checkpoint::TaskCheckpoints;
use crate::edge::Outputs;
use crate::{Clock, DataflowError, Message, NodeCounters, Stop};

pub use event_time::parse_time;

/// A boxed future (connector traits are object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connector that reads events.
pub trait Source: Send {
    /// Read until the input ends or the run stops, handing batches to `cx` (which applies
    /// event time, `on-error` and watermarks), setting the position after each and passing on
    /// checkpoint barriers when `cx` asks. Err says why the source failed.
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>>;
}

/// What a source is given to run: the executor's handles, by the connector's name for them.
pub(crate) struct SourceSetup {
    pub name: String,
    pub event_time: Option<EventTime>,
    pub batch_size: usize,
    pub out: Outputs,
    pub dead_letter: Outputs,
    pub counters: Arc<NodeCounters>,
    pub stop: Arc<Stop>,
    pub clock: Arc<dyn Clock>,
    pub on_error: OnError,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: Guarantee,
    /// The topology's name (the default Kafka consumer group).
    pub topology: String,
}

/// Event time and watermarks of one source.
struct Clocking {
    field: Option<flowlet_manifest::Pointer>,
    bound: Timestamp,
    idle_timeout: Option<Duration>,
    max_seen: Timestamp,
    sent: Timestamp,
    /// Events dropped because their time field was missing or unreadable.
    bad_times: u64,
    /// Blank lines of a file or standard input (skipped: they are not events).
    blank_lines: u64,
    /// Values must be JSON (Kafka `format: json`).
    json: bool,
    /// Partitioned inputs: the partition (index) of each event of the batch being built, and
    /// each partition's largest event time and idleness. The watermark is then the minimum
    /// over the partitions that are not idle.
    partition_of: Vec<u16>,
    partition_max: Vec<Timestamp>,
    partition_idle: Vec<bool>,
    /// Where the source is: what it resumes from (a file's bytes, a generator's events, Kafka
    /// offsets); set by the reader after each batch.
    position: Value,
}

impl Clocking {
    fn new(et: EventTime) -> Self {
        Self {
            field: et.field,
            bound: et.max_out_of_orderness.as_millis() as Timestamp,
            idle_timeout: et.idle_timeout,
            max_seen: Timestamp::MIN,
            sent: Timestamp::MIN,
            bad_times: 0,
            blank_lines: 0,
            json: false,
            partition_of: Vec::new(),
            partition_max: Vec::new(),
            partition_idle: Vec::new(),
            position: Value::Null,
        }
    }

    /// What a checkpoint saves of a source.
    fn meta(&self) -> Value {
        json!({"position": self.position, "max_seen": self.max_seen, "sent": self.sent})
    }

    fn restore(&mut self, meta: &Value) {
        self.position = meta.get("position").cloned().unwrap_or(Value::Null);
        if let Some(m) = meta.get("max_seen").and_then(Value::as_i64) {
            self.max_seen = m;
        }
        if let Some(s) = meta.get("sent").and_then(Value::as_i64) {
            self.sent = s;
        }
    }
}

/// What a connector reading events works with: hand it batches, tell it where the input is,
/// and pass on checkpoint barriers when asked.
pub struct SourceContext {
    s: SourceSetup,
    c: Clocking,
    /// Why the source stopped the topology (`on-error: fail`).
    failure: Option<String>,
}

/// Checkpoint requests, for a reader that waits on its input and on them at once.
pub struct Checkpoints(Option<tokio::sync::watch::Receiver<u64>>);

impl Checkpoints {
    /// The next checkpoint asked for (never, without checkpoints).
    pub async fn next(&mut self) -> u64 {
        match &mut self.0 {
            Some(t) => match t.changed().await {
                Ok(()) => *t.borrow_and_update(),
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }
}

impl SourceContext {
    pub(crate) fn new(s: SourceSetup) -> Self {
        let mut c = Clocking::new(s.event_time.clone().unwrap_or_default());
        if let Some(meta) = s.ckpt.as_ref().and_then(|c| c.resume_at()) {
            c.restore(meta);
        }
        Self {
            s,
            c,
            failure: None,
        }
    }

    /// The source's name in the manifest.
    pub fn name(&self) -> &str {
        &self.s.name
    }

    /// The topology's name.
    pub fn topology(&self) -> &str {
        &self.s.topology
    }

    /// Events per batch.
    pub fn batch_size(&self) -> usize {
        self.s.batch_size
    }

    /// Processing time now (an event's time when the input has none).
    pub fn now(&self) -> Timestamp {
        self.s.clock.now()
    }

    /// Whether the run is stopping, and a future that is ready when it is.
    pub fn stop(&self) -> &Arc<Stop> {
        &self.s.stop
    }

    /// The source's counters (a connector adds what only it knows, e.g. consumer lag).
    pub fn counters(&self) -> &Arc<NodeCounters> {
        &self.s.counters
    }

    /// Where the source is: at the start, where the last checkpoint left it (`null` on a
    /// fresh start); then what the connector last set with [`SourceContext::progress`].
    pub fn position(&self) -> &Value {
        &self.c.position
    }

    /// After how long without input the source is idle (`event-time.idle-timeout`).
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.c.idle_timeout
    }

    /// Every value must be JSON: others meet the source's `on-error`.
    pub fn values_must_be_json(&mut self) {
        self.c.json = true;
    }

    /// A blank line was read: not an event, counted as skipped (so that lines in = events +
    /// skipped).
    pub fn blank_line(&mut self) {
        self.c.blank_lines += 1;
        self.s.counters.skipped.fetch_add(1, Relaxed);
    }

    /// The input is at `position` once the batch about to be emitted (if any) is sent: what a
    /// checkpoint taken after it saves, and what a resumed run starts from.
    pub fn progress(&mut self, position: Value) {
        self.c.position = position;
    }

    /// Checkpoint requests from here on (a reader waiting on its input selects on them).
    pub fn checkpoints(&self) -> Checkpoints {
        let mut t = self.s.ckpt.as_ref().map(|ck| ck.trigger.clone());
        if let Some(t) = &mut t {
            t.mark_unchanged();
        }
        Checkpoints(t)
    }

    /// A checkpoint asked for since the last look, if any (a reader that never waits).
    pub fn triggered(&mut self) -> Option<u64> {
        let ck = self.s.ckpt.as_mut()?;
        if ck.trigger.has_changed().unwrap_or(false) {
            return Some(*ck.trigger.borrow_and_update());
        }
        None
    }

    /// Send barrier `id` and report this source's position for it.
    pub async fn barrier(&mut self, id: u64) {
        self.s.out.broadcast(Message::Barrier(id)).await;
        self.s.dead_letter.broadcast(Message::Barrier(id)).await;
        if let Some(ck) = &self.s.ckpt {
            ck.snapshot(id, Vec::new(), Some(self.c.meta()));
        }
        let _ = crate::fault::hit("source.barrier");
    }

    /// Advance the watermark to `w` (if it is ahead): for a source that knows how far its
    /// input is, or a test's script (`flowlet test`'s `@watermark` lines).
    pub async fn watermark(&mut self, w: Timestamp) {
        if w > self.c.sent {
            self.c.sent = w;
            self.s.counters.watermark.store(w, Relaxed);
            self.s.out.broadcast(Message::Watermark(w)).await;
        }
    }

    /// Tell the consumers that processing time moved, in line with the events (a test that
    /// moves its clock: timers due by then fire before the events that follow).
    pub async fn tick(&mut self) {
        self.s.out.broadcast(Message::Tick).await;
    }

    /// Tell the consumers the source is idle: it stops holding their watermarks back until it
    /// emits again.
    pub async fn idle(&mut self) {
        self.s.out.broadcast(Message::Idle).await;
    }

    /// A partitioned input (Kafka): one watermark per partition, starting at `max` each (from
    /// a checkpoint, else `Timestamp::MIN`).
    pub fn partitions(&mut self, max: Vec<Timestamp>) {
        self.c.partition_idle = vec![false; max.len()];
        self.c.partition_max = max;
    }

    /// Push the partition of each event pushed on the batch about to be emitted.
    pub fn batch_partitions(&mut self) -> &mut Vec<u16> {
        &mut self.c.partition_of
    }

    /// The largest event time seen in partition `i`.
    pub fn partition_max(&self, i: usize) -> Timestamp {
        self.c.partition_max[i]
    }

    /// Partition `i` is idle (or not): idle partitions do not hold the watermark back; when
    /// all are, returns `true` (tell the consumers with [`SourceContext::idle`]).
    pub fn partition_idle(&mut self, i: usize, idle: bool) -> bool {
        self.c.partition_idle[i] = idle;
        self.c.partition_idle.iter().all(|i| *i)
    }

    /// Run `source` until its input ends or the run stops, then end the stream.
    pub(crate) async fn run(mut self, source: Box<dyn Source>) -> Result<(), DataflowError> {
        let result = source.run(&mut self).await;
        let result = match self.failure.take() {
            Some(message) => Err(message),
            None => result,
        };
        self.report_skipped();
        let s = &self.s;
        // A bounded input that ended (not stopped) is complete: every window may fire.
        if result.is_ok() && !s.stop.is_stopped() {
            s.out.broadcast(Message::Watermark(Timestamp::MAX)).await;
        }
        // End the stream even after an error, so that everything downstream flushes.
        s.out.broadcast(Message::End).await;
        s.dead_letter.broadcast(Message::End).await;
        if let (Some(c), Ok(())) = (&s.ckpt, &result) {
            c.finished(Vec::new(), Some(self.c.meta()));
        }
        result.map_err(|message| DataflowError::Source {
            source_name: s.name.clone(),
            message,
        })
    }

    fn report_skipped(&self) {
        let (s, c) = (&self.s, &self.c);
        if c.blank_lines > 0 {
            tracing::info!(source = %s.name, "skipped {} blank line(s) (counted as skipped)", c.blank_lines);
        }
        if c.bad_times > 0 {
            tracing::warn!(
                source = %s.name,
                "{} event(s) had no readable event time in {} and were {}",
                c.bad_times,
                c.field.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                match s.on_error {
                    OnError::DeadLetter => format!("sent to `{}.dead-letter`", s.name),
                    _ => "skipped".into(),
                }
            );
        }
    }
}
