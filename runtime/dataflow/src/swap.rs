//! Hot swaps: replacing a running operator's plugin without stopping the topology.
//!
//! A swap is prepared outside the data path: the new plugin's instances are made and
//! initialised (one per instance of the operator, on the same keyed state) while the old ones
//! keep running. Only when every one of them started is the swap armed, for checkpoint
//! barrier `at`: each instance task replaces its plugin when that barrier passes, after its
//! snapshot, so that with aligned barriers every output before the barrier comes from the old
//! version and every output after it from the new one. Topologies without checkpoints have no
//! barriers; there each instance swaps at its next message.
//!
//! After the swap the new version is **on probation** for its first batches: a batch (or a
//! timer, or a window's `add`/`finish`) that traps or fails undoes its state changes, brings
//! back the previous version and is handled again by it. The other instances of the operator
//! follow at their next batch. Nothing is lost or repeated: the failed call's output is
//! dropped and its state changes undone before the previous version handles the same input.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::{CheckpointId, Instance, InstanceContext, OperatorError, OperatorFactory, PluginKind};

/// How many batches a swapped-in plugin handles on probation, per instance.
pub const PROBATION_BATCHES: u32 = 8;

/// Why a swap did not happen.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SwapError {
    #[error("the topology has no operator `{0}`")]
    NoOperator(String),
    #[error(
        "operator `{operator}` runs a `{running}` plugin and {plugin} implements `{offered}`; a swap keeps the world"
    )]
    WrongKind {
        operator: String,
        plugin: String,
        running: PluginKind,
        offered: PluginKind,
    },
    #[error(
        "{plugin} failed to start on operator `{operator}` (instance {instance}): {error}; the running version stays"
    )]
    Init {
        operator: String,
        plugin: String,
        instance: usize,
        error: OperatorError,
    },
    #[error(
        "operator `{operator}` routes to named outputs ({outputs}) and {plugin} was built for contract 0.1.0, which cannot; rebuild it with a current SDK"
    )]
    CannotRoute {
        operator: String,
        plugin: String,
        outputs: String,
    },
    #[error("operator `{0}` has a swap in progress; try again when it is done")]
    Busy(String),
    #[error("the topology is not running")]
    NotRunning,
}

/// What the status of an operator says about its last swap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum SwapStatus {
    /// Armed, waiting for barrier `at`.
    Pending { to: String, at: CheckpointId },
    /// Swapped in; on probation until its first batches pass.
    Probation { from: String, to: String },
    /// Swapped in and past probation.
    Done { from: String, to: String },
    /// The new version failed to start; the old one never stopped.
    Refused {
        from: String,
        to: String,
        reason: String,
    },
    /// The new version failed on probation; the previous one came back.
    RolledBack {
        from: String,
        to: String,
        reason: String,
    },
}

/// The counters of swaps, per operator.
#[derive(Debug, Default)]
pub struct SwapCounters {
    pub swaps: AtomicU64,
    pub rollbacks: AtomicU64,
    /// Refused before the old version stopped (init failed).
    pub refused: AtomicU64,
}

struct Armed {
    /// One prepared instance per operator instance, taken by each at the barrier.
    prepared: Vec<Option<Instance>>,
    factory: Arc<dyn OperatorFactory>,
    /// How many instances still have to take theirs.
    left: usize,
    reply: Option<oneshot::Sender<Result<SwapDone, SwapError>>>,
}

/// What a swap that took place reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapDone {
    pub from: String,
    pub to: String,
    /// The barrier at which it happened (0 without checkpoints).
    pub at: CheckpointId,
}

/// The swap side of one operator: shared by its instance tasks and the control plane.
pub struct OperatorSlot {
    pub name: String,
    pub kind: PluginKind,
    /// The instances' contexts (their keyed state), while the run lasts.
    ctxs: Mutex<Vec<InstanceContext>>,
    /// The same keyed state as the executor reads it (state queries).
    states: Mutex<Vec<Option<crate::state::StateHandle>>>,
    /// The plugin the instances run (what a status shows).
    current: Mutex<Arc<dyn OperatorFactory>>,
    /// The barrier at which an armed swap happens; `u64::MAX` when none is armed. Read on every
    /// message by the instance tasks (one atomic load).
    armed_at: AtomicU64,
    armed: Mutex<Option<Armed>>,
    /// Bumped when an instance rolled back: the others follow.
    generation: AtomicU64,
    status: Mutex<Option<SwapStatus>>,
    pub counters: SwapCounters,
}

impl OperatorSlot {
    pub fn plugin(&self) -> String {
        self.current.lock().expect("slot lock").plugin_id()
    }

    pub fn status(&self) -> Option<SwapStatus> {
        self.status.lock().expect("slot lock").clone()
    }

    /// The keyed state handle of instance `i` (stateful processors), while the run lasts.
    pub fn state_of(&self, i: usize) -> Option<crate::state::StateHandle> {
        self.states.lock().expect("slot lock").get(i)?.clone()
    }

    fn set_status(&self, s: SwapStatus) {
        *self.status.lock().expect("slot lock") = Some(s);
    }
}

/// A request to the checkpoint coordinator: arm `slot` for the next barrier it triggers.
pub(crate) struct ArmRequest {
    pub slot: Arc<OperatorSlot>,
    pub reply: oneshot::Sender<CheckpointId>,
}

/// The hot-swap handle of a running topology.
#[derive(Default)]
pub struct Swaps {
    slots: Mutex<BTreeMap<String, Arc<OperatorSlot>>>,
    /// To the coordinator (topologies with checkpoints).
    coordinator: Mutex<Option<mpsc::UnboundedSender<ArmRequest>>>,
    /// The run ended: no swap can happen any more (the slots stay, for their counters).
    ended: std::sync::atomic::AtomicBool,
    /// Every instance of the run has started (the data flows).
    started: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Swaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swaps").finish_non_exhaustive()
    }
}

impl Swaps {
    pub(crate) fn register(
        &self,
        name: &str,
        factory: Arc<dyn OperatorFactory>,
        instances: Vec<(InstanceContext, Option<crate::state::StateHandle>)>,
    ) -> Arc<OperatorSlot> {
        let (ctxs, states) = instances.into_iter().unzip();
        let slot = Arc::new(OperatorSlot {
            name: name.to_owned(),
            kind: factory.kind(),
            ctxs: Mutex::new(ctxs),
            states: Mutex::new(states),
            current: Mutex::new(factory),
            armed_at: AtomicU64::new(u64::MAX),
            armed: Mutex::new(None),
            generation: AtomicU64::new(0),
            status: Mutex::new(None),
            counters: SwapCounters::default(),
        });
        self.slots
            .lock()
            .expect("swaps lock")
            .insert(name.to_owned(), slot.clone());
        slot
    }

    /// Whether every instance of the run started and the data flows.
    pub fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    pub(crate) fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub(crate) fn set_coordinator(&self, tx: Option<mpsc::UnboundedSender<ArmRequest>>) {
        *self.coordinator.lock().expect("swaps lock") = tx;
    }

    /// The run ended: swaps waiting for a barrier that will not come are told so.
    pub(crate) fn clear(&self) {
        self.ended.store(true, Ordering::SeqCst);
        for slot in self.slots() {
            slot.armed.lock().expect("slot lock").take();
            // The state (and with it the state database) is released with the run.
            slot.ctxs.lock().expect("slot lock").clear();
            slot.states.lock().expect("slot lock").clear();
        }
        self.set_coordinator(None);
    }

    /// The operator's swap side, while the topology runs.
    pub fn slot(&self, operator: &str) -> Option<Arc<OperatorSlot>> {
        self.slots
            .lock()
            .expect("swaps lock")
            .get(operator)
            .cloned()
    }

    /// Every operator's swap side.
    pub fn slots(&self) -> Vec<Arc<OperatorSlot>> {
        self.slots
            .lock()
            .expect("swaps lock")
            .values()
            .cloned()
            .collect()
    }

    /// Replace `operator`'s plugin by `factory`'s: start its instances, arm the swap for the
    /// next barrier and wait until every instance swapped. The running version is not touched
    /// when the new one fails to start.
    pub async fn swap(
        &self,
        operator: &str,
        factory: Arc<dyn OperatorFactory>,
    ) -> Result<SwapDone, SwapError> {
        let slot = self
            .slot(operator)
            .ok_or_else(|| SwapError::NoOperator(operator.to_owned()))?;
        let from = slot.plugin();
        let to = factory.plugin_id();
        check_swappable(&slot, operator, &factory, &to)?;
        // Start the new version next to the old one.
        let ctxs = slot.ctxs.lock().expect("slot lock").clone();
        if ctxs.is_empty() {
            return Err(SwapError::NotRunning);
        }
        let prepared = prepare(&slot, operator, &factory, &ctxs, &from, &to).await?;
        let (reply, done) = oneshot::channel();
        self.hand_over(&slot, operator, prepared, factory, reply)?;
        let Some(at) = self.barrier(&slot).await else {
            *slot.armed.lock().expect("slot lock") = None;
            return Err(SwapError::NotRunning);
        };
        slot.set_status(SwapStatus::Pending { to: to.clone(), at });
        tracing::info!(operator, from = %from, to = %to, barrier = at, "hot swap armed");
        match done.await {
            Ok(r) => r,
            Err(_) => {
                *slot.armed.lock().expect("slot lock") = None;
                slot.armed_at.store(u64::MAX, Ordering::SeqCst);
                Err(SwapError::NotRunning)
            }
        }
    }

    /// Leave the prepared instances in `slot` for its instance tasks to take, unless the run
    /// ended or another swap was armed meanwhile.
    fn hand_over(
        &self,
        slot: &OperatorSlot,
        operator: &str,
        prepared: Vec<Option<Instance>>,
        factory: Arc<dyn OperatorFactory>,
        reply: oneshot::Sender<Result<SwapDone, SwapError>>,
    ) -> Result<(), SwapError> {
        let mut armed = slot.armed.lock().expect("slot lock");
        if self.ended.load(Ordering::SeqCst) {
            return Err(SwapError::NotRunning);
        }
        if armed.is_some() {
            return Err(SwapError::Busy(operator.to_owned()));
        }
        *armed = Some(Armed {
            left: prepared.len(),
            prepared,
            factory,
            reply: Some(reply),
        });
        Ok(())
    }

    /// The barrier at which `slot` swaps: the coordinator's next (it arms the slot), or 0 at
    /// once without checkpoints; `None` when the coordinator is gone.
    async fn barrier(&self, slot: &Arc<OperatorSlot>) -> Option<CheckpointId> {
        let coordinator = self.coordinator.lock().expect("swaps lock").clone();
        match coordinator {
            Some(tx) => {
                let (atx, arx) = oneshot::channel();
                let req = ArmRequest {
                    slot: slot.clone(),
                    reply: atx,
                };
                match tx.send(req) {
                    Ok(()) => arx.await.ok(),
                    Err(_) => None,
                }
            }
            None => {
                slot.armed_at.store(0, Ordering::SeqCst);
                Some(0)
            }
        }
    }
}

/// Check that `factory` (plugin `to`) can replace `slot`'s plugin: same kind, no swap armed.
fn check_swappable(
    slot: &OperatorSlot,
    operator: &str,
    factory: &Arc<dyn OperatorFactory>,
    to: &str,
) -> Result<(), SwapError> {
    if factory.kind() != slot.kind {
        return Err(SwapError::WrongKind {
            operator: operator.to_owned(),
            plugin: to.to_owned(),
            running: slot.kind,
            offered: factory.kind(),
        });
    }
    let outputs = slot
        .ctxs
        .lock()
        .expect("slot lock")
        .first()
        .map(|c| c.setup.outputs.join(", "));
    if let Some(outputs) = outputs.filter(|o| !o.is_empty())
        && !factory.can_route()
    {
        return Err(SwapError::CannotRoute {
            operator: operator.to_owned(),
            plugin: to.to_owned(),
            outputs,
        });
    }
    if slot.armed.lock().expect("slot lock").is_some() {
        return Err(SwapError::Busy(operator.to_owned()));
    }
    Ok(())
}

/// Make and initialise one instance of `factory` per context, one after the other; the first
/// that fails refuses the swap (counted, and shown in the status).
async fn prepare(
    slot: &OperatorSlot,
    operator: &str,
    factory: &Arc<dyn OperatorFactory>,
    ctxs: &[InstanceContext],
    from: &str,
    to: &str,
) -> Result<Vec<Option<Instance>>, SwapError> {
    let mut prepared = Vec::with_capacity(ctxs.len());
    for (i, ctx) in ctxs.iter().enumerate() {
        let f = factory.clone();
        let c = ctx.clone();
        let made = tokio::task::spawn_blocking(move || f.instantiate(&c))
            .await
            .unwrap_or_else(|e| Err(OperatorError::Trap(format!("init panicked: {e}"))));
        match made {
            Ok(instance) => prepared.push(Some(instance)),
            Err(error) => {
                slot.counters.refused.fetch_add(1, Ordering::Relaxed);
                let e = SwapError::Init {
                    operator: operator.to_owned(),
                    plugin: to.to_owned(),
                    instance: i,
                    error,
                };
                tracing::warn!(operator, "hot swap refused: {e}");
                slot.set_status(SwapStatus::Refused {
                    from: from.to_owned(),
                    to: to.to_owned(),
                    reason: e.to_string(),
                });
                return Err(e);
            }
        }
    }
    Ok(prepared)
}

/// Arm `slot` for barrier `at` (called by the coordinator before it triggers `at`).
pub(crate) fn arm(slot: &OperatorSlot, at: CheckpointId) {
    slot.armed_at.store(at, Ordering::SeqCst);
}

/// What a swap hands an instance task.
pub(crate) struct Incoming {
    pub instance: Instance,
    pub factory: Arc<dyn OperatorFactory>,
}

/// One instance's side of swaps: when to swap, probation, rollback.
pub(crate) struct InstanceSwaps {
    slot: Option<Arc<OperatorSlot>>,
    index: usize,
    /// Batches left on probation (0: not on probation).
    probation: u32,
    previous: Option<Arc<dyn OperatorFactory>>,
    generation: u64,
}

impl InstanceSwaps {
    pub fn new(slot: Option<Arc<OperatorSlot>>, index: usize) -> Self {
        Self {
            slot,
            index,
            probation: 0,
            previous: None,
            generation: 0,
        }
    }

    /// The swap armed for this instance at barrier `barrier` (`None`: no barrier, a topology
    /// without checkpoints), if one is due.
    pub fn due(
        &mut self,
        barrier: Option<CheckpointId>,
        current: &Arc<dyn OperatorFactory>,
    ) -> Option<Incoming> {
        let slot = self.slot.as_ref()?;
        let at = slot.armed_at.load(Ordering::Relaxed);
        if at == u64::MAX || barrier.unwrap_or(0) < at {
            return None;
        }
        let mut guard = slot.armed.lock().expect("slot lock");
        let armed = guard.as_mut()?;
        let instance = armed.prepared.get_mut(self.index)?.take()?;
        let factory = armed.factory.clone();
        armed.left -= 1;
        let from = current.plugin_id();
        let to = factory.plugin_id();
        if armed.left == 0 {
            let reply = armed.reply.take();
            *guard = None;
            slot.armed_at.store(u64::MAX, Ordering::SeqCst);
            *slot.current.lock().expect("slot lock") = factory.clone();
            slot.counters.swaps.fetch_add(1, Ordering::Relaxed);
            slot.set_status(SwapStatus::Probation {
                from: from.clone(),
                to: to.clone(),
            });
            tracing::info!(operator = %slot.name, %from, %to, "hot swap done");
            if let Some(r) = reply {
                let _ = r.send(Ok(SwapDone {
                    from,
                    to,
                    at: barrier.unwrap_or(0),
                }));
            }
        }
        drop(guard);
        self.previous = Some(current.clone());
        self.probation = PROBATION_BATCHES;
        self.generation = slot.generation.load(Ordering::SeqCst);
        Some(Incoming { instance, factory })
    }

    /// Whether calls should be guarded (journal the state, roll back on failure).
    pub fn on_probation(&self) -> bool {
        self.probation > 0
    }

    /// A guarded batch passed.
    pub fn passed(&mut self) {
        if self.probation == 0 {
            return;
        }
        self.probation -= 1;
        if self.probation == 0 {
            self.previous = None;
            if let Some(slot) = &self.slot
                && let Some(SwapStatus::Probation { from, to }) = slot.status()
            {
                slot.set_status(SwapStatus::Done { from, to });
            }
        }
    }

    /// When another instance of the operator rolled back this swap: the reason this instance
    /// rolls back too.
    pub fn rolled_back_elsewhere(&self) -> Option<crate::OperatorError> {
        let elsewhere = self.probation > 0
            && self
                .slot
                .as_ref()
                .is_some_and(|s| s.generation.load(Ordering::Relaxed) != self.generation);
        elsewhere.then(|| {
            crate::OperatorError::Failed(
                "another instance of the operator rolled the swap back".into(),
            )
        })
    }

    /// The new version failed on probation: the previous version's factory, to make a fresh
    /// instance of. Records why in the status (once per operator).
    pub fn roll_back(
        &mut self,
        current: &Arc<dyn OperatorFactory>,
        reason: &str,
    ) -> Option<Arc<dyn OperatorFactory>> {
        let previous = self.previous.take()?;
        self.probation = 0;
        if let Some(slot) = &self.slot {
            let first = slot.generation.load(Ordering::SeqCst) == self.generation;
            if first {
                slot.generation.fetch_add(1, Ordering::SeqCst);
                slot.counters.rollbacks.fetch_add(1, Ordering::Relaxed);
                *slot.current.lock().expect("slot lock") = previous.clone();
                let (from, to) = (previous.plugin_id(), current.plugin_id());
                tracing::warn!(operator = %slot.name, failed = %to, back_to = %from, "hot swap rolled back: {reason}");
                slot.set_status(SwapStatus::RolledBack {
                    from,
                    to,
                    reason: reason.to_owned(),
                });
            }
        }
        Some(previous)
    }
}
