//! One batch into a window aggregate: place each event in its windows, fold the batch into the
//! accumulators with one `add` call, write them back, re-fire windows that had fired already.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use hashbrown::HashMap;

use flowlet_types::{Batch, Timestamp};

use super::Core;
use super::assign::Win;
use super::assign::{Absorbed, Assigner};
use super::store::{Slot, Windows};
use crate::keymap::KeyMap;
use crate::{Accumulators, Added, DataflowError, OperatorError};

/// Where the events of a batch went.
#[derive(Default)]
struct Placed {
    /// (event, window) pairs: an event in several windows appears once per window.
    pairs: Vec<(u32, Win)>,
    late: Batch,
    dead: Batch,
    /// Events already dead-lettered (not rejected twice).
    bad: BTreeSet<u32>,
}

/// The (window, key) slots a batch touches.
struct Slots<'b> {
    order: Vec<(Win, &'b [u8])>,
    /// The slot of each pair.
    of_pair: Vec<u32>,
    /// Where each slot already is in its window (one probe per slot and batch).
    found: Vec<Option<u32>>,
}

/// The accumulators after `add`: packed as the aggregate returned them, or, after a failed
/// batch was retried event by event, those that were updated.
enum Updated {
    Packed(Accumulators),
    Isolated(Vec<Option<Vec<u8>>>),
}

impl Core {
    /// Handle one batch at time `now` (the watermark, or the clock for processing time).
    /// Returns false when no consumer is left.
    pub(super) fn handle(
        &mut self,
        w: &mut Windows,
        assigner: &mut dyn Assigner,
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
        let mut placed = self.place(w, assigner, &batch, now)?;
        let slots = slots(w, &batch, &placed.pairs);
        let updated = self.fold(w, &batch, &mut placed, &slots)?;
        let refire = write_back(w, &slots, &updated, now);
        let c = &self.slot.policy.counters;
        // Counted once handled, so that a reader of live counters knows the batch was seen.
        c.events_in.fetch_add(batch.len() as u64, Relaxed);
        c.batches.fetch_add(1, Relaxed);
        c.batch_latency.record(started.elapsed());
        if !self.send_side_outputs(placed) {
            return Ok(false);
        }
        self.fire(w, refire)?;
        if self.processing {
            self.advance(w, assigner, now)?;
        }
        Ok(true)
    }

    /// Assign each event to its windows; events too late for every window go to `late`, events
    /// whose time is out of range meet the policy. Sessions merged by the batch are folded.
    fn place(
        &mut self,
        w: &mut Windows,
        assigner: &mut dyn Assigner,
        batch: &Batch,
        now: Timestamp,
    ) -> Result<Placed, DataflowError> {
        let mut p = Placed::default();
        let mut absorbed: Vec<Absorbed> = Vec::new();
        let mut wins = Vec::new();
        for event in batch.iter() {
            let ts = if self.processing {
                now
            } else {
                event.timestamp()
            };
            if !flowlet_types::event_time_in_range(ts) {
                // Set by an upstream operator (sources refuse such times): no window can hold
                // it without overflowing.
                self.slot.policy.counters.rejected.fetch_add(1, Relaxed);
                p.bad.insert(event.index() as u32);
                let error = OperatorError::Failed(format!(
                    "event time {ts} is out of range (event times lie within about 146 million years of 1970)"
                ));
                self.slot.policy.bad_event(&event, error, &mut p.dead)?;
                continue;
            }
            let key = event.key().unwrap_or_default();
            wins.clear();
            if assigner.assign(key, ts, now, self.lateness, &mut wins, &mut absorbed) {
                p.pairs
                    .extend(wins.iter().map(|win| (event.index() as u32, *win)));
            } else {
                p.late.push_event(&event);
            }
        }
        if assigner.merges() {
            // Later events of the batch may have merged an event's window further.
            for (i, win) in &mut p.pairs {
                *win = assigner.settle(batch.get(*i as usize).key().unwrap_or_default(), *win);
            }
            self.merge_absorbed(w, assigner, absorbed)?;
        }
        Ok(p)
    }

    /// Fold the accumulators of windows that were merged into the windows they merged into.
    fn merge_absorbed(
        &mut self,
        w: &mut Windows,
        assigner: &dyn Assigner,
        absorbed: Vec<Absorbed>,
    ) -> Result<(), DataflowError> {
        for (key, old) in absorbed {
            let Some(slot) = w.remove(&key, old) else {
                continue; // a window of this batch that had no contents yet
            };
            let target = assigner.settle(&key, old);
            let acc = match w.slot_mut(&key, target) {
                Some(t) => self
                    .slot
                    .instance
                    .merge(&t.acc, &slot.acc)
                    .map_err(|e| self.slot.policy.fatal(e, "merging two sessions"))?,
                None => slot.acc,
            };
            let map = w.by_window.entry(target).or_default();
            // The merged window is a new window: it has not fired, whatever its parts did.
            let mut merged = Slot::new(acc);
            merged.firing = map.get(&key).map_or(0, |t| t.firing).max(slot.firing);
            map.insert(&key, merged);
        }
        Ok(())
    }

    /// The accumulators of `slots` as they are now.
    fn current(&self, w: &Windows, slots: &Slots<'_>) -> Accumulators {
        let mut accs = Accumulators::default();
        for ((win, _), at) in slots.order.iter().zip(&slots.found) {
            let slot = at.and_then(|i| w.by_window.get(win).and_then(|m| m.at(i)));
            accs.push(slot.map_or(&self.empty[..], |s| &s.acc));
        }
        accs
    }

    /// Fold the batch into its accumulators (one `add`); the events the aggregate rejects meet
    /// the policy. A failed batch is retried event by event.
    fn fold(
        &mut self,
        w: &Windows,
        batch: &Batch,
        p: &mut Placed,
        slots: &Slots<'_>,
    ) -> Result<Updated, DataflowError> {
        if p.pairs.is_empty() {
            return Ok(Updated::Isolated(Vec::new()));
        }
        // The events as the aggregate sees them: the batch itself when each event is in one
        // window, else one copy per window.
        let identity = p.pairs.len() == batch.len()
            && p.pairs
                .iter()
                .enumerate()
                .all(|(n, (i, _))| n == *i as usize);
        let copies;
        let input = if identity {
            batch
        } else {
            let mut b = Batch::with_capacity(p.pairs.len(), batch.values.len());
            for (i, _) in &p.pairs {
                b.push_event(&batch.get(*i as usize));
            }
            copies = b;
            &copies
        };
        if let Some(why) = self.slot.swaps.rolled_back_elsewhere() {
            self.roll_back(&why)?;
        }
        let result = match self.add(self.current(w, slots), input, &slots.of_pair) {
            // A plugin on probation failed: the previous version folds the batch.
            Err(error) if self.slot.swaps.on_probation() => {
                self.roll_back(&error)?;
                self.add(self.current(w, slots), input, &slots.of_pair)
            }
            Ok(added) => {
                self.slot.swaps.passed();
                Ok(added)
            }
            r => r,
        };
        match result {
            Ok(added) => {
                for r in &added.rejected {
                    let event = p.pairs[r.event as usize].0;
                    if p.bad.insert(event) {
                        self.slot.policy.counters.rejected.fetch_add(1, Relaxed);
                        let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                        self.slot.policy.bad_event(
                            &batch.get(event as usize),
                            error,
                            &mut p.dead,
                        )?;
                    }
                }
                Ok(Updated::Packed(added.accumulators))
            }
            Err(error) => {
                // `add` failed as a whole: nothing was folded, start again from the state.
                let accs = self.current(w, slots);
                let accs = (0..accs.len())
                    .map(|i| accs.get(i).unwrap_or_default().to_vec())
                    .collect();
                let isolated =
                    self.isolate(batch, &p.pairs, &slots.of_pair, accs, error, &mut p.dead)?;
                Ok(Updated::Isolated(isolated))
            }
        }
    }

    /// One `add` call, with what it returns checked.
    fn add(
        &mut self,
        accs: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<Added, OperatorError> {
        let n = accs.len();
        let added = self.slot.instance.add(accs, input, slots)?;
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
            self.slot.restart(&error)?;
        }
        let mut touched = vec![false; accs.len()];
        let mut p = 0;
        while p < pairs.len() {
            // All the windows of one event together.
            let event = pairs[p].0;
            let q = p + pairs[p..].iter().take_while(|(e, _)| *e == event).count();
            let mut single = Batch::new();
            let mut sub = Accumulators::default();
            for s in &slots[p..q] {
                single.push_event(&batch.get(event as usize));
                sub.push(&accs[*s as usize]);
            }
            let local: Vec<u32> = (0..(q - p) as u32).collect();
            match self.add(sub, &single, &local) {
                Ok(added) if added.rejected.is_empty() => {
                    for (n, s) in slots[p..q].iter().enumerate() {
                        accs[*s as usize] = added.accumulators.get(n).unwrap_or_default().to_vec();
                        touched[*s as usize] = true;
                    }
                }
                Ok(added) => {
                    self.slot.policy.counters.rejected.fetch_add(1, Relaxed);
                    let reason = &added.rejected[0].reason;
                    let error = OperatorError::Failed(format!("rejected: {reason}"));
                    self.slot
                        .policy
                        .bad_event(&batch.get(event as usize), error, dead)?;
                }
                Err(error) => {
                    if matches!(error, OperatorError::Trap(_)) {
                        self.slot.restart(&error)?;
                    }
                    self.slot
                        .policy
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

    /// Send the late events and dead letters of a batch. False when no consumer is left.
    fn send_side_outputs(&mut self, p: Placed) -> bool {
        if !p.late.is_empty() {
            let name = &self.slot.policy.name;
            self.slot
                .policy
                .counters
                .late
                .fetch_add(p.late.len() as u64, Relaxed);
            if self.late.is_empty() {
                tracing::warn!(
                    operator = %name,
                    "{} event(s) arrived after their windows closed (allowed lateness {}) and are dropped; read `{name}.late` to keep them",
                    p.late.len(),
                    humantime::format_duration(self.allowed_lateness),
                );
            } else if !self.late.send_blocking(p.late) {
                return false;
            }
        }
        p.dead.is_empty() || self.dead_letter.send_blocking(p.dead)
    }
}

/// One slot per (window, key) touched by the batch.
fn slots<'b>(w: &Windows, batch: &'b Batch, pairs: &[(u32, Win)]) -> Slots<'b> {
    let mut slot_of: HashMap<(Win, &'b [u8]), u32> = HashMap::new();
    let mut order: Vec<(Win, &'b [u8])> = Vec::new();
    let mut of_pair = Vec::with_capacity(pairs.len());
    for (i, win) in pairs {
        let key = batch.get(*i as usize).key().unwrap_or_default();
        let n = *slot_of.entry((*win, key)).or_insert_with(|| {
            order.push((*win, key));
            (order.len() - 1) as u32
        });
        of_pair.push(n);
    }
    let found = order
        .iter()
        .map(|(win, key)| w.by_window.get(win).and_then(|m| m.find(key)))
        .collect();
    Slots {
        order,
        of_pair,
        found,
    }
}

/// Write the updated accumulators back; the windows that fired already fire again.
fn write_back(
    w: &mut Windows,
    slots: &Slots<'_>,
    updated: &Updated,
    now: Timestamp,
) -> Vec<(Win, Box<[u8]>)> {
    let mut refire = Vec::new();
    for (n, (win, key)) in slots.order.iter().enumerate() {
        let acc = match updated {
            Updated::Packed(p) => p.get(n),
            Updated::Isolated(v) => v.get(n).and_then(|a| a.as_deref()),
        };
        let Some(acc) = acc else { continue };
        let hint = w.size_hint;
        let map = w
            .by_window
            .entry(*win)
            .or_insert_with(|| KeyMap::with_capacity(hint.0, hint.1));
        match slots.found[n].and_then(|i| map.at_mut(i)) {
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
            refire.push((*win, Box::<[u8]>::from(*key)));
        }
    }
    refire.sort();
    refire.dedup();
    refire
}
