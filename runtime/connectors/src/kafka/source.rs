//! The Kafka source: one consumer assigned every partition of the topics, one watermark per
//! partition, positions (offsets) saved with each checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowlet_dataflow::{BoxFuture, Source, SourceContext};
use flowlet_types::{Batch, Timestamp};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::config::{Format, KafkaSource, StartFrom, properties};
use super::{Context, config, context, offsets_of};
use crate::retry::retry;
use crate::{Env, SourceConnector};

type Key = (String, i32);
type Kafka = Arc<StreamConsumer<Context>>;

pub(crate) struct Reader {
    spec: KafkaSource,
    name: String,
}

/// Where one partition is.
struct Partition {
    next: i64,
    max: Timestamp,
    last_record: Instant,
    idle: bool,
    /// Bounded reads stop at this offset.
    end: Option<i64>,
}

/// Every partition read, and its index (the order of the source's per-partition watermarks).
struct Partitions {
    state: HashMap<Key, Partition>,
    index: HashMap<Key, usize>,
    all_idle_sent: bool,
    /// Consumer errors in a row.
    errors: u64,
}

impl Partitions {
    /// The source's position: each partition's next offset and largest event time.
    fn position(&self) -> Value {
        let mut m = serde_json::Map::new();
        for ((t, p), s) in &self.state {
            if s.next >= 0 {
                m.insert(format!("{t}/{p}"), json!({"offset": s.next, "max": s.max}));
            }
        }
        Value::Object(m)
    }

    /// Bounded: every partition read up to its end offset.
    fn all_read(&self) -> bool {
        self.state
            .values()
            .all(|s| s.end.is_some_and(|e| s.next >= e || e == 0))
    }
}

impl Source for Reader {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.read(cx))
    }
}

impl Reader {
    pub fn new(spec: KafkaSource, name: &str) -> Self {
        Self {
            spec,
            name: name.to_owned(),
        }
    }

    async fn read(self: Box<Self>, cx: &mut SourceContext) -> Result<(), String> {
        if self.spec.format == Format::Json {
            cx.values_must_be_json();
        }
        let consumer = self.consumer(cx)?;
        let parts = self.wait_for_partitions(&consumer, cx).await?;
        if parts.is_empty() {
            return Ok(()); // stopped while waiting
        }
        let mut st = self.assign(&consumer, &parts, cx).await?;
        let mut order: Vec<&Key> = st.index.keys().collect();
        order.sort_by_key(|k| st.index[*k]);
        cx.partitions(order.iter().map(|k| st.state[*k].max).collect());
        cx.progress(st.position());
        self.poll(&consumer, &mut st, cx).await?;
        cx.progress(st.position());
        Ok(())
    }

    fn consumer(&self, cx: &SourceContext) -> Result<Kafka, String> {
        let cfg = config(
            &self.spec.brokers,
            &[
                ("group.id", self.spec.group(cx.topology())),
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                ("isolation.level", "read_committed".into()),
                ("enable.partition.eof", "false".into()),
                // Consumer lag per partition for /metrics (librdkafka computes it).
                ("statistics.interval.ms", "1000".into()),
            ],
            &properties(&self.spec.properties),
        );
        let mut ctx = context(&format!("source {}", self.name));
        ctx.lag = Some(cx.counters().clone());
        let consumer = cfg
            .create_with_context(ctx)
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        Ok(Arc::new(consumer))
    }

    /// The partitions of the topics: wait for the brokers (and the topics) with backoff.
    /// Empty when the run stopped while waiting.
    async fn wait_for_partitions(
        &self,
        consumer: &Kafka,
        cx: &SourceContext,
    ) -> Result<Vec<Key>, String> {
        let consumer = consumer.clone();
        let topics = self.spec.topics();
        let what = format!(
            "source `{}`: waiting for Kafka at {}",
            self.name, self.spec.brokers.0
        );
        let stop = cx.stop().clone();
        tokio::task::spawn_blocking(move || {
            retry(&what, None, || {
                if stop.is_stopped() {
                    return Ok(Vec::new());
                }
                let mut parts = Vec::new();
                for topic in &topics {
                    parts.extend(partitions_of(&consumer, topic)?);
                }
                Ok(parts)
            })
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Assign every partition at its start: the checkpoint's offset, else the group's, else
    /// `start`; bounded reads learn their end offsets.
    async fn assign(
        &self,
        consumer: &Kafka,
        parts: &[Key],
        cx: &SourceContext,
    ) -> Result<Partitions, String> {
        let restored = offsets_of(cx.position());
        let committed = if restored.is_empty() {
            committed_offsets(consumer, parts).await?
        } else {
            BTreeMap::new()
        };
        let mut tpl = TopicPartitionList::new();
        let mut state = HashMap::new();
        for key in parts {
            let (offset, max) = match (restored.get(key), committed.get(key)) {
                (Some((o, m)), _) => (Offset::Offset(*o), *m),
                (None, Some(o)) => (Offset::Offset(*o), Timestamp::MIN),
                (None, None) if self.spec.start == StartFrom::Latest => {
                    (Offset::End, Timestamp::MIN)
                }
                (None, None) => (Offset::Beginning, Timestamp::MIN),
            };
            let (t, p) = key;
            tpl.add_partition_offset(t, *p, offset)
                .map_err(|e| format!("cannot assign {t}/{p}: {e}"))?;
            let next = match offset {
                Offset::Offset(o) => o,
                _ => -1,
            };
            let last_record = Instant::now();
            let (idle, end) = (false, None);
            let partition = Partition {
                next,
                max,
                last_record,
                idle,
                end,
            };
            state.insert(key.clone(), partition);
        }
        if self.spec.bounded {
            for (k, high) in end_offsets(consumer, state.keys().cloned().collect()).await? {
                state.get_mut(&k).expect("a partition").end = Some(high);
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("cannot assign the partitions: {e}"))?;
        let mut keys: Vec<Key> = state.keys().cloned().collect();
        keys.sort();
        let index = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        Ok(Partitions {
            state,
            index,
            all_idle_sent: false,
            errors: 0,
        })
    }

    /// Read batches until the end (bounded) or a stop, passing on barriers.
    async fn poll(
        &self,
        consumer: &Kafka,
        st: &mut Partitions,
        cx: &mut SourceContext,
    ) -> Result<(), String> {
        let mut checkpoints = cx.checkpoints();
        let stop = cx.stop().clone();
        let size = cx.batch_size();
        let mut batch = Batch::with_capacity(size, size * 128);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.spec.bounded && st.all_read() {
                return Ok(());
            }
            let first = tokio::select! {
                _ = stop.stopped() => return Ok(()),
                id = checkpoints.next() => {
                    cx.progress(st.position());
                    cx.barrier(id).await;
                    continue;
                }
                _ = tick.tick() => None,
                m = consumer.recv() => Some(m),
            };
            let Some(first) = first else {
                self.quiet(consumer, st, cx).await;
                continue;
            };
            take(consumer, first, st, &mut batch, cx).await;
            cx.progress(st.position());
            let full = std::mem::replace(&mut batch, Batch::with_capacity(size, size * 128));
            if !cx.emit(full).await {
                return Ok(());
            }
            for (k, i) in &st.index {
                if let Some(s) = st.state.get_mut(k) {
                    s.max = cx.partition_max(*i);
                }
            }
        }
    }

    /// No record for a while: partitions silent for the idle timeout stop holding the
    /// watermark back; bounded reads look for their end behind control records.
    async fn quiet(&self, consumer: &Kafka, st: &mut Partitions, cx: &mut SourceContext) {
        if let Some(timeout) = cx.idle_timeout() {
            let mut all_idle = false;
            for (k, s) in st.state.iter_mut() {
                if !s.idle && s.last_record.elapsed() >= timeout {
                    s.idle = true;
                    all_idle = cx.partition_idle(st.index[k], true);
                }
            }
            if all_idle && !st.all_idle_sent {
                st.all_idle_sent = true;
                cx.idle().await;
            }
        }
        if self.spec.bounded {
            // Control records (transaction markers) end a partition without a message: look
            // at the consumer's position.
            if let Ok(pos) = consumer.position() {
                for e in pos.elements() {
                    if let (Some(s), Offset::Offset(o)) = (
                        st.state.get_mut(&(e.topic().to_owned(), e.partition())),
                        e.offset(),
                    ) && s.end.is_some_and(|end| o >= end)
                    {
                        s.next = s.next.max(o);
                    }
                }
            }
        }
    }
}

/// `first` and the records already fetched after it, up to a batch, into `batch`.
async fn take(
    consumer: &Kafka,
    first: Result<BorrowedMessage<'_>, KafkaError>,
    st: &mut Partitions,
    batch: &mut Batch,
    cx: &mut SourceContext,
) {
    let mut next = Some(first);
    while let Some(m) = next.take() {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                // Brokers going away and coming back are librdkafka's to handle: wait, and go
                // on when they are back.
                st.errors += 1;
                if st.errors <= 3 || st.errors.is_multiple_of(50) {
                    tracing::warn!(source = %cx.name(), "Kafka: {e} (error {}); retrying", st.errors);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        };
        st.errors = 0;
        let key = (m.topic().to_owned(), m.partition());
        let index = st.index.get(&key).copied().unwrap_or(0);
        if let Some(s) = st.state.get_mut(&key) {
            s.next = m.offset() + 1;
            s.last_record = Instant::now();
            if s.idle {
                s.idle = false;
                st.all_idle_sent = false;
                cx.partition_idle(index, false);
            }
        }
        push(batch, &m, cx.now());
        cx.batch_partitions().push(index as u16);
        if batch.len() >= cx.batch_size() {
            return;
        }
        // More already fetched? Take it without waiting.
        next = tokio::time::timeout(Duration::ZERO, consumer.recv())
            .await
            .ok();
    }
}

/// A record as an event: its key, value, timestamp (else `now`) and headers.
fn push(batch: &mut Batch, m: &BorrowedMessage<'_>, now: Timestamp) {
    let ts = m.timestamp().to_millis().unwrap_or(now);
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
}

/// The partitions of `topic`, or why they cannot be had yet.
fn partitions_of(consumer: &StreamConsumer<Context>, topic: &str) -> Result<Vec<Key>, String> {
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
    Ok(t.partitions()
        .iter()
        .map(|p| (topic.to_owned(), p.id()))
        .collect())
}

/// The consumer group's committed offsets of `parts` (none when they cannot be read).
async fn committed_offsets(consumer: &Kafka, parts: &[Key]) -> Result<BTreeMap<Key, i64>, String> {
    let consumer = consumer.clone();
    let mut tpl = TopicPartitionList::new();
    for (t, p) in parts {
        tpl.add_partition(t, *p);
    }
    let got = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(got
        .map(|tpl| {
            tpl.elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The end (high watermark) offset of each partition.
async fn end_offsets(consumer: &Kafka, keys: Vec<Key>) -> Result<Vec<(Key, i64)>, String> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || {
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
    .map_err(|e| format!("cannot read the end offsets: {e}"))
}

impl SourceConnector for KafkaSource {
    fn open(&self, env: &Env<'_>) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(Reader::new(self.clone(), env.name)))
    }
}
