//! Before anything flows: the state store (locked, cleared or seeded from a savepoint) and,
//! with checkpoints, what the last one saved and the channels of the protocol.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use flowlet_manifest::Manifest;
use tokio::sync::{mpsc, watch};

use crate::connect::Connect;
use crate::options::RunOptions;
use crate::stop::Stop;
use crate::{DataflowError, checkpoint, lock, state};

/// The state store of a run and the lock held on its directory until the run returns.
pub(super) type OpenState = (state::StateDb, Arc<lock::StateLock>);

/// Open the state store (when an operator keeps state or the topology checkpoints).
pub(super) async fn open_state(
    manifest: &Manifest,
    options: &RunOptions,
) -> Result<OpenState, DataflowError> {
    let dir = manifest.state_dir();
    let fresh =
        manifest.checkpoint.is_some() && (options.from_scratch || options.from_savepoint.is_some());
    let savepoint = options.from_savepoint.clone();
    let taken = options.state_lock.clone();
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
    .map_err(|e| DataflowError::Panic(e.to_string()))?
}

/// The checkpoint side of a run being set up.
pub(super) struct Checkpointing {
    db: state::StateDb,
    tasks: Vec<String>,
    run: u64,
    guarantee: flowlet_manifest::Guarantee,
    report_tx: mpsc::UnboundedSender<checkpoint::Report>,
    trigger_rx: watch::Receiver<checkpoint::CheckpointId>,
    completed_rx: watch::Receiver<checkpoint::Completed>,
    restored: checkpoint::Restored,
    coordinator: checkpoint::Coordinator,
    /// What the connectors set up for each sink.
    pub shared: BTreeMap<String, Box<dyn Any + Send>>,
}

/// Set up checkpoints: the connectors' committer (which first decides a checkpoint a crash left
/// pending), what the last checkpoint saved, and the coordinator.
pub(super) async fn checkpointing(
    manifest: &Manifest,
    db: &state::StateDb,
    connectors: &dyn Connect,
    stop: &Arc<Stop>,
    options: &RunOptions,
) -> Result<Checkpointing, DataflowError> {
    let interval = manifest.checkpoint.as_ref().map(|c| c.interval);
    let prepared = connectors.prepare(manifest).await?;
    let (committer, restored) = {
        let d = db.clone();
        let committer = prepared.committer;
        tokio::task::spawn_blocking(move || -> Result<_, DataflowError> {
            checkpoint::resolve_pending(&d, committer.as_deref())?;
            Ok((committer, checkpoint::restore(&d)?))
        })
        .await
        .map_err(|e| DataflowError::Panic(e.to_string()))??
    };
    let mut record = restored
        .record
        .clone()
        .unwrap_or_else(|| checkpoint::CheckpointRecord::empty(&manifest.name));
    if let Some(r) = &restored.record {
        tracing::info!(
            checkpoint = r.id,
            "resuming from the checkpoint of {} ({})",
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.taken_at.max(0) as u64)
            ),
            db.dir().display()
        );
    }
    let run = checkpoint::new_run_id();
    record.run = run;
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (trigger_tx, trigger_rx) = watch::channel(record.id);
    let (completed_tx, completed_rx) = watch::channel(checkpoint::Completed {
        id: record.id,
        lineage: record.lineage_header().into(),
    });
    let savepoints = options
        .savepoints
        .take_receiver()
        .unwrap_or_else(|| mpsc::channel(1).1);
    let coordinator = checkpoint::Coordinator {
        db: db.clone(),
        tasks: Vec::new(),
        interval: interval.unwrap_or(std::time::Duration::from_secs(10)),
        reports: report_rx,
        trigger: trigger_tx,
        completed: completed_tx,
        savepoints,
        stop: stop.clone(),
        record,
        committer,
        counters: Arc::default(),
        arms: mpsc::unbounded_channel().1,
    };
    Ok(Checkpointing {
        db: db.clone(),
        tasks: Vec::new(),
        run,
        guarantee: manifest.guarantee,
        report_tx,
        trigger_rx,
        completed_rx,
        restored,
        coordinator,
        shared: prepared.shared,
    })
}

impl Checkpointing {
    /// Register task `name` (a source, an operator instance `op#i`, a sink): its side of the
    /// protocol, with what it saved in the checkpoint the run starts from.
    pub fn task(&mut self, name: &str) -> checkpoint::TaskCheckpoints {
        let task = self.tasks.len();
        self.tasks.push(name.to_owned());
        checkpoint::TaskCheckpoints {
            task,
            name: name.to_owned(),
            guarantee: self.guarantee,
            reports: self.report_tx.clone(),
            completed: self.completed_rx.clone(),
            trigger: self.trigger_rx.clone(),
            restored: self.restored.task(name).cloned(),
            read: self.restored.read.get(name).cloned(),
            run: self.run,
            db: self.db.clone(),
        }
    }

    /// The coordinator, knowing every task, its counters and where swaps are armed.
    pub fn coordinator(
        self,
        counters: Arc<crate::NodeCounters>,
        swaps: &crate::swap::Swaps,
    ) -> checkpoint::Coordinator {
        let mut c = self.coordinator;
        c.tasks = self.tasks;
        c.counters = counters;
        let (arm_tx, arm_rx) = mpsc::unbounded_channel();
        c.arms = arm_rx;
        swaps.set_coordinator(Some(arm_tx));
        c
    }
}

/// [`Checkpointing::task`] when the run checkpoints.
pub(super) fn task_ckpt(
    ckpt: &mut Option<Checkpointing>,
    name: &str,
) -> Option<checkpoint::TaskCheckpoints> {
    ckpt.as_mut().map(|c| c.task(name))
}
