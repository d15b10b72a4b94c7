use flowlet_types::{Batch, EventRef, Rejection, Timestamp};
use serde::Serialize;

use crate::Error;

/// Where an operator puts the events it emits.
///
/// `emit*` methods give the new event the key and timestamp of the input event being processed;
/// [`emit_with`](Output::emit_with) sets them explicitly.
pub struct Output<'a> {
    input: &'a Batch,
    events: Batch,
    rejected: Vec<Rejection>,
    current: Option<EventRef<'a>>,
    /// Number of output events before the current input event was handled.
    mark: usize,
}

impl<'a> Output<'a> {
    pub(crate) fn new(input: &'a Batch) -> Self {
        Self {
            input,
            events: Batch::with_capacity(input.len(), input.values.len()),
            rejected: Vec::new(),
            current: None,
            mark: 0,
        }
    }

    /// Start handling `event`: what `emit` and `forward` refer to.
    pub fn begin(&mut self, event: EventRef<'a>) {
        self.mark = self.events.len();
        self.current = Some(event);
    }

    pub(crate) fn reject_current(&mut self, reason: String) {
        if let Some(event) = self.current {
            self.events.truncate(self.mark);
            self.rejected.push(Rejection {
                event: event.index() as u32,
                reason,
            });
        }
    }

    fn current(&self) -> EventRef<'a> {
        self.current.expect(
            "emit/forward are for use inside Operator::process; use emit_with in process_batch",
        )
    }

    /// Pass the current input event on unchanged (key, value, timestamp and headers).
    pub fn forward(&mut self) {
        let event = self.current();
        self.events.push_event(&event);
    }

    /// Emit `value` with the current event's key and timestamp.
    pub fn emit(&mut self, value: &[u8]) {
        let event = self.current();
        self.events
            .push(event.key().unwrap_or_default(), value, event.timestamp());
    }

    /// Emit `value` serialized as JSON, with the current event's key and timestamp.
    pub fn emit_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let event = self.current();
        self.events
            .push_with(event.key().unwrap_or_default(), event.timestamp(), |buf| {
                serde_json::to_writer(buf, value)
            })
            .map_err(|e| Error::Failed(format!("cannot serialize output: {e}")))
    }

    /// Emit a value that `write` appends to the output buffer in place (no intermediate copy),
    /// with the current event's key and timestamp. If `write` fails nothing is emitted.
    pub fn emit_in_place(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let event = self.current();
        self.events
            .push_with(event.key().unwrap_or_default(), event.timestamp(), write)
    }

    /// Emit an event with an explicit key (`None`: no key) and timestamp.
    pub fn emit_with(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Timestamp) {
        self.events.push(key.unwrap_or_default(), value, timestamp);
    }

    /// Attach a header to the event emitted last.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        self.events.push_header(name, value);
    }

    /// Reject input event `index` (for [`Operator::process_batch`](crate::Operator::process_batch)
    /// overrides; inside `process`, return [`Error::Reject`] instead).
    pub fn reject(&mut self, index: usize, reason: impl Into<String>) {
        self.rejected.push(Rejection {
            event: index as u32,
            reason: reason.into(),
        });
    }

    /// The input batch being processed.
    pub fn input(&self) -> &'a Batch {
        self.input
    }

    pub(crate) fn finish(mut self) -> flowlet_types::Output {
        self.rejected.sort_by_key(|r| r.event);
        flowlet_types::Output {
            events: self.events,
            rejected: self.rejected,
        }
    }
}

/// Where a window aggregate's `finish` and a stateful operator's `on_timer` put their events.
/// `emit*` give an event the window's (or timer's) key, and the window's last millisecond
/// (`end - 1`) or the timer's time as timestamp.
pub struct Emitter {
    events: Batch,
    key: Vec<u8>,
    timestamp: Timestamp,
}

impl Emitter {
    pub(crate) fn new() -> Self {
        Self {
            events: Batch::new(),
            key: Vec::new(),
            timestamp: 0,
        }
    }

    pub(crate) fn set(&mut self, key: &[u8], timestamp: Timestamp) {
        self.key.clear();
        self.key.extend_from_slice(key);
        self.timestamp = timestamp;
    }

    pub(crate) fn into_batch(self) -> Batch {
        self.events
    }

    pub fn emit(&mut self, value: &[u8]) {
        self.events.push(&self.key, value, self.timestamp);
    }

    pub fn emit_json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.events
            .push_with(&self.key, self.timestamp, |buf| {
                serde_json::to_writer(buf, value)
            })
            .map_err(|e| Error::Failed(format!("cannot serialize output: {e}")))
    }

    /// Emit with an explicit key and timestamp.
    pub fn emit_with(&mut self, key: &[u8], value: &[u8], timestamp: Timestamp) {
        self.events.push(key, value, timestamp);
    }
}
