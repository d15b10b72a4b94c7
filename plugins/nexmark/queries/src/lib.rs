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
//! The join queries are a host join between two of these (examples/nexmark/q3.yaml, q8.yaml):
//!
//! - `q3-select` (outputs `[persons, auctions]`): persons in OR or ID, auctions of category 10;
//! - `q3-shape`: a joined `{"left": auction, "right": person}` → `{"name", "city", "state",
//!   "auction"}`;
//! - `q8-select` (outputs `[persons, auctions]`): every person and auction;
//! - `q8-shape`: a person of a semi window join `{"left": person, "window"}` → `{"person",
//!   "name", "start"}`;
//! - `q9-select` (outputs `[auctions, bids]`): every auction and bid (the rest of q9 is the
//!   interval join and `nexmark-winning-bids`).
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
    #[serde(rename = "q3-select")]
    Q3Select,
    #[serde(rename = "q3-shape")]
    Q3Shape,
    #[serde(rename = "q8-select")]
    Q8Select,
    #[serde(rename = "q8-shape")]
    Q8Shape,
    #[serde(rename = "q9-select")]
    Q9Select,
}

pub struct Nexmark {
    query: Query,
    /// The outputs of the `select` queries: (persons, auctions).
    ports: (flowlet_sdk::Port, flowlet_sdk::Port),
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
        let ports = match s.query {
            Query::Q3Select | Query::Q8Select => {
                (config.output("persons")?, config.output("auctions")?)
            }
            Query::Q9Select => (config.output("auctions")?, config.output("bids")?),
            _ => (flowlet_sdk::Port::MAIN, flowlet_sdk::Port::MAIN),
        };
        Ok(Self {
            query: s.query,
            ports,
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        match self.query {
            Query::Q0 => {
                out.forward();
                return Ok(());
            }
            Query::Q3Select | Query::Q8Select => return self.select(event, out),
            Query::Q9Select => {
                let v = event.value();
                if v.starts_with(b"{\"auction\"") {
                    out.forward_to(self.ports.0);
                } else if v.starts_with(b"{\"bid\"") {
                    out.forward_to(self.ports.1);
                }
                return Ok(());
            }
            Query::Q3Shape | Query::Q8Shape => return self.shape(event, out),
            _ => {}
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
            Query::Q0
            | Query::Q3Select
            | Query::Q3Shape
            | Query::Q8Select
            | Query::Q8Shape
            | Query::Q9Select => unreachable!("handled above"),
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

impl Nexmark {
    /// Route the persons and auctions a join query reads to `persons` and `auctions`.
    fn select(&self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let v = event.value();
        let q3 = self.query == Query::Q3Select;
        if v.starts_with(b"{\"person\"") {
            let keep = !q3 || {
                let p: serde_json::Value = event.json()?;
                matches!(p["person"]["state"].as_str(), Some("OR" | "ID"))
            };
            if keep {
                out.forward_to(self.ports.0);
            }
        } else if v.starts_with(b"{\"auction\"") {
            let keep = !q3 || {
                let a: serde_json::Value = event.json()?;
                a["auction"]["category"].as_u64() == Some(10)
            };
            if keep {
                out.forward_to(self.ports.1);
            }
        }
        Ok(())
    }

    /// The output of a join query from the host's merge of a pair.
    fn shape(&self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let j: serde_json::Value = event.json()?;
        let missing = || Error::reject("not a joined Nexmark pair");
        let value = if self.query == Query::Q3Shape {
            let (a, p) = (&j["left"]["auction"], &j["right"]["person"]);
            serde_json::json!({
                "name": p["name"], "city": p["city"], "state": p["state"],
                "auction": a["id"].as_u64().ok_or_else(missing)?,
            })
        } else {
            let p = &j["left"]["person"];
            serde_json::json!({
                "person": p["id"].as_u64().ok_or_else(missing)?,
                "name": p["name"],
                "start": j["window"]["start"].as_i64().ok_or_else(missing)?,
            })
        };
        out.emit_json(&value)
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
