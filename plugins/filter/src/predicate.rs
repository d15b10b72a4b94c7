//! A predicate on one JSON field of an event, prepared once: the filter's, and the router's
//! routes (plugins/router includes this file).

use flowlet_sdk::serde_json::{self, Value, value::RawValue};
use flowlet_sdk::{Error, Event, Pointer};
use serde::Deserialize;

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
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

/// One predicate on a JSON field, as written in a configuration (the router's routes use it
/// too, with their own fields beside it).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub field: String,
    pub op: Op,
    #[serde(default)]
    pub value: Value,
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

/// A predicate prepared once: [`Predicate::matches`] reads only the one field.
#[derive(Debug)]
pub struct Predicate {
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

impl Predicate {
    /// Whether `event` satisfies the predicate; events that are not JSON are rejected.
    pub fn matches(&self, event: &Event<'_>) -> Result<bool, Error> {
        self.test(event.field(&self.field)?)
    }

    fn test(&self, found: Option<&RawValue>) -> Result<bool, Error> {
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

impl Predicate {
    /// Prepare a predicate; an unusable one is an invalid configuration saying why.
    pub fn new(s: Settings) -> Result<Self, Error> {
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
}
