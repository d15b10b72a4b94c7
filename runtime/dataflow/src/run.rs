//! `run`: wire a manifest's sources, operator instances and sinks together and run them.

use std::collections::BTreeMap;
use std::sync::Arc;

use flowlet_manifest::{Manifest, Port};
use tokio::sync::mpsc;

use crate::counters::{CHECKPOINTS, NodeCounters, RunReport};
use crate::options::{RunOptions, Stop};
use crate::{
    DataflowError, Envelope, Instance, InstanceContext, Message, OperatorFactory, PluginKind,
    checkpoint, edge, kafka, lock, operator, policy, sinks, sources, state, swap, window,
};

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
    options.live.set(counters.clone());

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
            .take_receiver()
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
                let task = crate::task::Task {
                    ckpt: task_ckpt(format!("{name}#{index}")),
                    guarantee,
                    inputs: upstream_count[name],
                    commit_interval,
                    counters: policy.counters.clone(),
                };
                let mut body = operator::OperatorBody {
                    slot: crate::task::slot::PluginSlot {
                        instance,
                        factory,
                        ctx,
                        swaps,
                        policy,
                    },
                    state: keyed,
                    main,
                    dead_letter,
                    clock: options.clock.clone(),
                };
                tasks.spawn_blocking(move || task.run(&mut body, rx));
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
