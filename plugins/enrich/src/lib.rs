//! `enrich`: the sample JSON enrich-and-filter operator, written the same way in C
//! (`plugins/enrich-c`), Python (`plugins/enrich-python`) and JavaScript (`plugins/enrich-js`);
//! the tests run all four over the same input and compare their outputs with this one.
//!
//! ```yaml
//! config: {min-amount: 100, high-amount: 1000}   # both optional: 0 and 1000
//! ```
//!
//! For each event, a JSON object with a numeric `amount`:
//! - events with `amount < min-amount` are dropped;
//! - the others get `"tier": "high"` (`amount >= high-amount`) or `"low"`, and `"region"`:
//!   `eu`, `na`, `apac` or `other`, from the `country` code (ASCII case does not matter);
//!   existing `tier`/`region` fields are replaced; key and timestamp are kept.
//!
//! Values that are not JSON objects, or have no numeric `amount`, are rejected (→ the
//! operator's `on-error` policy).

use flowlet_sdk::serde_json::{Map, Value};
use flowlet_sdk::{Config, Error, Event, Operator, Output};

pub struct Enrich {
    min_amount: f64,
    high_amount: f64,
}

/// The region of a country code.
pub fn region(country: &str) -> &'static str {
    match country.to_ascii_lowercase().as_str() {
        "at" | "be" | "de" | "dk" | "es" | "fi" | "fr" | "ie" | "it" | "nl" | "pl" | "pt"
        | "se" => "eu",
        "ca" | "mx" | "us" => "na",
        "au" | "cn" | "in" | "jp" | "kr" | "sg" => "apac",
        _ => "other",
    }
}

impl Operator for Enrich {
    fn init(config: Config) -> Result<Self, Error> {
        let mut op = Self {
            min_amount: 0.0,
            high_amount: 1000.0,
        };
        match config.value() {
            Value::Null => {}
            Value::Object(settings) => {
                for (name, value) in settings {
                    let target = match name.as_str() {
                        "min-amount" => &mut op.min_amount,
                        "high-amount" => &mut op.high_amount,
                        _ => {
                            return Err(Error::invalid_config(format!(
                                "unknown setting {name:?} (expected min-amount, high-amount)"
                            )));
                        }
                    };
                    *target = value.as_f64().ok_or_else(|| {
                        Error::invalid_config(format!("`{name}` must be a number"))
                    })?;
                }
            }
            _ => {
                return Err(Error::invalid_config(
                    "the config must be a map (min-amount, high-amount)",
                ));
            }
        }
        Ok(op)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let Ok(mut object) = event.json::<Map<String, Value>>() else {
            return Err(Error::reject("the value is not a JSON object"));
        };
        let Some(amount) = object.get("amount").and_then(Value::as_f64) else {
            return Err(Error::reject("`amount` is missing or not a number"));
        };
        if amount < self.min_amount {
            return Ok(());
        }
        let tier = if amount >= self.high_amount {
            "high"
        } else {
            "low"
        };
        let region = region(object.get("country").and_then(Value::as_str).unwrap_or(""));
        object.insert("tier".into(), tier.into());
        object.insert("region".into(), region.into());
        out.emit_json(&object)
    }
}

flowlet_sdk::export_operator!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;
    use serde_json::json;

    #[test]
    fn filters_enriches_and_rejects() {
        let mut h = Harness::<Enrich>::new(json!({"min-amount": 100, "high-amount": 500})).unwrap();
        let out = h
            .process_json(&[
                r#"{"amount":50,"country":"DE"}"#,
                r#"{"amount":100,"country":"us"}"#,
                r#"{"amount":750.5,"country":"xx","tier":"old"}"#,
                r#"{"amount":"7"}"#,
                "[1]",
            ])
            .unwrap();
        let got: Vec<Value> = out
            .values()
            .into_iter()
            .map(|v| serde_json::from_str(v).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                json!({"amount":100,"country":"us","tier":"low","region":"na"}),
                json!({"amount":750.5,"country":"xx","tier":"high","region":"other"}),
            ]
        );
        assert_eq!(out.rejected_indexes(), vec![3, 4]);
    }

    #[test]
    fn bad_config_is_refused_with_the_reason() {
        for (config, want) in [
            (json!({"min": 1}), "unknown setting"),
            (json!({"min-amount": "1"}), "must be a number"),
            (json!([1]), "must be a map"),
        ] {
            let e = Harness::<Enrich>::new(config).err().unwrap();
            assert!(format!("{e:?}").contains(want), "{e:?}");
        }
    }
}
