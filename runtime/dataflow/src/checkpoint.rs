//! Consistent checkpoints (aligned barriers, one atomic write) and recovery.
//!
//! The protocol (docs/CHECKPOINTS.md has the whole story):
//! 1. Every `checkpoint.interval` the coordinator asks the sources for checkpoint `n`. Each
//!    source sends what it has read, then `Barrier(n)` on every output, and reports its
//!    position (bytes of a file, events of a generator, offsets of each Kafka partition).
//! 2. An operator instance that got `Barrier(n)` on one input holds that input's later messages
//!    back until the barrier has come on every open input (under `exactly-once`; under
//!    `at-least-once` it goes on and may count some events twice after a crash). It then hands
//!    its state changes since checkpoint `n-1` and its watermark to the coordinator and
//!    forwards the barrier.
//! 3. Sinks make their output durable up to the barrier (files: flush + fsync, and report
//!    their length; Kafka: flush, and wait for the transaction to commit).
//! 4. When every task has reported `n` (or finished before it), the coordinator writes every
//!    change, every position and the checkpoint record in ONE sled batch. With a Kafka sink
//!    under `exactly-once` this is a two-phase commit with Kafka as the decider (see
//!    `kafka.rs`).
//!
//! Recovery reads the checkpoint record: sources seek to their positions, file sinks truncate
//! to their lengths, operators start from the state in the store (which holds exactly the
//! checkpointed changes) and their checkpointed watermarks.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowlet_manifest::Guarantee;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::state::{Change, StateDb, StateError};
use crate::{DataflowError, Envelope, Message, Stop};

pub use flowlet_operator::CheckpointId;

/// The checkpoint record's name in the store.
pub const RECORD: &str = "checkpoint";
/// A checkpoint written but waiting for the Kafka transaction that decides it (two-phase
/// commit); see `kafka.rs`.
pub const PENDING: &str = "pending";
/// The positions sources have read up to (at-most-once: they resume there, not at the
/// checkpoint).
pub const READ_PREFIX: &str = "read/";

/// What the store says about the last complete checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRecord {
    pub format: String,
    pub id: CheckpointId,
    /// The run (process start) that wrote it.
    pub run: u64,
    pub topology: String,
    /// Milliseconds since the Unix epoch.
    pub taken_at: i64,
    /// What each task needs to resume (by task name: `source`, `operator#0`, `sink`).
    pub tasks: BTreeMap<String, Value>,
    /// For each run that contributed to this state, the last checkpoint it committed. Kafka
    /// records carry it so that a verifier can tell aborted attempts from committed ones on a
    /// broker that does not hide aborted transactions.
    pub lineage: BTreeMap<u64, CheckpointId>,
}

const RECORD_FORMAT: &str = "flowlet-checkpoint-1";

impl CheckpointRecord {
    /// The record before the first checkpoint of `topology`.
    pub fn empty(topology: &str) -> Self {
        Self {
            format: RECORD_FORMAT.into(),
            topology: topology.into(),
            ..Default::default()
        }
    }

    /// JSON followed by its xxh3 checksum (8 bytes), so that a damaged record is noticed.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("a record is JSON");
        let sum = xxhash_rust::xxh3::xxh3_64(&v);
        v.extend_from_slice(&sum.to_be_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 8 {
            return Err("the checkpoint record is truncated".into());
        }
        let (json, sum) = bytes.split_at(bytes.len() - 8);
        if xxhash_rust::xxh3::xxh3_64(json).to_be_bytes() != sum {
            return Err("the checkpoint record does not match its checksum".into());
        }
        let r: Self = serde_json::from_slice(json)
            .map_err(|e| format!("the checkpoint record is unreadable: {e}"))?;
        if r.format != RECORD_FORMAT {
            return Err(format!(
                "the checkpoint record has format `{}`, this flowlet reads `{RECORD_FORMAT}`",
                r.format
            ));
        }
        Ok(r)
    }

    /// The lineage as a header value: `run:checkpoint,…`.
    pub fn lineage_header(&self) -> String {
        self.lineage
            .iter()
            .map(|(r, c)| format!("{r}:{c}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The state a run starts from.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    pub record: Option<CheckpointRecord>,
    /// Read positions of sources (at-most-once).
    pub read: BTreeMap<String, Value>,
}

impl Restored {
    pub fn task(&self, name: &str) -> Option<&Value> {
        self.record.as_ref()?.tasks.get(name)
    }
}

/// Read the last complete checkpoint of `db`. A store with operator state but no checkpoint
/// record, or a damaged record, is an error: starting empty would silently give wrong results.
pub fn restore(db: &StateDb) -> Result<Restored, StateError> {
    let corrupt = |message: String| StateError::Checkpoint {
        dir: db.dir().to_owned(),
        message,
    };
    let record = match db.get_meta(RECORD)? {
        None => {
            if db.has_operator_state()? || db.get_meta(PENDING)?.is_some() {
                return Err(corrupt(
                    "it holds state but no complete checkpoint record (it was damaged, or written by a run without `checkpoint:`)".into(),
                ));
            }
            None
        }
        Some(bytes) => Some(CheckpointRecord::decode(&bytes).map_err(corrupt)?),
    };
    let read = db
        .metas_with_prefix(READ_PREFIX)?
        .into_iter()
        .filter_map(|(name, v)| Some((name, serde_json::from_slice(&v).ok()?)))
        .collect();
    Ok(Restored { record, read })
}

/// What a task tells the coordinator.
#[derive(Debug)]
pub(crate) enum Report {
    /// Task `task` passed barrier `id`: its changes since its last report and what it needs to
    /// resume.
    Snapshot {
        task: usize,
        id: CheckpointId,
        changes: Vec<Change>,
        meta: Option<Value>,
    },
    /// Task `task` ended cleanly: its last changes.
    Finished {
        task: usize,
        changes: Vec<Change>,
        meta: Option<Value>,
    },
}

/// What the coordinator publishes when a checkpoint is complete.
#[derive(Debug, Clone, Default)]
pub struct Completed {
    pub id: CheckpointId,
    /// [`CheckpointRecord::lineage_header`] of it.
    pub lineage: Arc<str>,
}

/// A task's side of checkpointing.
#[derive(Clone)]
pub(crate) struct TaskCheckpoints {
    pub task: usize,
    pub name: String,
    pub guarantee: Guarantee,
    /// Where the task reports barriers passed and snapshots to the coordinator.
    pub reports: mpsc::UnboundedSender<Report>,
    pub completed: watch::Receiver<Completed>,
    pub trigger: watch::Receiver<CheckpointId>,
    /// What this task saved in the checkpoint it starts from.
    pub restored: Option<Value>,
    /// Where a source had read up to (at-most-once).
    pub read: Option<Value>,
    pub run: u64,
    pub db: StateDb,
}

impl TaskCheckpoints {
    /// Note, durably, how far a source has read (at-most-once resumes there): before the
    /// events go out. When that fails they must not go out (a restart would read them again).
    pub fn note_read(&self, position: &Value) -> Result<(), StateError> {
        let key = StateDb::meta_key(&format!("{READ_PREFIX}{}", self.name));
        let value = serde_json::to_vec(position).expect("a position is JSON");
        self.db.apply(vec![(key, Some(value))])
    }

    /// Where a source resumes: its read position under at-most-once, else the checkpoint's.
    pub fn resume_at(&self) -> Option<&Value> {
        match self.guarantee {
            Guarantee::AtMostOnce => self.read.as_ref().or(self.restored.as_ref()),
            _ => self.restored.as_ref(),
        }
    }
    pub fn snapshot(&self, id: CheckpointId, changes: Vec<Change>, meta: Option<Value>) {
        let _ = self.reports.send(Report::Snapshot {
            task: self.task,
            id,
            changes,
            meta,
        });
    }

    pub fn finished(&self, changes: Vec<Change>, meta: Option<Value>) {
        let _ = self.reports.send(Report::Finished {
            task: self.task,
            changes,
            meta,
        });
    }

    /// Block (on a blocking thread) until checkpoint `id` is complete. False if the
    /// coordinator is gone (the run is failing).
    pub fn wait_completed(&mut self, id: CheckpointId) -> bool {
        let mut rx = self.completed.clone();
        let handle = tokio::runtime::Handle::current();
        handle.block_on(rx.wait_for(|c| c.id >= id)).is_ok()
    }
}

/// An operator's or sink's inputs, with barrier alignment: after `Barrier(n)` on an input,
/// that input's messages wait (exactly-once) until the barrier has arrived on every open
/// input; then the barrier is handed to the task once.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Envelope>,
    align: bool,
    barrier: Option<CheckpointId>,
    arrived: Vec<bool>,
    ended: Vec<bool>,
    held: VecDeque<Envelope>,
    release: VecDeque<Envelope>,
}

impl Inbox {
    pub fn new(rx: mpsc::Receiver<Envelope>, inputs: usize, guarantee: Guarantee) -> Self {
        Self {
            rx,
            align: guarantee == Guarantee::ExactlyOnce,
            barrier: None,
            arrived: vec![false; inputs],
            ended: vec![false; inputs],
            held: VecDeque::new(),
            release: VecDeque::new(),
        }
    }

    fn aligned(&self) -> bool {
        self.arrived.iter().zip(&self.ended).all(|(a, e)| *a || *e)
    }

    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.release.is_empty() && self.rx.is_empty()
    }

    /// The next message to handle (from a blocking thread); `None` when every producer is gone.
    pub fn next_blocking(&mut self) -> Option<Envelope> {
        loop {
            if let Some(id) = self.barrier
                && self.aligned()
            {
                self.barrier = None;
                self.arrived.iter_mut().for_each(|a| *a = false);
                // What was held back follows the barrier.
                let mut held = std::mem::take(&mut self.held);
                held.append(&mut self.release);
                self.release = held;
                return Some(Envelope {
                    input: usize::MAX,
                    message: Message::Barrier(id),
                });
            }
            let env = match self.release.pop_front() {
                Some(env) => env,
                None => self.rx.blocking_recv()?,
            };
            let input = env.input;
            if input >= self.arrived.len() {
                return Some(env); // ticks
            }
            if self.barrier.is_some() && self.arrived[input] && self.align {
                self.held.push_back(env);
                continue;
            }
            match env.message {
                Message::Barrier(id) => {
                    self.barrier = Some(id);
                    self.arrived[input] = true;
                }
                Message::End => {
                    self.ended[input] = true;
                    return Some(env);
                }
                _ => return Some(env),
            }
        }
    }
}

/// A request for a savepoint.
pub struct SavepointRequest {
    /// Stop the topology once it is taken.
    pub stop: bool,
    /// Where to write it (default: `<state dir>/savepoints/savepoint-<id>.flowlet`).
    pub path: Option<PathBuf>,
    pub reply: oneshot::Sender<Result<PathBuf, String>>,
}

/// The deciding side of a two-phase commit: a transaction spanning the sinks (Kafka's, in the
/// connectors crate), or a follower told of each checkpoint once it is written.
pub trait Committer: Send + Sync {
    /// Commit the open transaction, with the source offsets of `record` marked as belonging to
    /// checkpoint `record.id`, then open the next one.
    fn commit(&mut self, record: &CheckpointRecord) -> Result<(), String>;

    /// Whether this is not a decider but a follower: called after the checkpoint is written
    /// (committing offsets to consumer groups for monitoring).
    fn after_write(&self) -> bool {
        false
    }

    /// After a crash between the two phases: whether the transaction of `record` committed
    /// (the checkpoint is then completed, else dropped and its input read again). Called
    /// before anything is read, on a decider only. May block (waiting for the system).
    fn decided(&self, record: &CheckpointRecord) -> Result<bool, String> {
        let _ = record;
        Ok(false)
    }
}

/// A checkpoint a crash left between the two phases (`pending`) is decided by `committer`,
/// before anything is read: completed if its transaction committed, else dropped — either way
/// the state and the sinks' output agree.
pub fn resolve_pending(
    db: &StateDb,
    committer: Option<&dyn Committer>,
) -> Result<(), DataflowError> {
    let Some(pending) = db.get_meta(PENDING)? else {
        return Ok(());
    };
    let damaged = |message: &str| StateError::Checkpoint {
        dir: db.dir().to_owned(),
        message: message.into(),
    };
    let Some(committer) = committer.filter(|c| !c.after_write()) else {
        return Err(damaged("a checkpoint is waiting for the outcome of its transaction, and this topology has no transactional sink any more (an exactly-once Kafka sink); run it once with the previous manifest").into());
    };
    let Some((record, mut changes)) = decode_pending(&pending) else {
        return Err(damaged(
            "the checkpoint waiting for the outcome of its transaction is damaged",
        )
        .into());
    };
    let committed = committer
        .decided(&record)
        .map_err(|message| DataflowError::Checkpoint {
            checkpoint: record.id,
            message,
        })?;
    if committed {
        tracing::info!(
            checkpoint = record.id,
            "the transaction of checkpoint {} committed before the crash: completing it",
            record.id
        );
        changes.push((StateDb::meta_key(PENDING), None));
        db.apply(changes)?;
    } else {
        tracing::info!(
            checkpoint = record.id,
            "the transaction of checkpoint {} did not commit: it is dropped and its input read again",
            record.id
        );
        db.apply(vec![(StateDb::meta_key(PENDING), None)])?;
    }
    Ok(())
}

/// What the coordinator needs.
pub(crate) struct Coordinator {
    pub db: StateDb,
    pub tasks: Vec<String>,
    pub interval: Duration,
    pub reports: mpsc::UnboundedReceiver<Report>,
    pub trigger: watch::Sender<CheckpointId>,
    pub completed: watch::Sender<Completed>,
    pub savepoints: mpsc::Receiver<SavepointRequest>,
    pub stop: Arc<Stop>,
    pub record: CheckpointRecord,
    pub committer: Option<Box<dyn Committer>>,
    pub counters: Arc<crate::NodeCounters>,
    /// Hot swaps to arm for the next barrier.
    pub arms: mpsc::UnboundedReceiver<crate::swap::ArmRequest>,
}

/// What the coordinator keeps track of while the tasks run.
struct Progress {
    /// Each task's reports, not yet collected into a checkpoint.
    queues: Vec<VecDeque<Report>>,
    /// Which tasks have ended cleanly (and been collected).
    done: Vec<bool>,
    /// The checkpoint triggered and not yet written, and when it was triggered.
    in_flight: Option<(CheckpointId, Instant)>,
    /// Savepoints to export once the checkpoint in flight (or the next) is written.
    waiting: Vec<SavepointRequest>,
    /// Savepoints that stop the topology: exported once the final checkpoint is written.
    stopping: Vec<SavepointRequest>,
    /// A swap armed while a checkpoint is in flight waits for the next one, at once.
    again: bool,
}

impl Progress {
    /// Nothing reported, nothing in flight, for `n` tasks.
    fn new(n: usize) -> Self {
        Self {
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            done: vec![false; n],
            in_flight: None,
            waiting: Vec::new(),
            stopping: Vec::new(),
            again: false,
        }
    }

    /// Whether every task has passed barrier `id` (or ended).
    fn complete(&self, id: CheckpointId) -> bool {
        (0..self.queues.len()).all(|t| {
            self.done[t]
                || self.queues[t].iter().any(|r| match r {
                    Report::Snapshot { id: i, .. } => *i == id,
                    Report::Finished { .. } => true,
                })
        })
    }
}

impl Coordinator {
    /// Run until every task has reported its end (or gone away after an error).
    pub async fn run(mut self) -> Result<(), DataflowError> {
        let mut p = Progress::new(self.tasks.len());
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut savepoints_open = true;
        let mut arms_open = true;
        loop {
            tokio::select! {
                _ = ticker.tick(), if p.in_flight.is_none() => {
                    p.in_flight = Some(self.start(self.record.id + 1));
                }
                arm = self.arms.recv(), if arms_open => match arm {
                    Some(req) => self.on_arm(req, &mut p),
                    None => arms_open = false,
                },
                req = self.savepoints.recv(), if savepoints_open => match req {
                    Some(req) => self.on_savepoint(req, &mut p),
                    None => savepoints_open = false,
                },
                report = self.reports.recv() => {
                    let Some(report) = report else { break };
                    self.on_report(report, &mut p).await?;
                }
            }
        }
        self.after_tasks(p).await
    }

    /// Arm a hot swap for the barrier after the checkpoint in flight (triggered at once when
    /// none is), and tell the swap which barrier that is.
    fn on_arm(&self, req: crate::swap::ArmRequest, p: &mut Progress) {
        let at = match p.in_flight {
            None => self.record.id + 1,
            Some((id, _)) => id + 1,
        };
        crate::swap::arm(&req.slot, at);
        let _ = req.reply.send(at);
        match p.in_flight {
            None => p.in_flight = Some(self.start(at)),
            Some(_) => p.again = true,
        }
    }

    /// Take a savepoint request: a stopping one stops the sources (the final checkpoint is the
    /// savepoint), another waits for the next checkpoint, triggered at once when none is in
    /// flight.
    fn on_savepoint(&self, req: SavepointRequest, p: &mut Progress) {
        if req.stop {
            // A stop ends every source; the final checkpoint is the savepoint.
            self.stop.stop();
            p.stopping.push(req);
        } else {
            p.waiting.push(req);
            if p.in_flight.is_none() {
                p.in_flight = Some(self.start(self.record.id + 1));
            }
        }
    }

    /// Queue a task's report; when it completes the checkpoint in flight, write that, export
    /// the savepoints waiting for it and start the next one if a savepoint or swap asks for it.
    async fn on_report(&mut self, report: Report, p: &mut Progress) -> Result<(), DataflowError> {
        let task = match &report {
            Report::Snapshot { task, .. } | Report::Finished { task, .. } => *task,
        };
        p.queues[task].push_back(report);
        let Some((id, started)) = p.in_flight else {
            return Ok(());
        };
        if !p.complete(id) {
            return Ok(());
        }
        let changes = self.collect(&mut p.queues, &mut p.done, Some(id));
        if let Err(e) = self.write(id, changes).await {
            return Err(self.fail(
                e,
                std::mem::take(&mut p.waiting),
                std::mem::take(&mut p.stopping),
            ));
        }
        p.in_flight = None;
        self.record_timing(started);
        for req in p.waiting.drain(..) {
            let result = self.export(req.path.clone()).await;
            let _ = req.reply.send(result);
        }
        // A savepoint or swap asked for while this one ran starts at once.
        if !p.waiting.is_empty() || std::mem::take(&mut p.again) {
            p.in_flight = Some(self.start(self.record.id + 1));
        }
        Ok(())
    }

    /// Every task is gone. If they all ended cleanly, their last changes make the final
    /// checkpoint (and the savepoints are exported from it); if one failed, the last complete
    /// checkpoint stands and the savepoints are refused.
    async fn after_tasks(mut self, mut p: Progress) -> Result<(), DataflowError> {
        for (t, q) in p.queues.iter().enumerate() {
            p.done[t] |= q.iter().any(|r| matches!(r, Report::Finished { .. }));
        }
        if p.done.iter().all(|d| *d) {
            let started = Instant::now();
            let changes = self.collect(&mut p.queues, &mut p.done, None);
            if let Err(e) = self.write(self.record.id + 1, changes).await {
                return Err(self.fail(e, p.waiting, p.stopping));
            }
            self.record_timing(started);
            tracing::info!(
                checkpoint = self.record.id,
                "final checkpoint written; a new run resumes from here"
            );
            for req in p.waiting.drain(..).chain(p.stopping.drain(..)) {
                let result = self.export(req.path.clone()).await;
                let _ = req.reply.send(result);
            }
        } else {
            for req in p.waiting.drain(..).chain(p.stopping.drain(..)) {
                let _ = req.reply.send(Err(
                    "the topology failed before the savepoint was complete".into(),
                ));
            }
        }
        Ok(())
    }

    /// A checkpoint could not be written: stop the topology at once (it must not go on
    /// producing output no checkpoint will cover), and tell whoever waits for a savepoint.
    fn fail(
        &self,
        error: DataflowError,
        waiting: Vec<SavepointRequest>,
        stopping: Vec<SavepointRequest>,
    ) -> DataflowError {
        tracing::error!("{error}");
        self.stop.stop();
        for req in waiting.into_iter().chain(stopping) {
            let _ = req.reply.send(Err(error.to_string()));
        }
        error
    }

    fn record_timing(&self, started: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.commits.fetch_add(1, Relaxed);
        self.counters.last_id.store(self.record.id, Relaxed);
        self.counters
            .commit_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    }

    fn start(&self, id: CheckpointId) -> (CheckpointId, Instant) {
        tracing::debug!(checkpoint = id, "checkpoint triggered");
        let _ = self.trigger.send(id);
        (id, Instant::now())
    }

    /// Take each task's reports up to checkpoint `id` (all of them for the final one).
    fn collect(
        &mut self,
        queues: &mut [VecDeque<Report>],
        done: &mut [bool],
        id: Option<CheckpointId>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for (t, q) in queues.iter_mut().enumerate() {
            while let Some(r) = q.pop_front() {
                let (c, meta, last) = match r {
                    Report::Snapshot {
                        id: i,
                        changes,
                        meta,
                        ..
                    } => (changes, meta, Some(i) == id),
                    Report::Finished { changes, meta, .. } => {
                        done[t] = true;
                        (changes, meta, true)
                    }
                };
                changes.extend(c);
                if let Some(meta) = meta {
                    self.record.tasks.insert(self.tasks[t].clone(), meta);
                }
                if last {
                    break;
                }
            }
        }
        changes
    }

    /// Write checkpoint `id`: every change and the record, as one atomic batch.
    async fn write(
        &mut self,
        id: CheckpointId,
        mut changes: Vec<Change>,
    ) -> Result<(), DataflowError> {
        let mut record = self.record.clone();
        record.id = id;
        record.taken_at = flowlet_operator::now_ms();
        record.lineage.insert(record.run, id);
        changes.push((StateDb::meta_key(RECORD), Some(record.encode())));
        let bytes: usize = changes
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        self.counters
            .bytes
            .store(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        let db = self.db.clone();
        let mut committer = self.committer.take();
        let r = record.clone();
        let (committer, result) = tokio::task::spawn_blocking(move || {
            if let Err(message) = crate::fault::hit("checkpoint.write") {
                return (
                    committer,
                    Err(DataflowError::Checkpoint {
                        checkpoint: id,
                        message,
                    }),
                );
            }
            let result = match committer.as_mut() {
                None => db.apply(changes).map_err(DataflowError::State),
                Some(c) if c.after_write() => {
                    let written = db.apply(changes).map_err(DataflowError::State);
                    if written.is_ok() {
                        let _ = c.commit(&r);
                    }
                    written
                }
                Some(c) => two_phase(&db, c.as_mut(), &r, changes),
            };
            if result.is_ok() {
                let _ = crate::fault::hit("checkpoint.applied");
            }
            (committer, result)
        })
        .await
        .map_err(|e| DataflowError::Panic(e.to_string()))?;
        self.committer = committer;
        result.map_err(|e| match e {
            DataflowError::State(e) => DataflowError::Checkpoint {
                checkpoint: id,
                message: e.to_string(),
            },
            e => e,
        })?;
        tracing::debug!(checkpoint = id, "checkpoint complete");
        let lineage: Arc<str> = record.lineage_header().into();
        self.record = record;
        let _ = self.completed.send(Completed { id, lineage });
        Ok(())
    }

    /// Copy the last checkpoint to a savepoint file.
    async fn export(&self, path: Option<PathBuf>) -> Result<PathBuf, String> {
        let db = self.db.clone();
        let id = self.record.id;
        tokio::task::spawn_blocking(move || {
            let path = path.unwrap_or_else(|| {
                db.dir()
                    .join("savepoints")
                    .join(format!("savepoint-{id}.flowlet"))
            });
            write_savepoint(&db, &path).map(|_| path)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

/// `[record length u32][record][key len u32][key][0|1][value len u32][value]…`
fn encode_pending(record: &[u8], changes: &[Change]) -> Vec<u8> {
    let size: usize = changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 9)
        .sum();
    let mut out = Vec::with_capacity(record.len() + 4 + size);
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(record);
    for (k, v) in changes {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode_pending(mut b: &[u8]) -> Option<(CheckpointRecord, Vec<Change>)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (a, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(a)
    }
    fn len(b: &mut &[u8]) -> Option<usize> {
        Some(u32::from_be_bytes(take(b, 4)?.try_into().ok()?) as usize)
    }
    let n = len(&mut b)?;
    let record = CheckpointRecord::decode(take(&mut b, n)?).ok()?;
    let mut changes = Vec::new();
    while !b.is_empty() {
        let n = len(&mut b)?;
        let k = take(&mut b, n)?.to_vec();
        let v = match take(&mut b, 1)?[0] {
            1 => {
                let n = len(&mut b)?;
                Some(take(&mut b, n)?.to_vec())
            }
            _ => None,
        };
        changes.push((k, v));
    }
    Some((record, changes))
}

/// Write checkpoint `record` with the committer deciding (two-phase commit: `pending`, then the
/// committer's decision, then the changes — docs/CHECKPOINTS.md).
fn two_phase(
    db: &StateDb,
    committer: &mut dyn Committer,
    record: &CheckpointRecord,
    mut changes: Vec<Change>,
) -> Result<(), DataflowError> {
    let encoded = record.encode();
    db.apply(vec![(
        StateDb::meta_key(PENDING),
        Some(encode_pending(&encoded, &changes)),
    )])?;
    let _ = crate::fault::hit("checkpoint.pending-written");
    committer
        .commit(record)
        .map_err(|message| DataflowError::Checkpoint {
            checkpoint: record.id,
            message,
        })?;
    changes.push((StateDb::meta_key(PENDING), None));
    db.apply(changes)?;
    Ok(())
}

/// The first line of a savepoint file.
const SAVEPOINT_MAGIC: &[u8] = b"flowlet-savepoint-1\n";

/// Write every entry of `db` (the last complete checkpoint: the store holds nothing else) to
/// `path`: a magic line, `[key len u32][key][value len u32][value]`…, and an xxh3 checksum.
pub fn write_savepoint(db: &StateDb, path: &Path) -> Result<(), String> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut put = |w: &mut std::io::BufWriter<std::fs::File>, bytes: &[u8]| {
        hash.update(bytes);
        w.write_all(bytes)
    };
    let io = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    put(&mut w, SAVEPOINT_MAGIC).map_err(io)?;
    let read_positions = StateDb::meta_key(READ_PREFIX);
    db.for_each_entry(|k, v| {
        // Read positions belong to the run, not to the checkpoint.
        if k.starts_with(&read_positions) {
            return Ok(());
        }
        put(&mut w, &(k.len() as u32).to_be_bytes()).map_err(io)?;
        put(&mut w, k).map_err(io)?;
        put(&mut w, &(v.len() as u32).to_be_bytes()).map_err(io)?;
        put(&mut w, v).map_err(io)
    })?;
    let sum = hash.digest();
    w.write_all(&sum.to_be_bytes()).map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let _ = crate::fault::hit("savepoint.written");
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Load a savepoint into an empty state database.
pub fn read_savepoint(db: &StateDb, path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read savepoint {}: {e}", path.display()))?;
    let bad = |why: &str| format!("{} is not a flowlet savepoint: {why}", path.display());
    let body = bytes
        .strip_prefix(SAVEPOINT_MAGIC)
        .ok_or_else(|| bad("it does not start with `flowlet-savepoint-1`"))?;
    if body.len() < 8 {
        return Err(bad("it is truncated"));
    }
    let (entries, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(entries).to_be_bytes() != sum {
        return Err(bad("it does not match its checksum (damaged or truncated)"));
    }
    let mut rest = &body[..body.len() - 8];
    let mut changes = Vec::new();
    while !rest.is_empty() {
        let mut field = || -> Result<Vec<u8>, String> {
            let n = rest.get(..4).ok_or_else(|| bad("an entry is truncated"))?;
            let n = u32::from_be_bytes(n.try_into().expect("4 bytes")) as usize;
            let v = rest
                .get(4..4 + n)
                .ok_or_else(|| bad("an entry is truncated"))?
                .to_vec();
            rest = &rest[4 + n..];
            Ok(v)
        };
        let k = field()?;
        let v = field()?;
        changes.push((k, Some(v)));
    }
    db.apply(changes).map_err(|e| e.to_string())
}

/// A run id: the start time in microseconds (runs of one topology are ordered by it).
pub fn new_run_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_detect_damage() {
        let r = CheckpointRecord {
            format: RECORD_FORMAT.into(),
            id: 7,
            ..Default::default()
        };
        let mut bytes = r.encode();
        assert_eq!(CheckpointRecord::decode(&bytes).unwrap(), r);
        bytes[3] ^= 1;
        assert!(
            CheckpointRecord::decode(&bytes)
                .unwrap_err()
                .contains("checksum")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn barriers_align_and_hold_back_the_early_input() {
        let (tx, rx) = mpsc::channel(16);
        let mut inbox = Inbox::new(rx, 2, Guarantee::ExactlyOnce);
        let env = |input, message| Envelope { input, message };
        for e in [
            env(0, Message::Barrier(1)),
            env(0, Message::Watermark(5)),
            env(1, Message::Watermark(3)),
            env(1, Message::Barrier(1)),
            env(1, Message::End),
        ] {
            tx.send(e).await.unwrap();
        }
        drop(tx);
        let got = tokio::task::spawn_blocking(move || {
            std::iter::from_fn(|| inbox.next_blocking())
                .map(|e| (e.input, e.message))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(
            got,
            vec![
                (1, Message::Watermark(3)),
                (usize::MAX, Message::Barrier(1)),
                (0, Message::Watermark(5)),
                (1, Message::End),
            ]
        );
    }
}
