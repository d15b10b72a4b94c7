//! Kafka's side of exactly-once: one transactional producer for every Kafka sink of the
//! topology, committing each checkpoint's output together with the sources' offsets (the
//! decision of the two-phase commit), and telling after a crash whether a pending checkpoint
//! committed.
//!
//! The decision is read back from a **checkpoint marker**: every transaction also commits, for
//! the consumer group `flowlet-<topology>-checkpoints-<run>`, the offset `n` (the checkpoint's
//! id) of partition 0 of the first sink's topic. A committed offset is exactly what Kafka makes
//! visible with the transaction and never without it, on every broker; the offset-commit
//! *metadata* flowlet also writes (`flowlet:<run>:<n>`, for people reading the groups) is not
//! returned by every broker (the test broker drops it), and deciding from it once rolled back a
//! checkpoint Kafka had committed — whose offsets the next run then started from, with the
//! state of before it: the input in between was lost (docs/RELIABILITY.md).

use std::collections::BTreeMap;
use std::time::Duration;

use flowlet_dataflow::checkpoint::{CheckpointRecord, Committer};
use flowlet_dataflow::{BoxFuture, DataflowError, Prepared};
use flowlet_manifest::{Guarantee, Manifest};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::config::{KafkaSink, KafkaSource, properties};
use super::{Context, Producer, config, context, offsets_of};
use crate::retry::retry;

/// Where the checkpoint's offsets go inside the transaction.
struct OffsetTarget {
    /// The source task whose position holds the offsets (`None`: the checkpoint marker).
    source: Option<String>,
    group: String,
    consumer: BaseConsumer<Context>,
    /// The marker's topic (partition 0).
    marker: Option<String>,
}

struct KafkaCommitter {
    producer: Producer,
    targets: Vec<OffsetTarget>,
    /// How to reach the checkpoint marker: the group of a run is made when first needed.
    marker: MarkerSpec,
    /// This run's marker target (made at the first commit, when the run is known).
    run_marker: Option<(u64, OffsetTarget)>,
}

/// A consumer of `group` that never commits by itself (it reads and sends offsets).
fn group_consumer(
    brokers: &str,
    group: &str,
    properties: &BTreeMap<String, String>,
    client: &str,
) -> Result<BaseConsumer<Context>, String> {
    let defaults = [
        ("group.id", group.to_owned()),
        ("enable.auto.commit", "false".into()),
    ];
    config(brokers, &defaults, properties)
        .create_with_context(context(client))
        .map_err(|e| format!("cannot create a Kafka consumer for group `{group}`: {e}"))
}

/// The checkpoint marker's place: a partition of the first Kafka sink's topic, in one group
/// per run of the topology.
struct MarkerSpec {
    topology: String,
    topic: String,
    brokers: String,
    properties: BTreeMap<String, String>,
}

impl MarkerSpec {
    /// The marker's topic must exist before the first commit: a broker does not keep offsets
    /// of a topic it does not know (Kafka refuses them; the test broker drops them silently).
    /// Asked by a consumer: a producer's metadata request makes a broker with auto-creation
    /// create the topic, which would hide that it is missing.
    fn check_topic(&self) -> Result<(), String> {
        let consumer: BaseConsumer<Context> = config(&self.brokers, &[], &self.properties)
            .create_with_context(context("checkpoint marker"))
            .map_err(|e| format!("cannot create a Kafka consumer: {e}"))?;
        let md = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(30))
            .map_err(|e| format!("cannot read the metadata of topic `{}`: {e}", self.topic))?;
        let found = md
            .topics()
            .iter()
            .any(|t| t.name() == self.topic && t.error().is_none() && !t.partitions().is_empty());
        if found {
            Ok(())
        } else {
            Err(format!(
                "topic `{}` does not exist at {}: under exactly-once each checkpoint commits a marker offset to its partition 0, so create the topic before the first run",
                self.topic, self.brokers
            ))
        }
    }

    fn group(&self, run: u64) -> String {
        format!("flowlet-{}-checkpoints-{run}", self.topology)
    }

    fn target(&self, run: u64) -> Result<OffsetTarget, String> {
        let group = self.group(run);
        let consumer =
            group_consumer(&self.brokers, &group, &self.properties, "checkpoint marker")?;
        Ok(OffsetTarget {
            source: None,
            group,
            consumer,
            marker: Some(self.topic.clone()),
        })
    }
}

fn offsets_metadata(record: &CheckpointRecord) -> String {
    format!("flowlet:{}:{}", record.run, record.id)
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
                let id = i64::try_from(record.id).map_err(|e| e.to_string())?;
                tpl.add_partition_offset(topic, 0, Offset::Offset(id))
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

    /// The last checkpoint of the run that Kafka committed: the marker's committed offset.
    fn decided(&self, partitions: &TopicPartitionList) -> Result<Option<u64>, String> {
        let tpl = self
            .consumer
            .committed_offsets(partitions.clone(), Duration::from_secs(30))
            .map_err(|e| {
                format!(
                    "cannot read the committed offsets of group `{}`: {e}",
                    self.group
                )
            })?;
        Ok(tpl.elements().iter().find_map(|e| match e.offset() {
            Offset::Offset(o) => u64::try_from(o).ok(),
            _ => None,
        }))
    }
}

impl Committer for KafkaCommitter {
    fn commit(&mut self, record: &CheckpointRecord) -> Result<(), String> {
        if self.run_marker.as_ref().map(|(run, _)| *run) != Some(record.run) {
            self.run_marker = Some((record.run, self.marker.target(record.run)?));
        }
        let result = (|| {
            let marker = self.run_marker.as_ref().map(|(_, t)| t);
            for t in self.targets.iter().chain(marker) {
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
            flowlet_dataflow::fault::hit("kafka.offsets-sent")?;
            self.producer
                .commit_transaction(Duration::from_secs(120))
                .map_err(|e| format!("cannot commit the Kafka transaction: {e}"))?;
            let _ = flowlet_dataflow::fault::hit("kafka.committed");
            Ok(())
        })();
        if let Err(e) = result {
            let _ = self.producer.abort_transaction(Duration::from_secs(60));
            return Err(e);
        }
        self.producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin a Kafka transaction: {e}"))
    }

    fn decided(&self, record: &CheckpointRecord) -> Result<bool, String> {
        let target = self.marker.target(record.run)?;
        let tpl = target.offsets(record)?;
        let decided = retry(
            "asking Kafka for the last committed checkpoint",
            None,
            || target.decided(&tpl),
        )?;
        Ok(decided.is_some_and(|id| id >= record.id))
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

/// Where checkpointed offsets go: each Kafka source's group.
fn offset_targets(manifest: &Manifest) -> Result<Vec<OffsetTarget>, DataflowError> {
    let mut out = Vec::new();
    for (name, s) in &manifest.sources {
        let Some(k) = s.kind.spec::<KafkaSource>() else {
            continue;
        };
        let group = k.group(&manifest.name);
        let consumer = group_consumer(
            &k.brokers.0,
            &group,
            &properties(&k.properties),
            "checkpoint offsets",
        )
        .map_err(|message| DataflowError::Source {
            source_name: name.clone(),
            message,
        })?;
        out.push(OffsetTarget {
            source: Some(name.clone()),
            group,
            consumer,
            marker: None,
        });
    }
    Ok(out)
}

/// Prepare Kafka for a run with checkpoints: under exactly-once with Kafka sinks, the
/// topology's transactional producer (given to every Kafka sink) committing each checkpoint;
/// else the Kafka sources' consumer groups, told each checkpoint's offsets. `None` without
/// Kafka.
pub fn prepare(manifest: &Manifest) -> BoxFuture<'_, Result<Option<Prepared>, DataflowError>> {
    Box::pin(async move {
        let sinks: Vec<(&String, &KafkaSink)> = manifest
            .sinks
            .iter()
            .filter_map(|(n, s)| Some((n, s.kind.spec::<KafkaSink>()?)))
            .collect();
        if manifest.guarantee != Guarantee::ExactlyOnce || sinks.is_empty() {
            let targets = offset_targets(manifest)?;
            return Ok((!targets.is_empty()).then(|| Prepared {
                committer: Some(Box::new(GroupOffsets { targets }) as Box<dyn Committer>),
                shared: BTreeMap::new(),
            }));
        }
        let committer = transactions(manifest, &sinks).await?;
        let shared = sinks
            .iter()
            .map(|(n, _)| {
                let p: Box<dyn std::any::Any + Send> = Box::new(committer.producer.clone());
                ((*n).clone(), p)
            })
            .collect();
        Ok(Some(Prepared {
            committer: Some(Box::new(committer)),
            shared,
        }))
    })
}

/// The transactional producer of the topology, its open transaction begun (an older
/// producer of the topology fenced and its transaction aborted).
async fn transactions(
    manifest: &Manifest,
    sinks: &[(&String, &KafkaSink)],
) -> Result<KafkaCommitter, DataflowError> {
    let (first_name, first) = sinks[0];
    if let Some((n, _)) = sinks.iter().find(|(_, s)| s.brokers != first.brokers) {
        return Err(DataflowError::Sink {
            sink: (*n).clone(),
            message: format!(
                "under exactly-once every Kafka sink writes in one transaction, so all must use the same brokers (`{first_name}` uses {})",
                first.brokers.0
            ),
        });
    }
    let interval = manifest
        .checkpoint
        .as_ref()
        .map_or(Duration::from_secs(10), |c| c.interval);
    let timeout_ms = (interval.as_millis() as u64 * 3 + 60_000).min(900_000);
    let fail = |message: String| DataflowError::Sink {
        sink: first_name.clone(),
        message,
    };
    let producer: Producer = config(
        &first.brokers,
        &[
            ("transactional.id", format!("flowlet-{}", manifest.name)),
            ("enable.idempotence", "true".into()),
            ("transaction.timeout.ms", timeout_ms.to_string()),
        ],
        &properties(&first.properties),
    )
    .create_with_context(context("transactions"))
    .map_err(|e| fail(format!("cannot create a Kafka producer: {e}")))?;
    // Offsets: each Kafka source's group, and the checkpoint marker.
    let targets = offset_targets(manifest)?;
    let brokers = first.brokers.0.clone();
    let marker = MarkerSpec {
        topology: manifest.name.clone(),
        topic: first.topic.0.clone(),
        brokers: first.brokers.0.clone(),
        properties: properties(&first.properties),
    };
    let (started, marker) = tokio::task::spawn_blocking(move || {
        let started = start_transactions(producer, &brokers).and_then(|p| {
            marker.check_topic()?;
            Ok(p)
        });
        (started, marker)
    })
    .await
    .map_err(|e| DataflowError::Panic(e.to_string()))?;
    Ok(KafkaCommitter {
        producer: started.map_err(fail)?,
        targets,
        marker,
        run_marker: None,
    })
}

/// Fence an older producer of this topology (aborting its open transaction) and begin one.
fn start_transactions(producer: Producer, brokers: &str) -> Result<Producer, String> {
    retry(
        &format!("waiting for Kafka at {brokers} to start transactions"),
        None,
        || {
            producer
                .init_transactions(Duration::from_secs(30))
                .map_err(|e| e.to_string())
        },
    )?;
    producer
        .begin_transaction()
        .map_err(|e| format!("cannot begin a Kafka transaction: {e}"))?;
    Ok(producer)
}
