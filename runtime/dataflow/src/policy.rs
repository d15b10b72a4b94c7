//! The `on-error` policy, shared by every kind of operator task.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_manifest::OnError;
use flowlet_types::{Batch, EventRef};
use serde_json::value::RawValue;

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
        #[derive(serde::Serialize)]
        struct Record<'a> {
            operator: &'a str,
            instance: usize,
            plugin: &'a str,
            error: String,
            event: EventJson<'a>,
        }
        to_json(&Record {
            operator: &self.name,
            instance: self.instance_index,
            plugin: &self.plugin,
            error: error.to_string(),
            event: EventJson::new(event),
        })
    }
}

/// Serialize a record of the side outputs. Nothing in it is parsed again (an event's bytes are
/// copied as they are, see [`EventJson`]), so this cannot fail.
pub(crate) fn to_json(record: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(record).expect("side-output records serialize without parsing")
}

/// Bytes in a record: the JSON text itself when they are JSON, a string when they are UTF-8,
/// else base64 under the `…-base64` name, so that a dead letter always carries the original
/// bytes. JSON is embedded as written (never parsed into a `Value`): an event that serde_json
/// cannot represent — nested 200 deep, a number like `1e400` — is still carried unchanged.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Bytes<'a> {
    Json(&'a RawValue),
    Text(std::borrow::Cow<'a, str>),
}

/// `{"key", "value", "timestamp"}` of a dead-lettered event, with `key-base64` / `value-base64`
/// instead of `key` / `value` for bytes that are not UTF-8.
#[derive(serde::Serialize)]
pub(crate) struct EventJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Bytes<'a>>,
    #[serde(rename = "key-base64", skip_serializing_if = "Option::is_none")]
    key_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Bytes<'a>>,
    #[serde(rename = "value-base64", skip_serializing_if = "Option::is_none")]
    value_base64: Option<String>,
    timestamp: flowlet_types::Timestamp,
}

/// `bytes` as JSON (when `json` and they are JSON), as a string, or as base64.
fn bytes(raw: &[u8], json: bool) -> (Option<Bytes<'_>>, Option<String>) {
    use base64::Engine;
    if json
        && let Ok(v) = serde_json::from_slice::<&RawValue>(raw)
        // Exactly these bytes (whitespace around a value is not part of it).
        && v.get().len() == raw.len()
    {
        return (Some(Bytes::Json(v)), None);
    }
    match std::str::from_utf8(raw) {
        Ok(s) => (Some(Bytes::Text(s.into())), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(raw)),
        ),
    }
}

impl<'a> EventJson<'a> {
    pub fn new(event: &EventRef<'a>) -> Self {
        let (key, key_base64) = match event.key() {
            Some(k) => bytes(k, false),
            None => (None, None),
        };
        let (value, value_base64) = bytes(event.value(), true);
        Self {
            // A key that is absent stays `null`, as before.
            key: key.or_else(|| key_base64.is_none().then(|| Bytes::Json(null_json()))),
            key_base64,
            value,
            value_base64,
            timestamp: event.timestamp(),
        }
    }
}

fn null_json() -> &'static RawValue {
    static NULL: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| RawValue::from_string("null".into()).expect("null is JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record's fields as written.
    #[derive(serde::Deserialize)]
    struct Carried<'a> {
        #[serde(borrow)]
        key: Option<&'a RawValue>,
        #[serde(rename = "key-base64")]
        key_base64: Option<String>,
        #[serde(borrow)]
        value: Option<&'a RawValue>,
        #[serde(rename = "value-base64")]
        value_base64: Option<String>,
        timestamp: i64,
    }

    /// The bytes a record carries in `raw` (JSON text or a string) or `b64`.
    fn bytes_of(raw: Option<&RawValue>, b64: Option<&str>) -> Option<Vec<u8>> {
        use base64::Engine;
        if let Some(b) = b64 {
            return base64::engine::general_purpose::STANDARD.decode(b).ok();
        }
        let raw = raw.filter(|r| r.get() != "null")?;
        Some(match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => s.into_bytes(),
            Err(_) => raw.get().as_bytes().to_vec(),
        })
    }

    fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = Batch::new();
        b.push(key, value, -5);
        to_json(&EventJson::new(&b.get(0)))
    }

    /// Events serde_json cannot turn into a `Value` — nested 200 deep, `1e400` — are carried
    /// as written, without panicking (they were a poison pill).
    #[test]
    fn unrepresentable_json_is_carried_as_written() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for value in [deep.as_str(), r#"{"t":1e400}"#, "-1e999999"] {
            let text = String::from_utf8(record(b"k", value.as_bytes())).unwrap();
            assert!(text.contains(&format!("\"value\":{value}")), "{text}");
        }
    }

    proptest! {
        /// Any bytes as key and value: the record is JSON and carries exactly those bytes.
        #[test]
        fn any_bytes_make_a_record_that_carries_them(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "[a-z0-9{}\\[\\]\":,. e+-]{0,80}".prop_map(String::into_bytes),
            ],
        ) {
            let bytes = record(&key, &value);
            let r: Carried<'_> = serde_json::from_slice(&bytes).expect("records are JSON");
            prop_assert_eq!(r.timestamp, -5);
            let value_back = bytes_of(r.value, r.value_base64.as_deref());
            // A value that is JSON is embedded as its own text.
            let json_text = r.value.map(|v| v.get().as_bytes() == value.as_slice()).unwrap_or(false);
            prop_assert!(json_text || value_back.as_deref() == Some(value.as_slice()));
            // An empty key is no key: `null`.
            prop_assert_eq!(bytes_of(r.key, r.key_base64.as_deref()), (!key.is_empty()).then_some(key));
        }
    }
}
