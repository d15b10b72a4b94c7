//! flowlet's executor.
//!
//! A topology runs as one task per source, operator instance and sink, joined by bounded
//! channels: a slow sink fills its channel and the senders wait, up to the sources, so memory
//! stays bounded and nothing is dropped. Operators do not know whether they are Wasm or native:
//! they are [`Operator`]s made by an [`OperatorFactory`].
//!
//! Channels carry [`Message`]s, not bare batches, so that watermarks (and, with checkpoints,
//! barriers) travel in order with the data.

pub mod bench;
pub mod checkpoint;
mod edge;
pub mod generator;
mod kafka;
mod keymap;
pub mod lock;
pub mod nexmark;
mod operator;
mod policy;
mod sinks;
mod sources;
pub mod state;
pub mod swap;
mod time;
mod window;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use edge::{instance_of, key_group};
use flowlet_manifest::{Manifest, Port};
pub use flowlet_operator::{
    Accumulators, Added, Aggregator, Batch, CheckpointId, Clock, Envelope, FiredRef, FiredWindows,
    Instance, InstanceContext, ManualClock, Message, Operator, OperatorError, OperatorFactory,
    Output, PluginKind, SystemClock, Timestamp,
};
use tokio::sync::{Notify, mpsc};

/// How a topology runs, beyond its manifest.
#[derive(Clone)]
pub struct RunOptions {
    /// Processing time (windows with `time: processing`, timers, state TTL).
    pub clock: Arc<dyn Clock>,
    /// Where the `stdin` source reads from (default: the process's standard input).
    pub stdin: Arc<std::sync::Mutex<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>>>,
    /// How often operators with processing-time windows or timers look at the clock.
    pub tick: std::time::Duration,
    /// Filled with the counters of every node when the run starts, to be read while it runs.
    pub live: LiveStats,
    /// Ignore the state and positions of earlier runs (and start file sinks afresh).
    pub from_scratch: bool,
    /// Start from this savepoint (implies `from_scratch`).
    pub from_savepoint: Option<std::path::PathBuf>,
    /// Where savepoints are asked for while the topology runs.
    pub savepoints: Arc<Savepoints>,
    /// Where operators' plugins are swapped while the topology runs.
    pub swaps: Arc<swap::Swaps>,
    /// The lock of the state directory, when the caller took it already (`flowlet run` takes
    /// it before it opens its control socket); else the run takes it when it opens the state.
    pub state_lock: Option<Arc<lock::StateLock>>,
}

/// Asks a running topology for savepoints.
#[derive(Debug)]
pub struct Savepoints {
    tx: mpsc::Sender<checkpoint::SavepointRequest>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<checkpoint::SavepointRequest>>>,
}

impl Default for Savepoints {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(16);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Savepoints {
    /// Take a savepoint (and stop, with `stop`); returns the file written.
    pub async fn take(
        &self,
        stop: bool,
        path: Option<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = checkpoint::SavepointRequest { stop, path, reply };
        self.tx
            .send(req)
            .await
            .map_err(|_| "the topology has no checkpoints configured or has ended".to_string())?;
        rx.await
            .map_err(|_| "the topology ended before the savepoint was taken".to_string())?
    }
}

/// The counters of a running topology, by node name.
#[derive(Debug, Clone, Default)]
pub struct LiveStats(Arc<std::sync::Mutex<BTreeMap<String, Arc<NodeCounters>>>>);

impl LiveStats {
    /// The live counters of node `name` (histograms included).
    pub fn counters(&self, name: &str) -> Option<Arc<NodeCounters>> {
        self.0.lock().expect("stats lock").get(name).cloned()
    }

    /// What node `name` has done so far (an operator counts a batch in once it has handled it).
    pub fn get(&self, name: &str) -> Option<NodeStats> {
        self.0
            .lock()
            .expect("stats lock")
            .get(name)
            .map(|c| c.snapshot())
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            stdin: Arc::default(),
            tick: std::time::Duration::from_millis(50),
            live: LiveStats::default(),
            from_scratch: false,
            from_savepoint: None,
            savepoints: Arc::default(),
            swaps: Arc::default(),
            state_lock: None,
        }
    }
}

/// Why a topology stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    #[error("operator `{operator}` (plugin {plugin}) could not start: {error}")]
    Init {
        operator: String,
        plugin: String,
        error: OperatorError,
    },
    #[error(
        "operator `{operator}` (plugin {plugin}) {error}, on event {event}; the topology stops because its on-error policy is `fail` (choose `skip` or `dead-letter` to go on)"
    )]
    Operator {
        operator: String,
        plugin: String,
        error: OperatorError,
        event: String,
    },
    #[error("source `{source_name}`: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("sink `{sink}`: {message}")]
    Sink { sink: String, message: String },
    #[error("no factory for operator `{0}`")]
    NoFactory(String),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(
        "operator `{operator}`: plugin {plugin} implements the `{kind}` world, which {problem}"
    )]
    WrongKind {
        operator: String,
        plugin: String,
        kind: PluginKind,
        problem: &'static str,
    },
    #[error(
        "checkpoint {checkpoint} failed: {message}; the next run resumes from the checkpoint before it"
    )]
    Checkpoint {
        checkpoint: checkpoint::CheckpointId,
        message: String,
    },
    #[error("a task of the topology panicked: {0}")]
    Panic(String),
}

/// Asks the sources to stop; they end their streams and everything downstream drains.
#[derive(Debug, Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub async fn stopped(&self) {
        let notified = self.notify.notified();
        if self.is_stopped() {
            return;
        }
        notified.await;
    }
}

/// Counters of one node, shared by its instances.
#[derive(Debug)]
pub struct NodeCounters {
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub batches: AtomicU64,
    pub rejected: AtomicU64,
    pub skipped: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub restarts: AtomicU64,
    /// Events too late for every window they belong to.
    pub late: AtomicU64,
    pub windows_fired: AtomicU64,
    /// Time spent writing state changes to the store, and how many commits.
    pub commit_nanos: AtomicU64,
    pub commits: AtomicU64,
    /// Null sinks with `checksum:`: the sum of that field.
    pub checksum: AtomicU64,
    /// The node's current watermark (`i64::MIN` before the first; operators and sources).
    pub watermark: std::sync::atomic::AtomicI64,
    /// Checkpoints: the bytes the last one wrote, and its id.
    pub bytes: AtomicU64,
    pub last_id: AtomicU64,
    /// Kafka sources: the consumer lag of each partition (`topic/partition`), from librdkafka's
    /// statistics.
    pub partition_lag: std::sync::Mutex<BTreeMap<String, i64>>,
    /// Time to handle each batch (operators), as a histogram.
    pub batch_latency: LatencyHistogram,
}

/// A histogram of durations: quarter-octave buckets of nanoseconds (±10% resolution).
#[derive(Debug)]
pub struct LatencyHistogram([AtomicU64; 256]);

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl LatencyHistogram {
    /// Nanoseconds at bucket position `b` (bucket `i` spans `bound(i)..bound(i + 1)`).
    fn bound(b: f64) -> f64 {
        2f64.powf(b / 4.0)
    }

    pub fn record(&self, d: std::time::Duration) {
        let ns = d.as_nanos().max(1) as f64;
        let b = ((ns.log2() * 4.0) as usize).min(255);
        self.0[b].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of the buckets and the upper bound (in nanoseconds) of each.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .map(|(b, c)| (Self::bound(b as f64 + 1.0), c.load(Ordering::Relaxed)))
    }

    /// The `p`-th percentile (0–100), as the middle of its bucket; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<std::time::Duration> {
        let counts: Vec<u64> = self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * p / 100.0).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let ns = Self::bound(b as f64 + 0.5);
                return Some(std::time::Duration::from_nanos(ns as u64));
            }
        }
        None
    }
}

/// A snapshot of a node's counters.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    pub events_in: u64,
    pub events_out: u64,
    pub batches: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub dead_lettered: u64,
    pub restarts: u64,
    pub late: u64,
    pub windows_fired: u64,
    pub commit_nanos: u64,
    pub commits: u64,
    pub checksum: u64,
}

impl Default for NodeCounters {
    fn default() -> Self {
        Self {
            events_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            late: AtomicU64::new(0),
            windows_fired: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            checksum: AtomicU64::new(0),
            watermark: std::sync::atomic::AtomicI64::new(i64::MIN),
            bytes: AtomicU64::new(0),
            last_id: AtomicU64::new(0),
            partition_lag: std::sync::Mutex::default(),
            batch_latency: LatencyHistogram::default(),
        }
    }
}

impl NodeCounters {
    pub fn snapshot(&self) -> NodeStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeStats {
            events_in: g(&self.events_in),
            events_out: g(&self.events_out),
            batches: g(&self.batches),
            rejected: g(&self.rejected),
            skipped: g(&self.skipped),
            dead_lettered: g(&self.dead_lettered),
            restarts: g(&self.restarts),
            late: g(&self.late),
            windows_fired: g(&self.windows_fired),
            commit_nanos: g(&self.commit_nanos),
            commits: g(&self.commits),
            checksum: g(&self.checksum),
        }
    }
}

/// What a finished run did, per source, operator and sink.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunReport {
    pub nodes: BTreeMap<String, NodeStats>,
}

/// The name under which checkpoint counters are reported.
pub const CHECKPOINTS: &str = "(checkpoints)";

/// The checkpoint side of a run being set up.
struct Checkpointing {
    db: state::StateDb,
    tasks: Vec<String>,
    report_tx: mpsc::UnboundedSender<checkpoint::Report>,
    trigger_rx: tokio::sync::watch::Receiver<checkpoint::CheckpointId>,
    completed_rx: tokio::sync::watch::Receiver<checkpoint::Completed>,
    restored: checkpoint::Restored,
    coordinator: Option<checkpoint::Coordinator>,
}

/// Capacity of each channel, in messages (batches). Small: it bounds memory and latency.
pub const CHANNEL_CAPACITY: usize = 8;

type Sender = mpsc::Sender<Envelope>;

/// The outputs of instance `index` of `producer` on `port`.
fn instance_outputs(
    outputs: &BTreeMap<(&str, Port), Vec<edge::Edge>>,
    producer: &str,
    port: Port,
    index: usize,
) -> edge::Outputs {
    let edges = outputs.get(&(producer, port)).cloned().unwrap_or_default();
    edge::Outputs::new(edges, index)
}

/// The key groups instance `index` of `parallelism` owns (a contiguous range).
pub fn key_groups_of(index: usize, parallelism: usize) -> std::ops::Range<u32> {
    let owned: Vec<u32> = (0..edge::KEY_GROUPS)
        .filter(|g| edge::instance_of(*g, parallelism) == index)
        .collect();
    match (owned.first(), owned.last()) {
        (Some(a), Some(b)) => *a..*b + 1,
        _ => 0..0,
    }
}

/// Run `manifest` until its sources end (or `stop` is triggered) and everything is flushed.
/// `factories` has one entry per operator.
pub async fn run(
    manifest: &Manifest,
    factories: BTreeMap<String, Arc<dyn OperatorFactory>>,
    stop: Arc<Stop>,
    options: RunOptions,
) -> Result<RunReport, DataflowError> {
    // One receiver per operator instance and per sink; each knows its inputs by index.
    let mut op_rx: BTreeMap<&str, Vec<mpsc::Receiver<Envelope>>> = BTreeMap::new();
    let mut op_tx: BTreeMap<&str, Vec<Sender>> = BTreeMap::new();
    for (name, op) in &manifest.operators {
        let (tx, rx): (Vec<_>, Vec<_>) = (0..op.parallelism)
            .map(|_| mpsc::channel(CHANNEL_CAPACITY))
            .unzip();
        op_tx.insert(name, tx);
        op_rx.insert(name, rx);
    }
    let mut sink_rx = BTreeMap::new();
    let mut sink_tx = BTreeMap::new();
    for name in manifest.sinks.keys() {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        sink_tx.insert(name.as_str(), vec![tx]);
        sink_rx.insert(name.as_str(), rx);
    }

    // The edges out of every (producer, port): who reads it, at which input index, keyed how.
    let mut outputs: BTreeMap<(&str, Port), Vec<edge::Edge>> = BTreeMap::new();
    let mut upstream_count: BTreeMap<&str, usize> = BTreeMap::new();
    let consumers = manifest
        .operators
        .iter()
        .map(|(n, o)| (n.as_str(), &o.inputs, o.key_by.clone(), &op_tx[n.as_str()]))
        .chain(
            manifest
                .sinks
                .iter()
                .map(|(n, s)| (n.as_str(), &s.inputs, None, &sink_tx[n.as_str()])),
        );
    for (name, inputs, key_by, senders) in consumers {
        let mut count = 0;
        for input in inputs {
            let producer_instances = manifest
                .operators
                .get(&input.node)
                .map_or(1, |o| o.parallelism as usize);
            let first_index = count;
            count += producer_instances;
            outputs
                .entry((input.node.as_str(), input.port))
                .or_default()
                .push(edge::Edge::new(
                    senders.clone(),
                    first_index,
                    key_by.clone(),
                ));
        }
        upstream_count.insert(name, count);
    }
    let op_tx_weak: BTreeMap<&str, Vec<mpsc::WeakSender<Envelope>>> = op_tx
        .iter()
        .map(|(k, v)| (*k, v.iter().map(|t| t.downgrade()).collect()))
        .collect();
    drop(op_tx);
    drop(sink_tx);

    let mut counters: BTreeMap<String, Arc<NodeCounters>> = manifest
        .sources
        .keys()
        .chain(manifest.operators.keys())
        .chain(manifest.sinks.keys())
        .map(|n| (n.clone(), Arc::default()))
        .collect();
    if manifest.checkpoint.is_some() {
        // Checkpoints taken and the time they took (`commits`, `commit_nanos`).
        counters.insert(CHECKPOINTS.into(), Arc::default());
    }
    *options.live.0.lock().expect("stats lock") = counters.clone();

    // Kinds first: a window needs an aggregate, an aggregate needs a window.
    let mut stateful = false;
    for (name, op) in &manifest.operators {
        let factory = factories
            .get(name)
            .ok_or_else(|| DataflowError::NoFactory(name.clone()))?;
        let wrong = |problem| DataflowError::WrongKind {
            operator: name.clone(),
            plugin: factory.plugin_id(),
            kind: factory.kind(),
            problem,
        };
        match (factory.kind(), &op.window) {
            (PluginKind::Aggregator, None) => {
                return Err(wrong(
                    "needs a `window:` on the operator (kind: tumbling | sliding | session)",
                ));
            }
            (PluginKind::Processor | PluginKind::StatefulProcessor, Some(_)) => {
                return Err(wrong(
                    "cannot run windows; remove `window:` or use a plugin of the `aggregator` world",
                ));
            }
            (PluginKind::Processor, None) => {}
            _ => stateful = true,
        }
    }
    let guarantee = manifest.guarantee;
    let db = if stateful || manifest.checkpoint.is_some() {
        let dir = manifest.state_dir();
        let fresh = manifest.checkpoint.is_some()
            && (options.from_scratch || options.from_savepoint.is_some());
        let savepoint = options.from_savepoint.clone();
        let taken = options.state_lock.clone();
        Some(
            tokio::task::spawn_blocking(move || -> Result<_, DataflowError> {
                // One process per state directory, from before anything in it is touched.
                let lock = match taken {
                    Some(l) => l,
                    None => Arc::new(
                        lock::StateLock::acquire(&dir, &lock::this_process())
                            .map_err(state::StateError::from)?,
                    ),
                };
                if fresh {
                    lock::clear(&lock).map_err(|e| state::StateError::Open {
                        dir: dir.clone(),
                        message: format!("cannot remove the old state: {e}"),
                    })?;
                }
                let db = state::StateDb::open(&dir)?;
                if let Some(sp) = savepoint {
                    checkpoint::read_savepoint(&db, &sp).map_err(|message| {
                        state::StateError::Checkpoint {
                            dir: dir.clone(),
                            message,
                        }
                    })?;
                }
                Ok((db, lock))
            })
            .await
            .map_err(|e| DataflowError::Panic(e.to_string()))??,
        )
    } else {
        None
    };
    // The lock is held until the run returns (released after the store is closed).
    let (db, state_lock) = match db {
        Some((db, lock)) => (Some(db), Some(lock)),
        None => (None, None),
    };
    let commit_interval = manifest
        .state
        .commit_interval
        .unwrap_or(std::time::Duration::from_secs(10));

    // Checkpoints: what the last one saved, and the channels of the protocol.
    let run_id = checkpoint::new_run_id();
    let mut ckpt = None;
    let mut producers = BTreeMap::new();
    if let (Some(spec), Some(db)) = (&manifest.checkpoint, &db) {
        // A checkpoint left pending by a crash is decided (by Kafka) before anything is read.
        let (committer, kafka_producers) = kafka::committer(manifest, db).await?;
        producers = kafka_producers;
        let d = db.clone();
        let restored = tokio::task::spawn_blocking(move || checkpoint::restore(&d))
            .await
            .map_err(|e| DataflowError::Panic(e.to_string()))??;
        let record = restored
            .record
            .clone()
            .unwrap_or_else(|| checkpoint::CheckpointRecord::empty(&manifest.name));
        if let Some(r) = &restored.record {
            tracing::info!(
                checkpoint = r.id,
                "resuming from the checkpoint of {} ({})",
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(r.taken_at.max(0) as u64)
                ),
                db.dir().display()
            );
        }
        let mut record = record;
        record.run = run_id;
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let (trigger_tx, trigger_rx) = tokio::sync::watch::channel(record.id);
        let (completed_tx, completed_rx) = tokio::sync::watch::channel(checkpoint::Completed {
            id: record.id,
            lineage: record.lineage_header().into(),
        });
        let savepoints = options
            .savepoints
            .rx
            .lock()
            .expect("savepoints lock")
            .take()
            .unwrap_or_else(|| mpsc::channel(1).1);
        ckpt = Some(Checkpointing {
            db: db.clone(),
            tasks: Vec::new(),
            report_tx,
            trigger_rx,
            completed_rx,
            restored,
            coordinator: Some(checkpoint::Coordinator {
                db: db.clone(),
                tasks: Vec::new(),
                interval: spec.interval,
                reports: report_rx,
                trigger: trigger_tx,
                completed: completed_tx,
                savepoints,
                stop: stop.clone(),
                record,
                committer,
                counters: Arc::default(),
                arms: mpsc::unbounded_channel().1,
            }),
        });
    }
    let mut task_ckpt = |name: String| -> Option<checkpoint::TaskCheckpoints> {
        let c = ckpt.as_mut()?;
        let task = c.tasks.len();
        c.tasks.push(name.clone());
        Some(checkpoint::TaskCheckpoints::new(
            task,
            name.clone(),
            guarantee,
            c.report_tx.clone(),
            c.completed_rx.clone(),
            c.trigger_rx.clone(),
            c.restored.task(&name).cloned(),
            c.restored.read.get(&name).cloned(),
            run_id,
            c.db.clone(),
        ))
    };

    // Start every operator instance before any event flows, so that a bad plugin or config
    // stops the run before it reads anything.
    let mut instances = Vec::new();
    for (name, op) in &manifest.operators {
        let factory = factories[name].clone();
        let kind = factory.kind();
        for i in 0..op.parallelism as usize {
            let groups = key_groups_of(i, op.parallelism as usize);
            let mut ctx = InstanceContext::default();
            let mut store = None;
            let mut keyed: Option<state::StateHandle> = None;
            if let Some(db) = &db {
                match kind {
                    PluginKind::StatefulProcessor => {
                        let st = state::KeyedState::open(
                            name,
                            db.tree(name, "state")?,
                            db.tree(name, "timers")?,
                            options.clock.clone(),
                            groups.clone(),
                        )?;
                        let handle = Arc::new(std::sync::Mutex::new(st));
                        ctx.state = Some(handle.clone());
                        keyed = Some(handle);
                    }
                    PluginKind::Aggregator => store = Some(db.tree(name, "windows")?),
                    PluginKind::Processor => {}
                }
            }
            let f = factory.clone();
            let c = ctx.clone();
            let made = tokio::task::spawn_blocking(move || f.instantiate(&c))
                .await
                .map_err(|e| DataflowError::Panic(e.to_string()))?;
            let instance = made.map_err(|error| DataflowError::Init {
                operator: name.clone(),
                plugin: factory.plugin_id(),
                error,
            })?;
            instances.push((
                name.as_str(),
                i,
                instance,
                factory.clone(),
                (ctx, keyed),
                store,
                groups,
            ));
        }
    }

    // Every operator can have its plugin swapped while it runs.
    let mut slots = BTreeMap::new();
    for name in manifest.operators.keys() {
        let ctxs = instances
            .iter()
            .filter(|i| i.0 == name.as_str())
            .map(|i| i.4.clone())
            .collect();
        let slot = options.swaps.register(name, factories[name].clone(), ctxs);
        slots.insert(name.as_str(), slot);
    }

    let mut tasks = tokio::task::JoinSet::new();
    let mut sources = Vec::new();
    let mut tickers = Vec::new();
    for (name, index, instance, factory, (ctx, keyed), store, groups) in instances {
        let swaps = swap::InstanceSwaps::new(Some(slots[name].clone()), index);
        let spec = &manifest.operators[name];
        let rx = op_rx
            .get_mut(name)
            .expect("receivers per operator")
            .remove(0);
        let policy = policy::Policy {
            name: name.to_owned(),
            instance_index: index,
            plugin: factory.plugin_id(),
            on_error: spec.on_error,
            counters: counters[name].clone(),
        };
        // Every instance gets its own handles on the same consumers.
        let main = instance_outputs(&outputs, name, Port::Main, index);
        let dead_letter = instance_outputs(&outputs, name, Port::DeadLetter, index);
        let uses_clock = factory.kind() == PluginKind::StatefulProcessor
            || spec
                .window
                .as_ref()
                .is_some_and(|w| w.time == flowlet_manifest::TimeDomain::Processing);
        if uses_clock {
            tickers.push(op_tx_weak[name][index].clone());
        }
        // Operators are CPU-bound (Wasm calls): each instance gets a blocking thread so that it
        // never stalls the async tasks of sources and sinks.
        match instance {
            Instance::Processor(instance) => {
                let task = operator::OperatorTask {
                    ckpt: task_ckpt(format!("{name}#{index}")),
                    guarantee,
                    policy,
                    factory,
                    instance,
                    ctx,
                    state: keyed,
                    inputs: upstream_count[name],
                    main,
                    dead_letter,
                    clock: options.clock.clone(),
                    commit_interval,
                    swaps,
                };
                tasks.spawn_blocking(move || task.run(rx));
            }
            Instance::Aggregator(agg) => {
                let task = window::WindowTask {
                    keyed: spec.key_by.is_some(),
                    ckpt: task_ckpt(format!("{name}#{index}")),
                    guarantee,
                    policy,
                    factory,
                    agg,
                    spec: spec.window.clone().expect("checked above"),
                    inputs: upstream_count[name],
                    main,
                    late: instance_outputs(&outputs, name, Port::Late, index),
                    dead_letter,
                    store: store.expect("aggregators have a store"),
                    groups,
                    clock: options.clock.clone(),
                    commit_interval,
                    swaps,
                };
                tasks.spawn_blocking(move || task.run(rx));
            }
        }
    }
    drop(op_tx_weak);
    if !tickers.is_empty() {
        let tick = options.tick;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                let mut alive = 0;
                for weak in &tickers {
                    if let Some(tx) = weak.upgrade() {
                        alive += 1;
                        // Skip a tick rather than wait behind a full channel.
                        let _ = tx.try_send(Envelope {
                            input: usize::MAX,
                            message: Message::Tick,
                        });
                    }
                }
                if alive == 0 {
                    return;
                }
            }
        });
    }
    for (name, source) in &manifest.sources {
        let out = instance_outputs(&outputs, name, Port::Main, 0);
        let dead_letter = instance_outputs(&outputs, name, Port::DeadLetter, 0);
        sources.push((name, source, out, dead_letter));
    }
    // Every producer holds its own senders now; the channels close when the producers finish.
    drop(outputs);
    for (name, rx) in sink_rx {
        let spec = manifest.sinks[name].clone();
        let inputs = upstream_count[name];
        let c = counters[name].clone();
        let path = match &spec.kind {
            flowlet_manifest::SinkKind::File { path } => Some(manifest.resolve(path)),
            _ => None,
        };
        let sink = sinks::SinkTask {
            ckpt: task_ckpt(name.to_owned()),
            name: name.to_owned(),
            kind: spec.kind,
            path,
            inputs,
            counters: c,
            guarantee,
            producer: producers.get(name).cloned(),
        };
        tasks.spawn_blocking(move || sink.run(rx));
    }
    for (name, source, out, dead_letter) in sources {
        let task = sources::SourceTask {
            name: name.clone(),
            kind: source.kind.clone(),
            event_time: source.event_time.clone(),
            stdin: options.stdin.clone(),
            clock: options.clock.clone(),
            path: match &source.kind {
                flowlet_manifest::SourceKind::File { path } => Some(manifest.resolve(path)),
                _ => None,
            },
            batch_size: manifest.batch_size(source),
            out,
            counters: counters[name].clone(),
            stop: stop.clone(),
            on_error: source.on_error,
            dead_letter,
            failure: None,
            ckpt: task_ckpt(name.clone()),
            guarantee,
            topology: manifest.name.clone(),
        };
        tasks.spawn(task.run());
    }
    let coordinator = ckpt
        .and_then(|mut c| {
            let mut coordinator = c.coordinator.take()?;
            coordinator.tasks = std::mem::take(&mut c.tasks);
            coordinator.counters = counters.get(CHECKPOINTS).cloned().unwrap_or_default();
            let (arm_tx, arm_rx) = mpsc::unbounded_channel();
            coordinator.arms = arm_rx;
            options.swaps.set_coordinator(Some(arm_tx));
            Some(coordinator)
        })
        .map(|c| tokio::spawn(c.run()));

    // Swaps cannot outlive the run: a swap still waiting for a barrier is told so.
    struct ClearSwaps(Arc<swap::Swaps>);
    impl Drop for ClearSwaps {
        fn drop(&mut self) {
            self.0.clear();
        }
    }
    let _clear_swaps = ClearSwaps(options.swaps.clone());
    options.swaps.set_started();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap_or_else(|e| Err(DataflowError::Panic(e.to_string())));
        if let Err(e) = result
            && first_error.is_none()
        {
            // Stop the sources; the other tasks drain and end as their inputs close.
            stop.stop();
            first_error = Some(e);
        }
    }
    if let Some(c) = coordinator {
        let done = c
            .await
            .unwrap_or_else(|e| Err(DataflowError::Panic(e.to_string())));
        // A checkpoint that could not be written is the cause of whatever the tasks then
        // reported (it stopped them).
        if let Err(e) = done {
            first_error = Some(e);
        }
    }
    if let Some(db) = db {
        let flushed = tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| DataflowError::Panic(e.to_string()))?;
        if let Err(e) = flushed
            && first_error.is_none()
        {
            first_error = Some(e.into());
        }
    }
    drop(state_lock);
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(RunReport {
        nodes: counters
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect(),
    })
}
