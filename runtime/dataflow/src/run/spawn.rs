//! Starting the tasks of a run: operator instances (each on a blocking thread of its own),
//! the clock ticks of those that read the clock, sinks and sources.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use flowlet_manifest::{Guarantee, Manifest, Port};
use tokio::task::JoinSet;

use super::setup::{Checkpointing, task_ckpt};
use super::wiring::Wiring;
use crate::connect::{Connect, SinkSetup};
use crate::options::RunOptions;
use crate::source::{SourceContext, SourceSetup};
use crate::stop::Stop;
use crate::{
    DataflowError, Envelope, Instance, InstanceContext, Message, NodeCounters, OperatorFactory,
    PluginKind, operator, policy, sinks, state, swap, window,
};

pub(super) type Tasks = JoinSet<Result<(), DataflowError>>;

/// An operator instance, started.
pub(super) struct Started<'m> {
    name: &'m str,
    index: usize,
    instance: Instance,
    factory: Arc<dyn OperatorFactory>,
    ctx: InstanceContext,
    keyed: Option<state::StateHandle>,
    store: Option<Arc<dyn state::Store>>,
    groups: Range<u32>,
}

/// The key groups instance `index` of `parallelism` owns (a contiguous range).
pub fn key_groups_of(index: usize, parallelism: usize) -> Range<u32> {
    let owned: Vec<u32> = (0..crate::edge::KEY_GROUPS)
        .filter(|g| crate::edge::instance_of(*g, parallelism) == index)
        .collect();
    match (owned.first(), owned.last()) {
        (Some(a), Some(b)) => *a..*b + 1,
        _ => 0..0,
    }
}

/// Start every operator instance before any event flows, so that a bad plugin or config stops
/// the run before it reads anything.
pub(super) async fn instantiate<'m>(
    manifest: &'m Manifest,
    factories: &BTreeMap<String, Arc<dyn OperatorFactory>>,
    db: Option<&state::StateDb>,
    options: &RunOptions,
) -> Result<Vec<Started<'m>>, DataflowError> {
    let mut out = Vec::new();
    for (name, op) in manifest.operators.iter().filter(|(_, o)| o.join.is_none()) {
        let factory = factories[name].clone();
        let setup = Arc::new(flowlet_operator::Setup {
            operator: name.clone(),
            inputs: op.inputs.iter().map(ToString::to_string).collect(),
            outputs: op.outputs.clone(),
        });
        for index in 0..op.parallelism as usize {
            let groups = key_groups_of(index, op.parallelism as usize);
            let mut ctx = InstanceContext {
                setup: setup.clone(),
                state: None,
            };
            let (mut keyed, mut store) = (None, None);
            match (db, factory.kind()) {
                (Some(db), PluginKind::StatefulProcessor) => {
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
                (Some(db), PluginKind::Aggregator) => store = Some(db.tree(name, "windows")?),
                _ => {}
            }
            let (f, c) = (factory.clone(), ctx.clone());
            let made = tokio::task::spawn_blocking(move || f.instantiate(&c))
                .await
                .map_err(|e| DataflowError::Panic(e.to_string()))?;
            let instance = made.map_err(|error| DataflowError::Init {
                operator: name.clone(),
                plugin: factory.plugin_id(),
                error,
            })?;
            out.push(Started {
                name,
                index,
                instance,
                factory: factory.clone(),
                ctx,
                keyed,
                store,
                groups,
            });
        }
    }
    Ok(out)
}

/// Every operator can have its plugin swapped while it runs: one slot per operator, knowing
/// its instances' contexts and state.
pub(super) fn swap_slots<'m>(
    manifest: &'m Manifest,
    factories: &BTreeMap<String, Arc<dyn OperatorFactory>>,
    started: &[Started<'m>],
    swaps: &swap::Swaps,
) -> BTreeMap<&'m str, Arc<swap::OperatorSlot>> {
    let mut slots = BTreeMap::new();
    for name in manifest
        .operators
        .iter()
        .filter(|(_, o)| o.join.is_none())
        .map(|(n, _)| n)
    {
        let ctxs = started
            .iter()
            .filter(|i| i.name == name.as_str())
            .map(|i| (i.ctx.clone(), i.keyed.clone()))
            .collect();
        slots.insert(
            name.as_str(),
            swaps.register(name, factories[name].clone(), ctxs),
        );
    }
    slots
}

/// What spawning the operator instances needs besides the instances.
pub(super) struct Operators<'a, 'm> {
    pub manifest: &'m Manifest,
    pub wiring: &'a mut Wiring<'m>,
    pub slots: &'a BTreeMap<&'m str, Arc<swap::OperatorSlot>>,
    pub counters: &'a BTreeMap<String, Arc<NodeCounters>>,
    pub options: &'a RunOptions,
    pub commit_interval: std::time::Duration,
}

/// Spawn each operator instance on a blocking thread (operators are CPU-bound Wasm calls and
/// must never stall the async tasks of sources and sinks); returns the channels of those that
/// read the clock.
pub(super) fn operators(
    started: Vec<Started<'_>>,
    o: Operators<'_, '_>,
    ckpt: &mut Option<Checkpointing>,
    tasks: &mut Tasks,
) -> Vec<tokio::sync::mpsc::WeakSender<Envelope>> {
    let mut tickers = Vec::new();
    for s in started {
        let (name, index) = (s.name, s.index);
        let spec = &o.manifest.operators[name];
        let rx = o.wiring.op_rx.get_mut(name).expect("receivers").remove(0);
        let policy = policy::Policy {
            name: name.to_owned(),
            instance_index: index,
            plugin: s.factory.plugin_id(),
            on_error: spec.on_error,
            counters: o.counters[name].clone(),
        };
        // Every instance gets its own handles on the same consumers.
        let main = o.wiring.outputs(name, Port::Main, index);
        let dead_letter = o.wiring.outputs(name, Port::DeadLetter, index);
        let uses_clock = s.factory.kind() == PluginKind::StatefulProcessor
            || spec
                .window
                .as_ref()
                .is_some_and(|w| w.time == flowlet_manifest::TimeDomain::Processing);
        if uses_clock {
            tickers.push(o.wiring.weak[name][index].clone());
        }
        let swaps = swap::InstanceSwaps::new(Some(o.slots[name].clone()), index);
        let ckpt = task_ckpt(ckpt, &format!("{name}#{index}"));
        let inputs = o.wiring.from[name].len();
        match s.instance {
            Instance::Processor(instance) => {
                let task = crate::task::Task {
                    ckpt,
                    guarantee: o.manifest.guarantee,
                    inputs,
                    commit_interval: o.commit_interval,
                    counters: policy.counters.clone(),
                };
                let mut body = operator::OperatorBody {
                    slot: crate::task::slot::PluginSlot {
                        instance,
                        factory: s.factory,
                        ctx: s.ctx,
                        swaps,
                        policy,
                    },
                    state: s.keyed,
                    main,
                    named: spec
                        .outputs
                        .iter()
                        .map(|p| o.wiring.outputs(name, Port::Named(p.clone()), index))
                        .collect(),
                    dead_letter,
                    from: o.wiring.from[name].clone(),
                    clock: o.options.clock.clone(),
                };
                tasks.spawn_blocking(move || task.run(&mut body, rx));
            }
            Instance::Aggregator(agg) => {
                let task = window::WindowTask {
                    keyed: spec.key_by.is_some(),
                    ckpt,
                    guarantee: o.manifest.guarantee,
                    policy,
                    factory: s.factory,
                    agg,
                    spec: spec.window.clone().expect("checked before the run"),
                    inputs,
                    main,
                    late: o.wiring.outputs(name, Port::Late, index),
                    dead_letter,
                    store: s.store.expect("aggregators have a store"),
                    groups: s.groups,
                    clock: o.options.clock.clone(),
                    commit_interval: o.commit_interval,
                    swaps,
                };
                tasks.spawn_blocking(move || task.run(rx));
            }
        }
    }
    tickers
}

/// Tick the operators that read the clock every `tick`, until none is left.
pub(super) fn ticker(
    tickers: Vec<tokio::sync::mpsc::WeakSender<Envelope>>,
    tick: std::time::Duration,
) {
    if tickers.is_empty() {
        return;
    }
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

/// Open every sink's writer (before anything flows: a sink that cannot be opened stops the run
/// before it reads) and spawn its task.
pub(super) fn sinks(
    manifest: &Manifest,
    wiring: &mut Wiring<'_>,
    connectors: &dyn Connect,
    counters: &BTreeMap<String, Arc<NodeCounters>>,
    ckpt: &mut Option<Checkpointing>,
) -> Result<Vec<(sinks::SinkTask, tokio::sync::mpsc::Receiver<Envelope>)>, DataflowError> {
    let mut out = Vec::new();
    for name in manifest.sinks.keys() {
        let rx = wiring
            .sink_rx
            .remove(name.as_str())
            .expect("a receiver per sink");
        let task_ckpt = task_ckpt(ckpt, name);
        let kind = &manifest.sinks[name].kind;
        if task_ckpt.is_some()
            && manifest.guarantee == Guarantee::ExactlyOnce
            && !kind.spec.takes_back()
        {
            tracing::warn!(
                sink = %name,
                "a `{}` sink cannot take back what it wrote: after a crash it repeats what it wrote since the last checkpoint (at-least-once, whatever the topology's guarantee)",
                kind.kind
            );
        }
        let shared = ckpt.as_mut().and_then(|c| c.shared.remove(name));
        let setup = SinkSetup {
            name,
            manifest,
            guarantee: manifest.guarantee,
            checkpointing: task_ckpt.is_some(),
            restored: task_ckpt.as_ref().and_then(|c| c.restored.as_ref()),
            counters: counters[name].clone(),
            shared,
        };
        let writer = connectors
            .sink(setup)
            .map_err(|message| DataflowError::Sink {
                sink: name.clone(),
                message,
            })?;
        let task = sinks::SinkTask {
            ckpt: task_ckpt,
            name: name.clone(),
            writer,
            inputs: wiring.from[name.as_str()].len(),
            counters: counters[name].clone(),
            guarantee: manifest.guarantee,
        };
        out.push((task, rx));
    }
    Ok(out)
}

/// What the sources are started with besides the manifest.
pub(super) struct Sources<'a> {
    pub counters: &'a BTreeMap<String, Arc<NodeCounters>>,
    pub stop: &'a Arc<Stop>,
    pub options: &'a RunOptions,
}

/// A source's reader with the context it runs in.
pub(super) type OpenSource = (SourceContext, Box<dyn crate::Source>);

/// Open every source's reader and its context.
pub(super) fn sources(
    manifest: &Manifest,
    wiring: &Wiring<'_>,
    connectors: &dyn Connect,
    s: Sources<'_>,
    ckpt: &mut Option<Checkpointing>,
) -> Result<Vec<OpenSource>, DataflowError> {
    let mut out = Vec::new();
    for (name, source) in &manifest.sources {
        let reader =
            connectors
                .source(name, manifest)
                .map_err(|message| DataflowError::Source {
                    source_name: name.clone(),
                    message,
                })?;
        let cx = SourceContext::new(SourceSetup {
            name: name.clone(),
            event_time: source.event_time.clone(),
            batch_size: manifest.batch_size(source),
            out: wiring.outputs(name, Port::Main, 0),
            dead_letter: wiring.outputs(name, Port::DeadLetter, 0),
            counters: s.counters[name].clone(),
            stop: s.stop.clone(),
            clock: s.options.clock.clone(),
            on_error: source.on_error,
            ckpt: task_ckpt(ckpt, name),
            guarantee: manifest.guarantee,
            topology: manifest.name.clone(),
        });
        out.push((cx, reader));
    }
    Ok(out)
}

/// What spawning the join instances needs.
pub(super) struct Joins<'a, 'm> {
    pub manifest: &'m Manifest,
    pub counters: &'a BTreeMap<String, Arc<NodeCounters>>,
    pub db: Option<&'a state::StateDb>,
    pub commit_interval: std::time::Duration,
}

/// Spawn each instance of each join operator on a blocking thread.
pub(super) fn joins(
    j: Joins<'_, '_>,
    wiring: &mut Wiring<'_>,
    ckpt: &mut Option<Checkpointing>,
    tasks: &mut Tasks,
) -> Result<(), DataflowError> {
    for (name, op) in &j.manifest.operators {
        let Some(spec) = &op.join else {
            continue;
        };
        let db = j.db.expect("a topology with a join has a state store");
        // Which manifest input each upstream producer instance is, then which side.
        let left_of: Arc<[bool]> = wiring.from[name.as_str()]
            .iter()
            .map(|i| spec.side_of(&op.inputs[*i as usize]) == Some(true))
            .collect();
        for index in 0..op.parallelism as usize {
            let rx = wiring
                .op_rx
                .get_mut(name.as_str())
                .expect("receivers")
                .remove(0);
            let task = crate::join::JoinTask {
                spec: spec.clone(),
                ckpt: task_ckpt(ckpt, &format!("{name}#{index}")),
                guarantee: j.manifest.guarantee,
                policy: policy::Policy {
                    name: name.clone(),
                    instance_index: index,
                    plugin: flowlet_manifest::JOIN_MERGE.into(),
                    on_error: op.on_error,
                    counters: j.counters[name].clone(),
                },
                left_of: left_of.clone(),
                main: wiring.outputs(name, Port::Main, index),
                late: wiring.outputs(name, Port::Late, index),
                dead_letter: wiring.outputs(name, Port::DeadLetter, index),
                store: db.tree(name, "join")?,
                groups: key_groups_of(index, op.parallelism as usize),
                commit_interval: j.commit_interval,
            };
            tasks.spawn_blocking(move || task.run(rx));
        }
    }
    Ok(())
}
