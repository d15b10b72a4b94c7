//! Keyed state: a persistent [`Store`] (sled) under an in-memory layer.
//!
//! Every stored key starts with the key group of the user key (2 bytes, big-endian), so that
//! the state of a key group is one contiguous range that can later move with a Kafka
//! partition; then the user key (length-prefixed) and a namespace (value state, map state,
//! window contents). Operators read and write the in-memory layer; its changes reach the store
//! as one atomic batch at commit points (every `state.commit-interval` and at the end of a run).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flowlet_types::Timestamp;

use crate::Clock;
use crate::edge::key_group;

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state database in {dir}: {message}")]
    Open { dir: PathBuf, message: String },
    #[error(
        "the state database in {dir} was written by an incompatible flowlet (state format {found}, this flowlet writes {expected}); move it away or point `state.dir` elsewhere"
    )]
    Format {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("state of operator `{operator}`: {message}")]
    Io { operator: String, message: String },
    #[error("state of operator `{operator}` is corrupt: {message}")]
    Corrupt { operator: String, message: String },
    #[error(
        "the state in {dir} cannot be resumed: {message}; start again with --from-scratch (or from a savepoint with --from-savepoint FILE)"
    )]
    Checkpoint { dir: PathBuf, message: String },
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The persistent side of an operator's state: an ordered key-value store.
pub trait Store: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Entries with `start <= key < end`, in order, at most `limit`.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StateError>;
    /// Apply puts (`Some`) and deletes (`None`) atomically.
    fn apply(&self, changes: Vec<Change>) -> Result<(), StateError>;
    /// `key` as stored in the database: changes handed to a checkpoint carry it.
    fn full_key(&self, key: &[u8]) -> Vec<u8>;
}

/// The state format this flowlet writes; a database with another is refused.
pub const STATE_FORMAT: &str = "flowlet-state-2";

/// A change to a stored key: a put (`Some`) or a delete (`None`).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// A topology's state database. Everything lives in one sled tree so that a checkpoint —
/// the state changes of every operator, the source positions and the checkpoint record — is
/// one atomic batch: each operator's keys start with its name (see [`StateDb::tree`]), and
/// the checkpoint record lives under [`META_PREFIX`].
#[derive(Clone)]
pub struct StateDb {
    db: sled::Db,
    data: sled::Tree,
    dir: PathBuf,
}

/// Keys of operator state start with this byte; checkpoint records with [`META_PREFIX`].
const OPERATOR_PREFIX: u8 = b'o';
/// Checkpoint records, savepoint markers and the like.
pub const META_PREFIX: u8 = b'm';

impl StateDb {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let open = |message: String| StateError::Open {
            dir: dir.to_owned(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open(e.to_string()))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| {
                open(format!(
                    "{e} (if the files were damaged, start again with --from-scratch)"
                ))
            })?;
        match db.get("flowlet.format").map_err(|e| open(e.to_string()))? {
            None => {
                db.insert("flowlet.format", STATE_FORMAT)
                    .map_err(|e| open(e.to_string()))?;
            }
            Some(v) if v.as_ref() == STATE_FORMAT.as_bytes() => {}
            Some(v) => {
                return Err(StateError::Format {
                    dir: dir.to_owned(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                    expected: STATE_FORMAT.into(),
                });
            }
        }
        let data = db.open_tree("data").map_err(|e| open(e.to_string()))?;
        Ok(Self {
            db,
            data,
            dir: dir.to_owned(),
        })
    }

    /// The prefix of operator `name`'s store `suffix` (state, timers, windows).
    fn prefix(name: &str, suffix: &str) -> Vec<u8> {
        let mut p = Vec::with_capacity(name.len() + suffix.len() + 4);
        p.push(OPERATOR_PREFIX);
        p.extend_from_slice(&(name.len() as u16).to_be_bytes());
        p.extend_from_slice(name.as_bytes());
        p.push(suffix.len() as u8);
        p.extend_from_slice(suffix.as_bytes());
        p
    }

    /// The store of operator `name` (`suffix` distinguishes its parts: state, timers).
    pub fn tree(&self, name: &str, suffix: &str) -> Result<Arc<dyn Store>, StateError> {
        Ok(Arc::new(SledStore {
            tree: self.data.clone(),
            prefix: Self::prefix(name, suffix),
            operator: name.into(),
        }))
    }

    /// Overwrite the format marker (tests of the incompatible-format error).
    #[doc(hidden)]
    pub fn set_format_for_tests(&self, format: &str) -> Result<(), StateError> {
        self.db
            .insert("flowlet.format", format)
            .and_then(|_| self.db.flush())
            .map(|_| ())
            .map_err(|e| self.io(e))
    }

    fn io(&self, e: sled::Error) -> StateError {
        StateError::Open {
            dir: self.dir.clone(),
            message: e.to_string(),
        }
    }

    /// Read a record of the topology (checkpoint metadata).
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let mut k = vec![META_PREFIX];
        k.extend_from_slice(name.as_bytes());
        Ok(self
            .data
            .get(k)
            .map_err(|e| self.io(e))?
            .map(|v| v.to_vec()))
    }

    /// The key of record `name` (for a change in [`StateDb::apply`]).
    pub fn meta_key(name: &str) -> Vec<u8> {
        let mut k = vec![META_PREFIX];
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// Whether anything but checkpoint records is stored.
    pub fn has_operator_state(&self) -> Result<bool, StateError> {
        Ok(self
            .data
            .scan_prefix([OPERATOR_PREFIX])
            .next()
            .transpose()
            .map_err(|e| self.io(e))?
            .is_some())
    }

    /// Apply changes (keys from [`Store::full_key`] or [`StateDb::meta_key`]) as one atomic
    /// batch, and make them durable.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (k, v) in changes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.data.apply_batch(batch).map_err(|e| self.io(e))?;
        self.flush()
    }

    /// Insert without waiting for durability (sled flushes in the background).
    pub fn insert_unsynced(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        self.data
            .insert(key, value)
            .map(|_| ())
            .map_err(|e| self.io(e))
    }

    /// Every stored entry (savepoints).
    pub fn entries(&self) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StateError>> + '_ {
        self.data.iter().map(|r| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| self.io(e))
        })
    }

    /// Make every applied batch durable.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map(|_| ()).map_err(|e| self.io(e))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

struct SledStore {
    tree: sled::Tree,
    prefix: Vec<u8>,
    operator: String,
}

impl SledStore {
    fn err(&self, e: sled::Error) -> StateError {
        StateError::Io {
            operator: self.operator.clone(),
            message: e.to_string(),
        }
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.tree
            .get(self.full_key(key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err(e))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StateError> {
        let n = self.prefix.len();
        self.tree
            .range(self.full_key(start)..self.full_key(end))
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k[n..].to_vec(), v.to_vec()))
                    .map_err(|e| self.err(e))
            })
            .collect()
    }

    fn apply(&self, changes: Vec<Change>) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let n = changes.len();
        let mut batch = sled::Batch::default();
        for (k, v) in changes {
            let k = self.full_key(&k);
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch).map_err(|e| self.err(e))?;
        tracing::debug!(operator = %self.operator, "committed {n} state changes in {:?}", started.elapsed());
        Ok(())
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }
}

/// Namespaces within a key's state.
pub(crate) mod ns {
    pub const VALUE: u8 = b'v';
    pub const MAP: u8 = b'm';
    /// Window contents (stored per key group, see window.rs).
    pub const WINDOW: u8 = b'w';
}

/// `[key group][key length][key][namespace]`.
pub(crate) fn key_prefix(key: &[u8], namespace: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 16);
    k.extend_from_slice(&(key_group(key) as u16).to_be_bytes());
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    k.push(namespace);
    k
}

/// Timestamps in keys sort as bytes: big-endian with the sign bit flipped.
pub(crate) fn ts_bytes(t: Timestamp) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn ts_from(b: &[u8]) -> Option<Timestamp> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?) ^ (1 << 63)) as Timestamp)
}

fn name_prefix(key: &[u8], namespace: u8, name: &str) -> Vec<u8> {
    let mut k = key_prefix(key, namespace);
    k.extend_from_slice(&(name.len() as u16).to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// Stored values carry their expiry: `[0]` + value, or `[1]` + expiry (8 bytes) + value.
fn encode_value(value: &[u8], expires: Option<Timestamp>) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 9);
    match expires {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            v.extend_from_slice(&t.to_be_bytes());
        }
    }
    v.extend_from_slice(value);
    v
}

/// The value, or `None` when it has expired at `now`.
fn decode_value(stored: &[u8], now: Timestamp) -> Option<&[u8]> {
    match stored.first()? {
        0 => Some(&stored[1..]),
        1 => {
            let exp = Timestamp::from_be_bytes(stored.get(1..9)?.try_into().ok()?);
            (exp > now).then(|| &stored[9..])
        }
        _ => None,
    }
}

/// Time domains of timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    EventTime,
    ProcessingTime,
}

/// A timer of a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timer {
    pub domain: TimeDomain,
    pub at: Timestamp,
    pub key: Vec<u8>,
}

/// The in-memory layer over one operator instance's store, with its timers and clocks: what
/// the state and timers host functions use.
pub struct KeyedState {
    store: Arc<dyn Store>,
    timer_store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Entries read from the store (clean) or written since the last commit (dirty).
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Changes handed to a checkpoint (its id) that may not be in the store yet.
    pending: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>,
    timers: BTreeSet<Timer>,
    timers_dirty: BTreeMap<Vec<u8>, bool>,
    pub watermark: Timestamp,
    /// The first store error; reported by the operator task after the call.
    pub error: Option<StateError>,
}

/// Shared between an operator task and its instance's host functions.
pub type StateHandle = Arc<Mutex<KeyedState>>;

/// Clean entries kept in memory before the cache is dropped at a commit.
const CACHE_LIMIT: usize = 1 << 20;

fn timer_key(t: &Timer) -> Vec<u8> {
    let mut k = Vec::with_capacity(t.key.len() + 16);
    k.extend_from_slice(&(key_group(&t.key) as u16).to_be_bytes());
    k.push(t.domain as u8);
    k.extend_from_slice(&ts_bytes(t.at));
    k.extend_from_slice(&t.key);
    k
}

impl KeyedState {
    /// The state of `operator`, with the timers of the key groups in `groups` loaded.
    pub fn open(
        operator: &str,
        store: Arc<dyn Store>,
        timer_store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        groups: std::ops::Range<u32>,
    ) -> Result<Self, StateError> {
        let mut timers = BTreeSet::new();
        // Key groups are fewer than 2^16; stored keys start with theirs as 2 bytes.
        let start = (groups.start as u16).to_be_bytes();
        let end = (groups.end as u16).to_be_bytes();
        for (k, _) in timer_store.range(&start, &end, usize::MAX)? {
            let bad = || StateError::Corrupt {
                operator: operator.into(),
                message: "a timer entry is malformed".into(),
            };
            let domain = match k.get(2) {
                Some(0) => TimeDomain::EventTime,
                Some(1) => TimeDomain::ProcessingTime,
                _ => return Err(bad()),
            };
            let at = ts_from(k.get(3..).ok_or_else(bad)?).ok_or_else(bad)?;
            timers.insert(Timer {
                domain,
                at,
                key: k[11..].to_vec(),
            });
        }
        Ok(Self {
            store,
            timer_store,
            clock,
            cache: HashMap::new(),
            dirty: BTreeMap::new(),
            pending: BTreeMap::new(),
            timers,
            timers_dirty: BTreeMap::new(),
            watermark: Timestamp::MIN,
            error: None,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn read(&mut self, k: Vec<u8>) -> Option<Vec<u8>> {
        let stored = match self.cache.get(&k) {
            Some(v) => v.clone(),
            None => {
                let v = match self.store.get(&k) {
                    Ok(v) => v,
                    Err(e) => {
                        self.error.get_or_insert(e);
                        None
                    }
                };
                self.cache.insert(k.clone(), v.clone());
                v
            }
        }?;
        let now = self.clock.now();
        match decode_value(&stored, now) {
            Some(v) => Some(v.to_vec()),
            None => {
                // Expired: remove it at the next commit.
                self.write(k, None);
                None
            }
        }
    }

    fn write(&mut self, k: Vec<u8>, v: Option<Vec<u8>>) {
        self.cache.insert(k.clone(), v.clone());
        self.dirty.insert(k, v);
    }

    fn expiry(&self, ttl: Option<u64>) -> Option<Timestamp> {
        ttl.map(|t| {
            self.clock
                .now()
                .saturating_add(t.min(i64::MAX as u64) as i64)
        })
    }

    pub fn value_get(&mut self, key: &[u8], name: &str) -> Option<Vec<u8>> {
        self.read(name_prefix(key, ns::VALUE, name))
    }

    pub fn value_put(&mut self, key: &[u8], name: &str, value: &[u8], ttl: Option<u64>) {
        let v = encode_value(value, self.expiry(ttl));
        self.write(name_prefix(key, ns::VALUE, name), Some(v));
    }

    pub fn value_delete(&mut self, key: &[u8], name: &str) {
        self.write(name_prefix(key, ns::VALUE, name), None);
    }

    fn map_key(key: &[u8], name: &str, map_key: &[u8]) -> Vec<u8> {
        let mut k = name_prefix(key, ns::MAP, name);
        k.extend_from_slice(map_key);
        k
    }

    pub fn map_get(&mut self, key: &[u8], name: &str, map_key: &[u8]) -> Option<Vec<u8>> {
        self.read(Self::map_key(key, name, map_key))
    }

    pub fn map_put(
        &mut self,
        key: &[u8],
        name: &str,
        map_key: &[u8],
        value: &[u8],
        ttl: Option<u64>,
    ) {
        let v = encode_value(value, self.expiry(ttl));
        self.write(Self::map_key(key, name, map_key), Some(v));
    }

    pub fn map_delete(&mut self, key: &[u8], name: &str, map_key: &[u8]) {
        self.write(Self::map_key(key, name, map_key), None);
    }

    /// Entries of a map with `start <= map key < end` (`end` empty: to the end of the map):
    /// the store's entries overlaid with the changes not yet committed.
    pub fn map_range(
        &mut self,
        key: &[u8],
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let prefix = name_prefix(key, ns::MAP, name);
        let from = Self::map_key(key, name, start);
        let to = if end.is_empty() {
            next_prefix(&prefix)
        } else {
            Self::map_key(key, name, end)
        };
        let limit = limit as usize;
        // Overlay: uncommitted changes win over the store.
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let deleted_or_written = self.dirty.range(from.clone()..to.clone()).count()
            + self.pending.range(from.clone()..to.clone()).count();
        match self
            .store
            .range(&from, &to, limit.saturating_add(deleted_or_written))
        {
            Ok(entries) => merged.extend(entries.into_iter().map(|(k, v)| (k, Some(v)))),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        for (k, (_, v)) in self.pending.range(from.clone()..to.clone()) {
            merged.insert(k.clone(), v.clone());
        }
        for (k, v) in self.dirty.range(from..to) {
            merged.insert(k.clone(), v.clone());
        }
        let now = self.clock.now();
        let mut out = Vec::new();
        for (k, v) in merged {
            if out.len() == limit {
                break;
            }
            if let Some(v) = v.as_deref().and_then(|v| decode_value(v, now)) {
                out.push((k[prefix.len()..].to_vec(), v.to_vec()));
            }
        }
        out
    }

    pub fn register_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        let t = Timer {
            domain,
            at,
            key: key.to_vec(),
        };
        self.timers_dirty.insert(timer_key(&t), true);
        self.timers.insert(t);
    }

    pub fn cancel_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        let t = Timer {
            domain,
            at,
            key: key.to_vec(),
        };
        if self.timers.remove(&t) {
            self.timers_dirty.insert(timer_key(&t), false);
        }
    }

    /// Remove and return the timers of `domain` due at `time`, in time order.
    pub fn due_timers(&mut self, domain: TimeDomain, time: Timestamp) -> Vec<Timer> {
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|t| t.domain == domain && t.at <= time)
            .cloned()
            .collect();
        for t in &due {
            self.timers.remove(t);
            self.timers_dirty.insert(timer_key(t), false);
        }
        due
    }

    pub fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// Write the changes since the last commit to the store (topologies without checkpoints).
    pub fn commit(&mut self) -> Result<(), StateError> {
        let (changes, timers) = self.drain()?;
        if !changes.is_empty() {
            self.store.apply(changes)?;
        }
        if !timers.is_empty() {
            self.timer_store.apply(timers)?;
        }
        self.trim_cache();
        Ok(())
    }

    fn drain(&mut self) -> Result<(Vec<Change>, Vec<Change>), StateError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let changes: Vec<_> = std::mem::take(&mut self.dirty).into_iter().collect();
        let timers: Vec<_> = std::mem::take(&mut self.timers_dirty)
            .into_iter()
            .map(|(k, live)| (k, live.then(Vec::new)))
            .collect();
        Ok((changes, timers))
    }

    fn trim_cache(&mut self) {
        if self.cache.len() > CACHE_LIMIT {
            let pending = &self.pending;
            self.cache.retain(|k, _| pending.contains_key(k));
        }
    }

    /// The changes since the last checkpoint, for checkpoint `id` (keys as stored). Until
    /// [`KeyedState::checkpoint_done`] says the checkpoint is durable they are still read from
    /// memory.
    pub fn take_changes(&mut self, id: u64) -> Result<Vec<Change>, StateError> {
        let (changes, timers) = self.drain()?;
        let mut out = Vec::with_capacity(changes.len() + timers.len());
        for (k, v) in changes {
            out.push((self.store.full_key(&k), v.clone()));
            self.pending.insert(k, (id, v));
        }
        out.extend(
            timers
                .into_iter()
                .map(|(k, v)| (self.timer_store.full_key(&k), v)),
        );
        Ok(out)
    }

    /// Checkpoints up to `id` are in the store.
    pub fn checkpoint_done(&mut self, id: u64) {
        self.pending.retain(|_, (c, _)| *c > id);
        self.trim_cache();
    }
}

/// The smallest key greater than every key starting with `prefix`.
fn next_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return p;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn state(dir: &Path, clock: Arc<ManualClock>) -> KeyedState {
        let db = StateDb::open(dir).unwrap();
        KeyedState::open(
            "op",
            db.tree("op", "state").unwrap(),
            db.tree("op", "timers").unwrap(),
            clock,
            0..crate::edge::KEY_GROUPS,
        )
        .unwrap()
    }

    #[test]
    fn map_range_merges_committed_and_pending_changes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(0);
        let mut s = state(dir.path(), clock.clone());
        for k in [b"a", b"b", b"c", b"d"] {
            s.map_put(b"user", "m", k, k, None);
        }
        s.map_put(b"other", "m", b"a", b"x", None);
        s.commit().unwrap();
        s.map_delete(b"user", "m", b"b");
        s.map_put(b"user", "m", b"bb", b"new", None);
        let got = s.map_range(b"user", "m", b"b", b"d", 10);
        assert_eq!(
            got,
            vec![
                (b"bb".to_vec(), b"new".to_vec()),
                (b"c".to_vec(), b"c".to_vec())
            ]
        );
        let all = s.map_range(b"user", "m", b"", b"", 10);
        assert_eq!(all.len(), 4);
        assert_eq!(s.map_range(b"user", "m", b"", b"", 2).len(), 2);
    }

    #[test]
    fn ttl_expires_and_state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1000);
        {
            let mut s = state(dir.path(), clock.clone());
            s.value_put(b"k", "v", b"1", Some(500));
            s.value_put(b"k", "forever", b"2", None);
            s.register_timer(b"k", TimeDomain::EventTime, 42);
            s.commit().unwrap();
        }
        let mut s = state(dir.path(), clock.clone());
        assert_eq!(s.value_get(b"k", "v"), Some(b"1".to_vec()));
        assert_eq!(s.due_timers(TimeDomain::EventTime, 100).len(), 1);
        clock.set(1500);
        assert_eq!(s.value_get(b"k", "v"), None);
        assert_eq!(s.value_get(b"k", "forever"), Some(b"2".to_vec()));
    }

    #[test]
    fn a_foreign_state_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert("flowlet.format", "flowlet-state-0").unwrap();
            db.flush().unwrap();
        }
        let err = StateDb::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("incompatible"), "{err}");
    }
}
