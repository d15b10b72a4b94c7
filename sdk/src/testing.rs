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

use crate::{Config, Error, Operator, Setup, log, metrics};

/// An operator instance driven by a test.
pub struct Harness<O: Operator> {
    op: O,
    setup: Setup,
    next_timestamp: Timestamp,
}

/// What one batch produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutput {
    pub events: Batch,
    /// Where each event goes (see [`flowlet_types::Output::routes`]); empty: all to the main
    /// output. [`TestOutput::on`] reads one output.
    pub routes: Vec<u32>,
    /// The operator's named outputs.
    pub outputs: Vec<String>,
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

    /// The values (as text) routed to output `port`: `""` for the main output, else one of
    /// the operator's named outputs.
    pub fn on(&self, port: &str) -> Vec<&str> {
        let bit = match port {
            "" => flowlet_types::MAIN_ROUTE,
            name => {
                let i = self
                    .outputs
                    .iter()
                    .position(|o| o == name)
                    .unwrap_or_else(|| panic!("no output `{name}` in {:?}", self.outputs));
                1 << (i + 1)
            }
        };
        self.events
            .iter()
            .enumerate()
            .filter(|(i, _)| self.routes.get(*i).map_or(bit == 1, |m| m & bit != 0))
            .map(|(_, e)| std::str::from_utf8(e.value()).expect("output value is UTF-8"))
            .collect()
    }
}

impl<O: Operator> Harness<O> {
    /// Build the operator from `config`, as `init` would in the host.
    pub fn new(config: serde_json::Value) -> Result<Self, Error> {
        Self::with_setup(config, Setup::default())
    }

    /// Build the operator with these inputs and named outputs (as the manifest would give).
    pub fn with_setup(config: serde_json::Value, setup: Setup) -> Result<Self, Error> {
        Ok(Self {
            op: O::init(Config::with_setup(config, setup.clone()))?,
            setup,
            next_timestamp: 0,
        })
    }

    /// Run one batch (from the first input).
    pub fn process(&mut self, input: &Batch) -> Result<TestOutput, Error> {
        self.process_from(0, input)
    }

    /// Run one batch from input `origin` (an index into the setup's inputs).
    pub fn process_from(&mut self, origin: usize, input: &Batch) -> Result<TestOutput, Error> {
        let name = self.setup.inputs.get(origin).cloned().unwrap_or_default();
        let out = crate::run_batch(&mut self.op, input, &name);
        let logs = log::take();
        let metrics = metrics::take();
        let out = out?;
        Ok(TestOutput {
            events: out.events,
            routes: out.routes,
            outputs: self.setup.outputs.clone(),
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

#[cfg(not(target_arch = "wasm32"))]
impl<O: Operator> Harness<O> {
    /// Advance the native watermark to `watermark` and fire the event-time timers due, in time
    /// order, as the host would.
    pub fn advance_watermark(&mut self, watermark: Timestamp) -> Result<Batch, Error> {
        self.fire(crate::TimeDomain::EventTime, watermark, |n| {
            n.watermark = n.watermark.max(watermark)
        })
    }

    /// Set the native processing-time clock and fire the processing-time timers due.
    pub fn set_processing_time(&mut self, now: Timestamp) -> Result<Batch, Error> {
        self.fire(crate::TimeDomain::ProcessingTime, now, |n| n.now = now)
    }

    fn fire(
        &mut self,
        domain: crate::TimeDomain,
        until: Timestamp,
        set: impl FnOnce(&mut crate::state::imp::Native),
    ) -> Result<Batch, Error> {
        let due: Vec<crate::Timer> = crate::state::imp::NATIVE.with_borrow_mut(|n| {
            set(n);
            let due: Vec<_> = n
                .timers
                .iter()
                .filter(|(d, at, _)| *d == domain && *at <= until)
                .cloned()
                .collect();
            for t in &due {
                n.timers.remove(t);
            }
            due.into_iter()
                .map(|(domain, at, key)| crate::Timer { key, domain, at })
                .collect()
        });
        crate::run_timers(&mut self.op, &due).map(|o| o.events)
    }

    /// Run one batch of events with these (key, value, timestamp)s.
    pub fn process_keyed(
        &mut self,
        events: &[(&str, &str, Timestamp)],
    ) -> Result<TestOutput, Error> {
        let mut batch = Batch::new();
        for (k, v, t) in events {
            batch.push(k.as_bytes(), v.as_bytes(), *t);
        }
        self.process(&batch)
    }
}

/// A window aggregate driven by a test: fold events into accumulators, merge and finish them.
pub struct AggregateHarness<A: crate::aggregate::Aggregate> {
    agg: A,
}

/// What [`AggregateHarness::fold_and_finish`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateOutput {
    pub json: Vec<serde_json::Value>,
    /// Indexes of the rejected events.
    pub rejected: Vec<u32>,
}

impl<A: crate::aggregate::Aggregate> AggregateHarness<A> {
    pub fn new(config: serde_json::Value) -> Result<Self, Error> {
        Ok(Self {
            agg: A::init(Config::new(config))?,
        })
    }

    /// Fold unkeyed events (timestamps 0, 1, …) into one fresh accumulator; rejections are
    /// dropped.
    pub fn fold(&self, values: &[&str]) -> Result<Vec<u8>, Error> {
        self.fold_rejecting(values).map(|(acc, _)| acc)
    }

    fn fold_rejecting(&self, values: &[&str]) -> Result<(Vec<u8>, Vec<u32>), Error> {
        let mut batch = Batch::new();
        for (i, v) in values.iter().enumerate() {
            batch.push(b"", v.as_bytes(), i as Timestamp);
        }
        let mut accs = crate::aggregate::Accumulators::default();
        accs.push(&crate::aggregate::create(&self.agg));
        let (accs, rejected) =
            crate::aggregate::add(&self.agg, &accs, &batch, &vec![0; batch.len()])?;
        let acc = accs.get(0).unwrap_or_default().to_vec();
        Ok((acc, rejected.iter().map(|r| r.event).collect()))
    }

    pub fn merge(&self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Error> {
        crate::aggregate::merge(&self.agg, a, b)
    }

    /// Finish `acc` as the window `[0, 1000)` of key `k`.
    pub fn finish_one(&self, acc: &[u8]) -> Result<Vec<serde_json::Value>, Error> {
        Ok(self
            .finish_raw(acc)?
            .iter()
            .map(|e| serde_json::from_str(e).expect("output is JSON"))
            .collect())
    }

    /// [`Self::finish_one`] as the text the aggregate wrote (to check what parsing would hide,
    /// such as a field written twice).
    pub fn finish_raw(&self, acc: &[u8]) -> Result<Vec<String>, Error> {
        let mut fired = crate::aggregate::FiredWindows::default();
        fired.push(0, 1000, b"k", acc, 0);
        let out = crate::aggregate::finish(&self.agg, &fired)?;
        Ok(out
            .iter()
            .map(|e| String::from_utf8_lossy(e.value()).into_owned())
            .collect())
    }

    /// Fold `values` into one window and finish it.
    pub fn fold_and_finish(&self, values: &[&str]) -> Result<AggregateOutput, Error> {
        let (acc, rejected) = self.fold_rejecting(values)?;
        Ok(AggregateOutput {
            json: self.finish_one(&acc)?,
            rejected,
        })
    }
}
