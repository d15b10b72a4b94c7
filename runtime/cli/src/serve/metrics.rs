//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4), rendered from the
//! executor's own counters. The counters already live in the executor as atomics; a metrics
//! registry crate would only copy them, so this renders them directly.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_dataflow::{CHECKPOINTS, Clock, SystemClock};

use super::pipelines::Pipeline;

/// A label value, escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

struct Out(Vec<Family>);

impl Out {
    fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) -> usize {
        self.0.push(Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        });
        self.0.len() - 1
    }

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

pub fn render(pipelines: &[std::sync::Arc<Pipeline>], plugins: usize) -> String {
    let mut o = Out(Vec::new());
    let up = o.family("flowlet_pipeline_up", "gauge", "1 when the pipeline runs");
    let restarts = o.family(
        "flowlet_pipeline_restarts_total",
        "counter",
        "Restarts of the pipeline after a failure",
    );
    let ev_in = o.family(
        "flowlet_events_in_total",
        "counter",
        "Events handled by an operator or sink",
    );
    let ev_out = o.family(
        "flowlet_events_out_total",
        "counter",
        "Events emitted by a source or operator",
    );
    let latency = o.family(
        "flowlet_batch_duration_seconds",
        "histogram",
        "Time an operator takes per batch",
    );
    let dead = o.family(
        "flowlet_dead_letters_total",
        "counter",
        "Events sent to a dead-letter output",
    );
    let late = o.family(
        "flowlet_late_events_total",
        "counter",
        "Events too late for every window they belong to",
    );
    let restarts_i = o.family(
        "flowlet_instance_restarts_total",
        "counter",
        "Operator instances replaced after a trap",
    );
    let wm_lag = o.family(
        "flowlet_watermark_lag_seconds",
        "gauge",
        "Wall-clock time minus the node's watermark",
    );
    let lag = o.family(
        "flowlet_consumer_lag",
        "gauge",
        "Kafka consumer lag per partition, in records",
    );
    let ck_n = o.family(
        "flowlet_checkpoints_total",
        "counter",
        "Checkpoints completed",
    );
    let ck_t = o.family(
        "flowlet_checkpoint_duration_seconds_total",
        "counter",
        "Time spent completing checkpoints (divide by flowlet_checkpoints_total for the mean)",
    );
    let ck_b = o.family(
        "flowlet_checkpoint_size_bytes",
        "gauge",
        "Bytes written by the last checkpoint",
    );
    let swaps = o.family(
        "flowlet_plugin_swaps_total",
        "counter",
        "Hot swaps of an operator's plugin",
    );
    let rollbacks = o.family(
        "flowlet_plugin_rollbacks_total",
        "counter",
        "Swaps rolled back because the new plugin failed on probation",
    );
    let refused = o.family(
        "flowlet_plugin_swaps_refused_total",
        "counter",
        "Swaps refused because the new plugin failed to start",
    );
    let stored = o.family("flowlet_plugins_stored", "gauge", "Plugin versions stored");
    o.add(stored, "", &[], plugins as f64);
    let now = SystemClock.now();
    for p in pipelines {
        let name = p.name.as_str();
        let (phase, _) = p.phase();
        let running = phase == super::pipelines::Phase::Running;
        o.add(up, "", &[("pipeline", name)], f64::from(u8::from(running)));
        o.add(
            restarts,
            "",
            &[("pipeline", name)],
            p.restarts.load(Relaxed) as f64,
        );
        let Some(h) = p.handles() else { continue };
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
                o.add(ev_in, "", &labels, c.events_in.load(Relaxed) as f64);
            }
            if kind != "sink" {
                o.add(ev_out, "", &labels, c.events_out.load(Relaxed) as f64);
                o.add(dead, "", &labels, c.dead_lettered.load(Relaxed) as f64);
                let w = c.watermark.load(Relaxed);
                if w != i64::MIN && w != i64::MAX {
                    o.add(wm_lag, "", &labels, (now - w) as f64 / 1000.0);
                }
            }
            if kind == "operator" {
                o.add(late, "", &labels, c.late.load(Relaxed) as f64);
                o.add(restarts_i, "", &labels, c.restarts.load(Relaxed) as f64);
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
                    let l = [("pipeline", name), ("node", node.as_str()), ("le", &le)];
                    o.add(latency, "_bucket", &l, cumulative as f64);
                }
                let l = [("pipeline", name), ("node", node.as_str()), ("le", "+Inf")];
                o.add(latency, "_bucket", &l, total as f64);
                o.add(latency, "_sum", &labels, sum);
                o.add(latency, "_count", &labels, total as f64);
                if let Some(slot) = h.swaps.slot(node) {
                    let s = &slot.counters;
                    o.add(swaps, "", &labels, s.swaps.load(Relaxed) as f64);
                    o.add(rollbacks, "", &labels, s.rollbacks.load(Relaxed) as f64);
                    o.add(refused, "", &labels, s.refused.load(Relaxed) as f64);
                }
            }
            if kind == "source" {
                for (partition, l) in c.partition_lag.lock().expect("lag lock").iter() {
                    let labels = [
                        ("pipeline", name),
                        ("node", node.as_str()),
                        ("partition", partition.as_str()),
                    ];
                    o.add(lag, "", &labels, *l as f64);
                }
            }
        }
        if let Some(c) = h.live.counters(CHECKPOINTS) {
            let labels = [("pipeline", name)];
            o.add(ck_n, "", &labels, c.commits.load(Relaxed) as f64);
            o.add(ck_t, "", &labels, c.commit_nanos.load(Relaxed) as f64 / 1e9);
            o.add(ck_b, "", &labels, c.bytes.load(Relaxed) as f64);
        }
    }
    o.render()
}
