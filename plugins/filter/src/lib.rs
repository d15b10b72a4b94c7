//! `filter`: pass the events whose JSON field satisfies a predicate.
//!
//! ```yaml
//! config:
//!   field: /amount        # JSON pointer
//!   op: gt                # eq | ne | gt | ge | lt | le | in | exists | missing | prefix
//!   value: 100            # not used by exists / missing; a list for `in`; a string for prefix
//! ```
//!
//! Events without the field do not pass (except with `missing`). Comparisons with `gt`/`ge`/`lt`/
//! `le` take numbers to numbers and strings to strings; an event whose field has the other type
//! does not pass. Events that are not JSON are rejected (→ the operator's `on-error` policy).

mod predicate;

use flowlet_sdk::{Config, Error, Event, Operator, Output};

pub use predicate::{Op, Predicate, Settings};

pub struct Filter(Predicate);

impl Operator for Filter {
    fn init(config: Config) -> Result<Self, Error> {
        Ok(Self(Predicate::new(config.parse()?)?))
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        if self.0.matches(event)? {
            out.forward();
        }
        Ok(())
    }
}

flowlet_sdk::export_operator!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::serde_json::{Value, json};
    use flowlet_sdk::testing::Harness;

    fn run(config: Value, events: &[&str]) -> (Vec<String>, Vec<u32>) {
        let mut h = Harness::<Filter>::new(config).unwrap();
        let out = h.process_json(events).unwrap();
        (
            out.values().into_iter().map(str::to_owned).collect(),
            out.rejected_indexes(),
        )
    }

    #[test]
    fn numeric_comparisons() {
        let events = [
            r#"{"a":5}"#,
            r#"{"a":10}"#,
            r#"{"a":15.5}"#,
            r#"{"a":"x"}"#,
            "{}",
        ];
        let (pass, rejected) = run(json!({"field": "/a", "op": "ge", "value": 10}), &events);
        assert_eq!(pass, vec![r#"{"a":10}"#, r#"{"a":15.5}"#]);
        assert!(rejected.is_empty());
        let (pass, _) = run(json!({"field": "/a", "op": "lt", "value": 10}), &events);
        assert_eq!(pass, vec![r#"{"a":5}"#]);
    }

    #[test]
    fn equality_membership_prefix_and_presence() {
        let events = [
            r#"{"c":"DE"}"#,
            r#"{"c":"FR"}"#,
            r#"{"c":"DK","n":{"x":1}}"#,
            r#"{"d":1}"#,
        ];
        let (pass, _) = run(json!({"field": "/c", "op": "eq", "value": "DE"}), &events);
        assert_eq!(pass, vec![events[0]]);
        let (pass, _) = run(json!({"field": "/c", "op": "ne", "value": "DE"}), &events);
        assert_eq!(
            pass,
            vec![events[1], events[2]],
            "an absent field is not unequal"
        );
        let (pass, _) = run(
            json!({"field": "/c", "op": "in", "value": ["FR", "DK"]}),
            &events,
        );
        assert_eq!(pass, vec![events[1], events[2]]);
        let (pass, _) = run(
            json!({"field": "/c", "op": "prefix", "value": "D"}),
            &events,
        );
        assert_eq!(pass, vec![events[0], events[2]]);
        let (pass, _) = run(json!({"field": "/n/x", "op": "exists"}), &events);
        assert_eq!(pass, vec![events[2]]);
        let (pass, _) = run(json!({"field": "/c", "op": "missing"}), &events);
        assert_eq!(pass, vec![events[3]]);
    }

    #[test]
    fn non_json_is_rejected_and_the_rest_passes() {
        let (pass, rejected) = run(
            json!({"field": "/a", "op": "gt", "value": 0}),
            &[r#"{"a":1}"#, "not json", r#"{"a":2}"#],
        );
        assert_eq!(pass, vec![r#"{"a":1}"#, r#"{"a":2}"#]);
        assert_eq!(rejected, vec![1]);
    }

    #[test]
    fn bad_config_is_reported() {
        for config in [
            json!({"field": "a", "op": "eq", "value": 1}),
            json!({"field": "/a", "op": "gt", "value": [1]}),
            json!({"field": "/a", "op": "between"}),
            json!({"field": "/a", "op": "eq", "extra": 1}),
            json!(null),
        ] {
            let err = Harness::<Filter>::new(config.clone()).err().unwrap();
            assert!(matches!(err, Error::InvalidConfig(_)), "{config}: {err:?}");
        }
    }
}
