//! The events a join instance holds, per key, and how they are stored: one entry per key group
//! (`[key group][namespace j]` → the records of its keys), rewritten when the group changed, so
//! that a key group moves as a unit like the windows' contents.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use flowlet_types::Timestamp;
use hashbrown::HashMap;

use crate::DataflowError;
use crate::edge::key_group;
use crate::state::{Change, StateError, Store, ts_bytes, ts_from};

/// The namespace of join buffers in an operator's store.
const NS_JOIN: u8 = b'j';

/// One buffered event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub ts: Timestamp,
    /// The window the row belongs to (window joins): `[start, end)`.
    pub win: Option<(Timestamp, Timestamp)>,
    /// Whether it has met a match (outer and semi joins).
    pub matched: bool,
    pub value: Box<[u8]>,
}

/// Both sides' rows of one key.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct KeyRows {
    pub left: Vec<Row>,
    pub right: Vec<Row>,
}

impl KeyRows {
    pub fn side(&mut self, left: bool) -> &mut Vec<Row> {
        if left {
            &mut self.left
        } else {
            &mut self.right
        }
    }
}

/// The rows of one instance, and when each key needs looking at again.
#[derive(Default)]
pub(crate) struct Buffers {
    pub keys: HashMap<Box<[u8]>, KeyRows>,
    /// Keys that have something due at a time (a row to expire, a window to fire, a left to
    /// look up): looked at when the watermark passes it. Rebuilt at load.
    due: BTreeMap<Timestamp, Vec<Box<[u8]>>>,
    /// Key groups changed since the last commit.
    dirty: BTreeSet<u16>,
    /// Key groups stored (to delete the ones that became empty).
    stored: BTreeSet<u16>,
    pub rows: usize,
}

impl Buffers {
    /// Look at `key` again once the watermark passes `at`.
    pub fn due_at(&mut self, at: Timestamp, key: &[u8]) {
        let keys = self.due.entry(at).or_default();
        // Events of one key often come together: skip a repeat of the last key due then.
        if keys.last().is_none_or(|k| **k != *key) {
            keys.push(key.into());
        }
    }

    /// Keys with something due before `watermark`, taken out of the index.
    pub fn take_due(&mut self, watermark: Timestamp) -> Vec<Box<[u8]>> {
        let mut keys = Vec::new();
        while let Some(entry) = self.due.first_entry() {
            if *entry.key() >= watermark {
                break;
            }
            keys.extend(entry.remove());
        }
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// `key` changed (it held `before` rows): counted, marked for the next commit, and removed
    /// when it holds nothing.
    pub fn touched(&mut self, key: &[u8], before: usize) {
        let now = self
            .keys
            .get(key)
            .map_or(0, |k| k.left.len() + k.right.len());
        self.rows = (self.rows + now).saturating_sub(before);
        if now == 0 {
            self.keys.remove(key);
        }
        self.dirty.insert(key_group(key) as u16);
    }

    /// The changed key groups as store changes (each group rewritten with all its keys).
    pub fn changes(&mut self) -> Vec<Change> {
        if self.dirty.is_empty() {
            return Vec::new();
        }
        let mut groups: BTreeMap<u16, Vec<u8>> =
            self.dirty.iter().map(|g| (*g, Vec::new())).collect();
        for (key, k) in &self.keys {
            if let Some(out) = groups.get_mut(&(key_group(key) as u16)) {
                put_key(out, key, k);
            }
        }
        self.dirty.clear();
        groups
            .into_iter()
            .map(|(g, bytes)| {
                let key = storage_key(g);
                if bytes.is_empty() {
                    self.stored.remove(&g);
                    (key, None)
                } else {
                    self.stored.insert(g);
                    (key, Some(bytes))
                }
            })
            .collect()
    }

    /// The rows of key groups `groups` as the store holds them; `due(key, rows)` says when each
    /// key is due next.
    pub fn load(
        store: &Arc<dyn Store>,
        groups: &Range<u32>,
        operator: &str,
        mut due: impl FnMut(&KeyRows) -> Vec<Timestamp>,
    ) -> Result<Self, DataflowError> {
        let mut b = Buffers::default();
        let start = (groups.start as u16).to_be_bytes();
        let end = (groups.end as u16).to_be_bytes();
        let entries = store
            .range(&start, &end, usize::MAX)
            .map_err(DataflowError::State)?;
        for (k, v) in entries {
            if k.len() != 3 || k[2] != NS_JOIN {
                continue;
            }
            b.stored.insert(u16::from_be_bytes([k[0], k[1]]));
            let mut rest = &v[..];
            while !rest.is_empty() {
                let (key, rows) = take_key(&mut rest).ok_or_else(|| {
                    DataflowError::State(StateError::Corrupt {
                        operator: operator.into(),
                        message: "a join buffer entry is cut short".into(),
                    })
                })?;
                b.rows += rows.left.len() + rows.right.len();
                for at in due(&rows) {
                    b.due_at(at, &key);
                }
                b.keys.insert(key, rows);
            }
        }
        Ok(b)
    }
}

fn storage_key(group: u16) -> Vec<u8> {
    let mut k = group.to_be_bytes().to_vec();
    k.push(NS_JOIN);
    k
}

const NO_WINDOW: Timestamp = Timestamp::MIN;

fn put_key(out: &mut Vec<u8>, key: &[u8], rows: &KeyRows) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    for side in [&rows.left, &rows.right] {
        out.extend_from_slice(&(side.len() as u32).to_be_bytes());
        for r in side {
            out.extend_from_slice(&ts_bytes(r.ts));
            let (s, e) = r.win.unwrap_or((NO_WINDOW, NO_WINDOW));
            out.extend_from_slice(&ts_bytes(s));
            out.extend_from_slice(&ts_bytes(e));
            out.push(u8::from(r.matched));
            out.extend_from_slice(&(r.value.len() as u32).to_be_bytes());
            out.extend_from_slice(&r.value);
        }
    }
}

fn take<'a>(v: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = (v.get(..n)?, v.get(n..)?);
    *v = b;
    Some(a)
}

fn take_u32(v: &mut &[u8]) -> Option<usize> {
    Some(u32::from_be_bytes(take(v, 4)?.try_into().ok()?) as usize)
}

fn take_key(v: &mut &[u8]) -> Option<(Box<[u8]>, KeyRows)> {
    let n = take_u32(v)?;
    let key: Box<[u8]> = take(v, n)?.into();
    let mut rows = KeyRows::default();
    for left in [true, false] {
        let count = take_u32(v)?;
        for _ in 0..count {
            let ts = ts_from(take(v, 8)?)?;
            let s = ts_from(take(v, 8)?)?;
            let e = ts_from(take(v, 8)?)?;
            let matched = take(v, 1)?[0] != 0;
            let len = take_u32(v)?;
            let value = take(v, len)?.into();
            let win = (s != NO_WINDOW || e != NO_WINDOW).then_some((s, e));
            rows.side(left).push(Row {
                ts,
                win,
                matched,
                value,
            });
        }
    }
    Some((key, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_written() {
        let rows = KeyRows {
            left: vec![Row {
                ts: -5,
                win: Some((Timestamp::MIN + 1, 10)),
                matched: true,
                value: b"{\"a\":1}".as_slice().into(),
            }],
            right: vec![Row {
                ts: Timestamp::MAX,
                win: None,
                matched: false,
                value: Box::default(),
            }],
        };
        let mut out = Vec::new();
        put_key(&mut out, b"k\xff", &rows);
        put_key(&mut out, b"", &KeyRows::default());
        let mut rest = &out[..];
        assert_eq!(
            take_key(&mut rest),
            Some((b"k\xff".as_slice().into(), rows))
        );
        assert_eq!(
            take_key(&mut rest),
            Some((Box::default(), KeyRows::default()))
        );
        assert!(rest.is_empty());
        let mut cut = &out[..out.len() - 30];
        assert!(take_key(&mut cut).is_none());
    }
}
