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

use flowlet_sdk::serde_json::{self, Value, value::RawValue};
use flowlet_sdk::{Config, Error, Event, Operator, Output, Pointer};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    Exists,
    Missing,
    Prefix,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
    op: Op,
    #[serde(default)]
    value: Value,
}

/// The predicate, prepared once in `init` so that `process` does not allocate.
#[derive(Debug)]
enum Test {
    Exists,
    Missing,
    /// Numeric comparison against a constant.
    Number(Op, f64),
    /// Lexical comparison against a constant string.
    Text(Op, String),
    Prefix(String),
    /// Equality (or inequality) with any JSON value.
    Equal(bool, Value),
    In(Vec<Value>),
}

pub struct Filter {
    field: Pointer,
    test: Test,
}

fn compare(op: Op, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        _ => unreachable!("only ordering operators are compared"),
    }
}

impl Filter {
    fn matches(&self, found: Option<&RawValue>) -> Result<bool, Error> {
        let Some(raw) = found else {
            return Ok(matches!(self.test, Test::Missing));
        };
        let text = raw.get();
        Ok(match &self.test {
            Test::Exists => true,
            Test::Missing => false,
            Test::Number(op, limit) => match text.as_bytes()[0] {
                b'-' | b'0'..=b'9' => {
                    let n: f64 = serde_json::from_str(text)?;
                    n.partial_cmp(limit).is_some_and(|ord| compare(*op, ord))
                }
                _ => false,
            },
            Test::Text(op, limit) => {
                match serde_json::from_str::<std::borrow::Cow<'_, str>>(text) {
                    Ok(s) => compare(*op, s.as_ref().cmp(limit)),
                    Err(_) => false,
                }
            }
            Test::Prefix(prefix) => match serde_json::from_str::<std::borrow::Cow<'_, str>>(text) {
                Ok(s) => s.starts_with(prefix.as_str()),
                Err(_) => false,
            },
            Test::Equal(want, value) => (serde_json::from_str::<Value>(text)? == *value) == *want,
            Test::In(values) => values.contains(&serde_json::from_str::<Value>(text)?),
        })
    }
}

impl Operator for Filter {
    fn init(config: Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let field = Pointer::parse(&s.field).map_err(Error::invalid_config)?;
        let test = match (s.op, s.value) {
            (Op::Exists, _) => Test::Exists,
            (Op::Missing, _) => Test::Missing,
            (op @ (Op::Gt | Op::Ge | Op::Lt | Op::Le), Value::Number(n)) => {
                Test::Number(op, n.as_f64().unwrap_or(f64::NAN))
            }
            (op @ (Op::Gt | Op::Ge | Op::Lt | Op::Le), Value::String(s)) => Test::Text(op, s),
            (op @ (Op::Gt | Op::Ge | Op::Lt | Op::Le), other) => {
                return Err(Error::invalid_config(format!(
                    "`{op:?}` compares with a number or a string, not {other}"
                )));
            }
            (Op::Prefix, Value::String(s)) => Test::Prefix(s),
            (Op::Prefix, other) => {
                return Err(Error::invalid_config(format!(
                    "`prefix` needs a string value, not {other}"
                )));
            }
            (Op::Eq, v) => Test::Equal(true, v),
            (Op::Ne, v) => Test::Equal(false, v),
            (Op::In, Value::Array(values)) => Test::In(values),
            (Op::In, other) => {
                return Err(Error::invalid_config(format!(
                    "`in` needs a list of values, not {other}"
                )));
            }
        };
        Ok(Self { field, test })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        if self.matches(event.field(&self.field)?)? {
            out.forward();
        }
        Ok(())
    }
}

flowlet_sdk::export_operator!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;
    use serde_json::json;

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
