//! The Kafka sink: an idempotent producer flushed at every barrier, or under exactly-once the
//! topology's transactional producer (committer.rs), with the checkpoint's run, id and lineage
//! in each record's headers.

use std::time::{Duration, Instant};

use flowlet_dataflow::{Epoch, SinkSetup, SinkWriter};
use flowlet_manifest::Guarantee;
use flowlet_types::Batch;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _};

use super::config::{KafkaSink, properties};
use super::{Producer, config, context};
use crate::SinkConnector;
use crate::retry::retry;

/// How a Kafka sink writes.
pub(crate) struct Writer {
    producer: Producer,
    topic: String,
    key: Option<flowlet_types::json::Pointer>,
    transactional: bool,
}

impl Writer {
    pub fn new(
        name: &str,
        spec: &super::KafkaSink,
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
                config(&spec.brokers, &defaults, &properties(&spec.properties))
                    .create_with_context(context(&format!("sink {name}")))
                    .map_err(|e| format!("cannot create a Kafka producer: {e}"))?
            }
        };
        Ok(Self {
            producer,
            topic: spec.topic.0.clone(),
            key: spec.key.clone().map(|k| k.0),
            transactional,
        })
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
}

impl SinkWriter for Writer {
    /// Produce the batch. `epoch`: the run, the checkpoint the records belong to and the
    /// lineage, written as headers under exactly-once.
    fn write(&mut self, batch: &Batch, epoch: Option<&Epoch>) -> Result<(), String> {
        self.delivery_error()?;
        let run = epoch.map(|e| e.run.to_string());
        let ckpt = epoch.map(|e| e.checkpoint.to_string());
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
            if let (true, Some(run), Some(ckpt), Some(Epoch { lineage, .. })) =
                (self.transactional, &run, &ckpt, epoch)
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
    fn durable(&mut self) -> Result<Option<serde_json::Value>, String> {
        retry(
            "flushing Kafka records",
            Some(Instant::now() + Duration::from_secs(120)),
            || {
                self.producer
                    .flush(Duration::from_secs(30))
                    .map_err(|e| e.to_string())
            },
        )?;
        self.delivery_error()?;
        Ok(None)
    }

    fn transactional(&self) -> bool {
        self.transactional
    }
}

impl SinkConnector for KafkaSink {
    fn open(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        let shared = setup
            .shared
            .and_then(|s| s.downcast::<super::Producer>().ok())
            .map(|p| *p);
        let writer = Writer::new(
            setup.name,
            self,
            shared,
            setup.guarantee,
            setup.checkpointing,
        )?;
        Ok(Box::new(writer))
    }
}
