//! `kafka`: Kafka topics as sources and sinks, and the Kafka side of exactly-once.
//!
//! **Source** (source.rs). One consumer assigned every partition of the topics (no group
//! rebalancing: flowlet owns the assignment, as Flink's Kafka source does), with each
//! partition's offset and event-time maximum tracked separately: the source's watermark is the
//! minimum over its partitions that are not idle. Positions go into checkpoints; the consumer
//! group's offsets are committed too (inside the transaction under exactly-once), so that Kafka
//! tools show the lag. A run resumes from its checkpoint, else from the group's committed
//! offsets, else from `start`.
//!
//! **Sink** (sink.rs). An idempotent producer, flushed at every barrier (at-least-once). Under
//! exactly-once every Kafka sink of the topology writes through one transactional producer
//! (`transactional.id = flowlet-<topology>`, so that a restarted run fences the old one) and
//! waits at each barrier until the checkpoint's transaction has committed.
//!
//! **Two-phase commit** (committer.rs; checkpoint `n`, after every task has reported it):
//! 1. the checkpoint coordinator writes `pending = (record n, all changes)` to the store;
//! 2. the committer sends the sources' offsets to the transaction, and the checkpoint marker
//!    (offset `n` of partition 0 of the first sink's topic, in the group
//!    `flowlet-<topology>-checkpoints-<run>`), and commits the transaction: this is the
//!    decision;
//! 3. the coordinator applies the changes and the record, and deletes `pending`, in one write.
//!
//! After a crash the new producer's `init_transactions` aborts an unfinished transaction;
//! then a `pending` checkpoint is rolled forward if the crashed run's marker has reached `n`,
//! and dropped otherwise. Either way flowlet's state and Kafka's output agree.

mod committer;
mod config;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flowlet_dataflow::NodeCounters;
use flowlet_types::Timestamp;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use serde_json::Value;

pub use committer::prepare;
pub use config::{Format, KafkaSink, KafkaSource, StartFrom};

/// librdkafka's logs and errors go to flowlet's log; the first failed delivery is kept.
#[derive(Default)]
pub(crate) struct Context {
    client: String,
    delivery_error: Mutex<Option<String>>,
    /// Sources: where the consumer lag per partition from librdkafka's statistics goes.
    lag: Option<Arc<NodeCounters>>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(client = %self.client, "librdkafka {fac}: {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(client = %self.client, "librdkafka {fac}: {message}")
            }
            _ => tracing::debug!(client = %self.client, "librdkafka {fac}: {message}"),
        }
    }

    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        let Some(counters) = &self.lag else { return };
        let mut lag = counters.partition_lag.lock().expect("lag lock");
        for (topic, t) in &statistics.topics {
            for (p, part) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition.
                if *p < 0 || !part.desired {
                    continue;
                }
                // Records not yet handed to flowlet: from the next one it would read (else the
                // committed offset, else the log start) to the last stable offset (what a
                // read_committed consumer can read). librdkafka's own `consumer_lag` counts
                // from the committed offset, which only moves at checkpoints.
                let end = if part.ls_offset >= 0 {
                    part.ls_offset
                } else {
                    part.hi_offset
                };
                let from = [part.app_offset, part.committed_offset, part.lo_offset]
                    .into_iter()
                    .find(|o| *o >= 0);
                if let (true, Some(from)) = (end >= 0, from) {
                    lag.insert(format!("{topic}/{p}"), (end - from).max(0));
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Connection errors repeat while a broker is down; one line each, not an error storm.
        tracing::warn!(client = %self.client, "Kafka: {error}: {reason}");
    }
}

impl ConsumerContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut slot = self.delivery_error.lock().expect("delivery lock");
            slot.get_or_insert_with(|| e.to_string());
        }
    }
}

pub(crate) type Producer = ThreadedProducer<Context>;

pub(crate) fn context(client: &str) -> Context {
    Context {
        client: client.to_owned(),
        ..Default::default()
    }
}

/// `defaults`, then the user's `properties` over them.
pub(crate) fn config(
    brokers: &str,
    defaults: &[(&str, String)],
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in defaults {
        c.set(*k, v);
    }
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

pub(crate) fn offsets_of(position: &Value) -> BTreeMap<(String, i32), (i64, Timestamp)> {
    let mut out = BTreeMap::new();
    if let Some(map) = position.as_object() {
        for (k, v) in map {
            let Some((topic, p)) = k.rsplit_once('/') else {
                continue;
            };
            let (Ok(p), Some(offset)) = (p.parse::<i32>(), v.get("offset").and_then(Value::as_i64))
            else {
                continue;
            };
            let max = v
                .get("max")
                .and_then(Value::as_i64)
                .unwrap_or(Timestamp::MIN);
            out.insert((topic.to_owned(), p), (offset, max));
        }
    }
    out
}
