//! Window aggregates: assign events to windows, keep one accumulator per (key, window), fire
//! windows when time passes their end, re-fire them for late events within the allowed
//! lateness, and send events later than that to the `late` output.
//!
//! The accumulators live in memory (one hash map per window, so that firing a tumbling window
//! drains one map) and are written to the operator's store at commit points; memory is bounded
//! by the windows alive, not by the input. One `add` call per batch carries every event and
//! the accumulators it touches.

use std::collections::{BTreeMap, BTreeSet};

// foldhash (hashbrown's default) instead of SipHash: keys here are not attacker-chosen hash
// flooding targets in a way SipHash would fix (a key group is owned by one instance anyway),
// and the per-event lookups dominate the window operator's cost.
use hashbrown::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use flowlet_manifest::{TimeDomain, Window, WindowKind};
use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::checkpoint::{Inbox, TaskCheckpoints};
use crate::edge::Outputs;
use crate::edge::key_group;
use crate::keymap::KeyMap;
use crate::operator::{restored_watermark, watermark_meta};
use crate::policy::Policy;
use crate::state::{Store, ns, ts_bytes, ts_from};
use crate::swap::{Incoming, InstanceSwaps};
use crate::time::{Change, Watermarks};
use crate::{
    Accumulators, Aggregator, Clock, DataflowError, Envelope, FiredWindows, Instance,
    InstanceContext, Message, OperatorError, OperatorFactory,
};

/// A window: `[start, end)`. Ordered by end first, so that firing and purging walk a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Win {
    end: Timestamp,
    start: Timestamp,
}

#[derive(Debug, Clone)]
struct Slot {
    acc: Vec<u8>,
    /// How many times the key's window fired (for a merged session: the most any of the
    /// sessions it absorbed fired), i.e. the `firing` index of its next result.
    firing: u32,
    /// Whether this window fired for this key. A session that absorbed a fired session has a
    /// new end and has not fired as such: it fires when time passes that end, even though its
    /// `firing` count is above zero.
    fired: bool,
    dirty: bool,
}

impl Slot {
    fn new(acc: Vec<u8>) -> Self {
        Self {
            acc,
            firing: 0,
            fired: false,
            dirty: true,
        }
    }

    /// `firing` as stored: the top bit marks a slot that fired before as another window (a
    /// merged session) but not as this one. Records written before that bit existed never
    /// have it, and for them `fired` is `firing > 0` as it was.
    fn stored_firing(&self) -> u32 {
        if self.firing > 0 && !self.fired {
            self.firing | UNFIRED_MERGE
        } else {
            self.firing
        }
    }

    fn from_stored(acc: Vec<u8>, stored: u32) -> Self {
        let firing = stored & !UNFIRED_MERGE;
        Self {
            acc,
            firing,
            fired: firing > 0 && stored & UNFIRED_MERGE == 0,
            dirty: false,
        }
    }
}

/// See [`Slot::stored_firing`].
const UNFIRED_MERGE: u32 = 1 << 31;

/// The accumulators after `add`: packed as the aggregate returned them, or, after a failed
/// batch was retried event by event, those that were updated.
enum Updated {
    Packed(Accumulators),
    Isolated(Vec<Option<Vec<u8>>>),
}

/// Windows fired per `finish` call.
const FINISH_CHUNK: usize = 1024;

pub(crate) struct WindowTask {
    /// Whether the operator has a `key-by` (else every event is in the same window).
    pub keyed: bool,
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: flowlet_manifest::Guarantee,
    pub policy: Policy,
    pub factory: Arc<dyn OperatorFactory>,
    pub agg: Box<dyn Aggregator>,
    pub spec: Window,
    pub inputs: usize,
    pub main: Outputs,
    pub late: Outputs,
    pub dead_letter: Outputs,
    pub store: Arc<dyn Store>,
    pub groups: Range<u32>,
    pub clock: Arc<dyn Clock>,
    pub commit_interval: Duration,
    pub swaps: InstanceSwaps,
}

/// The live windows of one instance.
#[derive(Default)]
struct Windows {
    by_window: BTreeMap<Win, KeyMap<Slot>>,
    /// Session windows: each key's sessions, start → end.
    sessions: HashMap<Box<[u8]>, BTreeMap<Timestamp, Timestamp>>,
    /// The key groups each window has contents stored for.
    stored: HashMap<Win, BTreeSet<u16>>,
    /// Stored entries to delete at the next commit.
    deletes: Vec<Vec<u8>>,
    /// Key groups of a window that a key left (merged sessions): rewritten at the next commit.
    left: HashMap<Win, BTreeSet<u16>>,
    /// Windows at or below this end have fired on time.
    fired_upto: Option<Timestamp>,
    /// Keys (and bytes per key) of the last window dropped: the size a new window's map starts
    /// with, so that it does not grow by rehashing from empty each time.
    size_hint: (usize, usize),
}

/// Window contents are stored per (key group, window): `[key group][namespace][start][end]`
/// → the records `[key length u32][key][firing u32][accumulator length u32][accumulator]` of
/// the keys of that group. One entry per key group and window instead of one per key: a window
/// of a million keys is 128 writes, and a key group's contents still move as a unit (Flink's
/// heap state backend snapshots key groups the same way).
fn storage_key(group: u16, w: Win) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.extend_from_slice(&group.to_be_bytes());
    k.push(ns::WINDOW);
    k.extend_from_slice(&ts_bytes(w.start));
    k.extend_from_slice(&ts_bytes(w.end));
    k
}

fn put_record(out: &mut Vec<u8>, key: &[u8], slot: &Slot) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&slot.stored_firing().to_be_bytes());
    out.extend_from_slice(&(slot.acc.len() as u32).to_be_bytes());
    out.extend_from_slice(&slot.acc);
}

fn take<'a>(v: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = (v.get(..n)?, v.get(n..)?);
    *v = b;
    Some(a)
}

/// A stored record: key, times fired, accumulator.
type Record<'a> = (&'a [u8], u32, &'a [u8]);

/// The records of a stored entry.
fn records(mut v: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let klen = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?) as usize;
        let key = take(&mut v, klen)?;
        let firing = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?);
        let alen = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?) as usize;
        let acc = take(&mut v, alen)?;
        out.push((key, firing, acc));
    }
    Some(out)
}

fn ms(d: Duration) -> Timestamp {
    d.as_millis().min(i64::MAX as u128) as Timestamp
}

impl Windows {
    fn slot_mut(&mut self, key: &[u8], w: Win) -> Option<&mut Slot> {
        self.by_window.get_mut(&w).and_then(|m| m.get_mut(key))
    }

    /// Remove a key's contents of a window (its stored group is rewritten at the next commit).
    fn remove(&mut self, key: &[u8], w: Win) -> Option<Slot> {
        let map = self.by_window.get_mut(&w)?;
        let slot = map.remove(key)?;
        if map.is_empty() {
            self.by_window.remove(&w);
            self.forget(w);
        } else {
            // The key's group is written again without it at the next commit.
            self.left
                .entry(w)
                .or_default()
                .insert(key_group(key) as u16);
        }
        Some(slot)
    }

    /// Delete a window's stored contents at the next commit.
    fn forget(&mut self, w: Win) {
        self.left.remove(&w);
        if let Some(groups) = self.stored.remove(&w) {
            self.deletes
                .extend(groups.into_iter().map(|g| storage_key(g, w)));
        }
    }
}

impl WindowTask {
    fn lateness(&self) -> Timestamp {
        ms(self.spec.allowed_lateness)
    }

    /// Load this instance's windows (its key groups) from the store.
    fn load(&self) -> Result<Windows, DataflowError> {
        let mut w = Windows::default();
        let start = (self.groups.start as u16).to_be_bytes();
        let end = (self.groups.end as u16).to_be_bytes();
        let corrupt = |message: &str| {
            DataflowError::State(crate::state::StateError::Corrupt {
                operator: self.policy.name.clone(),
                message: message.into(),
            })
        };
        for (k, v) in self
            .store
            .range(&start, &end, usize::MAX)
            .map_err(DataflowError::State)?
        {
            if k.len() != 19 || k[2] != ns::WINDOW {
                continue; // not window contents
            }
            let group = u16::from_be_bytes([k[0], k[1]]);
            let win = Win {
                start: ts_from(&k[3..]).ok_or_else(|| corrupt("bad window start"))?,
                end: ts_from(&k[11..]).ok_or_else(|| corrupt("bad window end"))?,
            };
            w.stored.entry(win).or_default().insert(group);
            for (key, firing, acc) in
                records(&v).ok_or_else(|| corrupt("window contents are truncated"))?
            {
                if matches!(self.spec.kind, WindowKind::Session { .. }) {
                    w.sessions
                        .entry(key.into())
                        .or_default()
                        .insert(win.start, win.end);
                }
                let slot = Slot::from_stored(acc.to_vec(), firing);
                w.by_window.entry(win).or_default().insert(key, slot);
            }
        }
        Ok(w)
    }

    pub fn run(mut self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let empty = self
            .agg
            .create_accumulator()
            .map_err(|e| self.policy.fatal(e, "create-accumulator"))?;
        let mut windows = self.load()?;
        let mut marks = Watermarks::new(self.inputs);
        if let Some(w) = self
            .ckpt
            .as_ref()
            .and_then(|c| restored_watermark(c.restored.as_ref()))
        {
            marks.restore(w);
            windows.fired_upto = Some(w);
        }
        let mut inbox = Inbox::new(rx, self.inputs, self.guarantee);
        let mut last_commit = Instant::now();
        let processing = self.spec.time == TimeDomain::Processing;
        let barriers = self.ckpt.is_some();
        while marks.open() > 0 {
            let Some(env) = inbox.next_blocking() else {
                break;
            };
            if !barriers && let Some(incoming) = self.swaps.due(None, &self.factory) {
                self.swap_in(incoming);
            }
            let change = match env.message {
                Message::Batch(batch) => {
                    let change = marks.activity(env.input);
                    let now = if processing {
                        self.clock.now()
                    } else {
                        marks.current()
                    };
                    if !self.handle(&mut windows, &empty, batch, now)? {
                        return Ok(());
                    }
                    change
                }
                Message::Tick => {
                    if processing {
                        self.advance(&mut windows, self.clock.now())?;
                    }
                    Change::Nothing
                }
                Message::Barrier(id) => {
                    if self.ckpt.is_some() {
                        let changes = self.checkpoint_changes(&mut windows);
                        let meta = Some(watermark_meta(marks.durable()));
                        if let Some(c) = &self.ckpt {
                            c.snapshot(id, changes, meta);
                        }
                    }
                    if let Some(incoming) = self.swaps.due(Some(id), &self.factory) {
                        self.swap_in(incoming);
                    }
                    for out in [&mut self.main, &mut self.late, &mut self.dead_letter] {
                        out.broadcast_blocking(Message::Barrier(id));
                    }
                    Change::Nothing
                }
                other => marks.update(env.input, &other),
            };
            match change {
                Change::Watermark(w) => {
                    self.policy.counters.watermark.store(w, Relaxed);
                    if !processing || w == Timestamp::MAX {
                        // The end of every input (watermark MAX) fires processing-time
                        // windows too.
                        self.advance(&mut windows, w)?;
                    }
                    self.main.broadcast_blocking(Message::Watermark(w));
                    self.late.broadcast_blocking(Message::Watermark(w));
                    self.dead_letter.broadcast_blocking(Message::Watermark(w));
                }
                Change::Idle => self.main.broadcast_blocking(Message::Idle),
                Change::Nothing => {}
            }
            if self.ckpt.is_none() && last_commit.elapsed() >= self.commit_interval {
                self.commit(&mut windows)?;
                last_commit = Instant::now();
            }
        }
        if self.ckpt.is_some() {
            let changes = self.checkpoint_changes(&mut windows);
            if let Some(c) = &self.ckpt {
                c.finished(changes, Some(watermark_meta(marks.durable())));
            }
        } else {
            self.commit(&mut windows)?;
        }
        for out in [&mut self.main, &mut self.late, &mut self.dead_letter] {
            out.broadcast_blocking(Message::End);
        }
        Ok(())
    }

    fn commit(&mut self, w: &mut Windows) -> Result<(), DataflowError> {
        let started = Instant::now();
        let changes = self.changes(w);
        if !changes.is_empty() {
            self.store.apply(changes).map_err(DataflowError::State)?;
        }
        let c = &self.policy.counters;
        c.commits.fetch_add(1, Relaxed);
        c.commit_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        Ok(())
    }

    /// [`WindowTask::changes`] with the keys as stored, for a checkpoint.
    fn checkpoint_changes(&mut self, w: &mut Windows) -> Vec<crate::state::Change> {
        let changes = self.changes(w);
        changes
            .into_iter()
            .map(|(k, v)| (self.store.full_key(&k), v))
            .collect()
    }

    /// The stored entries that changed since the last commit or checkpoint.
    fn changes(&mut self, w: &mut Windows) -> Vec<crate::state::Change> {
        let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            w.deletes.drain(..).map(|k| (k, None)).collect();
        let mut left = std::mem::take(&mut w.left);
        for (win, map) in &mut w.by_window {
            let left = left.remove(win).unwrap_or_default();
            if left.is_empty() && !map.values().any(|s| s.dirty) {
                continue;
            }
            // Rewrite the groups of this window that changed, with all their keys.
            let mut groups: BTreeMap<u16, (bool, Vec<u8>)> = BTreeMap::new();
            for (key, slot) in map.iter_mut() {
                let group = key_group(key) as u16;
                let g = groups.entry(group).or_default();
                g.0 |= slot.dirty || left.contains(&group);
                put_record(&mut g.1, key, slot);
                slot.dirty = false;
            }
            let stored = w.stored.entry(*win).or_default();
            // A group whose keys all left the window (merged sessions) is deleted.
            for gone in stored
                .iter()
                .filter(|g| !groups.contains_key(g))
                .copied()
                .collect::<Vec<_>>()
            {
                stored.remove(&gone);
                changes.push((storage_key(gone, *win), None));
            }
            for (group, (dirty, bytes)) in groups {
                if dirty || !stored.contains(&group) {
                    stored.insert(group);
                    changes.push((storage_key(group, *win), Some(bytes)));
                }
            }
        }
        changes
    }

    /// The windows of an event at `ts` (all but session windows).
    fn assign(&self, ts: Timestamp, out: &mut Vec<Win>) {
        out.clear();
        match self.spec.kind {
            WindowKind::Tumbling { size } => {
                let size = ms(size);
                let start = ts.div_euclid(size) * size;
                out.push(Win {
                    start,
                    end: start.saturating_add(size),
                });
            }
            WindowKind::Sliding { size, slide } => {
                let (size, slide) = (ms(size), ms(slide));
                let mut start = ts.div_euclid(slide) * slide;
                while start > ts - size {
                    out.push(Win {
                        start,
                        end: start.saturating_add(size),
                    });
                    start -= slide;
                }
            }
            WindowKind::Session { .. } => unreachable!("sessions are merged, not assigned"),
        }
    }

    /// Put an event of `key` at `ts` into its session, merging the sessions it bridges.
    /// `None` when even the merged session is too late.
    fn sessionize(
        &self,
        w: &mut Windows,
        key: &[u8],
        ts: Timestamp,
        now: Timestamp,
        absorbed: &mut Vec<(Box<[u8]>, Win)>,
    ) -> Option<()> {
        let WindowKind::Session { gap } = self.spec.kind else {
            unreachable!()
        };
        let (mut start, mut end) = (ts, ts.saturating_add(ms(gap)));
        let sessions = w.sessions.entry(key.into()).or_default();
        let overlapping: Vec<(Timestamp, Timestamp)> = sessions
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > start)
            .map(|(s, e)| (*s, *e))
            .collect();
        // Sessions are disjoint and sorted, so the ones overlapping [start, end) are the last
        // ones starting before `end` whose end is after `start`.
        for (s, e) in &overlapping {
            start = start.min(*s);
            end = end.max(*e);
        }
        if end.saturating_add(self.lateness()) <= now {
            if sessions.is_empty() {
                w.sessions.remove(key);
            }
            return None;
        }
        for (s, e) in overlapping {
            if (s, e) != (start, end) {
                sessions.remove(&s);
                absorbed.push((key.into(), Win { start: s, end: e }));
            }
        }
        sessions.insert(start, end);
        Some(())
    }

    /// Handle one batch at time `now` (the watermark, or the clock for processing time).
    fn handle(
        &mut self,
        w: &mut Windows,
        empty: &[u8],
        mut batch: Batch,
        now: Timestamp,
    ) -> Result<bool, DataflowError> {
        let started = Instant::now();
        if !self.keyed && !batch.keys.is_empty() {
            // Without `key-by` there is one window over all events, whatever keys they carry
            // from upstream.
            batch.keys.clear();
            batch.key_ends.iter_mut().for_each(|e| *e = 0);
        }
        let counters = self.policy.counters.clone();
        let processing = self.spec.time == TimeDomain::Processing;
        let session = matches!(self.spec.kind, WindowKind::Session { .. });
        let lateness = self.lateness();
        // (event, window) pairs, and the events too late for every window.
        let mut pairs: Vec<(u32, Win)> = Vec::with_capacity(batch.len());
        let mut late = Batch::new();
        let mut absorbed = Vec::new();
        let mut wins = Vec::new();
        let mut dead = Batch::new();
        let mut bad: BTreeSet<u32> = BTreeSet::new();
        for event in batch.iter() {
            let ts = if processing { now } else { event.timestamp() };
            if !flowlet_types::event_time_in_range(ts) {
                // Set by an upstream operator (sources refuse such times): no window can hold
                // it without overflowing.
                counters.rejected.fetch_add(1, Relaxed);
                bad.insert(event.index() as u32);
                let error = OperatorError::Failed(format!(
                    "event time {ts} is out of range (event times lie within about 146 million years of 1970)"
                ));
                self.policy.bad_event(&event, error, &mut dead)?;
                continue;
            }
            let key = event.key().unwrap_or_default();
            if session {
                match self.sessionize(w, key, ts, now, &mut absorbed) {
                    // The final session is looked up once the batch is placed.
                    Some(()) => pairs.push((event.index() as u32, Win { start: ts, end: ts })),
                    None => late.push_event(&event),
                }
                continue;
            }
            self.assign(ts, &mut wins);
            let before = pairs.len();
            for win in &wins {
                if win.end.saturating_add(lateness) > now {
                    pairs.push((event.index() as u32, *win));
                }
            }
            if pairs.len() == before {
                late.push_event(&event);
            }
        }
        if session {
            // Each event belongs to the final session of its key that contains it.
            for (i, win) in &mut pairs {
                let key = batch.get(*i as usize).key().unwrap_or_default();
                let (s, e) = w.sessions[key]
                    .range(..=win.start)
                    .next_back()
                    .map(|(s, e)| (*s, *e))
                    .expect("the event's session exists");
                *win = Win { start: s, end: e };
            }
            self.merge_absorbed(w, absorbed)?;
        }

        // One slot per (window, key) touched by the batch.
        let mut slot_of: HashMap<(Win, &[u8]), u32> = HashMap::new();
        let mut order: Vec<(Win, &[u8])> = Vec::new();
        let mut slots = Vec::with_capacity(pairs.len());
        for (i, win) in &pairs {
            let key = batch.get(*i as usize).key().unwrap_or_default();
            let n = *slot_of.entry((*win, key)).or_insert_with(|| {
                order.push((*win, key));
                (order.len() - 1) as u32
            });
            slots.push(n);
        }
        // Where each slot already is in its window (one probe per slot and batch).
        let found: Vec<Option<u32>> = order
            .iter()
            .map(|(win, key)| w.by_window.get(win).and_then(|m| m.find(key)))
            .collect();
        let current = |w: &Windows| -> Accumulators {
            let mut accs = Accumulators::default();
            for ((win, _), at) in order.iter().zip(&found) {
                let slot = at.and_then(|i| w.by_window.get(win).and_then(|m| m.at(i)));
                accs.push(slot.map_or(empty, |s| &s.acc));
            }
            accs
        };
        let accs = current(w);
        // The events as the aggregate sees them: the batch itself when each event is in one
        // window, else one copy per window.
        let identity = pairs.len() == batch.len()
            && pairs.iter().enumerate().all(|(n, (i, _))| n == *i as usize);
        let input = if identity {
            None
        } else {
            let mut b = Batch::with_capacity(pairs.len(), batch.values.len());
            for (i, _) in &pairs {
                b.push_event(&batch.get(*i as usize));
            }
            Some(b)
        };
        let input_ref = input.as_ref().unwrap_or(&batch);
        let updated: Updated = if pairs.is_empty() {
            Updated::Isolated(Vec::new())
        } else {
            if let Some(why) = self.swaps.rolled_back_elsewhere() {
                self.roll_back(&why)?;
            }
            let result = match self.add(accs, input_ref, &slots) {
                // A plugin on probation failed: the previous version folds the batch.
                Err(error) if self.swaps.on_probation() => {
                    self.roll_back(&error)?;
                    self.add(current(w), input_ref, &slots)
                }
                Ok(added) => {
                    self.swaps.passed();
                    Ok(added)
                }
                r => r,
            };
            match result {
                Ok(added) => {
                    for r in &added.rejected {
                        let event = pairs[r.event as usize].0;
                        if bad.insert(event) {
                            counters.rejected.fetch_add(1, Relaxed);
                            let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                            self.policy
                                .bad_event(&batch.get(event as usize), error, &mut dead)?;
                        }
                    }
                    Updated::Packed(added.accumulators)
                }
                Err(error) => {
                    // `add` failed as a whole: nothing was folded, start again from the state.
                    let accs = current(w);
                    let accs = (0..accs.len())
                        .map(|i| accs.get(i).unwrap_or_default().to_vec())
                        .collect();
                    Updated::Isolated(self.isolate(&batch, &pairs, &slots, accs, error, &mut dead)?)
                }
            }
        };
        // Write back, and note the windows that fired already and must fire again.
        let mut refire = Vec::new();
        for (n, (win, key)) in order.iter().enumerate() {
            let acc = match &updated {
                Updated::Packed(p) => p.get(n),
                Updated::Isolated(v) => v.get(n).and_then(|a| a.as_deref()),
            };
            let Some(acc) = acc else { continue };
            let hint = w.size_hint;
            let map = w
                .by_window
                .entry(*win)
                .or_insert_with(|| KeyMap::with_capacity(hint.0, hint.1));
            match found[n].and_then(|i| map.at_mut(i)) {
                Some(slot) => {
                    // Reuse the slot's buffer: no allocation for a key already in the window.
                    slot.acc.clear();
                    slot.acc.extend_from_slice(acc);
                    slot.dirty = true;
                }
                None => {
                    map.insert(key, Slot::new(acc.to_vec()));
                }
            }
            if win.end <= now {
                refire.push((*win, key.to_vec()));
            }
        }
        // Counted once handled, so that a reader of live counters knows the batch was seen.
        counters.events_in.fetch_add(batch.len() as u64, Relaxed);
        counters.batches.fetch_add(1, Relaxed);
        counters.batch_latency.record(started.elapsed());
        if !late.is_empty() {
            counters.late.fetch_add(late.len() as u64, Relaxed);
            if self.late.is_empty() {
                tracing::warn!(
                    operator = %self.policy.name,
                    "{} event(s) arrived after their windows closed (allowed lateness {}) and are dropped; read `{}.late` to keep them",
                    late.len(),
                    humantime::format_duration(self.spec.allowed_lateness),
                    self.policy.name,
                );
            } else if !self.late.send_blocking(late) {
                return Ok(false);
            }
        }
        if !dead.is_empty() && !self.dead_letter.send_blocking(dead) {
            return Ok(false);
        }
        refire.sort();
        refire.dedup();
        let fired: Vec<(Win, Box<[u8]>)> = refire
            .into_iter()
            .map(|(win, k)| (win, k.into_boxed_slice()))
            .collect();
        self.fire(w, fired)?;
        if processing {
            self.advance(w, now)?;
        }
        Ok(true)
    }

    /// Fold the accumulators of sessions that were merged into their new sessions.
    fn merge_absorbed(
        &mut self,
        w: &mut Windows,
        absorbed: Vec<(Box<[u8]>, Win)>,
    ) -> Result<(), DataflowError> {
        for (key, old) in absorbed {
            let Some(slot) = w.remove(&key, old) else {
                continue; // a session of this batch that had no contents yet
            };
            let (s, e) = w.sessions[&key]
                .range(..=old.start)
                .next_back()
                .map(|(s, e)| (*s, *e))
                .expect("a merged session lies inside a session");
            let target = Win { start: s, end: e };
            let acc = match w.slot_mut(&key, target) {
                Some(t) => self
                    .agg
                    .merge(&t.acc, &slot.acc)
                    .map_err(|e| self.policy.fatal(e, "merging two sessions"))?,
                None => slot.acc,
            };
            let map = w.by_window.entry(target).or_default();
            // The merged session is a new window: it has not fired, whatever its parts did.
            let mut merged = Slot::new(acc);
            merged.firing = map.get(&key).map_or(0, |t| t.firing).max(slot.firing);
            map.insert(&key, merged);
        }
        Ok(())
    }

    fn add(
        &mut self,
        accs: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<crate::Added, OperatorError> {
        let n = accs.len();
        let added = self.agg.add(accs, input, slots)?;
        if !added.accumulators.is_well_formed() {
            return Err(OperatorError::Malformed(
                "add returned malformed packed accumulators".into(),
            ));
        }
        if added.accumulators.len() != n {
            return Err(OperatorError::Malformed(format!(
                "add returned {} accumulators for {n}",
                added.accumulators.len()
            )));
        }
        if let Some(r) = added
            .rejected
            .iter()
            .find(|r| r.event as usize >= input.len())
        {
            return Err(OperatorError::Malformed(format!(
                "it rejected event {} of a batch of {}",
                r.event,
                input.len()
            )));
        }
        Ok(added)
    }

    /// Take the plugin a swap brings in.
    fn swap_in(&mut self, incoming: Incoming) {
        match incoming.instance {
            Instance::Aggregator(a) => self.agg = a,
            Instance::Processor(_) => unreachable!("a swap keeps the world"),
        }
        self.factory = incoming.factory;
        self.policy.plugin = self.factory.plugin_id();
    }

    /// The plugin on probation failed (or another instance's did): the previous version
    /// comes back. Nothing to undo: a failed `add` or `finish` changed no window.
    fn roll_back(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        let Some(previous) = self.swaps.roll_back(&self.factory, &why.to_string()) else {
            return Ok(());
        };
        self.factory = previous;
        self.policy.plugin = self.factory.plugin_id();
        let made = self
            .factory
            .instantiate(&InstanceContext::default())
            .map_err(|error| DataflowError::Init {
                operator: self.policy.name.clone(),
                plugin: self.policy.plugin.clone(),
                error,
            })?;
        match made {
            Instance::Aggregator(a) => self.agg = a,
            Instance::Processor(_) => unreachable!("the factory made an aggregator before"),
        }
        Ok(())
    }

    fn restart(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        let made = self.policy.replace(why, || {
            self.factory.instantiate(&InstanceContext::default())
        })?;
        match made {
            Instance::Aggregator(a) => self.agg = a,
            Instance::Processor(_) => unreachable!("the factory made an aggregator before"),
        }
        Ok(())
    }

    /// `add` failed for the whole batch: fold the events one at a time (on a fresh instance
    /// after each trap) and apply the policy to the ones that fail.
    fn isolate(
        &mut self,
        batch: &Batch,
        pairs: &[(u32, Win)],
        slots: &[u32],
        mut accs: Vec<Vec<u8>>,
        error: OperatorError,
        dead: &mut Batch,
    ) -> Result<Vec<Option<Vec<u8>>>, DataflowError> {
        if matches!(error, OperatorError::Trap(_)) {
            self.restart(&error)?;
        }
        let mut touched = vec![false; accs.len()];
        let mut p = 0;
        while p < pairs.len() {
            // All the windows of one event together.
            let event = pairs[p].0;
            let mut q = p;
            while q < pairs.len() && pairs[q].0 == event {
                q += 1;
            }
            let mut single = Batch::new();
            let mut mine: Vec<u32> = Vec::new();
            let mut local = Vec::new();
            for slot in &slots[p..q] {
                single.push_event(&batch.get(event as usize));
                local.push(mine.len() as u32);
                mine.push(*slot);
            }
            let mut sub = Accumulators::default();
            for s in &mine {
                sub.push(&accs[*s as usize]);
            }
            let result = self.add(sub, &single, &local);
            match result {
                Ok(added) if added.rejected.is_empty() => {
                    for (n, s) in mine.iter().enumerate() {
                        accs[*s as usize] = added.accumulators.get(n).unwrap_or_default().to_vec();
                        touched[*s as usize] = true;
                    }
                }
                Ok(added) => {
                    self.policy.counters.rejected.fetch_add(1, Relaxed);
                    let reason = &added.rejected[0].reason;
                    let error = OperatorError::Failed(format!("rejected: {reason}"));
                    self.policy
                        .bad_event(&batch.get(event as usize), error, dead)?;
                }
                Err(error) => {
                    if matches!(error, OperatorError::Trap(_)) {
                        self.restart(&error)?;
                    }
                    self.policy
                        .bad_event(&batch.get(event as usize), error, dead)?;
                }
            }
            p = q;
        }
        Ok(accs
            .into_iter()
            .zip(touched)
            .map(|(a, t)| t.then_some(a))
            .collect())
    }

    /// Time reached `now`: fire the windows that end at or before it, then drop the windows
    /// whose allowed lateness has passed.
    fn advance(&mut self, w: &mut Windows, now: Timestamp) -> Result<(), DataflowError> {
        let from = w.fired_upto;
        let due: Vec<Win> = w
            .by_window
            .range(
                ..=Win {
                    end: now,
                    start: Timestamp::MAX,
                },
            )
            .map(|(win, _)| *win)
            .filter(|win| from.is_none_or(|f| win.end > f))
            .collect();
        w.fired_upto = Some(from.map_or(now, |f| f.max(now)));
        for win in due {
            self.fire_window(w, win)?;
        }
        let lateness = self.lateness();
        let expired: Vec<Win> = w
            .by_window
            .keys()
            .take_while(|win| win.end.saturating_add(lateness) <= now)
            .copied()
            .collect();
        for win in expired {
            w.forget(win);
            if let Some(map) = w.by_window.remove(&win) {
                if !matches!(self.spec.kind, WindowKind::Session { .. }) {
                    // Sliding windows overlap: the next one to start holds about as many keys.
                    w.size_hint = (map.len(), map.key_bytes());
                }
                for key in map.keys() {
                    if let Some(s) = w.sessions.get_mut(key) {
                        s.remove(&win.start);
                        if s.is_empty() {
                            w.sessions.remove(key);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Call `finish` for these windows (in chunks) and send what it returns.
    fn fire(&mut self, w: &mut Windows, due: Vec<(Win, Box<[u8]>)>) -> Result<(), DataflowError> {
        for chunk in due.chunks(FINISH_CHUNK) {
            let mut fired = FiredWindows::default();
            for (win, key) in chunk {
                if let Some(slot) = w.slot_mut(key, *win) {
                    fired.push(win.start, win.end, key, &slot.acc, slot.firing);
                    slot.firing = slot.firing.saturating_add(1).min(UNFIRED_MERGE - 1);
                    slot.fired = true;
                    slot.dirty = true;
                }
            }
            self.finish(fired)?;
        }
        Ok(())
    }

    /// Fire every key of window `win` that has not fired yet.
    fn fire_window(&mut self, w: &mut Windows, win: Win) -> Result<(), DataflowError> {
        let Some(map) = w.by_window.get_mut(&win) else {
            return Ok(());
        };
        let mut fired = FiredWindows::default();
        for (key, slot) in map.iter_mut().filter(|(_, s)| !s.fired) {
            fired.push(win.start, win.end, key, &slot.acc, slot.firing);
            slot.firing = slot.firing.saturating_add(1).min(UNFIRED_MERGE - 1);
            slot.fired = true;
            slot.dirty = true;
            if fired.len() == FINISH_CHUNK {
                self.finish(std::mem::take(&mut fired))?;
            }
        }
        if !fired.is_empty() {
            self.finish(fired)?;
        }
        Ok(())
    }

    fn finish(&mut self, fired: FiredWindows) -> Result<(), DataflowError> {
        if fired.is_empty() {
            return Ok(());
        }
        let first = fired.get(0);
        let what = format!(
            "finishing window [{}, {}) of key `{}`",
            first.start,
            first.end,
            String::from_utf8_lossy(first.key)
        );
        let n = fired.len() as u64;
        let out = if self.swaps.on_probation() {
            match self.agg.finish(fired.clone()) {
                Err(error) => {
                    self.roll_back(&error)?;
                    self.agg.finish(fired)
                }
                ok => ok,
            }
        } else {
            self.agg.finish(fired)
        };
        let out = out.map_err(|error| self.policy.fatal(error, what))?;
        out.validate().map_err(|e| {
            self.policy
                .fatal(OperatorError::Malformed(e.to_string()), "finish")
        })?;
        let c = &self.policy.counters;
        c.windows_fired.fetch_add(n, Relaxed);
        c.events_out.fetch_add(out.len() as u64, Relaxed);
        if !out.is_empty() && !self.main.is_empty() {
            self.main.send_blocking(out);
        }
        Ok(())
    }
}
