use flowlet_types::{Batch, EventRef, Rejection, Timestamp};
use serde::Serialize;

use crate::Error;

/// Where an operator puts the events it emits.
///
/// `emit*` methods give the new event the key and timestamp of the input event being processed;
/// [`emit_with`](Output::emit_with) sets them explicitly.
pub struct Output<'a> {
    input: &'a Batch,
    origin: &'a str,
    events: Batch,
    /// Route masks of the events up to the last one routed elsewhere than the main output
    /// (the rest go to the main output); empty while every event does.
    routes: Vec<u32>,
    rejected: Vec<Rejection>,
    current: Option<EventRef<'a>>,
    /// Number of output events before the current input event was handled.
    mark: usize,
}

impl<'a> Output<'a> {
    pub(crate) fn new(input: &'a Batch, origin: &'a str) -> Self {
        Self {
            input,
            origin,
            events: Batch::with_capacity(input.len(), input.values.len()),
            routes: Vec::new(),
            rejected: Vec::new(),
            current: None,
            mark: 0,
        }
    }

    /// The name of the input the batch came from (see [`crate::Event::input`]).
    pub fn origin(&self) -> &'a str {
        self.origin
    }

    /// Send the event emitted last to `port` (one or more outputs) instead of the main output.
    pub fn route_last(&mut self, port: crate::Port) {
        route_last(&self.events, &mut self.routes, port);
    }

    /// Pass the current input event on unchanged to `port` (e.g. a named output from
    /// [`crate::Config::output`], or `valid | audit` for both).
    pub fn forward_to(&mut self, port: crate::Port) {
        self.forward();
        self.route_last(port);
    }

    /// Emit `value` with the current event's key and timestamp to `port`.
    pub fn emit_to(&mut self, port: crate::Port, value: &[u8]) {
        self.emit(value);
        self.route_last(port);
    }

    /// Start handling `event`: what `emit` and `forward` refer to.
    pub fn begin(&mut self, event: EventRef<'a>) {
        self.mark = self.events.len();
        self.current = Some(event);
    }

    pub(crate) fn reject_current(&mut self, reason: String) {
        if let Some(event) = self.current {
            self.events.truncate(self.mark);
            self.routes.truncate(self.mark);
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
            routes: finish_routes(self.routes, self.events.len()),
            events: self.events,
            rejected: self.rejected,
        }
    }
}

/// Set the route of the last event of `events`, the ones before it keeping theirs (the main
/// output when they have none).
fn route_last(events: &Batch, routes: &mut Vec<u32>, port: crate::Port) {
    let Some(last) = events.len().checked_sub(1) else {
        return;
    };
    routes.resize(last, flowlet_types::MAIN_ROUTE);
    routes.push(port.0);
}

/// The routes of `len` events: none when every event goes to the main output.
fn finish_routes(mut routes: Vec<u32>, len: usize) -> Vec<u32> {
    if !routes.is_empty() {
        routes.resize(len, flowlet_types::MAIN_ROUTE);
    }
    routes
}

/// Where a window aggregate's `finish` and a stateful operator's `on_timer` put their events.
/// `emit*` give an event the window's (or timer's) key, and the window's last millisecond
/// (`end - 1`) or the timer's time as timestamp.
pub struct Emitter {
    events: Batch,
    routes: Vec<u32>,
    key: Vec<u8>,
    timestamp: Timestamp,
}

impl Emitter {
    pub(crate) fn new() -> Self {
        Self {
            events: Batch::new(),
            routes: Vec::new(),
            key: Vec::new(),
            timestamp: 0,
        }
    }

    /// Send the event emitted last to `port` instead of the main output (a stateful
    /// operator's `on_timer`; a window aggregate's output has only the main output).
    pub fn route_last(&mut self, port: crate::Port) {
        route_last(&self.events, &mut self.routes, port);
    }

    pub(crate) fn finish(self) -> flowlet_types::Output {
        flowlet_types::Output {
            routes: finish_routes(self.routes, self.events.len()),
            events: self.events,
            rejected: Vec::new(),
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
