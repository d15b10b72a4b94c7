//! The windowed Nexmark queries (docs/NEXMARK.md), as window aggregates:
//!
//! ```yaml
//! q7:    {config: {query: q7}, window: {kind: tumbling, size: 10s}}            # highest bid
//! wc:    {config: {query: wc}, key-by: /bid/auction, window: {kind: tumbling, size: 10s}}
//! q5:    {config: {query: q5-count}, key-by: /bid/auction, window: {kind: sliding, size: 10s, slide: 2s}}
//! hot:   {config: {query: q5-max}, window: {kind: tumbling, size: 2s}, inputs: [q5]}
//! ```
//!
//! `wc` and `q5-count` count the bids of each auction and window (`{"auction", "start", "end",
//! "count"}`); `q7` keeps the highest price of each window (`{"start", "end", "price"}`);
//! `q5-max` keeps the largest `count` of the `q5-count` results of a window (their time is the
//! window's last millisecond, so a 2 s tumbling window holds exactly one sliding window's).
//! Events that are not bids (people, auctions) are ignored; windows without a bid emit nothing.

use std::io::Write;

use flowlet_sdk::aggregate::{Aggregate, Fired};
use flowlet_sdk::{Config, Emitter, Error, Event, number_after};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Query {
    Wc,
    Q7,
    Q5Count,
    Q5Max,
}

pub struct NexmarkWindows {
    query: Query,
}

#[derive(Deserialize)]
struct Bid {
    price: u64,
}

#[derive(Deserialize)]
struct Envelope {
    bid: Option<Bid>,
}

#[derive(Deserialize)]
struct Counted {
    count: u64,
}

impl Aggregate for NexmarkWindows {
    /// A count, or a maximum; 0: nothing seen.
    type Acc = u64;

    fn init(config: Config) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            query: Query,
        }
        let s: Settings = config.parse()?;
        Ok(Self { query: s.query })
    }

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, acc: &mut u64, event: &Event<'_>) -> Result<(), Error> {
        let v = event.value();
        match self.query {
            Query::Wc | Query::Q5Count => {
                if v.starts_with(b"{\"bid\"") {
                    *acc += 1;
                }
            }
            Query::Q7 => {
                if let Some(price) = v
                    .starts_with(b"{\"bid\"")
                    .then(|| number_after(v, b"\"price\":"))
                    .flatten()
                {
                    *acc = (*acc).max(price);
                } else if v.starts_with(b"{\"bid\"") {
                    let e: Envelope = serde_json::from_slice(v)
                        .map_err(|e| Error::reject(format!("not a Nexmark bid: {e}")))?;
                    if let Some(b) = e.bid {
                        *acc = (*acc).max(b.price);
                    }
                }
            }
            Query::Q5Max => {
                let c: Counted = serde_json::from_slice(v)
                    .map_err(|e| Error::reject(format!("not a q5-count result: {e}")))?;
                *acc = (*acc).max(c.count);
            }
        }
        Ok(())
    }

    fn merge(&self, a: u64, b: u64) -> u64 {
        match self.query {
            Query::Wc | Query::Q5Count => a + b,
            Query::Q7 | Query::Q5Max => a.max(b),
        }
    }

    fn finish(&self, w: &Fired<'_>, acc: u64, out: &mut Emitter) -> Result<(), Error> {
        if acc == 0 {
            return Ok(());
        }
        let mut line = Vec::with_capacity(80);
        let r = match self.query {
            Query::Wc | Query::Q5Count => write!(
                line,
                r#"{{"auction":{},"start":{},"end":{},"count":{acc}}}"#,
                w.key_str(),
                w.start,
                w.end
            ),
            Query::Q7 => write!(
                line,
                r#"{{"start":{},"end":{},"price":{acc}}}"#,
                w.start, w.end
            ),
            Query::Q5Max => write!(
                line,
                r#"{{"start":{},"end":{},"count":{acc}}}"#,
                w.start, w.end
            ),
        };
        r.map_err(|e| Error::failed(e.to_string()))?;
        out.emit(&line);
        Ok(())
    }
}

flowlet_sdk::export_aggregate!(NexmarkWindows);
