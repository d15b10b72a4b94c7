//! Joins kept by the host: an operator with `join:` holds both inputs' events in keyed state
//! ([`buffers`]) and emits the pairs that match — by a time interval, by window, or with the
//! version of a table (a changelog) valid at the event's time. Each pair is merged into
//! `{"left": …, "right": …}` (plus `"window"`), or for a semi join `{"left": …}` once.
//!
//! Time: an event is late when its time is below the watermark of the input instance it came
//! on (not the operator's minimum over inputs): which events are late then does not depend on
//! how the two inputs' batches interleave, so a rerun gives the same output. Buffers are
//! trimmed, windows fired and table lookups made by the operator's watermark, when every
//! input has passed the time concerned.

mod buffers;
mod kinds;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use flowlet_manifest::{Join, JoinMode};
use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::checkpoint::TaskCheckpoints;
use crate::edge::Outputs;
use crate::policy::Policy;
use crate::state::Store;
use crate::task::{Body, Snapshot, Task, watermark_meta};
use crate::{DataflowError, Envelope, Message, OperatorError};
use buffers::{Buffers, Row};
pub(crate) use kinds::Kind;

/// What a join instance's task is made of.
pub(crate) struct JoinTask {
    pub spec: Join,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: flowlet_manifest::Guarantee,
    pub policy: Policy,
    /// For each upstream producer instance (an envelope's `input`): whether it is the left side.
    pub left_of: Arc<[bool]>,
    pub main: Outputs,
    pub late: Outputs,
    pub dead_letter: Outputs,
    pub store: Arc<dyn Store>,
    pub groups: Range<u32>,
    pub commit_interval: std::time::Duration,
}

impl JoinTask {
    pub fn run(self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let kind = Kind::new(&self.spec.kind, &self.policy.name)?;
        let buffers = Buffers::load(&self.store, &self.groups, &self.policy.name, |rows| {
            kind.due_of(rows)
        })?;
        let task = Task {
            ckpt: self.ckpt,
            guarantee: self.guarantee,
            inputs: self.left_of.len(),
            commit_interval: self.commit_interval,
            counters: self.policy.counters.clone(),
        };
        let mut body = JoinBody {
            buffers,
            kind,
            mode: self.spec.mode,
            input_marks: vec![Timestamp::MIN; self.left_of.len()],
            left_of: self.left_of,
            out: Batch::new(),
            policy: self.policy,
            main: self.main,
            late: self.late,
            dead_letter: self.dead_letter,
            store: self.store,
        };
        task.run(&mut body, rx)
    }
}

pub(crate) struct JoinBody {
    buffers: Buffers,
    kind: Kind,
    mode: JoinMode,
    left_of: Arc<[bool]>,
    /// The watermark of each upstream producer instance (what makes its events late).
    input_marks: Vec<Timestamp>,
    /// Output being built.
    out: Batch,
    policy: Policy,
    main: Outputs,
    late: Outputs,
    dead_letter: Outputs,
    store: Arc<dyn Store>,
}

impl Body for JoinBody {
    fn batch(
        &mut self,
        batch: Batch,
        input: usize,
        watermark: Timestamp,
    ) -> Result<bool, DataflowError> {
        let started = Instant::now();
        let left = self.left_of.get(input).copied().unwrap_or(true);
        let mark = self
            .input_marks
            .get(input)
            .copied()
            .unwrap_or(Timestamp::MIN);
        let (mut late, mut dead) = (Batch::new(), Batch::new());
        for event in batch.iter() {
            if event.timestamp() < mark {
                late.push_event(&event);
                continue;
            }
            if let Err(e) = serde_json::from_slice::<&serde_json::value::RawValue>(event.value()) {
                let error = OperatorError::Failed(format!("a joined event must be JSON: {e}"));
                self.policy.bad_event(&event, error, &mut dead)?;
                continue;
            }
            // An event without the key field matches nothing (SQL's NULL keys): it is bad data.
            let Some(key) = event.key() else {
                let side = if left { "left" } else { "right" };
                let error = OperatorError::Failed(format!(
                    "the event has no join key (the {side} side's key field is missing or empty)"
                ));
                self.policy.bad_event(&event, error, &mut dead)?;
                continue;
            };
            let row = Row {
                ts: event.timestamp(),
                win: None,
                matched: false,
                value: event.value().into(),
            };
            self.kind
                .add(&mut self.buffers, self.mode, key, left, row, &mut self.out);
        }
        // What was due already (a row that can match nothing more) goes at once.
        self.kind
            .advance(&mut self.buffers, self.mode, watermark, &mut self.out);
        let c = &self.policy.counters;
        c.events_in.fetch_add(batch.len() as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        c.late.fetch_add(late.len() as u64, Relaxed);
        c.batch_latency.record(started.elapsed());
        self.gauge();
        let mut alive = self.flush();
        if !late.is_empty() && !self.late.is_empty() {
            alive &= self.late.send_blocking(late);
        }
        if !dead.is_empty() {
            alive &= self.dead_letter.send_blocking(dead);
        }
        Ok(alive)
    }

    fn input_watermark(&mut self, input: usize, w: Timestamp) {
        if let Some(m) = self.input_marks.get_mut(input) {
            *m = (*m).max(w);
        }
    }

    fn restore_watermark(&mut self, w: Timestamp) {
        self.input_marks.iter_mut().for_each(|m| *m = w);
    }

    fn watermark(&mut self, w: Timestamp) -> Result<(), DataflowError> {
        self.kind
            .advance(&mut self.buffers, self.mode, w, &mut self.out);
        self.flush();
        Ok(())
    }

    fn snapshot(&mut self, watermark: Timestamp) -> Result<Snapshot, DataflowError> {
        let changes = self.buffers.changes();
        self.gauge();
        Ok(Snapshot {
            changes: changes
                .into_iter()
                .map(|(k, v)| (self.store.full_key(&k), v))
                .collect(),
            meta: Some(watermark_meta(watermark)),
        })
    }

    fn commit(&mut self) -> Result<(), DataflowError> {
        let changes = self.buffers.changes();
        self.gauge();
        if !changes.is_empty() {
            self.store.apply(changes).map_err(DataflowError::State)?;
        }
        self.policy.counters.commits.fetch_add(1, Relaxed);
        Ok(())
    }

    fn forward(&mut self, message: Message) {
        for out in [&mut self.main, &mut self.late, &mut self.dead_letter] {
            out.broadcast_blocking(message.clone());
        }
    }

    fn forward_idle(&mut self) {
        self.main.broadcast_blocking(Message::Idle);
    }
}

impl JoinBody {
    /// Send what was emitted. False when no consumer is left.
    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        self.policy
            .counters
            .events_out
            .fetch_add(out.len() as u64, Relaxed);
        self.main.is_empty() || self.main.send_blocking(out)
    }

    /// The most rows held at once (the join's state size).
    fn gauge(&self) {
        self.policy
            .counters
            .state_rows
            .fetch_max(self.buffers.rows as u64, Relaxed);
    }
}

/// Append the merge of `left` with `right` (`None`: no match) to `out`, keyed `key`, at `ts`.
pub(crate) fn emit(
    out: &mut Batch,
    key: &[u8],
    ts: Timestamp,
    left: &Row,
    right: Option<&Row>,
    semi: bool,
) {
    let _ = out.push_with(key, ts, |buf| {
        buf.extend_from_slice(b"{\"left\":");
        buf.extend_from_slice(&left.value);
        if !semi {
            buf.extend_from_slice(b",\"right\":");
            match right {
                Some(r) => buf.extend_from_slice(&r.value),
                None => buf.extend_from_slice(b"null"),
            }
        }
        if let Some((start, end)) = left.win {
            // Written in place: no String per pair.
            use std::io::Write;
            write!(buf, ",\"window\":{{\"start\":{start},\"end\":{end}}}")?;
        }
        buf.push(b'}');
        Ok::<(), std::io::Error>(())
    });
}
