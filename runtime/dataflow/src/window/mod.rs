//! Window aggregates: assign events to windows, keep one accumulator per (key, window), fire
//! windows when time passes their end, re-fire them for late events within the allowed
//! lateness, and send events later than that to the `late` output.
//!
//! The accumulators live in memory (one hash map per window, so that firing a tumbling window
//! drains one map) and are written to the operator's store at commit points; memory is bounded
//! by the windows alive, not by the input. One `add` call per batch carries every event and
//! the accumulators it touches. Which windows an event belongs to is an [`assign::Assigner`],
//! one file per kind; nothing here knows a kind by name.

pub(crate) mod assign;
mod cumulative;
mod fold;
mod session;
mod sliding;
mod store;
mod tumbling;

/// The window kinds: one line each.
const KINDS: &[assign::WindowKind] = &[
    tumbling::KIND,
    sliding::KIND,
    session::KIND,
    cumulative::KIND,
];

/// The window kinds, for the manifest's catalog.
pub fn kinds() -> Vec<flowlet_manifest::Kind> {
    KINDS.iter().map(|k| k.kind.clone()).collect()
}

/// A window of event time without lateness (benchmarks build windows without a manifest).
fn event_window(kind: &'static str, spec: Arc<dyn flowlet_manifest::Spec>) -> Window {
    Window {
        kind: flowlet_manifest::Component { kind, spec },
        allowed_lateness: Duration::ZERO,
        time: TimeDomain::Event,
    }
}

/// Tumbling windows of `size`.
pub fn tumbling(size: Duration) -> Window {
    let size = flowlet_manifest::fields::WindowTime(size);
    event_window("tumbling", Arc::new(tumbling::Tumbling { size }))
}

/// Sliding windows of `size` every `slide`.
pub fn sliding(size: Duration, slide: Duration) -> Window {
    use flowlet_manifest::fields::WindowTime;
    let spec = sliding::Sliding {
        size: WindowTime(size),
        slide: WindowTime(slide),
    };
    event_window("sliding", Arc::new(spec))
}

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use flowlet_manifest::{TimeDomain, Window};
use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::checkpoint::TaskCheckpoints;
use crate::edge::Outputs;
use crate::policy::Policy;
use crate::state::Store;
use crate::swap::InstanceSwaps;
use crate::task::slot::PluginSlot;
use crate::task::{Body, Snapshot, Task, watermark_meta};
use crate::{
    Aggregator, CheckpointId, Clock, DataflowError, Envelope, FiredWindows, InstanceContext,
    Message, OperatorError, OperatorFactory,
};
use assign::Win;
use assign::{Assigner, ms};
use store::Windows;

/// Windows fired per `finish` call.
const FINISH_CHUNK: usize = 1024;

/// What a window-aggregate instance's task is made of.
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

impl WindowTask {
    pub fn run(self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let mut slot = PluginSlot {
            instance: self.agg,
            factory: self.factory,
            ctx: InstanceContext::default(),
            swaps: self.swaps,
            policy: self.policy,
        };
        let empty = slot
            .instance
            .create_accumulator()
            .map_err(|e| slot.policy.fatal(e, "create-accumulator"))?;
        let mut assigner = assign::assigner(&self.spec.kind);
        let windows = Windows::load(&self.store, &self.groups, &mut *assigner, &slot.policy.name)?;
        let task = Task {
            ckpt: self.ckpt,
            guarantee: self.guarantee,
            inputs: self.inputs,
            commit_interval: self.commit_interval,
            counters: slot.policy.counters.clone(),
        };
        let mut body = WindowBody {
            windows,
            assigner,
            core: Core {
                slot,
                empty,
                keyed: self.keyed,
                processing: self.spec.time == TimeDomain::Processing,
                lateness: ms(self.spec.allowed_lateness),
                allowed_lateness: self.spec.allowed_lateness,
                main: self.main,
                late: self.late,
                dead_letter: self.dead_letter,
                store: self.store,
                clock: self.clock,
            },
        };
        task.run(&mut body, rx)
    }
}

/// A window-aggregate instance's task body.
struct WindowBody {
    windows: Windows,
    assigner: Box<dyn Assigner>,
    core: Core,
}

/// Everything but the windows and the assigner (so that both can be borrowed beside it).
struct Core {
    slot: PluginSlot<Box<dyn Aggregator>>,
    /// A new accumulator (what a key's window starts from).
    empty: Vec<u8>,
    keyed: bool,
    processing: bool,
    lateness: Timestamp,
    allowed_lateness: Duration,
    main: Outputs,
    late: Outputs,
    dead_letter: Outputs,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl Body for WindowBody {
    fn batch(
        &mut self,
        batch: Batch,
        _: usize,
        watermark: Timestamp,
    ) -> Result<bool, DataflowError> {
        let now = if self.core.processing {
            self.core.clock.now()
        } else {
            watermark
        };
        self.core
            .handle(&mut self.windows, &mut *self.assigner, batch, now)
    }

    fn restore_watermark(&mut self, w: Timestamp) {
        self.windows.fired_upto = Some(w);
    }

    fn watermark(&mut self, w: Timestamp) -> Result<(), DataflowError> {
        // The end of every input (watermark MAX) fires processing-time windows too.
        if !self.core.processing || w == Timestamp::MAX {
            self.core
                .advance(&mut self.windows, &mut *self.assigner, w)?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), DataflowError> {
        if self.core.processing {
            let now = self.core.clock.now();
            self.core
                .advance(&mut self.windows, &mut *self.assigner, now)?;
        }
        Ok(())
    }

    fn snapshot(&mut self, watermark: Timestamp) -> Result<Snapshot, DataflowError> {
        let store = &self.core.store;
        let changes = self.windows.changes();
        Ok(Snapshot {
            changes: changes
                .into_iter()
                .map(|(k, v)| (store.full_key(&k), v))
                .collect(),
            meta: Some(watermark_meta(watermark)),
        })
    }

    fn swap_due(&mut self, barrier: Option<CheckpointId>) {
        self.core.slot.swap_due(barrier);
    }

    fn commit(&mut self) -> Result<(), DataflowError> {
        let started = Instant::now();
        let changes = self.windows.changes();
        if !changes.is_empty() {
            self.core
                .store
                .apply(changes)
                .map_err(DataflowError::State)?;
        }
        let c = &self.core.slot.policy.counters;
        c.commits.fetch_add(1, Relaxed);
        c.commit_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        Ok(())
    }

    fn forward(&mut self, message: Message) {
        let c = &mut self.core;
        for out in [&mut c.main, &mut c.late, &mut c.dead_letter] {
            out.broadcast_blocking(message.clone());
        }
    }

    fn forward_idle(&mut self) {
        self.core.main.broadcast_blocking(Message::Idle);
    }
}

impl Core {
    /// The plugin on probation failed (or another instance's did): the previous version comes
    /// back. Nothing to undo: a failed `add` or `finish` changed no window.
    fn roll_back(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        self.slot.roll_back(why)?;
        Ok(())
    }

    /// Time reached `now`: fire the windows that end at or before it, then drop the windows
    /// whose allowed lateness has passed.
    fn advance(
        &mut self,
        w: &mut Windows,
        assigner: &mut dyn Assigner,
        now: Timestamp,
    ) -> Result<(), DataflowError> {
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
        let expired: Vec<Win> = w
            .by_window
            .keys()
            .take_while(|win| win.end.saturating_add(self.lateness) <= now)
            .copied()
            .collect();
        for win in expired {
            w.forget(win);
            if let Some(map) = w.by_window.remove(&win) {
                if assigner.similar_windows() {
                    // The next window to start holds about as many keys.
                    w.size_hint = (map.len(), map.key_bytes());
                }
                for key in map.keys() {
                    assigner.expired(key, win);
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
                    slot.fire();
                }
            }
            self.finish(fired)?;
        }
        Ok(())
    }

    /// Fire every key of window `win` that has not fired as this window yet.
    fn fire_window(&mut self, w: &mut Windows, win: Win) -> Result<(), DataflowError> {
        let Some(map) = w.by_window.get_mut(&win) else {
            return Ok(());
        };
        let mut fired = FiredWindows::default();
        for (key, slot) in map.iter_mut().filter(|(_, s)| !s.fired) {
            fired.push(win.start, win.end, key, &slot.acc, slot.firing);
            slot.fire();
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
        let out = if self.slot.swaps.on_probation() {
            match self.slot.instance.finish(fired.clone()) {
                Err(error) => {
                    self.roll_back(&error)?;
                    self.slot.instance.finish(fired)
                }
                ok => ok,
            }
        } else {
            self.slot.instance.finish(fired)
        };
        let policy = &self.slot.policy;
        let out = out.map_err(|error| policy.fatal(error, what))?;
        out.validate()
            .map_err(|e| policy.fatal(OperatorError::Malformed(e.to_string()), "finish"))?;
        let c = &policy.counters;
        c.windows_fired.fetch_add(n, Relaxed);
        c.events_out.fetch_add(out.len() as u64, Relaxed);
        if !out.is_empty() && !self.main.is_empty() {
            self.main.send_blocking(out);
        }
        Ok(())
    }
}
