//! The `nexmark` source: the deterministic Nexmark workload (people, auctions and bids;
//! docs/NEXMARK.md), timestamped with each event's `date_time` and in time order.

mod events;

pub use events::*;

use flowlet_dataflow::{BoxFuture, Source, SourceContext};
use flowlet_manifest::fields::{Positive, Whole};

use crate::{Connector, Env, SourceConnector};

/// The deterministic Nexmark workload (people, auctions and bids; docs/NEXMARK.md),
/// timestamped with each event's `date_time` and in time order.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Nexmark {
    /// Events in all (absent: unbounded).
    #[serde(default)]
    pub events: Option<Whole<0, { u64::MAX >> 1 }>>,
    /// Events per second (absent: as fast as possible).
    #[serde(default)]
    pub rate: Option<Positive>,
}

impl flowlet_manifest::Spec for Nexmark {
    fn own_event_time(&self) -> bool {
        true
    }
}

impl Connector for Nexmark {
    const KIND: &'static str = "nexmark";
}

impl SourceConnector for Nexmark {
    fn open(&self, _: &Env<'_>) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(Reader {
            events: self.events.map(|c| c.0),
            rate: self.rate.map(|r| r.0),
        }))
    }
}

struct Reader {
    events: Option<u64>,
    rate: Option<f64>,
}

impl Source for Reader {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            crate::generate::generate(cx, self.events, self.rate, push_event).await;
            Ok(())
        })
    }
}
