//! The native test mode: run an operator in-process, without Wasm, under plain `cargo test`.
//!
//! ```
//! # use flowlet_sdk::{Config, Error, Event, Operator, Output};
//! # struct Upper;
//! # impl Operator for Upper {
//! #     fn init(_: Config) -> Result<Self, Error> { Ok(Upper) }
//! #     fn process(&mut self, e: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
//! #         out.emit(e.text()?.to_uppercase().as_bytes());
//! #         Ok(())
//! #     }
//! # }
//! use flowlet_sdk::testing::Harness;
//!
//! let mut h = Harness::<Upper>::new(serde_json::Value::Null).unwrap();
//! assert_eq!(h.process_json(&["\"a\"", "\"b\""]).unwrap().values(), vec!["\"A\"", "\"B\""]);
//! ```

use flowlet_types::{Batch, Rejection, Timestamp};

use crate::{Config, Error, Operator, log, metrics};

/// An operator instance driven by a test.
pub struct Harness<O: Operator> {
    op: O,
    next_timestamp: Timestamp,
}

/// What one batch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutput {
    pub events: Batch,
    pub rejected: Vec<Rejection>,
    /// What the operator logged while handling the batch.
    pub logs: Vec<(log::Level, String)>,
    /// Metrics the operator recorded while handling the batch.
    pub metrics: metrics::Recorded,
}

impl TestOutput {
    /// The output values as UTF-8 text.
    pub fn values(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|e| std::str::from_utf8(e.value()).expect("output value is UTF-8"))
            .collect()
    }

    /// The output values parsed as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .map(|e| serde_json::from_slice(e.value()).expect("output value is JSON"))
            .collect()
    }

    /// Indexes of the rejected input events.
    pub fn rejected_indexes(&self) -> Vec<u32> {
        self.rejected.iter().map(|r| r.event).collect()
    }
}

impl<O: Operator> Harness<O> {
    /// Build the operator from `config`, as `init` would in the host.
    pub fn new(config: serde_json::Value) -> Result<Self, Error> {
        Ok(Self {
            op: O::init(Config(config))?,
            next_timestamp: 0,
        })
    }

    /// Run one batch.
    pub fn process(&mut self, input: &Batch) -> Result<TestOutput, Error> {
        let out = crate::run_batch(&mut self.op, input);
        let logs = log::take();
        let metrics = metrics::take();
        let out = out?;
        Ok(TestOutput {
            events: out.events,
            rejected: out.rejected,
            logs,
            metrics,
        })
    }

    /// Run one batch of unkeyed events with these values, timestamped 0, 1, 2, … across calls.
    pub fn process_json(&mut self, values: &[&str]) -> Result<TestOutput, Error> {
        let mut batch = Batch::new();
        for v in values {
            batch.push(b"", v.as_bytes(), self.next_timestamp);
            self.next_timestamp += 1;
        }
        self.process(&batch)
    }

    /// The operator, for assertions on its own state.
    pub fn operator(&mut self) -> &mut O {
        &mut self.op
    }
}
