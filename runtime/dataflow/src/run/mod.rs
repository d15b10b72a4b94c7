//! `run`: wire a manifest's sources, operator instances and sinks together and run them.
//!
//! In order: the channels ([`wiring`]); the state store and, with checkpoints, what the last
//! checkpoint saved ([`setup`]); operator instances started, sinks and sources opened, then
//! every task spawned ([`spawn`]); the tasks joined, the first error kept.

mod setup;
mod spawn;
mod wiring;

use std::collections::BTreeMap;
use std::sync::Arc;

use flowlet_manifest::Manifest;

use crate::counters::{CHECKPOINTS, NodeCounters, RunReport};
use crate::options::RunOptions;
use crate::stop::Stop;
use crate::{DataflowError, OperatorFactory, PluginKind, state, swap};

pub use spawn::key_groups_of;
pub use wiring::CHANNEL_CAPACITY;

/// Run `manifest` until its sources end (or `stop` is triggered) and everything is flushed.
/// `factories` has one entry per operator; `options.connectors` opens the sources and sinks.
pub async fn run(
    manifest: &Manifest,
    factories: BTreeMap<String, Arc<dyn OperatorFactory>>,
    stop: Arc<Stop>,
    options: RunOptions,
) -> Result<RunReport, DataflowError> {
    let connectors = options
        .connectors
        .clone()
        .ok_or(DataflowError::NoConnectors)?;
    let stateful = check_kinds(manifest, &factories)?;
    let mut wiring = wiring::Wiring::new(manifest);
    let counters = counters_of(manifest);
    options.live.set(counters.clone());

    // The lock of the state directory is held until the run returns.
    let (db, state_lock) = if stateful || manifest.checkpoint.is_some() {
        let (db, lock) = setup::open_state(manifest, &options).await?;
        (Some(db), Some(lock))
    } else {
        (None, None)
    };
    let mut ckpt = match (&manifest.checkpoint, &db) {
        (Some(_), Some(db)) => {
            Some(setup::checkpointing(manifest, db, &*connectors, &stop, &options).await?)
        }
        _ => None,
    };
    let started = spawn::instantiate(manifest, &factories, db.as_ref(), &options).await?;
    let slots = spawn::swap_slots(manifest, &factories, &started, &options.swaps);
    let sinks = spawn::sinks(manifest, &mut wiring, &*connectors, &counters, &mut ckpt)?;
    let sources = spawn::Sources {
        counters: &counters,
        stop: &stop,
        options: &options,
    };
    let sources = spawn::sources(manifest, &wiring, &*connectors, sources, &mut ckpt)?;

    let mut tasks = spawn::Tasks::new();
    let commit_interval = manifest
        .state
        .commit_interval
        .unwrap_or(std::time::Duration::from_secs(10));
    let joins = spawn::Joins {
        manifest,
        counters: &counters,
        db: db.as_ref(),
        commit_interval,
    };
    spawn::joins(joins, &mut wiring, &mut ckpt, &mut tasks)?;
    let operators = spawn::Operators {
        manifest,
        wiring: &mut wiring,
        slots: &slots,
        counters: &counters,
        options: &options,
        commit_interval: manifest
            .state
            .commit_interval
            .unwrap_or(std::time::Duration::from_secs(10)),
    };
    let tickers = spawn::operators(started, operators, &mut ckpt, &mut tasks);
    // Every producer holds its own senders now; the channels close when the producers finish.
    drop(wiring);
    spawn::ticker(tickers, options.tick);
    for (sink, rx) in sinks {
        tasks.spawn_blocking(move || sink.run(rx));
    }
    for (cx, reader) in sources {
        tasks.spawn(cx.run(reader));
    }
    let coordinator = ckpt.map(|c| {
        let checkpoints = counters.get(CHECKPOINTS).cloned().unwrap_or_default();
        tokio::spawn(c.coordinator(checkpoints, &options.swaps).run())
    });
    let first_error = join(tasks, coordinator, db, &stop, &options.swaps).await;
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

/// Every operator's plugin implements the world its manifest entry needs (a window needs an
/// aggregate, an aggregate a window); whether any keeps state.
fn check_kinds(
    manifest: &Manifest,
    factories: &BTreeMap<String, Arc<dyn OperatorFactory>>,
) -> Result<bool, DataflowError> {
    let mut stateful = false;
    for (name, op) in &manifest.operators {
        if op.join.is_some() {
            stateful = true;
            continue;
        }
        let factory = factories
            .get(name)
            .ok_or_else(|| DataflowError::NoFactory(name.clone()))?;
        let wrong = |problem| DataflowError::WrongKind {
            operator: name.clone(),
            plugin: factory.plugin_id(),
            kind: factory.kind(),
            problem,
        };
        if !op.outputs.is_empty() && !factory.can_route() {
            return Err(wrong(format!(
                "was built for contract 0.1.0, which cannot route events to named outputs (`outputs: [{}]`); rebuild it with a current SDK (contract {}), or remove `outputs:`",
                op.outputs.join(", "),
                flowlet_operator::CONTRACT_VERSION
            )));
        }
        match (factory.kind(), &op.window) {
            (PluginKind::Aggregator, None) => {
                let kinds = crate::window::kinds()
                    .iter()
                    .map(|k| k.name)
                    .collect::<Vec<_>>();
                return Err(wrong(format!(
                    "needs a `window:` on the operator (kind: {})",
                    kinds.join(" | ")
                )));
            }
            (PluginKind::Processor | PluginKind::StatefulProcessor, Some(_)) => {
                return Err(wrong(
                    "cannot run windows; remove `window:` or use a plugin of the `aggregator` world"
                        .into(),
                ));
            }
            (PluginKind::Processor, None) => {}
            _ => stateful = true,
        }
    }
    Ok(stateful)
}

/// One set of counters per node (and for checkpoints, with them).
fn counters_of(manifest: &Manifest) -> BTreeMap<String, Arc<NodeCounters>> {
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
    counters
}

/// Wait for every task, then the coordinator, then flush the store; the first error, if any.
async fn join(
    mut tasks: spawn::Tasks,
    coordinator: Option<tokio::task::JoinHandle<Result<(), DataflowError>>>,
    db: Option<state::StateDb>,
    stop: &Stop,
    swaps: &Arc<swap::Swaps>,
) -> Option<DataflowError> {
    // Swaps cannot outlive the run: a swap still waiting for a barrier is told so.
    struct ClearSwaps(Arc<swap::Swaps>);
    impl Drop for ClearSwaps {
        fn drop(&mut self) {
            self.0.clear();
        }
    }
    let _clear_swaps = ClearSwaps(swaps.clone());
    swaps.set_started();
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
            .map_err(|e| DataflowError::Panic(e.to_string()));
        match flushed {
            Ok(Err(e)) if first_error.is_none() => first_error = Some(e.into()),
            Err(e) if first_error.is_none() => first_error = Some(e),
            _ => {}
        }
    }
    first_error
}
