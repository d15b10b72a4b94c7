//! Benchmarks of the executor's stages, driven without sources or sinks (`flowlet bench`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowlet_manifest::{OnError, Window};
use flowlet_types::{Batch, Timestamp};
use tokio::sync::mpsc;

use crate::edge::{Edge, Outputs};
use crate::policy::Policy;
use crate::{
    Aggregator, DataflowError, Envelope, Instance, InstanceContext, Message, NodeCounters,
    OperatorError, OperatorFactory, SystemClock,
};
use flowlet_types::splitmix64;

/// Event time of event 0 (as the generator source's).
const BASE_TIME: Timestamp = 1_700_000_000_000;

/// What to feed a window aggregate.
#[derive(Debug, Clone)]
pub struct WindowBench {
    pub events: u64,
    /// Distinct keys (uniformly random).
    pub keys: u64,
    pub batch_size: usize,
    /// Events per millisecond of event time.
    pub events_per_ms: u64,
    pub window: Window,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowBenchReport {
    pub events: u64,
    pub wall_seconds: f64,
    /// CPU time of the operator's thread: the cost on one core.
    pub operator_cpu_seconds: f64,
    /// Of which writing the open windows to the state database at the end.
    pub commit_seconds: f64,
    pub windows_fired: u64,
    pub events_out: u64,
    /// Bytes of the state database after the open windows were committed.
    pub state_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// CPU time (user + system) from a `/proc/…/stat` file; zero where there is none.
fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th,
    // in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Duration::from_secs_f64((ticks(11) + ticks(12)) / 100.0)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    stat_cpu("/proc/thread-self/stat")
}

/// CPU time of this process.
pub fn process_cpu() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// Peak resident memory of the process (VmHWM).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Batch `n` of the stream: keyed events `{"v":…}` with keys `k0000042`, timestamps rising
/// by one millisecond every `events_per_ms` events.
fn batch(cfg: &WindowBench, first: u64) -> Batch {
    let end = (first + cfg.batch_size as u64).min(cfg.events);
    let mut b = Batch::with_capacity((end - first) as usize, (end - first) as usize * 12);
    let mut key = Vec::with_capacity(16);
    for n in first..end {
        let r = splitmix64(n);
        key.clear();
        write!(key, "k{:07}", r % cfg.keys).expect("writing to a Vec");
        let ts = BASE_TIME + (n / cfg.events_per_ms) as Timestamp;
        b.push_with::<std::io::Error>(&key, ts, |buf| {
            write!(buf, r#"{{"v":{}}}"#, (r >> 32) % 1000)
        })
        .expect("writing to a Vec");
    }
    b
}

/// A new aggregate instance of `factory` (an error when it makes a processor).
fn aggregator(factory: &Arc<dyn OperatorFactory>) -> Result<Box<dyn Aggregator>, DataflowError> {
    let init = |error| DataflowError::Init {
        operator: "bench".into(),
        plugin: factory.plugin_id(),
        error,
    };
    match factory
        .instantiate(&InstanceContext::default())
        .map_err(init)?
    {
        Instance::Aggregator(a) => Ok(a),
        Instance::Processor(_) => Err(init(OperatorError::Malformed("not an aggregate".into()))),
    }
}

/// The keyed window task under test: `agg` on the `bench` tree of `db`, output to `out`.
fn window_task(
    cfg: &WindowBench,
    factory: &Arc<dyn OperatorFactory>,
    agg: Box<dyn Aggregator>,
    db: &crate::state::StateDb,
    out_tx: mpsc::Sender<Envelope>,
    counters: &Arc<NodeCounters>,
) -> Result<crate::window::WindowTask, DataflowError> {
    Ok(crate::window::WindowTask {
        keyed: true,
        ckpt: None,
        guarantee: flowlet_manifest::Guarantee::ExactlyOnce,
        policy: Policy {
            name: "bench".into(),
            instance_index: 0,
            plugin: factory.plugin_id(),
            on_error: OnError::Fail,
            counters: counters.clone(),
        },
        factory: factory.clone(),
        agg,
        spec: cfg.window.clone(),
        inputs: 1,
        main: Outputs::new(vec![Edge::new(vec![out_tx], 0, None)], 0),
        late: Outputs::new(Vec::new(), 0),
        dead_letter: Outputs::new(Vec::new(), 0),
        store: db.tree("bench", "windows")?,
        groups: 0..crate::edge::KEY_GROUPS,
        clock: Arc::new(SystemClock),
        commit_interval: Duration::from_secs(3600),
        swaps: crate::swap::InstanceSwaps::new(None, 0),
    })
}

/// Start the feeder thread: every batch followed by its watermark, then the end of the input.
fn spawn_feeder(cfg: &WindowBench, in_tx: mpsc::Sender<Envelope>) -> JoinHandle<()> {
    let cfg = cfg.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        while n < cfg.events {
            let b = batch(&cfg, n);
            n += b.len() as u64;
            let wm = b.timestamps.last().copied().unwrap_or(Timestamp::MIN);
            for message in [Message::Batch(b), Message::Watermark(wm)] {
                if in_tx.blocking_send(Envelope { input: 0, message }).is_err() {
                    return;
                }
            }
        }
        let _ = in_tx.blocking_send(Envelope {
            input: 0,
            message: Message::End,
        });
    })
}

/// Start the drain thread: it counts the events the operator emits until its output closes.
fn spawn_drain(mut out_rx: mpsc::Receiver<Envelope>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut events = 0u64;
        while let Some(env) = out_rx.blocking_recv() {
            if let Message::Batch(b) = env.message {
                events += b.len() as u64;
            }
        }
        events
    })
}

/// Run one window aggregate instance over generated events: a feeder thread makes the batches
/// and watermarks, the operator runs on the calling thread, a counter drains its output. The
/// input ends without a final watermark, so the windows still open are committed to the state
/// database in `state_dir` and measured.
pub fn window_throughput(
    cfg: &WindowBench,
    factory: Arc<dyn OperatorFactory>,
    state_dir: &Path,
) -> Result<WindowBenchReport, DataflowError> {
    let agg = aggregator(&factory)?;
    let db = crate::state::StateDb::open(state_dir)?;
    let (in_tx, in_rx) = mpsc::channel(crate::CHANNEL_CAPACITY);
    let (out_tx, out_rx) = mpsc::channel::<Envelope>(crate::CHANNEL_CAPACITY);
    let counters = Arc::new(NodeCounters::default());
    let task = window_task(cfg, &factory, agg, &db, out_tx, &counters)?;
    let feed = spawn_feeder(cfg, in_tx);
    let drain = spawn_drain(out_rx);
    let started = Instant::now();
    let cpu = thread_cpu();
    task.run(in_rx)?;
    let operator_cpu = thread_cpu() - cpu;
    let wall = started.elapsed();
    feed.join()
        .map_err(|_| DataflowError::Panic("feeder".into()))?;
    let events_out = drain
        .join()
        .map_err(|_| DataflowError::Panic("drain".into()))?;
    db.flush()?;
    Ok(WindowBenchReport {
        events: cfg.events,
        wall_seconds: wall.as_secs_f64(),
        operator_cpu_seconds: operator_cpu.as_secs_f64(),
        commit_seconds: counters.snapshot().commit_nanos as f64 / 1e9,
        windows_fired: counters.snapshot().windows_fired,
        events_out,
        state_bytes: db.size_on_disk(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}
