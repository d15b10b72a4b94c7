use crate::Timestamp;

/// A header attached to one event of a batch (see the WIT `header` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Index of the event in its batch.
    pub event: u32,
    pub name: String,
    pub value: Vec<u8>,
}

/// A batch of events packed column-wise (see the WIT `batch` record for the layout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub values: Vec<u8>,
    pub value_ends: Vec<u32>,
    pub keys: Vec<u8>,
    pub key_ends: Vec<u32>,
    pub timestamps: Vec<Timestamp>,
    /// Sorted by `event`.
    pub headers: Vec<Header>,
}

/// An input event an operator refuses ("this event is bad").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index of the rejected event in the input batch.
    pub event: u32,
    pub reason: String,
}

/// What an operator returns for one input batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub events: Batch,
    /// Where each event goes (see the WIT `output` record): empty, every event to the main
    /// output; else one mask per event, bit 0 the main output, bit `i` named output `i - 1`.
    pub routes: Vec<u32>,
    pub rejected: Vec<Rejection>,
}

/// Where an operator sits in the topology (the WIT `setup` record), given to every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The operator's name.
    pub operator: String,
    /// Its inputs as the manifest writes them (`clicks`, `parse.invalid`), in order.
    pub inputs: Vec<String>,
    /// Its named outputs (`outputs:`), in order: route bit `i + 1` is `outputs[i]`.
    pub outputs: Vec<String>,
}

impl Default for Setup {
    /// One input named `input`, no named outputs (what a test harness assumes).
    fn default() -> Self {
        Self {
            operator: "operator".into(),
            inputs: vec!["input".into()],
            outputs: Vec::new(),
        }
    }
}

/// Route mask of the main output.
pub const MAIN_ROUTE: u32 = 1;

/// A batch whose columns do not fit together; returned by [`Batch::validate`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error(
        "the batch has {ends} value ends, {key_ends} key ends and {timestamps} timestamps; they must be equal"
    )]
    Lengths {
        ends: usize,
        key_ends: usize,
        timestamps: usize,
    },
    #[error(
        "{column} offsets of the batch are not increasing or run past the data at event {event}"
    )]
    Offsets { column: &'static str, event: usize },
    #[error(
        "header {index} names event {event}, but the batch has {len} events or the headers are not in event order"
    )]
    Header {
        index: usize,
        event: u32,
        len: usize,
    },
}

/// One event of a [`Batch`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    batch: &'a Batch,
    index: usize,
    key: &'a [u8],
    value: &'a [u8],
    timestamp: Timestamp,
}

impl<'a> EventRef<'a> {
    /// Position of the event in its batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The key, or `None` when the event has none.
    pub fn key(&self) -> Option<&'a [u8]> {
        (!self.key.is_empty()).then_some(self.key)
    }

    /// The value: usually a JSON document.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The event's headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let headers = &self.batch.headers;
        let event = self.index as u32;
        let start = headers.partition_point(|h| h.event < event);
        headers[start..]
            .iter()
            .take_while(move |h| h.event == event)
            .map(|h| (h.name.as_str(), h.value.as_slice()))
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a batch holds less than 4 GiB of data")
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// A batch with room for `events` events of `bytes` bytes of values in all.
    pub fn with_capacity(events: usize, bytes: usize) -> Self {
        Self {
            values: Vec::with_capacity(bytes),
            value_ends: Vec::with_capacity(events),
            keys: Vec::new(),
            key_ends: Vec::with_capacity(events),
            timestamps: Vec::with_capacity(events),
            headers: Vec::new(),
        }
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Bytes of payload (values and keys): what a size-based flush looks at.
    pub fn payload_bytes(&self) -> usize {
        self.values.len() + self.keys.len()
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.value_ends.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.timestamps.clear();
        self.headers.clear();
    }

    /// Drop every event from `len` on (with their headers).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        let value_end = if len == 0 {
            0
        } else {
            self.value_ends[len - 1] as usize
        };
        let key_end = if len == 0 {
            0
        } else {
            self.key_ends[len - 1] as usize
        };
        self.values.truncate(value_end);
        self.value_ends.truncate(len);
        self.keys.truncate(key_end);
        self.key_ends.truncate(len);
        self.timestamps.truncate(len);
        let keep = self.headers.partition_point(|h| (h.event as usize) < len);
        self.headers.truncate(keep);
    }

    /// Append an event without headers. An empty key means "no key".
    pub fn push(&mut self, key: &[u8], value: &[u8], timestamp: Timestamp) {
        self.values.extend_from_slice(value);
        self.value_ends.push(to_u32(self.values.len()));
        self.keys.extend_from_slice(key);
        self.key_ends.push(to_u32(self.keys.len()));
        self.timestamps.push(timestamp);
    }

    /// Append an event whose value `write` appends to the value buffer (e.g. serializing JSON in
    /// place). When `write` fails nothing is appended.
    pub fn push_with<E>(
        &mut self,
        key: &[u8],
        timestamp: Timestamp,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.values.len();
        if let Err(e) = write(&mut self.values) {
            self.values.truncate(start);
            return Err(e);
        }
        self.value_ends.push(to_u32(self.values.len()));
        self.keys.extend_from_slice(key);
        self.key_ends.push(to_u32(self.keys.len()));
        self.timestamps.push(timestamp);
        Ok(())
    }

    /// Append a header to the event pushed last.
    ///
    /// # Panics
    /// When the batch is empty.
    pub fn push_header(&mut self, name: &str, value: &[u8]) {
        let event = self
            .len()
            .checked_sub(1)
            .expect("push an event before its headers");
        self.headers.push(Header {
            event: to_u32(event),
            name: name.to_owned(),
            value: value.to_vec(),
        });
    }

    /// Append a copy of `event` (key, value, timestamp and headers) from another batch.
    pub fn push_event(&mut self, event: &EventRef<'_>) {
        self.push(event.key, event.value, event.timestamp);
        for (name, value) in event.headers() {
            self.push_header(name, value);
        }
    }

    /// Append a copy of `event` under another key.
    pub fn push_event_with_key(&mut self, event: &EventRef<'_>, key: &[u8]) {
        self.push(key, event.value, event.timestamp);
        for (name, value) in event.headers() {
            self.push_header(name, value);
        }
    }

    /// Append every event of `other`.
    pub fn extend_from(&mut self, other: &Batch) {
        for event in other.iter() {
            self.push_event(&event);
        }
    }

    /// The event at `index`.
    ///
    /// # Panics
    /// When `index` is out of bounds or the batch is malformed (see [`Batch::validate`]).
    pub fn get(&self, index: usize) -> EventRef<'_> {
        let span = |ends: &[u32], data: &'_ [u8]| -> (usize, usize) {
            let start = if index == 0 {
                0
            } else {
                ends[index - 1] as usize
            };
            let end = ends[index] as usize;
            debug_assert!(start <= end && end <= data.len());
            (start, end)
        };
        let (vs, ve) = span(&self.value_ends, &self.values);
        let (ks, ke) = span(&self.key_ends, &self.keys);
        EventRef {
            batch: self,
            index,
            key: &self.keys[ks..ke],
            value: &self.values[vs..ve],
            timestamp: self.timestamps[index],
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Check that the columns fit together. The host checks every batch a plugin returns before
    /// it trusts its offsets.
    pub fn validate(&self) -> Result<(), BatchError> {
        let n = self.timestamps.len();
        if self.value_ends.len() != n || self.key_ends.len() != n {
            return Err(BatchError::Lengths {
                ends: self.value_ends.len(),
                key_ends: self.key_ends.len(),
                timestamps: n,
            });
        }
        for (column, ends, data) in [
            ("value", &self.value_ends, &self.values),
            ("key", &self.key_ends, &self.keys),
        ] {
            let mut prev = 0u32;
            for (event, &end) in ends.iter().enumerate() {
                if end < prev || end as usize > data.len() {
                    return Err(BatchError::Offsets { column, event });
                }
                prev = end;
            }
        }
        let mut prev = 0u32;
        for (index, header) in self.headers.iter().enumerate() {
            if header.event as usize >= n || header.event < prev {
                return Err(BatchError::Header {
                    index,
                    event: header.event,
                    len: n,
                });
            }
            prev = header.event;
        }
        Ok(())
    }
}

impl Output {
    /// An output that passes nothing on and rejects nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Why the routes do not fit the events or the `named` outputs there are (`None`: they do).
    pub fn route_error(&self, named: usize) -> Option<String> {
        if self.routes.is_empty() {
            return None;
        }
        if self.routes.len() != self.events.len() {
            return Some(format!(
                "it returned {} routes for {} events",
                self.routes.len(),
                self.events.len()
            ));
        }
        let allowed = if named >= 31 {
            u32::MAX
        } else {
            (1u32 << (named + 1)) - 1
        };
        let (i, mask) = self
            .routes
            .iter()
            .enumerate()
            .find(|(_, m)| **m == 0 || **m & !allowed != 0)?;
        Some(if *mask == 0 {
            format!("it routed event {i} to no output")
        } else {
            let port = 31 - (mask & !allowed).leading_zeros();
            format!(
                "it routed event {i} to output {port}, but the operator declares {named} named output{} (`outputs:` in the manifest)",
                if named == 1 { "" } else { "s" }
            )
        })
    }

    /// Append `other`'s events and routes (rejections are the caller's: their indexes are
    /// relative to an input batch).
    pub fn append_events(&mut self, other: &Output) {
        if !other.routes.is_empty() && self.routes.is_empty() {
            self.routes = vec![MAIN_ROUTE; self.events.len()];
        }
        if !self.routes.is_empty() {
            if other.routes.is_empty() {
                self.routes
                    .extend(std::iter::repeat_n(MAIN_ROUTE, other.events.len()));
            } else {
                self.routes.extend_from_slice(&other.routes);
            }
        }
        self.events.extend_from(&other.events);
    }

    /// The events of each output: index 0 the main one, `i` named output `i - 1`, for `ports`
    /// outputs in all. Events routed nowhere that exists are left out (checked before, see
    /// [`Output::route_error`]).
    pub fn split(self, ports: usize) -> Vec<Batch> {
        if self.routes.is_empty() {
            let mut out = vec![self.events];
            out.resize_with(ports.max(1), Batch::new);
            return out;
        }
        let mut out: Vec<Batch> = (0..ports.max(1)).map(|_| Batch::new()).collect();
        for (i, mask) in self.routes.iter().enumerate() {
            let event = self.events.get(i);
            let mut m = *mask;
            while m != 0 {
                let port = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(b) = out.get_mut(port) {
                    b.push_event(&event);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_read_back() {
        let mut b = Batch::new();
        b.push(b"k1", b"{\"a\":1}", 10);
        b.push_header("h", b"x");
        b.push_header("h2", b"y");
        b.push(b"", b"{}", 11);
        b.push(b"k3", b"[]", 12);
        b.push_header("z", b"");
        b.validate().unwrap();
        assert_eq!(b.len(), 3);
        let e: Vec<_> = b.iter().collect();
        assert_eq!(e[0].key(), Some(&b"k1"[..]));
        assert_eq!(e[0].value(), b"{\"a\":1}");
        assert_eq!(
            e[0].headers().collect::<Vec<_>>(),
            vec![("h", &b"x"[..]), ("h2", &b"y"[..])]
        );
        assert_eq!(e[1].key(), None);
        assert_eq!(e[1].headers().count(), 0);
        assert_eq!(e[1].timestamp(), 11);
        assert_eq!(e[2].headers().collect::<Vec<_>>(), vec![("z", &b""[..])]);

        let mut copy = Batch::new();
        copy.extend_from(&b);
        assert_eq!(copy, b);

        copy.truncate(1);
        copy.validate().unwrap();
        assert_eq!(copy.len(), 1);
        assert_eq!(copy.values, b"{\"a\":1}");
        assert_eq!(copy.headers.len(), 2);
        copy.truncate(0);
        assert_eq!(copy, Batch::new());
    }

    #[test]
    fn validate_rejects_bad_offsets() {
        let mut b = Batch::new();
        b.push(b"", b"abc", 0);
        b.value_ends[0] = 9;
        assert_eq!(
            b.validate(),
            Err(BatchError::Offsets {
                column: "value",
                event: 0
            })
        );
        let mut b = Batch::new();
        b.push(b"", b"abc", 0);
        b.timestamps.push(1);
        assert!(matches!(b.validate(), Err(BatchError::Lengths { .. })));
        let mut b = Batch::new();
        b.push(b"", b"abc", 0);
        b.headers.push(Header {
            event: 3,
            name: "x".into(),
            value: vec![],
        });
        assert!(matches!(b.validate(), Err(BatchError::Header { .. })));
    }
}
