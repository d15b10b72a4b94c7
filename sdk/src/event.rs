use flowlet_types::json::Pointer;
use flowlet_types::{EventRef, Timestamp};
use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Error;

/// One input event, borrowed from the batch being processed.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    inner: EventRef<'a>,
    origin: &'a str,
}

impl<'a> Event<'a> {
    pub(crate) fn new(inner: EventRef<'a>, origin: &'a str) -> Self {
        Self { inner, origin }
    }

    /// The input the event came from, as the manifest names it in the operator's `inputs:`
    /// (`clicks`, `parse.invalid`).
    pub fn input(&self) -> &'a str {
        self.origin
    }

    /// The key the host assigned (from the operator's `key-by:`), or `None`.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.inner.key()
    }

    /// The keyed state of this event's key (an unkeyed event has the empty key); see
    /// [`crate::state`].
    pub fn state(&self) -> crate::KeyState<'a> {
        crate::KeyState::new(self.inner.key().unwrap_or_default())
    }

    /// The raw value: usually JSON.
    pub fn value(&self) -> &'a [u8] {
        self.inner.value()
    }

    /// The value as UTF-8 text; rejects the event otherwise.
    pub fn text(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.inner.value()).map_err(Error::reject)
    }

    /// Event time (or ingestion time when the source has none), in ms since the Unix epoch.
    pub fn timestamp(&self) -> Timestamp {
        self.inner.timestamp()
    }

    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.inner.headers()
    }

    /// Deserialize the value as JSON. Borrowing types (`&str`, `&RawValue`) borrow from the batch.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(self.inner.value())?)
    }

    /// The raw JSON of one field, found without parsing the rest of the event into values.
    /// `Ok(None)` when the field is absent; rejects events that are not JSON.
    pub fn field(&self, pointer: &Pointer) -> Result<Option<&'a RawValue>, Error> {
        Ok(pointer.find(self.inner.value())?)
    }

    /// The top-level fields of a JSON object value, in order, each as raw JSON; rejects events
    /// that are not JSON objects.
    pub fn fields(&self) -> Result<Vec<(Cow<'a, str>, &'a RawValue)>, Error> {
        Ok(flowlet_types::json::fields(self.inner.value())?)
    }
}
