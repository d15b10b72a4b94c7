//! One operator instance's task: receive, process, apply the error policy, send; fire timers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::checkpoint::{Inbox, TaskCheckpoints};
use crate::edge::Outputs;
use crate::policy::Policy;
use crate::state::{StateHandle, TimeDomain};
use crate::swap::{Incoming, InstanceSwaps};
use crate::time::{Change, Watermarks};
use crate::{
    Clock, DataflowError, Envelope, Instance, InstanceContext, Message, Operator, OperatorError,
    OperatorFactory,
};

pub(crate) struct OperatorTask {
    pub ckpt: Option<TaskCheckpoints>,
    pub guarantee: flowlet_manifest::Guarantee,
    pub policy: Policy,
    pub factory: Arc<dyn OperatorFactory>,
    pub instance: Box<dyn Operator>,
    pub ctx: InstanceContext,
    /// The instance's keyed state (stateful processors), as the executor uses it.
    pub state: Option<StateHandle>,
    /// Number of upstream producer instances (inputs).
    pub inputs: usize,
    pub main: Outputs,
    pub dead_letter: Outputs,
    pub clock: Arc<dyn Clock>,
    pub commit_interval: Duration,
    pub swaps: InstanceSwaps,
}

/// `{"watermark": w}`: what an operator instance saves besides its state.
pub(crate) fn watermark_meta(w: Timestamp) -> serde_json::Value {
    serde_json::json!({ "watermark": w })
}

pub(crate) fn restored_watermark(meta: Option<&serde_json::Value>) -> Option<Timestamp> {
    meta?.get("watermark")?.as_i64()
}

/// Make an instance of the `processor` kinds.
pub(crate) fn new_processor(
    factory: &dyn OperatorFactory,
    ctx: &InstanceContext,
) -> Result<Box<dyn Operator>, OperatorError> {
    match factory.instantiate(ctx)? {
        Instance::Processor(p) => Ok(p),
        Instance::Aggregator(_) => Err(OperatorError::Malformed(
            "the plugin is a window aggregate; give the operator a `window:`".into(),
        )),
    }
}

impl OperatorTask {
    fn state(&self) -> Option<&StateHandle> {
        self.state.as_ref()
    }

    pub fn run(mut self, rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let mut marks = Watermarks::new(self.inputs);
        if let Some(w) = self
            .ckpt
            .as_ref()
            .and_then(|c| restored_watermark(c.restored.as_ref()))
        {
            marks.restore(w);
            if let Some(s) = self.state() {
                s.lock().expect("state lock").watermark = w;
            }
        }
        let mut inbox = Inbox::new(rx, self.inputs, self.guarantee);
        let mut last_commit = Instant::now();
        let barriers = self.ckpt.is_some();
        while marks.open() > 0 {
            let Some(env) = inbox.next_blocking() else {
                break; // every producer is gone: the topology is stopping
            };
            if !barriers && let Some(incoming) = self.swaps.due(None, &self.factory) {
                self.swap_in(incoming);
            }
            let change = match env.message {
                Message::Batch(batch) => {
                    let change = marks.activity(env.input);
                    if !self.handle(batch)? {
                        return Ok(()); // every consumer is gone
                    }
                    change
                }
                Message::Tick => {
                    self.fire(TimeDomain::ProcessingTime, self.clock.now())?;
                    Change::Nothing
                }
                Message::Barrier(id) => {
                    if let Some(c) = &self.ckpt {
                        let changes = self.take_changes()?;
                        c.snapshot(id, changes, Some(watermark_meta(marks.durable())));
                    }
                    // A swap armed for this barrier: the new version handles what follows it.
                    if let Some(incoming) = self.swaps.due(Some(id), &self.factory) {
                        self.swap_in(incoming);
                    }
                    self.main.broadcast_blocking(Message::Barrier(id));
                    self.dead_letter.broadcast_blocking(Message::Barrier(id));
                    Change::Nothing
                }
                other => marks.update(env.input, &other),
            };
            match change {
                Change::Watermark(w) => {
                    if let Some(s) = self.state() {
                        s.lock().expect("state lock").watermark = w;
                    }
                    self.policy.counters.watermark.store(w, Relaxed);
                    self.fire(TimeDomain::EventTime, w)?;
                    self.main.broadcast_blocking(Message::Watermark(w));
                    self.dead_letter.broadcast_blocking(Message::Watermark(w));
                }
                Change::Idle => self.main.broadcast_blocking(Message::Idle),
                Change::Nothing => {}
            }
            if self.ckpt.is_none() && last_commit.elapsed() >= self.commit_interval {
                self.commit()?;
                last_commit = Instant::now();
            }
        }
        match &self.ckpt {
            Some(c) => {
                let changes = self.take_changes()?;
                c.finished(changes, Some(watermark_meta(marks.durable())));
            }
            None => self.commit()?,
        }
        self.main.broadcast_blocking(Message::End);
        self.dead_letter.broadcast_blocking(Message::End);
        Ok(())
    }

    /// The state changes since the last checkpoint.
    fn take_changes(&self) -> Result<Vec<crate::state::Change>, DataflowError> {
        match self.state() {
            Some(s) => Ok(s.lock().expect("state lock").take_changes()?),
            None => Ok(Vec::new()),
        }
    }

    fn commit(&mut self) -> Result<(), DataflowError> {
        if let Some(s) = self.state() {
            s.lock().expect("state lock").commit()?;
        }
        Ok(())
    }

    /// Fire the timers of `domain` due at `time`.
    fn fire(&mut self, domain: TimeDomain, time: Timestamp) -> Result<(), DataflowError> {
        let Some(state) = self.state().cloned() else {
            return Ok(());
        };
        loop {
            let guarded = self.swaps.on_probation();
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
            let out = match self.instance.on_timer(&due) {
                Err(error) if guarded => {
                    self.roll_back(&error)?;
                    continue;
                }
                Ok(out) if guarded => {
                    state.lock().expect("state lock").end_journal();
                    out
                }
                r => r.map_err(|error| self.policy.fatal(error, what()))?,
            };
            out.validate().map_err(|e| {
                self.policy
                    .fatal(OperatorError::Malformed(e.to_string()), what())
            })?;
            self.policy
                .counters
                .events_out
                .fetch_add(out.len() as u64, Relaxed);
            if !out.is_empty() {
                self.main.send_blocking(out);
            }
        }
    }

    /// Take the plugin a swap brings in.
    fn swap_in(&mut self, incoming: Incoming) {
        match incoming.instance {
            Instance::Processor(p) => self.instance = p,
            Instance::Aggregator(_) => unreachable!("a swap keeps the world"),
        }
        self.factory = incoming.factory;
        self.policy.plugin = self.factory.plugin_id();
    }

    /// The plugin on probation failed (or another instance's did): undo what the failed call
    /// changed and bring the previous version back.
    fn roll_back(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        if let Some(s) = self.state() {
            s.lock().expect("state lock").undo();
        }
        let Some(previous) = self.swaps.roll_back(&self.factory, &why.to_string()) else {
            return Ok(());
        };
        self.factory = previous;
        self.policy.plugin = self.factory.plugin_id();
        self.instance =
            new_processor(&*self.factory, &self.ctx).map_err(|error| DataflowError::Init {
                operator: self.policy.name.clone(),
                plugin: self.policy.plugin.clone(),
                error,
            })?;
        Ok(())
    }

    fn restart(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        self.instance = self
            .policy
            .replace(why, || new_processor(&*self.factory, &self.ctx))?;
        Ok(())
    }

    /// Run the instance on `batch` and check what it returns.
    fn call(&mut self, batch: &Batch) -> Result<flowlet_types::Output, OperatorError> {
        let out = self.instance.process(batch)?;
        out.events
            .validate()
            .map_err(|e| OperatorError::Malformed(e.to_string()))?;
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

    /// Handle one input batch. Returns false when no consumer is left.
    fn handle(&mut self, batch: Batch) -> Result<bool, DataflowError> {
        let started = Instant::now();
        let counters = self.policy.counters.clone();
        let mut dead = Batch::new();
        if let Some(why) = self.swaps.rolled_back_elsewhere() {
            self.roll_back(&why)?;
        }
        // A plugin on probation: its state changes are journaled, and a failure brings the
        // previous version back to handle the same batch.
        let mut first = None;
        if self.swaps.on_probation() {
            if let Some(s) = self.state() {
                s.lock().expect("state lock").begin_journal();
            }
            match self.call(&batch) {
                Ok(out) => {
                    if let Some(s) = self.state() {
                        s.lock().expect("state lock").end_journal();
                    }
                    self.swaps.passed();
                    first = Some(Ok(out));
                }
                Err(error) => self.roll_back(&error)?,
            }
        }
        let result = match first {
            Some(r) => r,
            None => self.call(&batch),
        };
        let output = match result {
            Ok(out) => {
                for r in &out.rejected {
                    counters.rejected.fetch_add(1, Relaxed);
                    let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                    self.policy
                        .bad_event(&batch.get(r.event as usize), error, &mut dead)?;
                }
                out.events
            }
            Err(error) => self.isolate(&batch, error, &mut dead)?,
        };
        if let Some(s) = self.state() {
            let e = s.lock().expect("state lock").error.take();
            if let Some(e) = e {
                return Err(e.into());
            }
        }
        // Counted once handled, so that a reader of live counters knows the batch was seen.
        counters.events_in.fetch_add(batch.len() as u64, Relaxed);
        counters.batches.fetch_add(1, Relaxed);
        counters.batch_latency.record(started.elapsed());
        counters.events_out.fetch_add(output.len() as u64, Relaxed);
        let mut alive = true;
        if !output.is_empty() && !self.main.is_empty() {
            alive &= self.main.send_blocking(output);
        }
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
        error: OperatorError,
        dead: &mut Batch,
    ) -> Result<Batch, DataflowError> {
        if matches!(error, OperatorError::Trap(_)) {
            self.restart(&error)?;
        }
        if batch.len() == 1 {
            self.policy.bad_event(&batch.get(0), error, dead)?;
            return Ok(Batch::new());
        }
        let mut output = Batch::new();
        let mut single = Batch::new();
        for event in batch.iter() {
            single.clear();
            single.push_event(&event);
            match self.call(&single) {
                Ok(out) => {
                    if let Some(r) = out.rejected.first() {
                        self.policy.counters.rejected.fetch_add(1, Relaxed);
                        let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                        self.policy.bad_event(&event, error, dead)?;
                    } else {
                        output.extend_from(&out.events);
                    }
                }
                Err(error) => {
                    if matches!(error, OperatorError::Trap(_)) {
                        self.restart(&error)?;
                    }
                    self.policy.bad_event(&event, error, dead)?;
                }
            }
        }
        Ok(output)
    }
}
