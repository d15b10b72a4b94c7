//! Dedupe — the idempotent consumer: pass the first event of each id, drop the events whose id
//! was seen within a TTL. Run it with `key-by` on the id; the host keeps one small entry per id
//! in keyed state and forgets it after the TTL.
//!
//! ```yaml
//! plugin: ../../dist/plugins/dedupe.wasm
//! key-by: /id
//! config: {ttl: 10m}
//! ```
//!
//! The number of dropped duplicates is the operator metric `duplicates`.

use std::time::Duration;

use flowlet_sdk::{Config, Error, Event, Operator, Output, metrics};

pub struct Dedupe {
    ttl: Duration,
}

impl Operator for Dedupe {
    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            ttl: String,
        }
        let s: Settings = config.parse()?;
        let ttl = humantime::parse_duration(&s.ttl).map_err(|e| {
            Error::invalid_config(format!("`ttl` {:?}: {e} (write e.g. 10m)", s.ttl))
        })?;
        if ttl.is_zero() {
            return Err(Error::invalid_config("`ttl` must be longer than 0"));
        }
        Ok(Self { ttl })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        if event.key().is_none() {
            return Err(Error::reject(
                "the event has no key; give the dedupe operator `key-by:` the id field",
            ));
        }
        let state = event.state();
        if state.get("seen").is_some() {
            metrics::counter_add("duplicates", 1);
            return Ok(());
        }
        state.put_with_ttl("seen", &[1], self.ttl);
        out.forward();
        Ok(())
    }
}

flowlet_sdk::export_stateful_operator!(Dedupe);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;

    #[test]
    fn drops_repeats_within_the_ttl_only() {
        let mut h = Harness::<Dedupe>::new(serde_json::json!({"ttl": "1s"})).unwrap();
        h.set_processing_time(0).unwrap();
        let out = h
            .process_keyed(&[("a", "1", 0), ("b", "2", 0), ("a", "3", 0)])
            .unwrap();
        assert_eq!(out.values(), vec!["1", "2"]);
        h.set_processing_time(999).unwrap();
        assert!(
            h.process_keyed(&[("a", "4", 0)])
                .unwrap()
                .values()
                .is_empty()
        );
        h.set_processing_time(1000).unwrap();
        assert_eq!(
            h.process_keyed(&[("a", "5", 0)]).unwrap().values(),
            vec!["5"]
        );
    }
}
