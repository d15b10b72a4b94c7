//! Pipelines run by the server: each is a manifest with its plugins pinned by digest, kept in
//! `<data>/pipelines/<name>/` (the record, the state directory, savepoints) and run by a
//! supervisor task that restarts it from its last checkpoint when it fails, with backoff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowlet_dataflow::swap::Swaps;
use flowlet_dataflow::{
    CHECKPOINTS, Clock, LiveStats, NodeCounters, OperatorFactory, PluginKind, RunOptions,
    Savepoints, Stop, SystemClock,
};
use flowlet_host::{Host, InstanceSettings};
use flowlet_manifest::{Manifest, PluginRef};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::registry::{History, Registry, write_atomic};

/// What is saved of a pipeline: enough to start it again after the server restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The manifest as deployed.
    pub manifest: String,
    /// Where its relative paths point.
    pub base_dir: PathBuf,
    /// The plugin each operator runs: `sha256:<hex>` or `builtin:NAME`.
    pub plugins: BTreeMap<String, String>,
    /// What each operator ran before, oldest first.
    #[serde(default)]
    pub history: History,
    /// The `name@version` a plugin digest was given as (in the manifest, a deploy's overrides
    /// or a swap): what the status reports, also when other names have the same bytes.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Where a pipeline is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Starting,
    Running,
    /// Failed; starts again from its last checkpoint after a pause.
    Restarting,
    /// Its bounded sources ended.
    Finished,
    Stopping,
}

/// The live side of one run (replaced at every restart).
#[derive(Clone)]
pub struct RunHandles {
    pub stop: Arc<Stop>,
    pub live: LiveStats,
    pub savepoints: Arc<Savepoints>,
    pub swaps: Arc<Swaps>,
    pub started: Instant,
}

pub struct Pipeline {
    pub name: String,
    pub dir: PathBuf,
    pub record: Mutex<Record>,
    pub manifest: Manifest,
    pub phase: Mutex<(Phase, Option<String>)>,
    pub run: Mutex<Option<RunHandles>>,
    pub restarts: std::sync::atomic::AtomicU64,
    /// Events per second of each node over the last second (sampled by the supervisor).
    pub rates: Mutex<BTreeMap<String, f64>>,
    deleting: std::sync::atomic::AtomicBool,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Parse a pipeline's manifest: plugins may name registry entries; its state lives in the
/// pipeline's directory whatever the manifest says.
pub fn parse_manifest(
    text: &str,
    base_dir: &Path,
    name: Option<&str>,
    dir_of: impl Fn(&str) -> PathBuf,
) -> ApiResult<Manifest> {
    let options = flowlet_manifest::Options {
        registry: true,
        ..crate::options()
    };
    // The file name is the default pipeline name; `.unnamed` is not a valid one.
    let file = base_dir.join(format!("{}.yaml", name.unwrap_or(".unnamed")));
    let mut m = flowlet_manifest::parse_str(text, &file, &options)
        .map_err(|d| ApiError::Unprocessable(format!("the manifest is invalid:\n{d}")))?;
    if let Some(n) = name {
        m.name = n.to_owned();
    }
    if !flowlet_manifest::valid_name(&m.name) {
        return Err(ApiError::Unprocessable(
            "the pipeline needs a name: `name:` in the manifest (or `name` in the request), of letters, digits, `.`, `_`, `-`".into(),
        ));
    }
    m.state.dir = Some(dir_of(&m.name).join("state"));
    Ok(m)
}

/// Make the operators' instance factories from the pinned plugins.
pub fn factories(
    host: &Host,
    registry: &Registry,
    manifest: &Manifest,
    plugins: &BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, Arc<dyn OperatorFactory>>> {
    let mut out = BTreeMap::new();
    // A join without a plugin is the executor's own (it merges the pairs).
    for (name, _) in manifest.operators.iter().filter(|(_, o)| o.join.is_none()) {
        let id = plugins
            .get(name)
            .ok_or_else(|| ApiError::Internal(format!("operator `{name}` has no pinned plugin")))?;
        out.insert(name.clone(), factory(host, registry, manifest, name, id)?);
    }
    Ok(out)
}

/// A factory of instances of plugin `id` for `operator`.
pub fn factory(
    host: &Host,
    registry: &Registry,
    manifest: &Manifest,
    operator: &str,
    id: &str,
) -> ApiResult<Arc<dyn OperatorFactory>> {
    let op = &manifest.operators[operator];
    if let Some(b) = id.strip_prefix("builtin:") {
        return crate::builtins::factory(b, op.config.clone()).ok_or_else(|| {
            ApiError::Unprocessable(format!("operator `{operator}`: no built-in operator `{b}`"))
        });
    }
    let plugin = host
        .load(&registry.blob(id))
        .map_err(|e| ApiError::Unprocessable(format!("operator `{operator}`: {e}")))?;
    // Content-addressed means checked: a stored file that changed is not run under its name.
    if plugin.digest != id {
        return Err(ApiError::Unprocessable(format!(
            "operator `{operator}`: the stored plugin {id} is damaged (its file {} hashes to {}); delete it and upload it again",
            registry.blob(id).display(),
            plugin.digest
        )));
    }
    Ok(Arc::new(plugin.factory(
        host,
        operator,
        InstanceSettings::from_manifest(manifest, op),
    )))
}

impl Pipeline {
    pub fn new(record: Record, manifest: Manifest, dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            name: record.name.clone(),
            dir,
            record: Mutex::new(record),
            manifest,
            phase: Mutex::new((Phase::Starting, None)),
            run: Mutex::new(None),
            restarts: 0.into(),
            rates: Mutex::default(),
            deleting: false.into(),
            supervisor: Mutex::new(None),
        })
    }

    pub fn save(&self) -> ApiResult<()> {
        let record = self.record.lock().expect("record lock").clone();
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| ApiError::internal("cannot create the pipeline directory", e))?;
        write_atomic(
            &self.dir.join("pipeline.json"),
            &serde_json::to_vec_pretty(&record).expect("a record is JSON"),
        )
        .map_err(|e| ApiError::internal("cannot save the pipeline", e))
    }

    fn set_phase(&self, phase: Phase, error: Option<String>) {
        *self.phase.lock().expect("phase lock") = (phase, error);
    }

    pub fn phase(&self) -> (Phase, Option<String>) {
        self.phase.lock().expect("phase lock").clone()
    }

    pub fn handles(&self) -> Option<RunHandles> {
        self.run.lock().expect("run lock").clone()
    }

    fn operator(&self, name: &str) -> ApiResult<&flowlet_manifest::Operator> {
        self.manifest.operators.get(name).ok_or_else(|| {
            ApiError::NotFound(format!("pipeline `{}` has no operator `{name}`", self.name))
        })
    }

    /// Whether a plugin digest is pinned by this pipeline, now or for a rollback.
    pub fn uses(&self, digest: &str) -> bool {
        let r = self.record.lock().expect("record lock");
        r.plugins.values().any(|p| p == digest) || r.history.values().flatten().any(|p| p == digest)
    }

    /// Start the supervisor: run, and after a failure run again from the last checkpoint.
    pub fn start(self: &Arc<Self>, host: Host, registry: Arc<Registry>) {
        let me = self.clone();
        let task = tokio::spawn(async move { me.supervise(host, registry).await });
        *self.supervisor.lock().expect("supervisor lock") = Some(task);
    }

    async fn supervise(self: Arc<Self>, host: Host, registry: Arc<Registry>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let handles = RunHandles {
                stop: Stop::new(),
                live: LiveStats::default(),
                savepoints: Arc::default(),
                swaps: Arc::default(),
                started: Instant::now(),
            };
            *self.run.lock().expect("run lock") = Some(handles.clone());
            self.set_phase(Phase::Starting, None);
            let plugins = self.record.lock().expect("record lock").plugins.clone();
            // Loading compiles a component on a cache miss (10+ s for an interpreted
            // language's): not on the async runtime.
            let made = {
                let (host, registry, manifest) =
                    (host.clone(), registry.clone(), self.manifest.clone());
                tokio::task::spawn_blocking(move || {
                    factories(&host, &registry, &manifest, &plugins)
                })
                .await
                .unwrap_or_else(|e| Err(ApiError::internal("loading plugins panicked", e)))
            };
            let result = match made {
                Ok(f) => {
                    let options = RunOptions {
                        live: handles.live.clone(),
                        savepoints: handles.savepoints.clone(),
                        swaps: handles.swaps.clone(),
                        ..flowlet_connectors::run_options()
                    };
                    let run =
                        flowlet_dataflow::run(&self.manifest, f, handles.stop.clone(), options);
                    tokio::pin!(run);
                    let mut tick = tokio::time::interval(Duration::from_millis(250));
                    let mut last: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
                    loop {
                        tokio::select! {
                            r = &mut run => break r.map_err(|e| e.to_string()),
                            _ = tick.tick() => self.observe(&handles, &mut last),
                        }
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            self.sync_plugins(&handles);
            if self.deleting.load(Relaxed) {
                return;
            }
            match result {
                Ok(_) => {
                    tracing::info!(pipeline = %self.name, "pipeline finished: its bounded sources ended");
                    self.set_phase(Phase::Finished, None);
                    return;
                }
                Err(e) => {
                    tracing::error!(pipeline = %self.name, "pipeline failed: {e}; restarting from its last checkpoint in {backoff:?}");
                    self.restarts.fetch_add(1, Relaxed);
                    self.set_phase(Phase::Restarting, Some(e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    if self.deleting.load(Relaxed) {
                        return;
                    }
                }
            }
        }
    }

    /// Every tick: the phase, the rates, and the plugins the operators run (a rollback on
    /// probation changes them under the record's feet).
    fn observe(&self, handles: &RunHandles, last: &mut BTreeMap<String, (u64, Instant)>) {
        if handles.swaps.started() && self.phase().0 == Phase::Starting {
            self.set_phase(Phase::Running, None);
        }
        let mut rates = self.rates.lock().expect("rates lock");
        for name in self
            .manifest
            .sources
            .keys()
            .chain(self.manifest.operators.keys())
            .chain(self.manifest.sinks.keys())
        {
            let Some(c) = handles.live.counters(name) else {
                continue;
            };
            let n = if self.manifest.sources.contains_key(name) {
                c.events_out.load(Relaxed)
            } else {
                c.events_in.load(Relaxed)
            };
            let now = Instant::now();
            match last.get(name) {
                Some((m, t)) if now.duration_since(*t) >= Duration::from_millis(900) => {
                    let secs = now.duration_since(*t).as_secs_f64();
                    rates.insert(name.clone(), n.saturating_sub(*m) as f64 / secs);
                    last.insert(name.clone(), (n, now));
                }
                Some(_) => {}
                None => {
                    last.insert(name.clone(), (n, now));
                }
            }
        }
        drop(rates);
        self.sync_plugins(handles);
    }

    /// Record the plugin each operator runs now (after swaps and rollbacks).
    fn sync_plugins(&self, handles: &RunHandles) {
        let mut changed = false;
        {
            let mut r = self.record.lock().expect("record lock");
            for slot in handles.swaps.slots() {
                let now = slot.plugin();
                let pinned = r.plugins.get(&slot.name).cloned();
                if pinned.as_deref() != Some(now.as_str()) {
                    if let Some(old) = pinned {
                        let h = r.history.entry(slot.name.clone()).or_default();
                        h.retain(|p| *p != old && *p != now);
                        h.push(old);
                    }
                    r.plugins.insert(slot.name.clone(), now);
                    changed = true;
                }
            }
        }
        if changed && let Err(e) = self.save() {
            tracing::error!(pipeline = %self.name, "{e}");
        }
    }

    /// Swap `operator`'s plugin for `id` at the next barrier.
    pub async fn swap(
        &self,
        host: &Host,
        registry: &Arc<Registry>,
        operator: &str,
        id: &str,
    ) -> ApiResult<Value> {
        self.operator(operator)?;
        if self
            .manifest
            .operators
            .get(operator)
            .is_some_and(|o| o.join.is_some())
        {
            return Err(ApiError::Unprocessable(format!(
                "operator `{operator}` is a join kept by the host: it runs no plugin to swap (swap the operators before or after it)"
            )));
        }
        let handles = self
            .handles()
            .filter(|_| self.phase().0 == Phase::Running)
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "pipeline `{}` is not running ({:?}); swap when it runs",
                    self.name,
                    self.phase().0
                ))
            })?;
        let factory = {
            let (host, registry, manifest) =
                (host.clone(), registry.clone(), self.manifest.clone());
            let (operator, id) = (operator.to_owned(), id.to_owned());
            tokio::task::spawn_blocking(move || {
                factory(&host, &registry, &manifest, &operator, &id)
            })
            .await
            .map_err(|e| ApiError::internal("loading a plugin panicked", e))??
        };
        use flowlet_dataflow::swap::SwapError as E;
        let done = handles
            .swaps
            .swap(operator, factory)
            .await
            .map_err(|e| match e {
                E::NoOperator(_) => ApiError::NotFound(e.to_string()),
                E::WrongKind { .. } | E::Init { .. } | E::CannotRoute { .. } => {
                    ApiError::Unprocessable(e.to_string())
                }
                E::Busy(_) | E::NotRunning => ApiError::Conflict(e.to_string()),
            })?;
        if let PluginRef::Registry { name, version } = PluginRef::parse(id) {
            let mut r = self.record.lock().expect("record lock");
            r.labels
                .insert(done.to.clone(), format!("{name}@{version}"));
        }
        self.sync_plugins(&handles);
        if let Err(e) = self.save() {
            tracing::error!(pipeline = %self.name, "{e}");
        }
        Ok(json!({
            "operator": operator,
            "from": done.from,
            "to": done.to,
            "barrier": done.at,
            "probation-batches": flowlet_dataflow::swap::PROBATION_BATCHES,
        }))
    }

    /// Stop after a final checkpoint (also written as a savepoint file with `keep_savepoint`
    /// and checkpoints configured) and wait for the run to end. Returns the savepoint.
    pub async fn stop(&self, keep_savepoint: bool) -> Option<PathBuf> {
        self.deleting.store(true, Relaxed);
        self.set_phase(Phase::Stopping, None);
        let mut savepoint = None;
        if let Some(h) = self.handles() {
            if keep_savepoint && self.manifest.checkpoint.is_some() {
                let path = self
                    .dir
                    .join(format!("final-{}.flowlet", std::process::id()));
                let take = h.savepoints.take(true, Some(path));
                match tokio::time::timeout(Duration::from_secs(60), take).await {
                    Ok(Ok(p)) => savepoint = Some(p),
                    Ok(Err(e)) => tracing::warn!(pipeline = %self.name, "no final savepoint: {e}"),
                    Err(_) => {
                        tracing::warn!(pipeline = %self.name, "no final savepoint within 60 s")
                    }
                }
            }
            h.stop.stop();
        }
        let task = self.supervisor.lock().expect("supervisor lock").take();
        if let Some(t) = task
            && tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .is_err()
        {
            tracing::warn!(pipeline = %self.name, "the pipeline did not stop within 60 s");
        }
        savepoint
    }

    /// The status document of `GET /v1/pipelines/{name}`.
    pub fn status(&self, registry: &Registry) -> Value {
        let (phase, error) = self.phase();
        let record = self.record.lock().expect("record lock").clone();
        let handles = self.handles();
        let rates = self.rates.lock().expect("rates lock").clone();
        let sources = self.sources_status(handles.as_ref(), &rates);
        let operators = self.operators_status(handles.as_ref(), &rates, &record, registry);
        let sinks = self.sinks_status(handles.as_ref(), &rates);
        let checkpoint = checkpoint_status(handles.as_ref());
        json!({
            "name": self.name,
            "phase": phase,
            "error": error,
            "restarts": self.restarts.load(Relaxed),
            "uptime-seconds": handles.as_ref().map(|h| h.started.elapsed().as_secs_f64()),
            "guarantee": self.guarantee(),
            "last-checkpoint": checkpoint,
            "sources": sources,
            "operators": operators,
            "sinks": sinks,
        })
    }

    /// The delivery guarantee the status reports: `None` without checkpoints.
    fn guarantee(&self) -> Option<&'static str> {
        self.manifest
            .checkpoint
            .as_ref()
            .map(|_| match self.manifest.guarantee {
                flowlet_manifest::Guarantee::AtMostOnce => "at-most-once",
                flowlet_manifest::Guarantee::AtLeastOnce => "at-least-once",
                flowlet_manifest::Guarantee::ExactlyOnce => "exactly-once",
            })
    }

    /// The `sources` of the status: each source's counters, rate, watermark and consumer lag.
    fn sources_status(
        &self,
        handles: Option<&RunHandles>,
        rates: &BTreeMap<String, f64>,
    ) -> serde_json::Map<String, Value> {
        let mut sources = serde_json::Map::new();
        for name in self.manifest.sources.keys() {
            let c = node_counters(handles, name);
            sources.insert(
                name.clone(),
                json!({
                    "events-out": load(&c, |c| &c.events_out),
                    "events-per-second": rates.get(name).copied().unwrap_or(0.0),
                    "watermark": c.as_ref().and_then(|c| watermark(c)),
                    "dead-letters": load(&c, |c| &c.dead_lettered),
                    "consumer-lag": c.as_ref().map(|c| c.partition_lag.lock().expect("lag lock").clone()).unwrap_or_default(),
                }),
            );
        }
        sources
    }

    /// The `operators` of the status: each operator's plugin (and its label from `record` or
    /// `registry`), counters, rate, watermark and swaps.
    fn operators_status(
        &self,
        handles: Option<&RunHandles>,
        rates: &BTreeMap<String, f64>,
        record: &Record,
        registry: &Registry,
    ) -> serde_json::Map<String, Value> {
        let mut operators = serde_json::Map::new();
        for (name, op) in &self.manifest.operators {
            let c = node_counters(handles, name);
            let slot = handles.and_then(|h| h.swaps.slot(name));
            let plugin = slot
                .as_ref()
                .map(|s| s.plugin())
                .or_else(|| record.plugins.get(name).cloned())
                .unwrap_or_default();
            let get = |f| load(&c, f);
            operators.insert(
                name.clone(),
                json!({
                    "plugin": plugin,
                    "plugin-version": plugin_label(&plugin, record, registry),
                    "previous": record.history.get(name).cloned().unwrap_or_default(),
                    "instances": op.parallelism,
                    "events-in": get(|c| &c.events_in),
                    "events-out": get(|c| &c.events_out),
                    "events-per-second": rates.get(name).copied().unwrap_or(0.0),
                    "watermark": c.as_ref().and_then(|c| watermark(c)),
                    "late": get(|c| &c.late),
                    "dead-letters": get(|c| &c.dead_lettered),
                    "rejected": get(|c| &c.rejected),
                    "restarts": get(|c| &c.restarts),
                    "swaps": slot.as_ref().map_or(0, |s| s.counters.swaps.load(Relaxed)),
                    "rollbacks": slot.as_ref().map_or(0, |s| s.counters.rollbacks.load(Relaxed)),
                    "last-swap": slot.as_ref().and_then(|s| s.status()),
                }),
            );
        }
        operators
    }

    /// The `sinks` of the status: each sink's events in and rate.
    fn sinks_status(
        &self,
        handles: Option<&RunHandles>,
        rates: &BTreeMap<String, f64>,
    ) -> serde_json::Map<String, Value> {
        let mut sinks = serde_json::Map::new();
        for name in self.manifest.sinks.keys() {
            let c = node_counters(handles, name);
            sinks.insert(
                name.clone(),
                json!({
                    "events-in": load(&c, |c| &c.events_in),
                    "events-per-second": rates.get(name).copied().unwrap_or(0.0),
                }),
            );
        }
        sinks
    }

    /// The keyed state of `key` in `operator`: live from the running instance that owns the
    /// key, else from the last checkpoint in the state directory.
    pub async fn state(&self, operator: &str, key: &str) -> ApiResult<Value> {
        let op = self.operator(operator)?;
        let kb = key.as_bytes();
        let group = flowlet_dataflow::key_group(kb);
        let instance = flowlet_dataflow::instance_of(group, op.parallelism as usize);
        let slot = self
            .handles()
            .filter(|_| self.phase().0 == Phase::Running)
            .and_then(|h| h.swaps.slot(operator));
        let (entries, source) = match slot {
            Some(slot) => {
                if slot.kind != PluginKind::StatefulProcessor {
                    return Err(ApiError::BadRequest(format!(
                        "operator `{operator}` runs a `{}` plugin, which keeps no keyed state to query (state queries read stateful processors)",
                        slot.kind
                    )));
                }
                let st = slot
                    .state_of(instance)
                    .ok_or_else(|| ApiError::Internal("no state handle".into()))?;
                let entries = st.lock().expect("state lock").entries_of(kb);
                (entries, "live")
            }
            None => {
                if op.window.is_some() {
                    return Err(ApiError::BadRequest(format!(
                        "operator `{operator}` is a window aggregate; state queries read stateful processors"
                    )));
                }
                let dir = self.manifest.state_dir();
                let (op_name, key) = (operator.to_owned(), kb.to_vec());
                let read = tokio::task::spawn_blocking(move || {
                    let db = flowlet_dataflow::state::StateDb::open(&dir)?;
                    let now = SystemClock.now();
                    flowlet_dataflow::state::stored_entries_of(&db, &op_name, &key, now)
                })
                .await
                .map_err(|e| ApiError::internal("state query panicked", e))?;
                let entries = read.map_err(|e| {
                    ApiError::Unavailable(format!(
                        "the pipeline is starting and its state is not readable yet ({e}); try again"
                    ))
                })?;
                (entries, "checkpoint")
            }
        };
        let values: Vec<Value> = entries
            .into_iter()
            .map(|e| {
                json!({
                    "kind": e.kind,
                    "name": e.name,
                    "map-key": e.map_key.map(|k| bytes_json(&k)),
                    "value": bytes_json(&e.value),
                })
            })
            .collect();
        Ok(json!({
            "pipeline": self.name,
            "operator": operator,
            "key": key,
            "key-group": group,
            "instance": instance,
            "source": source,
            "state": values,
        }))
    }
}

/// The live counters of node `name`, `None` when the pipeline does not run.
fn node_counters(handles: Option<&RunHandles>, name: &str) -> Option<Arc<NodeCounters>> {
    handles.and_then(|h| h.live.counters(name))
}

/// A counter of a node, 0 when the node has not started.
fn load(
    c: &Option<Arc<NodeCounters>>,
    f: fn(&NodeCounters) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    c.as_ref().map_or(0, |c| f(c).load(Relaxed))
}

/// A node's watermark, `None` before its first.
fn watermark(c: &NodeCounters) -> Option<i64> {
    let w = c.watermark.load(Relaxed);
    (w != i64::MIN).then_some(w)
}

/// The `name@version` the status shows for plugin `id`: a built-in's id, else the label it
/// was given (in `record`, else in `registry`).
fn plugin_label(id: &str, record: &Record, registry: &Registry) -> Option<String> {
    if id.starts_with("builtin:") {
        Some(id.to_owned())
    } else {
        record
            .labels
            .get(id)
            .cloned()
            .or_else(|| registry.label(id))
    }
}

/// The `last-checkpoint` of the status: the last id, how many, their mean duration and the
/// size of the last; `None` when the pipeline does not run.
fn checkpoint_status(handles: Option<&RunHandles>) -> Option<Value> {
    node_counters(handles, CHECKPOINTS).map(|c| {
        let n = c.commits.load(Relaxed);
        json!({
            "last": c.last_id.load(Relaxed),
            "taken": n,
            "mean-duration-ms": if n == 0 { 0.0 } else { c.commit_nanos.load(Relaxed) as f64 / n as f64 / 1e6 },
            "last-bytes": c.bytes.load(Relaxed),
        })
    })
}

/// State bytes as JSON: the JSON they hold, else their text, else `{"hex": …}`.
pub(crate) fn bytes_json(b: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(b) {
        return v;
    }
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "hex": hex::encode(b) }),
    }
}

/// Resolve every operator's plugin of a manifest to a pinned id; `overrides` replace the
/// manifest's references by operator. Also returns the `name@version` each pinned id was
/// referenced by (for the status).
pub fn pin_plugins(
    host: &Host,
    registry: &Registry,
    manifest: &Manifest,
    overrides: &BTreeMap<String, String>,
) -> ApiResult<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    for op in overrides.keys() {
        if !manifest.operators.contains_key(op) {
            return Err(ApiError::Unprocessable(format!(
                "`plugins` names operator `{op}`, which the manifest does not have"
            )));
        }
    }
    let mut out = BTreeMap::new();
    let mut labels = BTreeMap::new();
    for (name, op) in &manifest.operators {
        let r = match overrides.get(name) {
            Some(text) => PluginRef::parse(text),
            None => op.plugin.clone(),
        };
        if let PluginRef::Builtin(b) = &r
            && !crate::builtins::NAMES.contains(&b.as_str())
            && b != flowlet_manifest::JOIN_MERGE
        {
            return Err(ApiError::Unprocessable(format!(
                "operator `{name}`: there is no built-in operator `{b}`"
            )));
        }
        let id = registry
            .resolve(&r, &manifest.base_dir, host)
            .map_err(|e| match e {
                ApiError::Unprocessable(m) => {
                    ApiError::Unprocessable(format!("operator `{name}`: {m}"))
                }
                e => e,
            })?;
        if let PluginRef::Registry { name, version } = &r {
            labels.insert(id.clone(), format!("{name}@{version}"));
        }
        out.insert(name.clone(), id);
    }
    Ok((out, labels))
}
