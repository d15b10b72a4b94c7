//! The `generator` source: deterministic synthetic JSON events (~100 bytes each), with event
//! times 1 ms apart.

mod events;

pub use events::{BASE_TIME, push_event};

use flowlet_dataflow::{BoxFuture, Source, SourceContext};
use flowlet_manifest::fields::{Positive, Whole};

use crate::{Connector, Env, SourceConnector};

/// Deterministic synthetic JSON events (~100 bytes each), e.g.
/// `{"id":7,"user":"u0042","country":"JP","amount":512.5,"kind":"cart","tags":["promo"],"ts":…}`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Generator {
    /// Number of events; absent: unbounded (until Ctrl-C).
    #[serde(default)]
    pub count: Option<Whole<0, { u64::MAX >> 1 }>>,
    /// Events per second; absent: as fast as the topology goes.
    #[serde(default)]
    pub rate: Option<Positive>,
    /// Seed of the generator (default 0).
    #[serde(default)]
    pub seed: Option<Whole<0, { u64::MAX >> 1 }>>,
}

impl flowlet_manifest::Spec for Generator {
    fn own_event_time(&self) -> bool {
        true
    }
}

impl Connector for Generator {
    const KIND: &'static str = "generator";
}

impl SourceConnector for Generator {
    fn open(&self, _: &Env<'_>) -> Result<Box<dyn Source>, String> {
        Ok(Box::new(Reader {
            count: self.count.map(|c| c.0),
            rate: self.rate.map(|r| r.0),
            seed: self.seed.map_or(0, |s| s.0),
        }))
    }
}

struct Reader {
    count: Option<u64>,
    rate: Option<f64>,
    seed: u64,
}

impl Source for Reader {
    fn run<'a>(self: Box<Self>, cx: &'a mut SourceContext) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let seed = self.seed;
            let push = |b: &mut flowlet_types::Batch, n| push_event(b, seed, n);
            crate::generate::generate(cx, self.count, self.rate, push).await;
            Ok(())
        })
    }
}
