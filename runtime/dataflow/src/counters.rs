//! What every node counts: events, rejections, restarts, latencies; live while the topology runs
//! and in the report at its end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters of a running topology, by node name.
#[derive(Debug, Clone, Default)]
pub struct LiveStats(Arc<std::sync::Mutex<BTreeMap<String, Arc<NodeCounters>>>>);

impl LiveStats {
    /// The counters of a run that starts.
    pub(crate) fn set(&self, counters: BTreeMap<String, Arc<NodeCounters>>) {
        *self.0.lock().expect("stats lock") = counters;
    }

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
    /// Joins: the most events held at once (per instance).
    pub state_rows: AtomicU64,
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
    pub state_rows: u64,
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
            state_rows: AtomicU64::new(0),
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
            state_rows: g(&self.state_rows),
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
