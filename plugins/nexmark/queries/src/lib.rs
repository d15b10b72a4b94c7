//! The stateless Nexmark queries (docs/NEXMARK.md) over the `nexmark` source's JSON events:
//!
//! ```yaml
//! plugin: ../../dist/plugins/nexmark-queries.wasm
//! config: {query: q1}     # q0 | q1 | q2
//! ```
//!
//! - `q0`: every event, unchanged;
//! - `q1`: bids → `{"auction", "bidder", "price": price × 0.908, "date_time"}`;
//! - `q2`: bids with `auction % 123 == 0` → `{"auction", "price"}`.
//!
//! People and auctions pass `q0` only. An event that is not a Nexmark event is rejected.

use std::io::Write;

use flowlet_sdk::{Config, Error, Event, Operator, Output, number_after};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Query {
    Q0,
    Q1,
    Q2,
}

pub struct Nexmark {
    query: Query,
}

/// The fields of a bid the queries use (the rest of the event is skipped unparsed).
#[derive(Deserialize)]
struct Bid {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: i64,
}

#[derive(Deserialize)]
struct Envelope {
    bid: Option<Bid>,
}

/// A bid's fields. (Scanning for each field instead is slower than serde's one pass for the
/// four fields q1 needs; q2 scans for the auction alone, see `process`.)
fn bid(v: &[u8]) -> Result<Bid, Error> {
    let e: Envelope =
        serde_json::from_slice(v).map_err(|e| Error::reject(format!("not a Nexmark bid: {e}")))?;
    e.bid
        .ok_or_else(|| Error::reject("not a Nexmark bid: no `bid`"))
}

impl Operator for Nexmark {
    fn init(config: Config) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            query: Query,
        }
        let s: Settings = config.parse()?;
        Ok(Self { query: s.query })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        if self.query == Query::Q0 {
            out.forward();
            return Ok(());
        }
        // Bids only: a cheap look at the first key avoids parsing people and auctions.
        if !event.value().starts_with(b"{\"bid\"") {
            return Ok(());
        }
        // q2 drops 99% of the bids: look at the auction before anything else.
        if self.query == Query::Q2
            && number_after(event.value(), b"\"auction\":").is_some_and(|a| a % 123 != 0)
        {
            return Ok(());
        }
        let b = bid(event.value())?;
        match self.query {
            Query::Q0 => unreachable!("handled above"),
            Query::Q1 => out.emit_in_place(|buf| {
                write!(
                    buf,
                    r#"{{"auction":{},"bidder":{},"price":{:?},"date_time":{}}}"#,
                    b.auction,
                    b.bidder,
                    b.price as f64 * 0.908,
                    b.date_time
                )
                .map_err(|e| Error::failed(e.to_string()))
            }),
            Query::Q2 if b.auction % 123 == 0 => out.emit_in_place(|buf| {
                write!(buf, r#"{{"auction":{},"price":{}}}"#, b.auction, b.price)
                    .map_err(|e| Error::failed(e.to_string()))
            }),
            Query::Q2 => Ok(()),
        }
    }
}

flowlet_sdk::export_operator!(Nexmark);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;
    use serde_json::json;

    #[test]
    fn queries_shape_bids_and_skip_the_rest() {
        let bid = r#"{"bid":{"auction":246,"bidder":1001,"price":1000,"channel":"Apple","url":"https://nexmark.io/item?a=246","date_time":7}}"#;
        let person = r#"{"person":{"id":1000,"name":"bob","email":"p1000@x.com","credit_card":"40001","city":"Kent","state":"WA","date_time":7}}"#;
        let run = |q: &str| {
            let mut h = Harness::<Nexmark>::new(json!({"query": q})).unwrap();
            let out = h.process_json(&[bid, person]).unwrap();
            out.values()
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(run("q0").len(), 2);
        assert_eq!(
            run("q1"),
            vec![r#"{"auction":246,"bidder":1001,"price":908.0,"date_time":7}"#]
        );
        assert_eq!(run("q2"), vec![r#"{"auction":246,"price":1000}"#]);
    }
}
