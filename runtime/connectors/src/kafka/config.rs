//! The configuration of Kafka sources and sinks.

use std::collections::BTreeMap;

use flowlet_manifest::fields::{JsonPointer, NonEmpty, Scalar};
use flowlet_manifest::{Config, Diagnostics, Resource, Spec};
use serde_json::Value;

use crate::Connector;

/// Where a Kafka source starts when neither a checkpoint nor its consumer group has an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

/// How a Kafka record's value becomes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The value must be JSON (anything else meets the source's `on-error`).
    #[default]
    Json,
    /// The value is passed on as it is.
    Bytes,
}

/// Kafka topics: one reader per partition, offsets saved with each checkpoint.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaSource {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: NonEmpty,
    /// The topic to read (or `topics`).
    #[serde(default)]
    pub topic: Option<NonEmpty>,
    /// The topics to read (or `topic`).
    #[serde(default)]
    pub topics: Option<Vec<NonEmpty>>,
    /// Consumer group (default `flowlet-<topology name>`): offsets are committed to it at
    /// each checkpoint, so that lag can be watched with Kafka tools.
    #[serde(default)]
    pub group: Option<NonEmpty>,
    #[serde(default)]
    pub start: StartFrom,
    #[serde(default)]
    pub format: Format,
    /// Read up to the end offsets the partitions had at start, then end (backfills, tests);
    /// by default a Kafka source never ends.
    #[serde(default)]
    pub bounded: bool,
    /// Extra librdkafka consumer properties.
    #[serde(default)]
    pub properties: BTreeMap<String, Scalar>,
}

impl KafkaSource {
    /// The topics read.
    pub fn topics(&self) -> Vec<String> {
        match (&self.topic, &self.topics) {
            (Some(t), _) => vec![t.0.clone()],
            (None, Some(ts)) => ts.iter().map(|t| t.0.clone()).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// The consumer group of a source of topology `topology`.
    pub fn group(&self, topology: &str) -> String {
        self.group
            .as_ref()
            .map_or_else(|| format!("flowlet-{topology}"), |g| g.0.clone())
    }
}

/// librdkafka properties as strings.
pub(crate) fn properties(p: &BTreeMap<String, Scalar>) -> BTreeMap<String, String> {
    p.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

impl Spec for KafkaSource {
    fn resources(&self) -> Vec<Resource> {
        self.topics()
            .into_iter()
            .map(|topic| Resource::ReadsTopic {
                brokers: self.brokers.0.clone(),
                topic,
                bounded: self.bounded,
            })
            .collect()
    }
}

impl Connector for KafkaSource {
    const KIND: &'static str = "kafka";

    fn check(c: &Config<'_, '_>, d: &mut Diagnostics) -> bool {
        let what = c.what();
        match (c.value_pos("topic"), c.value("topics")) {
            (None, Some(Value::Array(list))) if list.is_empty() => {
                let hint = Some("write it like `topics: [orders, payments]`");
                c.error(d, "topics", "must be a non-empty list of topic names", hint);
                false
            }
            (Some(at), Some(_)) => {
                d.error_hint(
                    at,
                    format!("{what} has both `topic` and `topics`"),
                    "keep one",
                );
                false
            }
            (None, None) => {
                let hint = Some("add `topic: NAME` (or `topics: [A, B]`)");
                c.error_here(d, &format!("{what} has no `topic`"), hint);
                false
            }
            // Anything else is for the fields' own types to judge.
            _ => true,
        }
    }
}

/// A Kafka topic (transactional under `exactly-once`).
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KafkaSink {
    /// Bootstrap servers, `host:port,host:port`.
    pub brokers: NonEmpty,
    pub topic: NonEmpty,
    /// Where the record key comes from (default: the event's key, if any).
    #[serde(default)]
    pub key: Option<JsonPointer>,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub properties: BTreeMap<String, Scalar>,
}

impl Spec for KafkaSink {
    fn resources(&self) -> Vec<Resource> {
        vec![Resource::WritesTopic {
            brokers: self.brokers.0.clone(),
            topic: self.topic.0.clone(),
        }]
    }
}

impl Connector for KafkaSink {
    const KIND: &'static str = "kafka";
}
