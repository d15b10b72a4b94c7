//! The live windows of one window-aggregate instance, and how they are stored.
//!
//! Window contents are stored per (key group, window): `[key group][namespace][start][end]` →
//! the records `[key length u32][key][firing u32][accumulator length u32][accumulator]` of the
//! keys of that group. One entry per key group and window instead of one per key: a window of
//! a million keys is 128 writes, and a key group's contents still move as a unit (Flink's heap
//! state backend snapshots key groups the same way).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

// foldhash (hashbrown's default) instead of SipHash: keys here are not attacker-chosen hash
// flooding targets in a way SipHash would fix (a key group is owned by one instance anyway),
// and the per-event lookups dominate the window operator's cost.
use hashbrown::HashMap;

use flowlet_types::Timestamp;

use super::assign::{Assigner, Win};
use crate::DataflowError;
use crate::edge::key_group;
use crate::keymap::KeyMap;
use crate::state::{Change, StateError, Store, ns, ts_bytes, ts_from};

/// One key's contents of one window.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub acc: Vec<u8>,
    /// How many times the key's window fired (for a merged session: the most any of the
    /// sessions it absorbed fired), i.e. the `firing` index of its next result.
    pub firing: u32,
    /// Whether this window fired for this key. A session that absorbed a session that had fired
    /// is a new window (a new end) and has not fired as such: it fires when time passes that
    /// end, even though its `firing` count is above zero.
    pub fired: bool,
    pub dirty: bool,
}

/// See [`Slot::stored_firing`].
pub(crate) const UNFIRED_MERGE: u32 = 1 << 31;

impl Slot {
    pub fn new(acc: Vec<u8>) -> Self {
        Self {
            acc,
            firing: 0,
            fired: false,
            dirty: true,
        }
    }

    /// Count one more firing of this window.
    pub fn fire(&mut self) {
        self.firing = self.firing.saturating_add(1).min(UNFIRED_MERGE - 1);
        self.fired = true;
        self.dirty = true;
    }

    /// `firing` as stored: the top bit marks a slot that fired before as another window (a
    /// merged session) but not as this one. Records written before that bit existed never
    /// have it, and for them `fired` is `firing > 0` as it was.
    fn stored_firing(&self) -> u32 {
        if self.firing > 0 && !self.fired {
            self.firing | UNFIRED_MERGE
        } else {
            self.firing
        }
    }

    fn from_stored(acc: Vec<u8>, stored: u32) -> Self {
        let firing = stored & !UNFIRED_MERGE;
        Self {
            acc,
            firing,
            fired: firing > 0 && stored & UNFIRED_MERGE == 0,
            dirty: false,
        }
    }
}

/// The live windows of one instance.
#[derive(Default)]
pub(crate) struct Windows {
    pub by_window: BTreeMap<Win, KeyMap<Slot>>,
    /// The key groups each window has contents stored for.
    stored: HashMap<Win, BTreeSet<u16>>,
    /// Stored entries to delete at the next commit.
    deletes: Vec<Vec<u8>>,
    /// Key groups of a window that a key left (merged sessions): rewritten at the next commit.
    left: HashMap<Win, BTreeSet<u16>>,
    /// Windows at or below this end have fired on time.
    pub fired_upto: Option<Timestamp>,
    /// Keys (and bytes per key) of the last window dropped: the size a new window's map starts
    /// with, so that it does not grow by rehashing from empty each time.
    pub size_hint: (usize, usize),
}

fn storage_key(group: u16, w: Win) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.extend_from_slice(&group.to_be_bytes());
    k.push(ns::WINDOW);
    k.extend_from_slice(&ts_bytes(w.start));
    k.extend_from_slice(&ts_bytes(w.end));
    k
}

fn put_record(out: &mut Vec<u8>, key: &[u8], slot: &Slot) {
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&slot.stored_firing().to_be_bytes());
    out.extend_from_slice(&(slot.acc.len() as u32).to_be_bytes());
    out.extend_from_slice(&slot.acc);
}

fn take<'a>(v: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (a, b) = (v.get(..n)?, v.get(n..)?);
    *v = b;
    Some(a)
}

/// A stored record: key, times fired, accumulator.
type Record<'a> = (&'a [u8], u32, &'a [u8]);

/// The records of a stored entry.
fn records(mut v: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let klen = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?) as usize;
        let key = take(&mut v, klen)?;
        let firing = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?);
        let alen = u32::from_be_bytes(take(&mut v, 4)?.try_into().ok()?) as usize;
        let acc = take(&mut v, alen)?;
        out.push((key, firing, acc));
    }
    Some(out)
}

impl Windows {
    /// The windows of key groups `groups` in `store` (told to `assigner` as they load).
    pub fn load(
        store: &Arc<dyn Store>,
        groups: &Range<u32>,
        assigner: &mut dyn Assigner,
        operator: &str,
    ) -> Result<Self, DataflowError> {
        let mut w = Windows::default();
        let start = (groups.start as u16).to_be_bytes();
        let end = (groups.end as u16).to_be_bytes();
        let corrupt = |message: &str| {
            DataflowError::State(StateError::Corrupt {
                operator: operator.into(),
                message: message.into(),
            })
        };
        for (k, v) in store
            .range(&start, &end, usize::MAX)
            .map_err(DataflowError::State)?
        {
            if k.len() != 19 || k[2] != ns::WINDOW {
                continue; // not window contents
            }
            let group = u16::from_be_bytes([k[0], k[1]]);
            let win = Win {
                start: ts_from(&k[3..]).ok_or_else(|| corrupt("bad window start"))?,
                end: ts_from(&k[11..]).ok_or_else(|| corrupt("bad window end"))?,
            };
            w.stored.entry(win).or_default().insert(group);
            let records = records(&v).ok_or_else(|| corrupt("window contents are truncated"))?;
            for (key, firing, acc) in records {
                assigner.loaded(key, win);
                let slot = Slot::from_stored(acc.to_vec(), firing);
                w.by_window.entry(win).or_default().insert(key, slot);
            }
        }
        Ok(w)
    }

    pub fn slot_mut(&mut self, key: &[u8], w: Win) -> Option<&mut Slot> {
        self.by_window.get_mut(&w).and_then(|m| m.get_mut(key))
    }

    /// Remove a key's contents of a window (its stored group is rewritten at the next commit).
    pub fn remove(&mut self, key: &[u8], w: Win) -> Option<Slot> {
        let map = self.by_window.get_mut(&w)?;
        let slot = map.remove(key)?;
        if map.is_empty() {
            self.by_window.remove(&w);
            self.forget(w);
        } else {
            // The key's group is written again without it at the next commit.
            self.left
                .entry(w)
                .or_default()
                .insert(key_group(key) as u16);
        }
        Some(slot)
    }

    /// Delete a window's stored contents at the next commit.
    pub fn forget(&mut self, w: Win) {
        self.left.remove(&w);
        if let Some(groups) = self.stored.remove(&w) {
            self.deletes
                .extend(groups.into_iter().map(|g| storage_key(g, w)));
        }
    }

    /// The stored entries that changed since the last commit or checkpoint.
    pub fn changes(&mut self) -> Vec<Change> {
        let mut changes: Vec<Change> = self.deletes.drain(..).map(|k| (k, None)).collect();
        let mut left = std::mem::take(&mut self.left);
        for (win, map) in &mut self.by_window {
            let left = left.remove(win).unwrap_or_default();
            if left.is_empty() && !map.values().any(|s| s.dirty) {
                continue;
            }
            // Rewrite the groups of this window that changed, with all their keys.
            let mut groups: BTreeMap<u16, (bool, Vec<u8>)> = BTreeMap::new();
            for (key, slot) in map.iter_mut() {
                let group = key_group(key) as u16;
                let g = groups.entry(group).or_default();
                g.0 |= slot.dirty || left.contains(&group);
                put_record(&mut g.1, key, slot);
                slot.dirty = false;
            }
            let stored = self.stored.entry(*win).or_default();
            // A group whose keys all left the window (merged sessions) is deleted.
            let gone: Vec<u16> = stored
                .iter()
                .filter(|g| !groups.contains_key(g))
                .copied()
                .collect();
            for g in gone {
                stored.remove(&g);
                changes.push((storage_key(g, *win), None));
            }
            for (group, (dirty, bytes)) in groups {
                if dirty || !stored.contains(&group) {
                    stored.insert(group);
                    changes.push((storage_key(group, *win), Some(bytes)));
                }
            }
        }
        changes
    }
}
