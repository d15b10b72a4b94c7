//! `http`: each batch POSTed to a URL as JSON lines (`application/x-ndjson`), retried with
//! backoff while the server is unreachable or answers 408, 429 or 5xx; any other answer
//! outside 2xx stops the topology, naming the status and what the server said.
//!
//! At-least-once: a batch is acknowledged before the next is sent and before a checkpoint
//! barrier passes the sink, so after a crash only what was sent since the last checkpoint is
//! sent again. (What a server acknowledged cannot be taken back: under `exactly-once` this
//! sink still repeats output after a crash — receivers that must not see repeats deduplicate.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowlet_dataflow::{Epoch, SinkSetup, SinkWriter};
use flowlet_manifest::fields::{self, NonEmpty};
use flowlet_manifest::{Spec, describe_json};
use flowlet_types::Batch;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserialize, Deserializer, Error as _};

use crate::lines::one_line;
use crate::retry::{Attempt, GaveUp, with_backoff};
use crate::{Connector, SinkConnector};

/// POST each batch to a URL as JSON lines; retried with backoff (at-least-once).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Http {
    /// Where to POST, e.g. `http://127.0.0.1:8080/events`.
    pub url: Url,
    /// Extra request headers, e.g. `{Authorization: "Bearer …"}`.
    #[serde(default)]
    pub headers: BTreeMap<String, NonEmpty>,
    /// Events per request at most (default 1000; a batch may make several requests).
    #[serde(default)]
    pub max_events: Option<fields::Whole<1, 1_000_000>>,
    /// How long one request may take (default `10s`).
    #[serde(default)]
    pub timeout: Option<fields::Duration>,
    /// How long a request is retried before the topology stops (default `5m`).
    #[serde(default)]
    pub retry_for: Option<fields::Duration>,
}

impl Spec for Http {
    fn takes_back(&self) -> bool {
        false
    }
}

impl Connector for Http {
    const KIND: &'static str = "http";
}

/// An `http://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(pub String);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let Some(s) = v.as_str() else {
            return Err(D::Error::custom(format!(
                "must be a URL, not {}",
                describe_json(&v)
            )));
        };
        if s.starts_with("https://") {
            return Err(D::Error::custom(
                "cannot be an `https://` URL: this build of flowlet speaks plain HTTP\nhint: send to a local TLS-terminating proxy (`http://127.0.0.1:…`), or write to Kafka",
            ));
        }
        let host = s
            .strip_prefix("http://")
            .map(|r| r.split(['/', '?']).next());
        match (host, s.parse::<ureq::http::Uri>()) {
            (Some(Some(h)), Ok(_)) if !h.is_empty() => Ok(Self(s.to_owned())),
            _ => Err(D::Error::custom(format!(
                "must be an `http://HOST[:PORT]/PATH` URL, not {}",
                describe_json(&v)
            ))),
        }
    }
}

impl JsonSchema for Url {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HttpUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^http://", "description": "an http:// URL" })
    }
}

impl SinkConnector for Http {
    fn open(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        let timeout = self.timeout.map_or(Duration::from_secs(10), |t| t.0);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("flowlet/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Box::new(Writer {
            agent,
            url: self.url.0.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            max_events: self.max_events.map_or(1000, |m| m.0 as usize),
            retry_for: self.retry_for.map_or(Duration::from_secs(300), |r| r.0),
            sink: setup.name.to_owned(),
            body: Vec::new(),
        }))
    }
}

struct Writer {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    max_events: usize,
    retry_for: Duration,
    sink: String,
    body: Vec<u8>,
}

impl SinkWriter for Writer {
    fn write(&mut self, batch: &Batch, _: Option<&Epoch>) -> Result<(), String> {
        self.body.clear();
        let mut in_body = 0;
        for event in batch.iter() {
            self.body.extend_from_slice(&one_line(event.value()));
            self.body.push(b'\n');
            in_body += 1;
            if in_body == self.max_events {
                self.send()?;
                self.body.clear();
                in_body = 0;
            }
        }
        if in_body > 0 {
            self.send()?;
        }
        Ok(())
    }
}

impl Writer {
    /// POST the body until it is accepted, retrying with backoff (100 ms doubling to 10 s)
    /// for at most `retry_for`.
    fn send(&mut self) -> Result<(), String> {
        let what = format!("sink `{}`: POST {}", self.sink, self.url);
        let deadline = Instant::now() + self.retry_for;
        with_backoff(&what, Duration::from_millis(100), Some(deadline), || self.attempt())
            .map_err(|g| match g {
                GaveUp::Failed(why) => format!(
                    "{} refused a batch: {why} (a server that refuses a request will refuse it again: fix the server or the events)",
                    self.url
                ),
                GaveUp::Deadline {
                    why,
                    attempts,
                    elapsed,
                } => format!(
                    "cannot deliver a batch to {} after {attempts} attempts in {elapsed:.1?}: {why} (raise `retry-for` to wait longer)",
                    self.url
                ),
            })
    }

    /// One POST of the body.
    fn attempt(&self) -> Attempt<()> {
        let mut req = self
            .agent
            .post(&self.url)
            .content_type("application/x-ndjson");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut r = match req.send(&self.body[..]) {
            Ok(r) => r,
            Err(e) => return Attempt::Again(e.to_string(), None),
        };
        let status = r.status();
        if status.is_success() {
            return Attempt::Done(());
        }
        let after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        let text = r.body_mut().read_to_string().unwrap_or_default();
        let preview: String = text.chars().take(200).collect();
        let why = format!("{status}: {}", preview.trim());
        match status.as_u16() {
            408 | 429 | 500..=599 => Attempt::Again(why, after),
            _ => Attempt::Fail(why),
        }
    }
}
