//! The body of an operator instance's task (the `processor` and `stateful-processor` worlds):
//! process each batch, apply the error policy to what it rejects, fire timers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use flowlet_types::{Batch, Timestamp};

use crate::edge::Outputs;
use crate::state::{StateHandle, TimeDomain};
use crate::task::slot::PluginSlot;
use crate::task::{Body, Snapshot, watermark_meta};
use crate::{CheckpointId, Clock, DataflowError, Message, Operator, OperatorError};

pub(crate) struct OperatorBody {
    pub slot: PluginSlot<Box<dyn Operator>>,
    /// The instance's keyed state (stateful processors), as the executor uses it.
    pub state: Option<StateHandle>,
    pub main: Outputs,
    /// The named outputs (`outputs:`), in order: route bit `i + 1` is `named[i]`.
    pub named: Vec<Outputs>,
    pub dead_letter: Outputs,
    /// For each upstream producer instance (an envelope's `input`), the manifest input it is.
    pub from: Arc<[u32]>,
    pub clock: Arc<dyn Clock>,
}

impl Body for OperatorBody {
    fn batch(&mut self, batch: Batch, input: usize, _: Timestamp) -> Result<bool, DataflowError> {
        let from = self.from.get(input).copied().unwrap_or(0);
        self.handle(batch, from)
    }

    fn restore_watermark(&mut self, w: Timestamp) {
        if let Some(s) = &self.state {
            s.lock().expect("state lock").watermark = w;
        }
    }

    fn watermark(&mut self, w: Timestamp) -> Result<(), DataflowError> {
        self.restore_watermark(w);
        self.fire(TimeDomain::EventTime, w)
    }

    fn tick(&mut self) -> Result<(), DataflowError> {
        self.fire(TimeDomain::ProcessingTime, self.clock.now())
    }

    fn snapshot(&mut self, watermark: Timestamp) -> Result<Snapshot, DataflowError> {
        let changes = match &self.state {
            Some(s) => s.lock().expect("state lock").take_changes()?,
            None => Vec::new(),
        };
        Ok(Snapshot {
            changes,
            meta: Some(watermark_meta(watermark)),
        })
    }

    fn swap_due(&mut self, barrier: Option<CheckpointId>) {
        self.slot.swap_due(barrier);
    }

    fn commit(&mut self) -> Result<(), DataflowError> {
        if let Some(s) = &self.state {
            s.lock().expect("state lock").commit()?;
        }
        Ok(())
    }

    fn forward(&mut self, message: Message) {
        self.main.broadcast_blocking(message.clone());
        for port in &mut self.named {
            port.broadcast_blocking(message.clone());
        }
        self.dead_letter.broadcast_blocking(message);
    }

    fn forward_idle(&mut self) {
        self.main.broadcast_blocking(Message::Idle);
        for port in &mut self.named {
            port.broadcast_blocking(Message::Idle);
        }
    }
}

impl OperatorBody {
    /// Run `f` on the keyed state, if the instance has any.
    fn with_state(&self, f: impl FnOnce(&mut crate::state::KeyedState)) {
        if let Some(s) = &self.state {
            f(&mut s.lock().expect("state lock"));
        }
    }

    /// Fire the timers of `domain` due at `time`.
    fn fire(&mut self, domain: TimeDomain, time: Timestamp) -> Result<(), DataflowError> {
        let Some(state) = self.state.clone() else {
            return Ok(());
        };
        loop {
            let guarded = self.slot.swaps.on_probation();
            let due = {
                let mut st = state.lock().expect("state lock");
                if guarded {
                    st.begin_journal();
                }
                st.due_timers(domain, time)
            };
            if due.is_empty() {
                if guarded {
                    state.lock().expect("state lock").end_journal();
                }
                return Ok(());
            }
            // A timer has no input event to skip or dead-letter: a failure stops the operator
            // (unless a plugin on probation failed: then the previous one handles the timers).
            let what = || format!("timers {:?}", due.iter().map(|t| t.at).collect::<Vec<_>>());
            let out = match self.slot.instance.on_timer(&due) {
                Err(error) if guarded => {
                    self.roll_back(&error)?;
                    continue;
                }
                Ok(out) if guarded => {
                    state.lock().expect("state lock").end_journal();
                    out
                }
                r => r.map_err(|error| self.slot.policy.fatal(error, what()))?,
            };
            self.check(&out)
                .map_err(|error| self.slot.policy.fatal(error, what()))?;
            let c = &self.slot.policy.counters;
            c.events_out.fetch_add(out.events.len() as u64, Relaxed);
            self.send(out);
        }
    }

    /// The plugin on probation failed (or another instance's did): undo what the failed call
    /// changed and bring the previous version back.
    fn roll_back(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        self.with_state(|s| s.undo());
        self.slot.roll_back(why)?;
        Ok(())
    }

    /// Whether an output's events and routes are well formed.
    fn check(&self, out: &flowlet_types::Output) -> Result<(), OperatorError> {
        out.events
            .validate()
            .map_err(|e| OperatorError::Malformed(e.to_string()))?;
        match out.route_error(self.named.len()) {
            Some(e) => Err(OperatorError::Malformed(e)),
            None => Ok(()),
        }
    }

    /// Send an output's events to the outputs they are routed to. Returns false when no
    /// consumer is left.
    fn send(&mut self, out: flowlet_types::Output) -> bool {
        if out.events.is_empty() {
            return true;
        }
        if out.routes.is_empty() {
            return self.main.is_empty() || self.main.send_blocking(out.events);
        }
        let mut alive = true;
        for (port, events) in out.split(self.named.len() + 1).into_iter().enumerate() {
            let to = match port {
                0 => &mut self.main,
                i => &mut self.named[i - 1],
            };
            if !events.is_empty() && !to.is_empty() {
                alive &= to.send_blocking(events);
            }
        }
        alive
    }

    /// Run the instance on `batch` (from input `from`) and check what it returns.
    fn call(&mut self, batch: &Batch, from: u32) -> Result<flowlet_types::Output, OperatorError> {
        let out = self.slot.instance.process(batch, from)?;
        self.check(&out)?;
        if let Some(r) = out
            .rejected
            .iter()
            .find(|r| r.event as usize >= batch.len())
        {
            return Err(OperatorError::Malformed(format!(
                "it rejected event {} of a batch of {}",
                r.event,
                batch.len()
            )));
        }
        Ok(out)
    }

    /// A plugin on probation runs with its state changes journaled; a failure brings the
    /// previous version back (which then handles the same batch). `None`: not on probation, or
    /// rolled back.
    fn on_probation(
        &mut self,
        batch: &Batch,
        from: u32,
    ) -> Result<Option<flowlet_types::Output>, DataflowError> {
        if let Some(why) = self.slot.swaps.rolled_back_elsewhere() {
            self.roll_back(&why)?;
        }
        if !self.slot.swaps.on_probation() {
            return Ok(None);
        }
        self.with_state(|s| s.begin_journal());
        match self.call(batch, from) {
            Ok(out) => {
                self.with_state(|s| s.end_journal());
                self.slot.swaps.passed();
                Ok(Some(out))
            }
            Err(error) => {
                self.roll_back(&error)?;
                Ok(None)
            }
        }
    }

    /// Handle one input batch. Returns false when no consumer is left.
    fn handle(&mut self, batch: Batch, from: u32) -> Result<bool, DataflowError> {
        let started = Instant::now();
        let counters = self.slot.policy.counters.clone();
        let mut dead = Batch::new();
        let result = match self.on_probation(&batch, from)? {
            Some(out) => Ok(out),
            None => self.call(&batch, from),
        };
        let output = match result {
            Ok(mut out) => {
                for r in std::mem::take(&mut out.rejected) {
                    counters.rejected.fetch_add(1, Relaxed);
                    let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                    let event = batch.get(r.event as usize);
                    self.slot.policy.bad_event(&event, error, &mut dead)?;
                }
                out
            }
            Err(error) => self.isolate(&batch, from, error, &mut dead)?,
        };
        if let Some(s) = &self.state {
            let e = s.lock().expect("state lock").error.take();
            if let Some(e) = e {
                return Err(e.into());
            }
        }
        // Counted once handled, so that a reader of live counters knows the batch was seen.
        counters.events_in.fetch_add(batch.len() as u64, Relaxed);
        counters.batches.fetch_add(1, Relaxed);
        counters.batch_latency.record(started.elapsed());
        counters
            .events_out
            .fetch_add(output.events.len() as u64, Relaxed);
        let mut alive = self.send(output);
        if !dead.is_empty() {
            alive &= self.dead_letter.send_blocking(dead);
        }
        Ok(alive)
    }

    /// The batch failed as a whole: find the events that cause it by running them one at a
    /// time (on a fresh instance after each trap), and apply the policy to those only.
    fn isolate(
        &mut self,
        batch: &Batch,
        from: u32,
        error: OperatorError,
        dead: &mut Batch,
    ) -> Result<flowlet_types::Output, DataflowError> {
        if matches!(error, OperatorError::Trap(_)) {
            self.slot.restart(&error)?;
        }
        let mut output = flowlet_types::Output::default();
        if batch.len() == 1 {
            self.slot.policy.bad_event(&batch.get(0), error, dead)?;
            return Ok(output);
        }
        let mut single = Batch::new();
        for event in batch.iter() {
            single.clear();
            single.push_event(&event);
            match self.call(&single, from) {
                Ok(out) => match out.rejected.first() {
                    Some(r) => {
                        self.slot.policy.counters.rejected.fetch_add(1, Relaxed);
                        let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                        self.slot.policy.bad_event(&event, error, dead)?;
                    }
                    None => output.append_events(&out),
                },
                Err(error) => {
                    if matches!(error, OperatorError::Trap(_)) {
                        self.slot.restart(&error)?;
                    }
                    self.slot.policy.bad_event(&event, error, dead)?;
                }
            }
        }
        Ok(output)
    }
}
