//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), rendered from the
//! executor's own counters. The counters already live in the executor as atomics; a metrics
//! registry crate would only copy them, so this renders them directly.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_dataflow::{CHECKPOINTS, Clock, NodeCounters, SystemClock, Timestamp};

use super::pipelines::{Pipeline, RunHandles};

/// A label value, escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family and its samples (the sample's full name and labels, and its value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// The families of one scrape, in the order they are rendered.
struct Out(Vec<Family>);

impl Out {
    /// Registers a family (rendered in registration order) and returns its index.
    fn family(&mut self, (name, kind, help): Spec) -> usize {
        self.0.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
        self.0.len() - 1
    }

    /// Adds a sample of family `f`: its name plus `suffix`, with `labels`.
    fn add(&mut self, f: usize, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            let _ = write!(l, "{k}=\"{}\"", esc(v));
        }
        let name = format!("{}{suffix}", self.0[f].name);
        let sample = if l.is_empty() {
            name
        } else {
            format!("{name}{{{l}}}")
        };
        self.0[f].samples.push((sample, value));
    }

    /// The families in the text exposition format.
    fn render(self) -> String {
        let mut s = String::new();
        for f in self.0 {
            let _ = writeln!(s, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(s, "# TYPE {} {}", f.name, f.kind);
            for (sample, v) in f.samples {
                if v.is_infinite() {
                    let _ = writeln!(s, "{sample} {}", if v > 0.0 { "+Inf" } else { "-Inf" });
                } else {
                    let _ = writeln!(s, "{sample} {v}");
                }
            }
        }
        s
    }
}

/// Bucket bounds of the batch latency histograms, in seconds.
const BOUNDS: [f64; 12] = [
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 1.0,
];

/// A metric family's name, type and help text.
type Spec = (&'static str, &'static str, &'static str);

const UP: Spec = ("flowlet_pipeline_up", "gauge", "1 when the pipeline runs");
const RESTARTS: Spec = (
    "flowlet_pipeline_restarts_total",
    "counter",
    "Restarts of the pipeline after a failure",
);
const EVENTS_IN: Spec = (
    "flowlet_events_in_total",
    "counter",
    "Events handled by an operator or sink",
);
const EVENTS_OUT: Spec = (
    "flowlet_events_out_total",
    "counter",
    "Events emitted by a source or operator",
);
const LATENCY: Spec = (
    "flowlet_batch_duration_seconds",
    "histogram",
    "Time an operator takes per batch",
);
const DEAD_LETTERS: Spec = (
    "flowlet_dead_letters_total",
    "counter",
    "Events sent to a dead-letter output",
);
const LATE: Spec = (
    "flowlet_late_events_total",
    "counter",
    "Events too late for every window they belong to",
);
const INSTANCE_RESTARTS: Spec = (
    "flowlet_instance_restarts_total",
    "counter",
    "Operator instances replaced after a trap",
);
const WATERMARK_LAG: Spec = (
    "flowlet_watermark_lag_seconds",
    "gauge",
    "Wall-clock time minus the node's watermark",
);
const CONSUMER_LAG: Spec = (
    "flowlet_consumer_lag",
    "gauge",
    "Kafka consumer lag per partition, in records",
);
const CHECKPOINTS_TOTAL: Spec = (
    "flowlet_checkpoints_total",
    "counter",
    "Checkpoints completed",
);
const CHECKPOINT_TIME: Spec = (
    "flowlet_checkpoint_duration_seconds_total",
    "counter",
    "Time spent completing checkpoints (divide by flowlet_checkpoints_total for the mean)",
);
const CHECKPOINT_BYTES: Spec = (
    "flowlet_checkpoint_size_bytes",
    "gauge",
    "Bytes written by the last checkpoint",
);
const SWAPS: Spec = (
    "flowlet_plugin_swaps_total",
    "counter",
    "Hot swaps of an operator's plugin",
);
const ROLLBACKS: Spec = (
    "flowlet_plugin_rollbacks_total",
    "counter",
    "Swaps rolled back because the new plugin failed on probation",
);
const REFUSED: Spec = (
    "flowlet_plugin_swaps_refused_total",
    "counter",
    "Swaps refused because the new plugin failed to start",
);
const PLUGINS_STORED: Spec = ("flowlet_plugins_stored", "gauge", "Plugin versions stored");

/// The per-pipeline metric families, as indices into an [`Out`].
struct Families {
    up: usize,
    restarts: usize,
    ev_in: usize,
    ev_out: usize,
    latency: usize,
    dead: usize,
    late: usize,
    restarts_i: usize,
    wm_lag: usize,
    lag: usize,
    ck_n: usize,
    ck_t: usize,
    ck_b: usize,
    swaps: usize,
    rollbacks: usize,
    refused: usize,
}

impl Families {
    /// Registers every per-pipeline family in `o`, in the order they are rendered.
    fn register(o: &mut Out) -> Self {
        Self {
            up: o.family(UP),
            restarts: o.family(RESTARTS),
            ev_in: o.family(EVENTS_IN),
            ev_out: o.family(EVENTS_OUT),
            latency: o.family(LATENCY),
            dead: o.family(DEAD_LETTERS),
            late: o.family(LATE),
            restarts_i: o.family(INSTANCE_RESTARTS),
            wm_lag: o.family(WATERMARK_LAG),
            lag: o.family(CONSUMER_LAG),
            ck_n: o.family(CHECKPOINTS_TOTAL),
            ck_t: o.family(CHECKPOINT_TIME),
            ck_b: o.family(CHECKPOINT_BYTES),
            swaps: o.family(SWAPS),
            rollbacks: o.family(ROLLBACKS),
            refused: o.family(REFUSED),
        }
    }
}

/// The metrics of every pipeline and of the plugin registry (`plugins` versions stored), in
/// the Prometheus text format.
pub fn render(pipelines: &[std::sync::Arc<Pipeline>], plugins: usize) -> String {
    let mut o = Out(Vec::new());
    let f = Families::register(&mut o);
    let stored = o.family(PLUGINS_STORED);
    o.add(stored, "", &[], plugins as f64);
    let now = SystemClock.now();
    for p in pipelines {
        pipeline_samples(&mut o, &f, p, now);
    }
    o.render()
}

/// Adds the samples of pipeline `p`: its phase and restarts, then (while it runs) those of
/// its nodes and checkpoints. `now` is the wall-clock time, in milliseconds.
fn pipeline_samples(o: &mut Out, f: &Families, p: &Pipeline, now: Timestamp) {
    let name = p.name.as_str();
    let (phase, _) = p.phase();
    let running = phase == super::pipelines::Phase::Running;
    o.add(
        f.up,
        "",
        &[("pipeline", name)],
        f64::from(u8::from(running)),
    );
    o.add(
        f.restarts,
        "",
        &[("pipeline", name)],
        p.restarts.load(Relaxed) as f64,
    );
    let Some(h) = p.handles() else { return };
    let m = &p.manifest;
    for (node, kind) in m
        .sources
        .keys()
        .map(|n| (n, "source"))
        .chain(m.operators.keys().map(|n| (n, "operator")))
        .chain(m.sinks.keys().map(|n| (n, "sink")))
    {
        let Some(c) = h.live.counters(node) else {
            continue;
        };
        let labels = [("pipeline", name), ("node", node.as_str())];
        if kind != "source" {
            o.add(f.ev_in, "", &labels, c.events_in.load(Relaxed) as f64);
        }
        if kind != "sink" {
            emitter_samples(o, f, &labels, &c, now);
        }
        if kind == "operator" {
            operator_samples(o, f, &h, &labels, &c);
        }
        if kind == "source" {
            consumer_lag_samples(o, f, &labels, &c);
        }
    }
    if let Some(c) = h.live.counters(CHECKPOINTS) {
        checkpoint_samples(o, f, name, &c);
    }
}

/// Adds the samples of a node that emits events (a source or an operator): events out, dead
/// letters and, once it has one, the lag of its watermark behind `now`.
fn emitter_samples(
    o: &mut Out,
    f: &Families,
    labels: &[(&str, &str); 2],
    c: &NodeCounters,
    now: Timestamp,
) {
    o.add(f.ev_out, "", labels, c.events_out.load(Relaxed) as f64);
    o.add(f.dead, "", labels, c.dead_lettered.load(Relaxed) as f64);
    let w = c.watermark.load(Relaxed);
    if w != i64::MIN && w != i64::MAX {
        o.add(f.wm_lag, "", labels, (now - w) as f64 / 1000.0);
    }
}

/// Adds the samples only operators have: late events, instance restarts, the batch latency
/// histogram and the counters of its plugin swaps.
fn operator_samples(
    o: &mut Out,
    f: &Families,
    h: &RunHandles,
    labels: &[(&str, &str); 2],
    c: &NodeCounters,
) {
    o.add(f.late, "", labels, c.late.load(Relaxed) as f64);
    o.add(f.restarts_i, "", labels, c.restarts.load(Relaxed) as f64);
    latency_histogram(o, f.latency, labels, c);
    if let Some(slot) = h.swaps.slot(labels[1].1) {
        let s = &slot.counters;
        o.add(f.swaps, "", labels, s.swaps.load(Relaxed) as f64);
        o.add(f.rollbacks, "", labels, s.rollbacks.load(Relaxed) as f64);
        o.add(f.refused, "", labels, s.refused.load(Relaxed) as f64);
    }
}

/// Adds an operator's batch latency histogram (family `latency`) re-bucketed to [`BOUNDS`]:
/// the cumulative buckets, `+Inf`, the sum and the count.
fn latency_histogram(o: &mut Out, latency: usize, labels: &[(&str, &str); 2], c: &NodeCounters) {
    let [pipeline, node] = *labels;
    let mut cumulative = 0u64;
    let mut total = 0u64;
    let mut sum = 0f64;
    let buckets: Vec<(f64, u64)> = c.batch_latency.buckets().collect();
    for (upper_ns, n) in &buckets {
        total += n;
        sum += *n as f64 * upper_ns / 1e9;
    }
    let mut b = buckets.iter().peekable();
    for bound in BOUNDS {
        while let Some((upper_ns, n)) = b.peek() {
            if upper_ns / 1e9 <= bound {
                cumulative += n;
                b.next();
            } else {
                break;
            }
        }
        let le = format!("{bound}");
        let l = [pipeline, node, ("le", &le)];
        o.add(latency, "_bucket", &l, cumulative as f64);
    }
    let l = [pipeline, node, ("le", "+Inf")];
    o.add(latency, "_bucket", &l, total as f64);
    o.add(latency, "_sum", labels, sum);
    o.add(latency, "_count", labels, total as f64);
}

/// Adds a Kafka source's consumer lag, one sample per partition.
fn consumer_lag_samples(o: &mut Out, f: &Families, labels: &[(&str, &str); 2], c: &NodeCounters) {
    let [pipeline, node] = *labels;
    for (partition, l) in c.partition_lag.lock().expect("lag lock").iter() {
        let labels = [pipeline, node, ("partition", partition.as_str())];
        o.add(f.lag, "", &labels, *l as f64);
    }
}

/// Adds the checkpoint samples of pipeline `pipeline`: how many, the time they took and the
/// size of the last.
fn checkpoint_samples(o: &mut Out, f: &Families, pipeline: &str, c: &NodeCounters) {
    let labels = [("pipeline", pipeline)];
    o.add(f.ck_n, "", &labels, c.commits.load(Relaxed) as f64);
    o.add(
        f.ck_t,
        "",
        &labels,
        c.commit_nanos.load(Relaxed) as f64 / 1e9,
    );
    o.add(f.ck_b, "", &labels, c.bytes.load(Relaxed) as f64);
}
