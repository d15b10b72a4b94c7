//! The `on-error` policy, shared by every kind of operator task.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::OnError;
use flowlet_types::{Batch, EventRef};

use crate::{DataflowError, NodeCounters, OperatorError};

/// Who applies the policy: the operator, its instance and plugin, and its counters.
pub(crate) struct Policy {
    pub name: String,
    pub instance_index: usize,
    pub plugin: String,
    pub on_error: OnError,
    pub counters: Arc<NodeCounters>,
}

/// A short, printable form of an event for error messages.
pub(crate) fn preview(event: &EventRef<'_>) -> String {
    let text = String::from_utf8_lossy(event.value());
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    format!("#{} `{s}`", event.index())
}

impl Policy {
    /// An error that stops the topology, naming the operator, its plugin and `what` it was doing.
    pub fn fatal(&self, error: OperatorError, what: impl Into<String>) -> DataflowError {
        DataflowError::Operator {
            operator: self.name.clone(),
            plugin: self.plugin.clone(),
            error,
            event: what.into(),
        }
    }

    /// Replace an instance that trapped: log and count it, then `make` a fresh one.
    pub fn replace<T>(
        &self,
        why: &OperatorError,
        make: impl FnOnce() -> Result<T, OperatorError>,
    ) -> Result<T, DataflowError> {
        tracing::warn!(
            operator = %self.name,
            instance = self.instance_index,
            plugin = %self.plugin,
            "instance {why}; replacing it with a fresh one"
        );
        self.counters.restarts.fetch_add(1, Relaxed);
        make().map_err(|error| DataflowError::Init {
            operator: self.name.clone(),
            plugin: self.plugin.clone(),
            error,
        })
    }

    /// Apply the `on-error` policy to one event.
    pub fn bad_event(
        &self,
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

    /// `{"operator", "instance", "plugin", "error", "event": {"key", "value", "timestamp"}}`.
    fn dead_letter_record(&self, event: &EventRef<'_>, error: &OperatorError) -> Vec<u8> {
        let record = serde_json::json!({
            "operator": self.name,
            "instance": self.instance_index,
            "plugin": self.plugin,
            "error": error.to_string(),
            "event": event_json(event),
        });
        serde_json::to_vec(&record).expect("a record is JSON")
    }
}

/// `{"key", "value", "timestamp"}` of a dead-lettered event; the value is embedded as JSON
/// when it is JSON, as a string otherwise.
pub(crate) fn event_json(event: &EventRef<'_>) -> serde_json::Value {
    use serde_json::value::RawValue;
    let value: Box<RawValue> = match serde_json::from_slice::<&RawValue>(event.value()) {
        Ok(raw) => raw.to_owned(),
        Err(_) => {
            let s = serde_json::to_string(&String::from_utf8_lossy(event.value()))
                .expect("a string is JSON");
            RawValue::from_string(s).expect("a JSON string is JSON")
        }
    };
    serde_json::json!({
        "key": event.key().map(String::from_utf8_lossy),
        "value": value,
        "timestamp": event.timestamp(),
    })
}
