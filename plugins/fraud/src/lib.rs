//! Card fraud rule: per card and sliding window, alert when the total amount or the number of
//! transactions exceeds a threshold.
//!
//! ```yaml
//! plugin: ../../dist/plugins/fraud.wasm
//! key-by: /card
//! window: {kind: sliding, size: 10m, slide: 1m}
//! config: {amount: /amount, max-total: 5000, max-count: 10}
//! ```
//!
//! Output, only for windows over a threshold: `{"card", "start", "end", "total", "count",
//! "reasons": ["total 5200.00 > 5000", …]}`.

use flowlet_sdk::aggregate::{Aggregate, Fired};
use flowlet_sdk::{Config, Emitter, Error, Event, Pointer};

pub struct Fraud {
    amount: Pointer,
    max_total: Option<f64>,
    max_count: Option<u64>,
}

impl Aggregate for Fraud {
    /// (total amount, number of transactions).
    type Acc = (f64, u64);

    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Settings {
            amount: String,
            max_total: Option<f64>,
            max_count: Option<u64>,
        }
        let s: Settings = config.parse()?;
        if s.max_total.is_none() && s.max_count.is_none() {
            return Err(Error::invalid_config(
                "set `max-total`, `max-count` or both: without a threshold nothing is ever suspicious",
            ));
        }
        Ok(Self {
            amount: Pointer::parse(&s.amount)
                .map_err(|e| Error::invalid_config(format!("`amount`: {e}")))?,
            max_total: s.max_total,
            max_count: s.max_count,
        })
    }

    fn create_accumulator(&self) -> (f64, u64) {
        (0.0, 0)
    }

    fn add(&self, acc: &mut (f64, u64), event: &Event<'_>) -> Result<(), Error> {
        let raw = event
            .field(&self.amount)?
            .ok_or_else(|| Error::reject(format!("no field {}", self.amount)))?;
        let x: f64 = serde_json::from_str(raw.get())
            .map_err(|_| Error::reject(format!("{} is not a number", self.amount)))?;
        acc.0 += x;
        acc.1 += 1;
        Ok(())
    }

    fn merge(&self, a: (f64, u64), b: (f64, u64)) -> (f64, u64) {
        (a.0 + b.0, a.1 + b.1)
    }

    fn finish(&self, w: &Fired<'_>, acc: (f64, u64), out: &mut Emitter) -> Result<(), Error> {
        let mut reasons = Vec::new();
        if let Some(max) = self.max_total
            && acc.0 > max
        {
            reasons.push(format!("total {:.2} > {max}", acc.0));
        }
        if let Some(max) = self.max_count
            && acc.1 > max
        {
            reasons.push(format!("count {} > {max}", acc.1));
        }
        if reasons.is_empty() {
            return Ok(());
        }
        out.emit_json(&serde_json::json!({
            "card": w.key_str(),
            "start": w.start,
            "end": w.end,
            "total": (acc.0 * 100.0).round() / 100.0,
            "count": acc.1,
            "reasons": reasons,
        }))
    }
}

flowlet_sdk::export_aggregate!(Fraud);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::AggregateHarness;

    #[test]
    fn alerts_only_over_threshold() {
        let h = AggregateHarness::<Fraud>::new(
            serde_json::json!({"amount": "/a", "max-total": 100, "max-count": 2}),
        )
        .unwrap();
        assert!(
            h.fold_and_finish(&[r#"{"a": 60}"#])
                .unwrap()
                .json
                .is_empty()
        );
        let out = h
            .fold_and_finish(&[r#"{"a": 60}"#, r#"{"a": 50}"#])
            .unwrap();
        assert_eq!(
            out.json[0]["reasons"],
            serde_json::json!(["total 110.00 > 100"])
        );
        let out = h
            .fold_and_finish(&[r#"{"a": 1}"#, r#"{"a": 1}"#, r#"{"a": 1}"#])
            .unwrap();
        assert_eq!(out.json[0]["reasons"], serde_json::json!(["count 3 > 2"]));
    }

    #[test]
    fn needs_a_threshold() {
        assert!(AggregateHarness::<Fraud>::new(serde_json::json!({"amount": "/a"})).is_err());
    }
}
