//! `null`: count and discard (benchmarks), optionally summing a number of each event into the
//! `checksum` counter.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use flowlet_dataflow::{NodeCounters, SinkSetup, SinkWriter};
use flowlet_manifest::fields::JsonPointer;
use flowlet_types::Batch;
use flowlet_types::json::Pointer;

use crate::{Connector, SinkConnector};

/// Count and discard (benchmarks).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Null {
    /// Sum this JSON pointer's number (floored) over the events, into the `checksum` counter
    /// (benchmarks: a result is only a result if its checksum matches).
    #[serde(default)]
    pub checksum: Option<JsonPointer>,
}

flowlet_manifest::spec!(Null);

impl Connector for Null {
    const KIND: &'static str = "null";
}

impl SinkConnector for Null {
    fn open(&self, setup: SinkSetup<'_>) -> Result<Box<dyn SinkWriter>, String> {
        Ok(Box::new(Writer {
            checksum: self.checksum.clone().map(|p| p.0),
            counters: setup.counters,
        }))
    }
}

struct Writer {
    checksum: Option<Pointer>,
    counters: Arc<NodeCounters>,
}

impl SinkWriter for Writer {
    fn write(&mut self, batch: &Batch, _: Option<&flowlet_dataflow::Epoch>) -> Result<(), String> {
        if let Some(p) = &self.checksum {
            self.counters
                .checksum
                .fetch_add(checksum(p, batch), Relaxed);
        }
        Ok(())
    }
}

/// The sum of the numbers at `p` in a batch (floored).
fn checksum(p: &Pointer, batch: &Batch) -> u64 {
    let mut sum = 0u64;
    for event in batch.iter() {
        if let Some(n) = p
            .find(event.value())
            .ok()
            .flatten()
            .and_then(|raw| raw.get().parse::<f64>().ok())
        {
            sum = sum.wrapping_add(n.floor() as u64);
        }
    }
    sum
}
