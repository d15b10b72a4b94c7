//! Keyed state: a persistent [`Store`] (sled) under an in-memory layer.
//!
//! Every stored key starts with the key group of the user key (2 bytes, big-endian), so that
//! the state of a key group is one contiguous range that can later move with a Kafka
//! partition; then the user key (length-prefixed) and a namespace (value state, map state,
//! window contents). Operators read and write the in-memory layer; its changes reach the store
//! as one atomic batch at commit points (every `state.commit-interval` and at the end of a run).

use std::collections::{BTreeMap, BTreeSet};
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
        "the state directory {dir} is in use by another flowlet: {holder}; stop that one first, or give this topology its own `state.dir` (or `name`)"
    )]
    Locked { dir: PathBuf, holder: String },
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
    #[error(
        "cannot write the state in {dir}: {message}; fix the cause (free space, a writable disk) and run again"
    )]
    Write { dir: PathBuf, message: String },
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

/// The state format this flowlet writes; a database with another is refused. Format 4 is the
/// key layout of format 3 in redb instead of sled (savepoint files carry the entries, so a
/// savepoint of a format-3 flowlet starts this one).
pub const STATE_FORMAT: &str = "flowlet-state-4";

/// A change to a stored key: a put (`Some`) or a delete (`None`).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// The database file in a state directory.
pub const STATE_FILE: &str = "state.redb";

/// Every stored entry: operator state under [`OPERATOR_PREFIX`], checkpoint records under
/// [`META_PREFIX`].
const DATA: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("data");
/// The format marker.
const FORMAT: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("flowlet");

/// A topology's state database: one redb file, one table, so that a checkpoint — the state
/// changes of every operator, the source positions and the checkpoint record — is one
/// transaction. Each operator's keys start with its name (see [`StateDb::tree`]); the
/// checkpoint record lives under [`META_PREFIX`].
///
/// Why redb (not sled, which flowlet used until state format 3): a redb commit is atomic and
/// durable or it fails, and after a failed write (a full disk) the database refuses every
/// further write until it is opened again, when it is exactly the last committed transaction.
/// sled 0.34 applied a failed batch partly in memory, where a later flush could make it
/// durable, and its flush could hang after an I/O error: a full disk broke exactly-once.
///
/// Writes are fail-stop here too: the first failed write is remembered, and every later one
/// reports it without touching the file.
#[derive(Clone)]
pub struct StateDb {
    inner: Arc<DbInner>,
}

struct DbInner {
    db: redb::Database,
    dir: PathBuf,
    /// The first write that failed (the database is not written again by this process).
    failed: Mutex<Option<String>>,
}

/// Keys of operator state start with this byte; checkpoint records with [`META_PREFIX`].
const OPERATOR_PREFIX: u8 = b'o';
/// Checkpoint records, savepoint markers and the like.
pub const META_PREFIX: u8 = b'm';

impl StateDb {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        // Messages name the directory absolutely: "in state" says little in a log.
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let dir = absolute.as_path();
        let open = |message: String| StateError::Open {
            dir: dir.to_owned(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open(e.to_string()))?;
        let file = dir.join(STATE_FILE);
        if !file.exists() && dir.join("conf").is_file() && dir.join("db").is_file() {
            return Err(StateError::Format {
                dir: dir.to_owned(),
                found: "flowlet-state-3 (sled)".into(),
                expected: format!(
                    "{STATE_FORMAT}; to keep that state, take a savepoint of it with the flowlet that wrote it and start this one with --from-savepoint FILE, or start afresh with --from-scratch"
                ),
            });
        }
        if !file.exists() {
            create_atomically(dir, &file).map_err(|e| open(format!("cannot create it: {e}")))?;
        }
        let db = redb::Database::builder()
            .set_cache_size(64 << 20)
            .open(&file)
            .map_err(|e| {
                open(match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        "it is open in another process (is the topology running?)".into()
                    }
                    e => format!("{e} (if the file was damaged, start again with --from-scratch)"),
                })
            })?;
        let this = Self {
            inner: Arc::new(DbInner {
                db,
                dir: dir.to_owned(),
                failed: Mutex::new(None),
            }),
        };
        let found = this.read(|tx| {
            let Some(t) = open_table(tx, FORMAT)? else {
                return Ok(None);
            };
            Ok(t.get("format")?.map(|v| v.value().to_owned()))
        })?;
        match found {
            None => {
                return Err(StateError::Format {
                    dir: dir.to_owned(),
                    found: "none (a redb file flowlet did not make)".into(),
                    expected: STATE_FORMAT.into(),
                });
            }
            Some(v) if v == STATE_FORMAT => {}
            Some(v) => {
                return Err(StateError::Format {
                    dir: dir.to_owned(),
                    found: v,
                    expected: STATE_FORMAT.into(),
                });
            }
        }
        Ok(this)
    }

    /// Run `f` in a read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StateError> {
        use redb::ReadableDatabase;
        let tx = self.inner.db.begin_read().map_err(|e| self.read_error(e))?;
        f(&tx).map_err(|e| self.read_error(e))
    }

    /// Run `f` in a write transaction and commit it durably; fail-stop (see the type).
    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StateError> {
        let mut failed = self.inner.failed.lock().expect("state db lock");
        if let Some(first) = &*failed {
            return Err(self.write_error(first.clone()));
        }
        let result = (|| -> Result<(), redb::Error> {
            let tx = self.inner.db.begin_write()?;
            f(&tx)?;
            tx.commit()?;
            Ok(())
        })();
        result.map_err(|e| {
            let message = e.to_string();
            *failed = Some(message.clone());
            self.write_error(message)
        })
    }

    fn write_error(&self, message: String) -> StateError {
        StateError::Write {
            dir: self.inner.dir.clone(),
            message,
        }
    }

    fn read_error(&self, e: impl Into<redb::Error>) -> StateError {
        StateError::Open {
            dir: self.inner.dir.clone(),
            message: format!("cannot read it: {}", e.into()),
        }
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
        Ok(Arc::new(OperatorStore {
            db: self.clone(),
            prefix: Self::prefix(name, suffix),
            operator: name.into(),
        }))
    }

    /// Overwrite the format marker (tests of the incompatible-format error).
    #[doc(hidden)]
    pub fn set_format_for_tests(&self, format: &str) -> Result<(), StateError> {
        self.write(|tx| {
            tx.open_table(FORMAT)?.insert("format", format)?;
            Ok(())
        })
    }

    /// Read a record of the topology (checkpoint metadata).
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.get(&Self::meta_key(name))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.read(|tx| {
            let Some(t) = open_table(tx, DATA)? else {
                return Ok(None);
            };
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        })
    }

    /// Entries with `start <= key < end` (full keys), in order, at most `limit`.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StateError> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.read(|tx| {
            let Some(t) = open_table(tx, DATA)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in t.range(start..end)?.take(limit) {
                let (k, v) = entry?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// The records whose names start with `prefix`, as (rest of the name, value).
    pub fn metas_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let key = Self::meta_key(prefix);
        let entries = self.range(&key, &next_prefix(&key), usize::MAX)?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[key.len()..]).into_owned(), v))
            .collect())
    }

    /// The key of record `name` (for a change in [`StateDb::apply`]).
    pub fn meta_key(name: &str) -> Vec<u8> {
        let mut k = vec![META_PREFIX];
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// Whether anything but checkpoint records is stored.
    pub fn has_operator_state(&self) -> Result<bool, StateError> {
        Ok(!self
            .range(&[OPERATOR_PREFIX], &[OPERATOR_PREFIX + 1], 1)?
            .is_empty())
    }

    /// Apply changes (keys from [`Store::full_key`] or [`StateDb::meta_key`]) as one atomic
    /// transaction, durable when this returns Ok. After a failure nothing more is written.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(), StateError> {
        self.write(|tx| {
            let mut t = tx.open_table(DATA)?;
            for (k, v) in &changes {
                match v {
                    Some(v) => {
                        t.insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        t.remove(k.as_slice())?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Call `f` with every stored entry, in key order (savepoints), a chunk at a time.
    pub fn for_each_entry(
        &self,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut from: Vec<u8> = Vec::new();
        loop {
            // Chunks of entries, so that a large state is not copied into memory at once.
            let chunk = self
                .read(|tx| {
                    let Some(t) = open_table(tx, DATA)? else {
                        return Ok(Vec::new());
                    };
                    let mut out = Vec::new();
                    let mut bytes = 0;
                    for entry in t.range(from.as_slice()..)? {
                        let (k, v) = entry?;
                        if k.value() == from.as_slice() && !from.is_empty() {
                            continue;
                        }
                        bytes += k.value().len() + v.value().len();
                        out.push((k.value().to_vec(), v.value().to_vec()));
                        if bytes > 16 << 20 {
                            break;
                        }
                    }
                    Ok(out)
                })
                .map_err(|e| e.to_string())?;
            let Some((last, _)) = chunk.last() else {
                return Ok(());
            };
            from = last.clone();
            for (k, v) in &chunk {
                f(k, v)?;
            }
        }
    }

    /// Every write is durable once it returns (redb commits with fsync); this reports a write
    /// that failed earlier, if any.
    pub fn flush(&self) -> Result<(), StateError> {
        match &*self.inner.failed.lock().expect("state db lock") {
            Some(first) => Err(self.write_error(first.clone())),
            None => Ok(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::metadata(self.inner.dir.join(STATE_FILE)).map_or(0, |m| m.len())
    }
}

/// Create a new database at `file`, with its format marker, in one step: it is made as
/// `state.redb.new` and renamed into place once complete and durable, so that a crash (or a
/// full disk) while it is being made never leaves a half-made database behind (redb's own
/// creation is not atomic: a `kill -9` in it left a file redb refused to open).
fn create_atomically(dir: &Path, file: &Path) -> Result<(), String> {
    let tmp = file.with_extension("redb.new");
    // A leftover of a crash while creating: it held nothing yet.
    let _ = std::fs::remove_file(&tmp);
    let made = (|| -> Result<(), redb::Error> {
        let db = redb::Database::create(&tmp)?;
        let tx = db.begin_write()?;
        tx.open_table(FORMAT)?.insert("format", STATE_FORMAT)?;
        tx.open_table(DATA)?;
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.to_string());
    }
    std::fs::rename(&tmp, file).map_err(|e| e.to_string())?;
    // The rename is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| e.to_string())
}

/// `def`'s table in a read transaction; `None` when it was never created.
fn open_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    def: redb::TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::Error> {
    match tx.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One operator's part of the database (its keys start with its prefix).
struct OperatorStore {
    db: StateDb,
    prefix: Vec<u8>,
    operator: String,
}

impl OperatorStore {
    fn err(&self, e: StateError) -> StateError {
        match e {
            // A write error names the directory and the cause; keep it as it is.
            e @ StateError::Write { .. } => e,
            e => StateError::Io {
                operator: self.operator.clone(),
                message: e.to_string(),
            },
        }
    }
}

impl Store for OperatorStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db.get(&self.full_key(key)).map_err(|e| self.err(e))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Entries, StateError> {
        let n = self.prefix.len();
        let entries = self
            .db
            .range(&self.full_key(start), &self.full_key(end), limit)
            .map_err(|e| self.err(e))?;
        Ok(entries
            .into_iter()
            .map(|(mut k, v)| {
                k.drain(..n);
                (k, v)
            })
            .collect())
    }

    fn apply(&self, changes: Vec<Change>) -> Result<(), StateError> {
        let started = std::time::Instant::now();
        let n = changes.len();
        let full = changes
            .into_iter()
            .map(|(k, v)| (self.full_key(&k), v))
            .collect();
        self.db.apply(full).map_err(|e| self.err(e))?;
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

pub use flowlet_operator::{TimeDomain, Timer};

/// The keyed state of one operator instance, held in memory and persisted per key group.
///
/// Like Flink's heap state backend, the authoritative copy is an ordered map in memory (the
/// instance's key groups only); the store holds one blob per key group, rewritten when the
/// group changed. A checkpoint of a million changed keys is therefore 128 writes, not a million
/// (sled costs 10–19 µs per entry), and recovery reads 128 blobs. The price is that an
/// instance's state must fit in memory.
pub struct GroupedStore {
    persist: Arc<dyn Store>,
    operator: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    dirty: BTreeSet<u16>,
    /// While a plugin is on probation after a hot swap: the previous value of every entry
    /// changed since the journal started (first change only), so that a failed call can be
    /// undone before the previous plugin handles the batch again.
    journal: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

fn group_of(key: &[u8]) -> u16 {
    u16::from_be_bytes([
        key.first().copied().unwrap_or(0),
        key.get(1).copied().unwrap_or(0),
    ])
}

impl GroupedStore {
    /// Load the blobs of `groups` (each stored under its 2-byte group number).
    pub fn open(
        operator: &str,
        persist: Arc<dyn Store>,
        groups: std::ops::Range<u32>,
    ) -> Result<Self, StateError> {
        let mut map = BTreeMap::new();
        let start = (groups.start as u16).to_be_bytes();
        let end = (groups.end as u16).to_be_bytes();
        let corrupt = || StateError::Corrupt {
            operator: operator.into(),
            message: "a key group's state is truncated".into(),
        };
        for (k, blob) in persist.range(&start, &end, usize::MAX)? {
            if k.len() != 2 {
                continue;
            }
            let mut b = &blob[..];
            while !b.is_empty() {
                let mut field = || -> Option<Vec<u8>> {
                    let n = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
                    let v = b.get(4..4 + n)?.to_vec();
                    b = &b[4 + n..];
                    Some(v)
                };
                let key = field().ok_or_else(corrupt)?;
                let value = field().ok_or_else(corrupt)?;
                map.insert(key, value);
            }
        }
        Ok(Self {
            persist,
            operator: operator.into(),
            map,
            dirty: BTreeSet::new(),
            journal: None,
        })
    }

    pub fn get(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.map.get(key)
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.dirty.insert(group_of(&key));
        match &mut self.journal {
            // Only a plugin on probation pays for the journal's copy of the key.
            Some(j) => {
                let old = self.map.insert(key.clone(), value);
                j.entry(key).or_insert(old);
            }
            None => {
                self.map.insert(key, value);
            }
        }
    }

    pub fn delete(&mut self, key: &[u8]) {
        if let Some(old) = self.map.remove(key) {
            self.dirty.insert(group_of(key));
            if let Some(j) = &mut self.journal {
                j.entry(key.to_vec()).or_insert(Some(old));
            }
        }
    }

    /// Start recording how to undo the changes from here on (see [`Self::undo`]).
    pub fn begin_journal(&mut self) {
        self.journal = Some(BTreeMap::new());
    }

    /// Stop recording; the changes stand.
    pub fn end_journal(&mut self) {
        self.journal = None;
    }

    /// Undo every change since [`Self::begin_journal`] and stop recording. Returns the keys
    /// whose presence changed back (`true`: present again).
    pub fn undo(&mut self) -> Vec<(Vec<u8>, bool)> {
        let Some(j) = self.journal.take() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(j.len());
        for (k, old) in j {
            self.dirty.insert(group_of(&k));
            let present = old.is_some();
            match old {
                Some(v) => self.map.insert(k.clone(), v),
                None => self.map.remove(&k),
            };
            out.push((k, present));
        }
        out
    }

    pub fn range(
        &self,
        from: Vec<u8>,
        to: Vec<u8>,
    ) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> + '_ {
        self.map.range(from..to)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The blobs of the groups changed since the last call (keys as stored).
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.dirty.len());
        for g in std::mem::take(&mut self.dirty) {
            let from = g.to_be_bytes().to_vec();
            let to = (u32::from(g) + 1).to_be_bytes()[2..].to_vec();
            let range: Box<dyn Iterator<Item = _>> = if g == u16::MAX {
                Box::new(self.map.range(from..))
            } else {
                Box::new(self.map.range(from..to))
            };
            let mut blob = Vec::new();
            for (k, v) in range {
                blob.extend_from_slice(&(k.len() as u32).to_be_bytes());
                blob.extend_from_slice(k);
                blob.extend_from_slice(&(v.len() as u32).to_be_bytes());
                blob.extend_from_slice(v);
            }
            let key = self.persist.full_key(&g.to_be_bytes());
            out.push((key, (!blob.is_empty()).then_some(blob)));
        }
        out
    }

    /// Write the changed groups to the store now (topologies without checkpoints).
    pub fn commit(&mut self) -> Result<(), StateError> {
        let changes = self.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let n = self.persist.full_key(&[]).len();
        let relative = changes
            .into_iter()
            .map(|(k, v)| (k[n..].to_vec(), v))
            .collect();
        self.persist.apply(relative).map_err(|e| match e {
            StateError::Io { message, .. } => StateError::Io {
                operator: self.operator.clone(),
                message,
            },
            e => e,
        })
    }
}

/// The state and timers host functions' view of one operator instance: its keyed state, its
/// timers and its clocks.
pub struct KeyedState {
    store: GroupedStore,
    timer_store: GroupedStore,
    clock: Arc<dyn Clock>,
    timers: BTreeSet<Timer>,
    pub watermark: Timestamp,
    /// The first store error; reported by the operator task after the call.
    pub error: Option<StateError>,
}

/// Shared between an operator task and its instance's host functions.
pub type StateHandle = Arc<Mutex<KeyedState>>;

fn timer_key(t: &Timer) -> Vec<u8> {
    let mut k = Vec::with_capacity(t.key.len() + 16);
    k.extend_from_slice(&(key_group(&t.key) as u16).to_be_bytes());
    k.push(t.domain as u8);
    k.extend_from_slice(&ts_bytes(t.at));
    k.extend_from_slice(&t.key);
    k
}

fn timer_from_key(k: &[u8]) -> Option<Timer> {
    let domain = match k.get(2)? {
        0 => TimeDomain::EventTime,
        1 => TimeDomain::ProcessingTime,
        _ => return None,
    };
    Some(Timer {
        domain,
        at: ts_from(k.get(3..)?)?,
        key: k.get(11..)?.to_vec(),
    })
}

/// One entry of a key's state, as a state query shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyEntry {
    /// `value` or `map`.
    pub kind: &'static str,
    /// The state's name (as the operator gave it).
    pub name: String,
    /// For map state: the map key.
    pub map_key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The value and map state of `key` in `store`.
pub(crate) fn entries_of(store: &GroupedStore, key: &[u8], now: Timestamp) -> Vec<KeyEntry> {
    let prefix = key_prefix(key, ns::MAP);
    let base = &prefix[..prefix.len() - 1];
    store
        .range(base.to_vec(), next_prefix(base))
        .filter_map(|(k, v)| entry(&k[base.len()..], v, now))
        .collect()
}

/// An entry from what follows the key in a stored key (`rest`: namespace, name, map key) and
/// its stored value; `None` for timers, expired or unreadable entries.
fn entry(rest: &[u8], v: &[u8], now: Timestamp) -> Option<KeyEntry> {
    let (kind, rest) = match rest.split_first() {
        Some((&ns::VALUE, r)) => ("value", r),
        Some((&ns::MAP, r)) => ("map", r),
        _ => return None,
    };
    let n = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
    let name = rest.get(2..2 + n)?;
    let value = decode_value(v, now)?;
    Some(KeyEntry {
        kind,
        name: String::from_utf8_lossy(name).into_owned(),
        map_key: (kind == "map").then(|| rest[2 + n..].to_vec()),
        value: value.to_vec(),
    })
}

/// Every key's value and map state of operator `operator` in `db`, by key (what `flowlet test
/// --expect-state` compares after a run).
pub fn stored_state(
    db: &StateDb,
    operator: &str,
    now: Timestamp,
) -> Result<Vec<(Vec<u8>, KeyEntry)>, StateError> {
    let store = GroupedStore::open(
        operator,
        db.tree(operator, "state")?,
        0..crate::edge::KEY_GROUPS,
    )?;
    let mut out = Vec::new();
    for (k, v) in store.range(Vec::new(), vec![0xff; 3]) {
        // group (2 bytes), key length (4), key, then the entry's own part
        let Some(n) = k
            .get(2..6)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4")) as usize)
        else {
            continue;
        };
        let (Some(key), Some(rest)) = (k.get(6..6 + n), k.get(6 + n..)) else {
            continue;
        };
        if let Some(e) = entry(rest, v, now) {
            out.push((key.to_vec(), e));
        }
    }
    out.sort_by(|a, b| (&a.0, &a.1.name, &a.1.map_key).cmp(&(&b.0, &b.1.name, &b.1.map_key)));
    Ok(out)
}

/// The state of `key` of operator `operator` as of the last checkpoint (or commit) in `db`:
/// what a state query answers while the topology is not running or recovers.
pub fn stored_entries_of(
    db: &StateDb,
    operator: &str,
    key: &[u8],
    now: Timestamp,
) -> Result<Vec<KeyEntry>, StateError> {
    let g = key_group(key);
    let store = GroupedStore::open(operator, db.tree(operator, "state")?, g..g + 1)?;
    Ok(entries_of(&store, key, now))
}

impl KeyedState {
    /// The state of `operator` for the key groups in `groups`.
    pub fn open(
        operator: &str,
        store: Arc<dyn Store>,
        timer_store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        groups: std::ops::Range<u32>,
    ) -> Result<Self, StateError> {
        let timer_store = GroupedStore::open(operator, timer_store, groups.clone())?;
        let mut timers = BTreeSet::new();
        for (k, _) in timer_store.range(Vec::new(), vec![0xff; 3]) {
            let t = timer_from_key(k).ok_or_else(|| StateError::Corrupt {
                operator: operator.into(),
                message: "a timer entry is malformed".into(),
            })?;
            timers.insert(t);
        }
        Ok(Self {
            store: GroupedStore::open(operator, store, groups)?,
            timer_store,
            clock,
            timers,
            watermark: Timestamp::MIN,
            error: None,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn read(&mut self, k: Vec<u8>) -> Option<Vec<u8>> {
        let now = self.clock.now();
        let stored = self.store.get(&k)?;
        match decode_value(stored, now) {
            Some(v) => Some(v.to_vec()),
            None => {
                // Expired: gone from the next checkpoint on.
                self.store.delete(&k);
                None
            }
        }
    }

    fn write(&mut self, k: Vec<u8>, v: Option<Vec<u8>>) {
        match v {
            Some(v) => self.store.put(k, v),
            None => self.store.delete(&k),
        }
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

    /// Entries of a map with `start <= map key < end` (`end` empty: to the end of the map).
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
        let now = self.clock.now();
        self.store
            .range(from, to)
            .filter_map(|(k, v)| {
                decode_value(v, now).map(|v| (k[prefix.len()..].to_vec(), v.to_vec()))
            })
            .take(limit as usize)
            .collect()
    }

    pub fn register_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        let t = Timer {
            domain,
            at,
            key: key.to_vec(),
        };
        self.timer_store.put(timer_key(&t), Vec::new());
        self.timers.insert(t);
    }

    pub fn cancel_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        let t = Timer {
            domain,
            at,
            key: key.to_vec(),
        };
        if self.timers.remove(&t) {
            self.timer_store.delete(&timer_key(&t));
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
            self.timer_store.delete(&timer_key(t));
        }
        due
    }

    pub fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    /// Record how to undo what the next calls change (a plugin on probation after a swap).
    pub fn begin_journal(&mut self) {
        self.store.begin_journal();
        self.timer_store.begin_journal();
    }

    /// The changes since [`Self::begin_journal`] stand.
    pub fn end_journal(&mut self) {
        self.store.end_journal();
        self.timer_store.end_journal();
    }

    /// Undo the changes since [`Self::begin_journal`]: state, timers registered, cancelled
    /// and fired.
    pub fn undo(&mut self) {
        self.store.undo();
        for (k, present) in self.timer_store.undo() {
            let Some(t) = timer_from_key(&k) else {
                continue;
            };
            if present {
                self.timers.insert(t);
            } else {
                self.timers.remove(&t);
            }
        }
        self.error = None;
    }

    /// Everything stored for `key` (value and map state), expired entries left out.
    pub fn entries_of(&self, key: &[u8]) -> Vec<KeyEntry> {
        entries_of(&self.store, key, self.clock.now())
    }

    /// Write the changes since the last commit to the store (topologies without checkpoints).
    pub fn commit(&mut self) -> Result<(), StateError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.store.commit()?;
        self.timer_store.commit()
    }

    /// The key groups changed since the last checkpoint, as blobs (keys as stored).
    pub fn take_changes(&mut self) -> Result<Vec<Change>, StateError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut out = self.store.take_changes();
        out.extend(self.timer_store.take_changes());
        Ok(out)
    }
}

/// The host's `state` and `timers` capabilities call these.
impl flowlet_operator::KeyedStateAccess for KeyedState {
    fn value_get(&mut self, key: &[u8], name: &str) -> Option<Vec<u8>> {
        KeyedState::value_get(self, key, name)
    }
    fn value_put(&mut self, key: &[u8], name: &str, value: &[u8], ttl: Option<u64>) {
        KeyedState::value_put(self, key, name, value, ttl);
    }
    fn value_delete(&mut self, key: &[u8], name: &str) {
        KeyedState::value_delete(self, key, name);
    }
    fn map_get(&mut self, key: &[u8], name: &str, map_key: &[u8]) -> Option<Vec<u8>> {
        KeyedState::map_get(self, key, name, map_key)
    }
    fn map_put(&mut self, key: &[u8], name: &str, map_key: &[u8], value: &[u8], ttl: Option<u64>) {
        KeyedState::map_put(self, key, name, map_key, value, ttl);
    }
    fn map_delete(&mut self, key: &[u8], name: &str, map_key: &[u8]) {
        KeyedState::map_delete(self, key, name, map_key);
    }
    fn map_range(
        &mut self,
        key: &[u8],
        name: &str,
        start: &[u8],
        end: &[u8],
        limit: u32,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        KeyedState::map_range(self, key, name, start, end, limit)
    }
    fn register_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        KeyedState::register_timer(self, key, domain, at);
    }
    fn cancel_timer(&mut self, key: &[u8], domain: TimeDomain, at: Timestamp) {
        KeyedState::cancel_timer(self, key, domain, at);
    }
    fn watermark(&self) -> Timestamp {
        self.watermark
    }
    fn now(&self) -> Timestamp {
        KeyedState::now(self)
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

    /// What a plugin on probation changed is undone when it fails: values, map entries and
    /// timers (registered, cancelled and fired); what was changed before the journal stays.
    #[test]
    fn the_journal_undoes_state_and_timers() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state(dir.path(), ManualClock::new(0));
        s.value_put(b"k", "n", b"1", None);
        s.map_put(b"k", "m", b"a", b"x", None);
        s.register_timer(b"k", TimeDomain::EventTime, 10);
        s.register_timer(b"k", TimeDomain::EventTime, 20);
        s.begin_journal();
        s.value_put(b"k", "n", b"2", None);
        s.value_put(b"j", "n", b"new", None);
        s.map_delete(b"k", "m", b"a");
        s.register_timer(b"k", TimeDomain::EventTime, 30);
        s.cancel_timer(b"k", TimeDomain::EventTime, 20);
        assert_eq!(s.due_timers(TimeDomain::EventTime, 15).len(), 1);
        s.undo();
        assert_eq!(s.value_get(b"k", "n"), Some(b"1".to_vec()));
        assert_eq!(s.value_get(b"j", "n"), None);
        assert_eq!(s.map_get(b"k", "m", b"a"), Some(b"x".to_vec()));
        let due: Vec<i64> = s
            .due_timers(TimeDomain::EventTime, 100)
            .iter()
            .map(|t| t.at)
            .collect();
        assert_eq!(due, vec![10, 20]);
        let entries = s.entries_of(b"k");
        assert_eq!(entries.len(), 2, "{entries:?}");
        let value = entries.iter().find(|e| e.kind == "value").unwrap();
        assert_eq!(
            (value.name.as_str(), value.value.as_slice()),
            ("n", &b"1"[..])
        );
        let map = entries.iter().find(|e| e.kind == "map").unwrap();
        assert_eq!(map.map_key.as_deref(), Some(&b"a"[..]));
        // After end_journal, changes stand.
        s.begin_journal();
        s.value_put(b"k", "n", b"3", None);
        s.end_journal();
        s.undo();
        assert_eq!(s.value_get(b"k", "n"), Some(b"3".to_vec()));
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
        StateDb::open(dir.path())
            .unwrap()
            .set_format_for_tests("flowlet-state-0")
            .unwrap();
        let err = StateDb::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("incompatible"), "{err}");
        // A state directory of the sled-based flowlet (format 3).
        let old = tempfile::tempdir().unwrap();
        std::fs::write(old.path().join("conf"), "segment_size: 524288\n").unwrap();
        std::fs::write(old.path().join("db"), [0u8; 64]).unwrap();
        let err = StateDb::open(old.path()).err().unwrap().to_string();
        assert!(
            err.contains("flowlet-state-3 (sled)") && err.contains("--from-savepoint"),
            "{err}"
        );
    }

    /// After a failed write nothing more is written, and every later write says why.
    #[test]
    fn writes_stop_after_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        db.apply(vec![(b"ma".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        *db.inner.failed.lock().unwrap() = Some("No space left on device (os error 28)".into());
        let err = db
            .apply(vec![(b"mb".to_vec(), Some(b"2".to_vec()))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("No space left") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
        assert!(db.flush().is_err());
        assert_eq!(db.get_meta("b").unwrap(), None);
        assert_eq!(db.get_meta("a").unwrap(), Some(b"1".to_vec()));
    }
}
