//! flowlet's executor.
//!
//! A topology runs as one task per source, operator instance and sink, joined by bounded
//! channels: a slow sink fills its channel and the senders wait, up to the sources, so memory
//! stays bounded and nothing is dropped. Operators do not know whether they are Wasm or native:
//! they are [`Operator`]s made by an [`OperatorFactory`].
//!
//! Channels carry [`Message`]s, not bare batches, so that watermarks (and, with checkpoints,
//! barriers) travel in order with the data.

mod edge;
pub mod generator;
mod operator;
mod sinks;
mod sources;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flowlet_manifest::{Manifest, Port};
pub use flowlet_types::{Batch, Output, Timestamp};
use tokio::sync::{Notify, mpsc};

/// What flows on an edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Batch(Batch),
    /// No event with a smaller timestamp will follow on this input.
    Watermark(Timestamp),
    /// This input is finished.
    End,
}

/// A message and the input it arrived on (an index into the receiver's inputs).
#[derive(Debug)]
pub struct Envelope {
    pub input: usize,
    pub message: Message,
}

/// How an operator instance failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    /// The instance trapped (panic, deadline, memory cap, stack overflow): it is unusable and
    /// must be replaced.
    #[error("trapped: {0}")]
    Trap(String),
    /// The operator reported that it failed ("I failed").
    #[error("failed: {0}")]
    Failed(String),
    /// `init` rejected the configuration.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The operator returned a malformed batch or rejection.
    #[error("returned malformed output: {0}")]
    Malformed(String),
}

/// One instance of an operator.
pub trait Operator: Send {
    /// Transform one batch.
    fn process(&mut self, input: &Batch) -> Result<Output, OperatorError>;
}

/// Makes instances of one operator: at start, and again to replace a trapped one.
pub trait OperatorFactory: Send + Sync {
    /// A new, initialised instance.
    fn instantiate(&self) -> Result<Box<dyn Operator>, OperatorError>;
    /// What runs: `sha256:…` of a component, or `builtin:NAME`.
    fn plugin_id(&self) -> String;
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
#[derive(Debug, Default)]
pub struct NodeCounters {
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub batches: AtomicU64,
    pub rejected: AtomicU64,
    pub skipped: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub restarts: AtomicU64,
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
        }
    }
}

/// What a finished run did, per source, operator and sink.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RunReport {
    pub nodes: BTreeMap<String, NodeStats>,
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

/// Run `manifest` until its sources end (or `stop` is triggered) and everything is flushed.
/// `factories` has one entry per operator.
pub async fn run(
    manifest: &Manifest,
    factories: BTreeMap<String, Arc<dyn OperatorFactory>>,
    stop: Arc<Stop>,
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
    drop(op_tx);
    drop(sink_tx);

    let counters: BTreeMap<String, Arc<NodeCounters>> = manifest
        .sources
        .keys()
        .chain(manifest.operators.keys())
        .chain(manifest.sinks.keys())
        .map(|n| (n.clone(), Arc::default()))
        .collect();

    // Start every operator instance before any event flows, so that a bad plugin or config
    // stops the run before it reads anything.
    let mut instances = Vec::new();
    for (name, op) in &manifest.operators {
        let factory = factories
            .get(name)
            .cloned()
            .ok_or_else(|| DataflowError::NoFactory(name.clone()))?;
        for i in 0..op.parallelism as usize {
            let f = factory.clone();
            let made = tokio::task::spawn_blocking(move || f.instantiate())
                .await
                .map_err(|e| DataflowError::Panic(e.to_string()))?;
            let instance = made.map_err(|error| DataflowError::Init {
                operator: name.clone(),
                plugin: factory.plugin_id(),
                error,
            })?;
            instances.push((name.as_str(), i, instance, factory.clone()));
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    let mut sources = Vec::new();
    for (name, index, instance, factory) in instances {
        let spec = &manifest.operators[name];
        let rx = op_rx
            .get_mut(name)
            .expect("receivers per operator")
            .remove(0);
        let task = operator::OperatorTask {
            name: name.to_owned(),
            instance_index: index,
            plugin: factory.plugin_id(),
            factory,
            instance,
            on_error: spec.on_error,
            inputs: upstream_count[name],
            // Every instance gets its own handles on the same consumers.
            main: instance_outputs(&outputs, name, Port::Main, index),
            dead_letter: instance_outputs(&outputs, name, Port::DeadLetter, index),
            counters: counters[name].clone(),
        };
        // Operators are CPU-bound (Wasm calls): each instance gets a blocking thread so that it
        // never stalls the async tasks of sources and sinks.
        tasks.spawn_blocking(move || task.run(rx));
    }
    for (name, source) in &manifest.sources {
        let out = instance_outputs(&outputs, name, Port::Main, 0);
        sources.push((name, source, out));
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
        let name = name.to_owned();
        tasks.spawn_blocking(move || sinks::run(name, spec.kind, path, rx, inputs, c));
    }
    for (name, source, out) in sources {
        let task = sources::SourceTask {
            name: name.clone(),
            kind: source.kind.clone(),
            path: match &source.kind {
                flowlet_manifest::SourceKind::File { path } => Some(manifest.resolve(path)),
                _ => None,
            },
            batch_size: manifest.batch_size(source),
            out,
            counters: counters[name].clone(),
            stop: stop.clone(),
        };
        tasks.spawn(task.run());
    }

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
