//! One operator instance's task: receive, process, apply the error policy, send.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::OnError;
use flowlet_types::{Batch, EventRef, Timestamp};
use tokio::sync::mpsc;

use crate::edge::Outputs;
use crate::{
    DataflowError, Envelope, Message, NodeCounters, Operator, OperatorError, OperatorFactory,
};

pub(crate) struct OperatorTask {
    pub name: String,
    pub instance_index: usize,
    pub plugin: String,
    pub factory: Arc<dyn OperatorFactory>,
    pub instance: Box<dyn Operator>,
    pub on_error: OnError,
    /// Number of upstream producer instances (inputs).
    pub inputs: usize,
    pub main: Outputs,
    pub dead_letter: Outputs,
    pub counters: Arc<NodeCounters>,
}

/// A short, printable form of an event for error messages.
fn preview(event: &EventRef<'_>) -> String {
    let text = String::from_utf8_lossy(event.value());
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    format!("#{} `{s}`", event.index())
}

impl OperatorTask {
    pub fn run(mut self, mut rx: mpsc::Receiver<Envelope>) -> Result<(), DataflowError> {
        let mut watermarks = vec![Timestamp::MIN; self.inputs];
        let mut ended = vec![false; self.inputs];
        let mut open = self.inputs;
        let mut watermark = Timestamp::MIN;
        while open > 0 {
            let Some(env) = rx.blocking_recv() else {
                break; // every producer is gone: the topology is stopping
            };
            match env.message {
                Message::Batch(batch) => {
                    if !self.handle(batch)? {
                        return Ok(()); // every consumer is gone
                    }
                }
                Message::Watermark(w) => {
                    let slot = &mut watermarks[env.input];
                    *slot = (*slot).max(w);
                    let min = watermarks.iter().copied().min().unwrap_or(Timestamp::MAX);
                    if min > watermark {
                        watermark = min;
                        self.main.broadcast_blocking(Message::Watermark(min));
                    }
                }
                Message::End => {
                    if !std::mem::replace(&mut ended[env.input], true) {
                        open -= 1;
                        watermarks[env.input] = Timestamp::MAX;
                    }
                }
            }
        }
        self.main.broadcast_blocking(Message::End);
        self.dead_letter.broadcast_blocking(Message::End);
        Ok(())
    }

    fn restart(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        tracing::warn!(
            operator = %self.name,
            instance = self.instance_index,
            plugin = %self.plugin,
            "instance {why}; replacing it with a fresh one"
        );
        self.counters.restarts.fetch_add(1, Relaxed);
        self.instance = self
            .factory
            .instantiate()
            .map_err(|error| DataflowError::Init {
                operator: self.name.clone(),
                plugin: self.plugin.clone(),
                error,
            })?;
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
        self.counters
            .events_in
            .fetch_add(batch.len() as u64, Relaxed);
        self.counters.batches.fetch_add(1, Relaxed);
        let mut dead = Batch::new();
        let output = match self.call(&batch) {
            Ok(out) => {
                for r in &out.rejected {
                    self.counters.rejected.fetch_add(1, Relaxed);
                    let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                    self.bad_event(&batch.get(r.event as usize), error, &mut dead)?;
                }
                out.events
            }
            Err(error) => self.isolate(&batch, error, &mut dead)?,
        };
        self.counters
            .events_out
            .fetch_add(output.len() as u64, Relaxed);
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
            self.bad_event(&batch.get(0), error, dead)?;
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
                        self.counters.rejected.fetch_add(1, Relaxed);
                        let error = OperatorError::Failed(format!("rejected: {}", r.reason));
                        self.bad_event(&event, error, dead)?;
                    } else {
                        output.extend_from(&out.events);
                    }
                }
                Err(error) => {
                    if matches!(error, OperatorError::Trap(_)) {
                        self.restart(&error)?;
                    }
                    self.bad_event(&event, error, dead)?;
                }
            }
        }
        Ok(output)
    }

    /// Apply the `on-error` policy to one event.
    fn bad_event(
        &mut self,
        event: &EventRef<'_>,
        error: OperatorError,
        dead: &mut Batch,
    ) -> Result<(), DataflowError> {
        match self.on_error {
            OnError::Fail => Err(DataflowError::Operator {
                operator: self.name.clone(),
                plugin: self.plugin.clone(),
                error,
                event: preview(event),
            }),
            OnError::Skip => {
                self.counters.skipped.fetch_add(1, Relaxed);
                tracing::warn!(operator = %self.name, plugin = %self.plugin, "skipping event {}: {error}", preview(event));
                Ok(())
            }
            OnError::DeadLetter => {
                self.counters.dead_lettered.fetch_add(1, Relaxed);
                let record = self.dead_letter_record(event, &error);
                dead.push(event.key().unwrap_or_default(), &record, event.timestamp());
                Ok(())
            }
        }
    }

    /// `{"operator", "instance", "plugin", "error", "event": {"key", "value", "timestamp"}}`;
    /// the value is embedded as JSON when it is JSON, as a string otherwise.
    fn dead_letter_record(&self, event: &EventRef<'_>, error: &OperatorError) -> Vec<u8> {
        use serde_json::value::RawValue;
        let value: Box<RawValue> = match serde_json::from_slice::<&RawValue>(event.value()) {
            Ok(raw) => raw.to_owned(),
            Err(_) => {
                let s = serde_json::to_string(&String::from_utf8_lossy(event.value()))
                    .expect("a string is JSON");
                RawValue::from_string(s).expect("a JSON string is JSON")
            }
        };
        let record = serde_json::json!({
            "operator": self.name,
            "instance": self.instance_index,
            "plugin": self.plugin,
            "error": error.to_string(),
            "event": {
                "key": event.key().map(String::from_utf8_lossy),
                "value": value,
                "timestamp": event.timestamp(),
            },
        });
        serde_json::to_vec(&record).expect("a record is JSON")
    }
}
