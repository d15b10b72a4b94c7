//! Kafka sources and sinks, and the Kafka side of exactly-once.
//!
//! **Source.** One consumer assigned every partition of the topics (no group rebalancing:
//! flowlet owns the assignment, as Flink's Kafka source does), with each partition's offset and
//! event-time maximum tracked separately: the source's watermark is the minimum over its
//! partitions that are not idle. Positions go into checkpoints; the consumer group's offsets
//! are committed too (inside the transaction under exactly-once), so that Kafka tools show the
//! lag. A run resumes from its checkpoint, else from the group's committed offsets, else from
//! `start`.
//!
//! **Sink.** An idempotent producer, flushed at every barrier (at-least-once). Under
//! exactly-once every Kafka sink of the topology writes through one transactional producer
//! (`transactional.id = flowlet-<topology>`, so that a restarted run fences the old one) and
//! waits at each barrier until the checkpoint's transaction has committed.
//!
//! **Two-phase commit** (checkpoint `n`, after every task has reported it):
//! 1. the coordinator writes `pending = (record n, all changes)` to sled;
//! 2. it sends the sources' offsets to the transaction with the metadata `flowlet:<run>:<n>`
//!    (without a Kafka source, a marker offset of the sink topic in the group
//!    `flowlet-<topology>-checkpoints`), and commits the transaction: this is the decision;
//! 3. it applies the changes and the record, and deletes `pending`, in one sled batch.
//!
//! After a crash the new producer's `init_transactions` aborts an unfinished transaction;
//! then a `pending` checkpoint is rolled forward if Kafka's committed offset metadata names
//! it, and dropped otherwise. Either way flowlet's state and Kafka's output agree.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowlet_manifest::{
    Format, Guarantee, KafkaSink, KafkaSource, Manifest, SinkKind, SourceKind, StartFrom,
};
use flowlet_types::{Batch, Timestamp};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message as _, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::checkpoint::{CheckpointRecord, Committer, PENDING};
use crate::sources::{Clocking, SourceTask};
use crate::state::{StateDb, StateError};
use crate::{DataflowError, Message};

/// librdkafka's logs and errors go to flowlet's log; the first failed delivery is kept.
#[derive(Default)]
pub(crate) struct Context {
    client: String,
    delivery_error: Mutex<Option<String>>,
    /// Sources: where the consumer lag per partition from librdkafka's statistics goes.
    lag: Option<Arc<crate::NodeCounters>>,
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

fn context(client: &str) -> Context {
    Context {
        client: client.to_owned(),
        ..Default::default()
    }
}

/// `defaults`, then the user's `properties` over them.
fn config(
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

/// Retry `attempt` with backoff (0.5 s doubling to 10 s) until it succeeds, logging each
/// failure; `what` names what is waited for.
fn retry<T>(
    what: &str,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let mut wait = Duration::from_millis(500);
    let mut n = 1;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => {
                if deadline.is_some_and(|d| Instant::now() + wait > d) {
                    return Err(format!("{what}: {e}"));
                }
                tracing::warn!("{what} (attempt {n}): {e}; retrying in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(10));
                n += 1;
            }
        }
    }
}

fn offsets_of(position: &Value) -> BTreeMap<(String, i32), (i64, Timestamp)> {
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

// ---------------------------------------------------------------------------------------------
// Sources

struct Partition {
    next: i64,
    max: Timestamp,
    last_record: Instant,
    idle: bool,
    /// Bounded reads stop at this offset.
    end: Option<i64>,
}

impl SourceTask {
    pub(crate) async fn kafka(
        &mut self,
        spec: &KafkaSource,
        c: &mut Clocking,
    ) -> Result<(), String> {
        c.json = spec.format == Format::Json;
        let group = spec
            .group
            .clone()
            .unwrap_or_else(|| format!("flowlet-{}", self.topology));
        let cfg = config(
            &spec.brokers,
            &[
                ("group.id", group.clone()),
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                ("isolation.level", "read_committed".into()),
                ("enable.partition.eof", "false".into()),
                // Consumer lag per partition for /metrics (librdkafka computes it).
                ("statistics.interval.ms", "1000".into()),
            ],
            &spec.properties,
        );
        let mut ctx = context(&format!("source {}", self.name));
        ctx.lag = Some(self.counters.clone());
        let consumer: Arc<StreamConsumer<Context>> = Arc::new(
            cfg.create_with_context(ctx)
                .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?,
        );
        // Partitions: wait for the brokers (and the topics) with backoff.
        let parts = {
            let consumer = consumer.clone();
            let topics = spec.topics.clone();
            let brokers = spec.brokers.clone();
            let name = self.name.clone();
            let stop = self.stop.clone();
            tokio::task::spawn_blocking(move || {
                retry(
                    &format!("source `{name}`: waiting for Kafka at {brokers}"),
                    None,
                    || {
                        if stop.is_stopped() {
                            return Ok(Vec::new());
                        }
                        let mut parts = Vec::new();
                        for topic in &topics {
                            let md = consumer
                                .fetch_metadata(Some(topic), Duration::from_secs(2))
                                .map_err(|e| e.to_string())?;
                            let t = md
                                .topics()
                                .iter()
                                .find(|t| t.name() == topic)
                                .ok_or_else(|| format!("topic `{topic}` is not known"))?;
                            if let Some(e) = t.error() {
                                return Err(format!(
                                    "topic `{topic}`: {:?} (create it first)",
                                    RDKafkaErrorCode::from(e)
                                ));
                            }
                            if t.partitions().is_empty() {
                                return Err(format!(
                                    "topic `{topic}` has no partitions (create it first)"
                                ));
                            }
                            parts.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
                        }
                        Ok(parts)
                    },
                )
            })
            .await
            .map_err(|e| e.to_string())??
        };
        if parts.is_empty() {
            return Ok(()); // stopped while waiting
        }
        // Where to start each partition: the checkpoint, else the group, else `start`.
        let restored = offsets_of(&c.position);
        let committed: BTreeMap<(String, i32), i64> = if restored.is_empty() {
            let consumer = consumer.clone();
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &parts {
                tpl.add_partition(t, *p);
            }
            tokio::task::spawn_blocking(move || {
                consumer.committed_offsets(tpl, Duration::from_secs(10))
            })
            .await
            .map_err(|e| e.to_string())?
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let mut tpl = TopicPartitionList::new();
        let mut state: HashMap<(String, i32), Partition> = HashMap::new();
        for (t, p) in &parts {
            let key = (t.clone(), *p);
            let (offset, max) = match (restored.get(&key), committed.get(&key)) {
                (Some((o, m)), _) => (Offset::Offset(*o), *m),
                (None, Some(o)) => (Offset::Offset(*o), Timestamp::MIN),
                (None, None) if spec.start == StartFrom::Latest => (Offset::End, Timestamp::MIN),
                (None, None) => (Offset::Beginning, Timestamp::MIN),
            };
            tpl.add_partition_offset(t, *p, offset)
                .map_err(|e| format!("cannot assign {t}/{p}: {e}"))?;
            let next = match offset {
                Offset::Offset(o) => o,
                _ => -1,
            };
            state.insert(
                key,
                Partition {
                    next,
                    max,
                    last_record: Instant::now(),
                    idle: false,
                    end: None,
                },
            );
        }
        if spec.bounded {
            let consumer = consumer.clone();
            let keys: Vec<_> = state.keys().cloned().collect();
            let ends = tokio::task::spawn_blocking(move || {
                keys.into_iter()
                    .map(|(t, p)| {
                        consumer
                            .fetch_watermarks(&t, p, Duration::from_secs(10))
                            .map(|(_, high)| ((t, p), high))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot read the end offsets: {e}"))?;
            for (k, high) in ends {
                state.get_mut(&k).expect("a partition").end = Some(high);
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("cannot assign the partitions: {e}"))?;
        let index: HashMap<(String, i32), usize> = {
            let mut keys: Vec<_> = state.keys().cloned().collect();
            keys.sort();
            keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect()
        };
        let mut order: Vec<(String, i32)> = index.keys().cloned().collect();
        order.sort_by_key(|k| index[k]);
        c.partition_max = order.iter().map(|k| state[k].max).collect();
        c.partition_idle = vec![false; order.len()];
        let position = |state: &HashMap<(String, i32), Partition>| -> Value {
            let mut m = serde_json::Map::new();
            for ((t, p), s) in state {
                if s.next >= 0 {
                    m.insert(format!("{t}/{p}"), json!({"offset": s.next, "max": s.max}));
                }
            }
            Value::Object(m)
        };
        self.progress(position(&state), c);

        let mut trigger = self.ckpt.as_ref().map(|ck| ck.trigger.clone());
        if let Some(t) = &mut trigger {
            t.mark_unchanged();
        }
        let mut batch = Batch::with_capacity(self.batch_size, self.batch_size * 128);
        let mut parts_of: Vec<u16> = Vec::with_capacity(self.batch_size);
        let mut all_idle_sent = false;
        let mut consumer_errors = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Bounded: every partition read up to its end offset.
            if spec.bounded
                && state
                    .values()
                    .all(|s| s.end.is_some_and(|e| s.next >= e || e == 0))
            {
                break;
            }
            let first = tokio::select! {
                _ = self.stop.stopped() => break,
                id = Self::next_trigger(&mut trigger) => {
                    self.progress(position(&state), c);
                    self.barrier(id, c).await;
                    continue;
                }
                _ = tick.tick() => None,
                m = consumer.recv() => Some(m),
            };
            match first {
                None => {
                    // Partitions silent for the idle timeout stop holding the watermark back.
                    if let Some(timeout) = c.idle_timeout {
                        for (k, s) in state.iter_mut() {
                            if !s.idle && s.last_record.elapsed() >= timeout {
                                s.idle = true;
                                c.partition_idle[index[k]] = true;
                            }
                        }
                        if !all_idle_sent && c.partition_idle.iter().all(|i| *i) {
                            all_idle_sent = true;
                            self.out.broadcast(Message::Idle).await;
                        }
                    }
                    if spec.bounded {
                        // Control records (transaction markers) end a partition without a
                        // message: look at the consumer's position.
                        if let Ok(pos) = consumer.position() {
                            for e in pos.elements() {
                                if let (Some(s), Offset::Offset(o)) = (
                                    state.get_mut(&(e.topic().to_owned(), e.partition())),
                                    e.offset(),
                                ) && s.end.is_some_and(|end| o >= end)
                                {
                                    s.next = s.next.max(o);
                                }
                            }
                        }
                    }
                    continue;
                }
                Some(m) => {
                    let mut next = Some(m);
                    while let Some(m) = next.take() {
                        let m = match m {
                            Ok(m) => m,
                            Err(e) => {
                                // Brokers going away and coming back are librdkafka's to
                                // handle: wait, and go on when they are back.
                                consumer_errors += 1;
                                if consumer_errors <= 3 || consumer_errors.is_multiple_of(50) {
                                    tracing::warn!(source = %self.name, "Kafka: {e} (error {consumer_errors}); retrying");
                                }
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                break;
                            }
                        };
                        consumer_errors = 0;
                        let key = (m.topic().to_owned(), m.partition());
                        if let Some(s) = state.get_mut(&key) {
                            s.next = m.offset() + 1;
                            s.last_record = Instant::now();
                            if s.idle {
                                s.idle = false;
                                all_idle_sent = false;
                                c.partition_idle[index[&key]] = false;
                            }
                        }
                        let ts = m
                            .timestamp()
                            .to_millis()
                            .unwrap_or_else(|| self.clock.now());
                        batch.push(
                            m.key().unwrap_or_default(),
                            m.payload().unwrap_or_default(),
                            ts,
                        );
                        if let Some(h) = m.headers() {
                            for i in 0..h.count() {
                                let hd = h.get(i);
                                batch.headers.push(flowlet_types::Header {
                                    event: (batch.len() - 1) as u32,
                                    name: hd.key.to_owned(),
                                    value: hd.value.unwrap_or_default().to_vec(),
                                });
                            }
                        }
                        parts_of.push(index.get(&key).copied().unwrap_or(0) as u16);
                        if batch.len() >= self.batch_size {
                            break;
                        }
                        // More already fetched? Take it without waiting.
                        next = tokio::time::timeout(Duration::ZERO, consumer.recv())
                            .await
                            .ok();
                    }
                }
            }
            c.partition_of = std::mem::take(&mut parts_of);
            self.progress(position(&state), c);
            let full = std::mem::replace(
                &mut batch,
                Batch::with_capacity(self.batch_size, self.batch_size * 128),
            );
            if !self.emit(full, c).await {
                return Ok(());
            }
            parts_of = std::mem::take(&mut c.partition_of);
            parts_of.clear();
            for (k, i) in &index {
                if let Some(s) = state.get_mut(k) {
                    s.max = c.partition_max[*i];
                }
            }
        }
        self.progress(position(&state), c);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sinks

/// How a Kafka sink writes.
pub(crate) struct SinkWriter {
    producer: Producer,
    topic: String,
    key: Option<flowlet_types::json::Pointer>,
    transactional: bool,
}

impl SinkWriter {
    pub fn new(
        name: &str,
        spec: &KafkaSink,
        shared: Option<Producer>,
        guarantee: Guarantee,
        checkpointing: bool,
    ) -> Result<Self, String> {
        let transactional = shared.is_some();
        let producer = match shared {
            Some(p) => p,
            None => {
                let defaults: Vec<(&str, String)> =
                    if guarantee == Guarantee::AtMostOnce && checkpointing {
                        vec![
                            ("acks", "1".into()),
                            ("enable.idempotence", "false".into()),
                            ("retries", "0".into()),
                        ]
                    } else {
                        vec![("enable.idempotence", "true".into())]
                    };
                config(&spec.brokers, &defaults, &spec.properties)
                    .create_with_context(context(&format!("sink {name}")))
                    .map_err(|e| format!("cannot create a Kafka producer: {e}"))?
            }
        };
        Ok(Self {
            producer,
            topic: spec.topic.clone(),
            key: spec.key.clone(),
            transactional,
        })
    }

    pub fn transactional(&self) -> bool {
        self.transactional
    }

    fn delivery_error(&self) -> Result<(), String> {
        match self
            .producer
            .context()
            .delivery_error
            .lock()
            .expect("delivery lock")
            .take()
        {
            Some(e) => Err(format!(
                "a record could not be delivered to `{}`: {e}",
                self.topic
            )),
            None => Ok(()),
        }
    }

    /// Produce the batch. `epoch`: the run, the checkpoint the records belong to and the
    /// lineage, written as headers under exactly-once.
    pub fn send(
        &mut self,
        batch: &Batch,
        epoch: Option<(u64, u64, Arc<str>)>,
    ) -> Result<(), String> {
        self.delivery_error()?;
        let run = epoch.as_ref().map(|e| e.0.to_string());
        let ckpt = epoch.as_ref().map(|e| e.1.to_string());
        for event in batch.iter() {
            let found;
            let key: &[u8] = match &self.key {
                Some(p) => {
                    found = p
                        .find(event.value())
                        .ok()
                        .flatten()
                        .map(flowlet_types::json::key_bytes)
                        .unwrap_or_default();
                    &found
                }
                None => event.key().unwrap_or_default(),
            };
            let mut headers = OwnedHeaders::new();
            let mut any = false;
            for (name, value) in event.headers() {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
                any = true;
            }
            if let (true, Some(run), Some(ckpt), Some((_, _, lineage))) =
                (self.transactional, &run, &ckpt, &epoch)
            {
                headers = headers
                    .insert(Header {
                        key: "flowlet-run",
                        value: Some(run.as_bytes()),
                    })
                    .insert(Header {
                        key: "flowlet-checkpoint",
                        value: Some(ckpt.as_bytes()),
                    })
                    .insert(Header {
                        key: "flowlet-lineage",
                        value: Some(lineage.as_bytes()),
                    });
                any = true;
            }
            let mut record = BaseRecord::to(&self.topic).payload(event.value());
            if !key.is_empty() {
                record = record.key(key);
            }
            if event.timestamp() > 0 {
                record = record.timestamp(event.timestamp());
            }
            if any {
                record = record.headers(headers);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The local queue is full: wait for deliveries (backpressure).
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(format!("cannot produce to `{}`: {e}", self.topic)),
                }
            }
        }
        Ok(())
    }

    /// Wait until everything sent is delivered.
    pub fn flush(&mut self) -> Result<(), String> {
        retry(
            "flushing Kafka records",
            Some(Instant::now() + Duration::from_secs(120)),
            || {
                self.producer
                    .flush(Duration::from_secs(30))
                    .map_err(|e| e.to_string())
            },
        )?;
        self.delivery_error()
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// Where the checkpoint's offsets go inside the transaction.
struct OffsetTarget {
    /// The source task whose position holds the offsets (`None`: the marker).
    source: Option<String>,
    group: String,
    consumer: BaseConsumer<Context>,
    /// The marker partition (no Kafka source).
    marker: Option<String>,
}

struct KafkaCommitter {
    producer: Producer,
    targets: Vec<OffsetTarget>,
}

fn offsets_metadata(record: &CheckpointRecord) -> String {
    format!("flowlet:{}:{}", record.run, record.id)
}

fn parse_metadata(m: &str) -> Option<(u64, u64)> {
    let mut it = m.strip_prefix("flowlet:")?.split(':');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

impl OffsetTarget {
    fn offsets(&self, record: &CheckpointRecord) -> Result<TopicPartitionList, String> {
        let meta = offsets_metadata(record);
        let mut tpl = TopicPartitionList::new();
        match (&self.source, &self.marker) {
            (Some(source), _) => {
                let position = record
                    .tasks
                    .get(source)
                    .and_then(|m| m.get("position"))
                    .cloned()
                    .unwrap_or(Value::Null);
                for ((t, p), (offset, _)) in offsets_of(&position) {
                    tpl.add_partition_offset(&t, p, Offset::Offset(offset))
                        .map_err(|e| e.to_string())?;
                }
            }
            (None, Some(topic)) => {
                tpl.add_partition_offset(topic, 0, Offset::Offset(0))
                    .map_err(|e| e.to_string())?;
            }
            (None, None) => {}
        }
        for e in tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect::<Vec<_>>()
        {
            if let Some(mut el) = tpl.find_partition(&e.0, e.1) {
                el.set_metadata(meta.clone());
            }
        }
        Ok(tpl)
    }

    /// The checkpoint Kafka's committed offsets name, if any.
    fn decided(&self, partitions: &TopicPartitionList) -> Result<Option<(u64, u64)>, String> {
        let tpl = self
            .consumer
            .committed_offsets(partitions.clone(), Duration::from_secs(30))
            .map_err(|e| {
                format!(
                    "cannot read the committed offsets of group `{}`: {e}",
                    self.group
                )
            })?;
        Ok(tpl
            .elements()
            .iter()
            .find_map(|e| parse_metadata(e.metadata())))
    }
}

impl Committer for KafkaCommitter {
    fn commit(&mut self, record: &CheckpointRecord) -> Result<(), String> {
        let result = (|| {
            for t in &self.targets {
                let tpl = t.offsets(record)?;
                if tpl.count() == 0 {
                    continue;
                }
                let cgm = t
                    .consumer
                    .group_metadata()
                    .ok_or_else(|| format!("no metadata for group `{}`", t.group))?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &cgm, Duration::from_secs(60))
                    .map_err(|e| format!("cannot add the offsets to the transaction: {e}"))?;
            }
            self.producer
                .commit_transaction(Duration::from_secs(120))
                .map_err(|e| format!("cannot commit the Kafka transaction: {e}"))
        })();
        if let Err(e) = result {
            let _ = self.producer.abort_transaction(Duration::from_secs(60));
            return Err(e);
        }
        self.producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin a Kafka transaction: {e}"))
    }
}

/// Commits each complete checkpoint's Kafka source offsets to the sources' consumer groups
/// (when no transaction does): Kafka tools then show the lag. flowlet itself resumes from its
/// checkpoints, so a failed commit is only logged.
struct GroupOffsets {
    targets: Vec<OffsetTarget>,
}

impl Committer for GroupOffsets {
    fn commit(&mut self, record: &CheckpointRecord) -> Result<(), String> {
        for t in &self.targets {
            match t.offsets(record) {
                Ok(tpl) if tpl.count() > 0 => {
                    if let Err(e) = t.consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
                        tracing::warn!(
                            "cannot commit offsets to consumer group `{}`: {e}",
                            t.group
                        );
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn after_write(&self) -> bool {
        true
    }
}

/// Where checkpointed offsets go: each Kafka source's group; with `marker` (a transactional
/// sink) and no Kafka source, a marker offset of the sink's topic.
fn offset_targets(
    manifest: &Manifest,
    marker: Option<(&String, &KafkaSink)>,
) -> Result<Vec<OffsetTarget>, DataflowError> {
    let topology = &manifest.name;
    let mut targets = Vec::new();
    for (name, s) in &manifest.sources {
        if let SourceKind::Kafka(k) = &s.kind {
            let group = k
                .group
                .clone()
                .unwrap_or_else(|| format!("flowlet-{topology}"));
            targets.push((
                Some(name.clone()),
                group,
                k.brokers.clone(),
                k.properties.clone(),
                None,
            ));
        }
    }
    if let (true, Some((_, first))) = (targets.is_empty(), marker) {
        targets.push((
            None,
            format!("flowlet-{topology}-checkpoints"),
            first.brokers.clone(),
            first.properties.clone(),
            Some(first.topic.clone()),
        ));
    }
    let mut out = Vec::new();
    for (source, group, brokers, props, marker) in targets {
        let consumer: BaseConsumer<Context> = config(
            &brokers,
            &[
                ("group.id", group.clone()),
                ("enable.auto.commit", "false".into()),
            ],
            &props,
        )
        .create_with_context(context("checkpoint offsets"))
        .map_err(|e| DataflowError::Source {
            source_name: source.clone().unwrap_or_default(),
            message: format!("cannot create a Kafka consumer for group `{group}`: {e}"),
        })?;
        out.push(OffsetTarget {
            source,
            group,
            consumer,
            marker,
        });
    }
    Ok(out)
}

/// Prepare Kafka for a run with checkpoints: under exactly-once with Kafka sinks, the
/// topology's transactional producer (given to every Kafka sink) and the decision on a
/// checkpoint a crash left pending.
pub(crate) async fn committer(
    manifest: &Manifest,
    db: &StateDb,
) -> Result<(Option<Box<dyn Committer>>, BTreeMap<String, Producer>), DataflowError> {
    let sinks: Vec<(&String, &KafkaSink)> = manifest
        .sinks
        .iter()
        .filter_map(|(n, s)| match &s.kind {
            SinkKind::Kafka(k) => Some((n, k)),
            _ => None,
        })
        .collect();
    let pending = db.get_meta(PENDING)?;
    if manifest.guarantee != Guarantee::ExactlyOnce || sinks.is_empty() {
        let targets = offset_targets(manifest, None)?;
        if pending.is_some() {
            return Err(StateError::Checkpoint {
                dir: db.dir().to_owned(),
                message: "a checkpoint is waiting for the outcome of its Kafka transaction, and this topology has no exactly-once Kafka sink any more; run it once with the previous manifest".into(),
            }
            .into());
        }
        let committer: Option<Box<dyn Committer>> =
            (!targets.is_empty()).then(|| Box::new(GroupOffsets { targets }) as Box<dyn Committer>);
        return Ok((committer, BTreeMap::new()));
    }
    let (first_name, first) = sinks[0];
    if let Some((n, _)) = sinks.iter().find(|(_, s)| s.brokers != first.brokers) {
        return Err(DataflowError::Sink {
            sink: (*n).clone(),
            message: format!(
                "under exactly-once every Kafka sink writes in one transaction, so all must use the same brokers (`{first_name}` uses {})",
                first.brokers
            ),
        });
    }
    let interval = manifest
        .checkpoint
        .as_ref()
        .map_or(Duration::from_secs(10), |c| c.interval);
    let timeout_ms = (interval.as_millis() as u64 * 3 + 60_000).min(900_000);
    let topology = manifest.name.clone();
    let producer: Producer = config(
        &first.brokers,
        &[
            ("transactional.id", format!("flowlet-{topology}")),
            ("enable.idempotence", "true".into()),
            ("transaction.timeout.ms", timeout_ms.to_string()),
        ],
        &first.properties,
    )
    .create_with_context(context("transactions"))
    .map_err(|e| DataflowError::Sink {
        sink: first_name.clone(),
        message: format!("cannot create a Kafka producer: {e}"),
    })?;
    // Offsets: each Kafka source's group, or a marker.
    let offset_targets = offset_targets(manifest, Some((first_name, first)))?;
    let sink = first_name.clone();
    let brokers = first.brokers.clone();
    let db = db.clone();
    let pending_record = pending.as_deref().map(crate::checkpoint::decode_pending);
    let committer = tokio::task::spawn_blocking(move || -> Result<_, DataflowError> {
        let fail = |message: String| DataflowError::Sink { sink: sink.clone(), message };
        // Fences an older producer of this topology and aborts its open transaction.
        retry(&format!("waiting for Kafka at {brokers} to start transactions"), None, || {
            producer.init_transactions(Duration::from_secs(30)).map_err(|e| e.to_string())
        })
        .map_err(fail)?;
        match pending_record {
            None => {}
            Some(None) => {
                return Err(StateError::Checkpoint {
                    dir: db.dir().to_owned(),
                    message: "the checkpoint waiting for its Kafka transaction is damaged".into(),
                }
                .into());
            }
            Some(Some((record, mut changes))) => {
                let target = &offset_targets[0];
                let tpl = target.offsets(&record).map_err(fail)?;
                let decided = retry("asking Kafka for the last committed checkpoint", None, || target.decided(&tpl))
                    .map_err(fail)?;
                if decided.is_some_and(|(_, id)| id >= record.id) {
                    tracing::info!(checkpoint = record.id, "Kafka committed checkpoint {} before the crash: completing it", record.id);
                    changes.push((StateDb::meta_key(PENDING), None));
                    db.apply(changes)?;
                } else {
                    tracing::info!(checkpoint = record.id, "Kafka did not commit checkpoint {}: it is dropped and its input read again", record.id);
                    db.apply(vec![(StateDb::meta_key(PENDING), None)])?;
                }
            }
        }
        producer
            .begin_transaction()
            .map_err(|e| fail(format!("cannot begin a Kafka transaction: {e}")))?;
        Ok(KafkaCommitter { producer, targets: offset_targets })
    })
    .await
    .map_err(|e| DataflowError::Panic(e.to_string()))??;
    let producers = sinks
        .iter()
        .map(|(n, _)| ((*n).clone(), committer.producer.clone()))
        .collect();
    Ok((Some(Box::new(committer)), producers))
}
