//! `map`: build a new JSON object from each event — project, rename, compute and add fields.
//!
//! ```yaml
//! config:
//!   fields:                                 # the output object, in this order
//!     id: /id                               # copy a field (any JSON pointer)
//!     customer: /user/name                  # rename / flatten
//!     cents: {from: /amount, mul: 100}      # compute: from × mul + add (mul 1, add 0 by default)
//!     currency: {value: EUR}                # a constant (any JSON)
//!   keep: false       # true: start from the input's top-level fields, replacing same-named ones
//!   drop: [user]      # with keep: input fields left out
//!   missing: "null"   # a source field that is absent: null | omit | reject
//! ```
//!
//! Events that are not JSON objects, and computed fields whose source is not a number, are
//! rejected (→ the operator's `on-error` policy).

use std::io::Write;

use flowlet_sdk::serde_json::{self, Map, Value, value::RawValue};
use flowlet_sdk::{Config, Error, Event, Operator, Output, Pointer};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    fields: Map<String, Value>,
    #[serde(default)]
    keep: bool,
    #[serde(default)]
    drop: Vec<String>,
    #[serde(default)]
    missing: Missing,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Missing {
    #[default]
    Null,
    Omit,
    Reject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComputeSpec {
    from: String,
    #[serde(default)]
    mul: Option<Value>,
    #[serde(default)]
    add: Option<Value>,
}

/// Where a pointer's value comes from: the top-level field `top`, then `rest` inside it.
struct Source {
    pointer: String,
    top: String,
    rest: Pointer,
}

enum Spec {
    Copy(Source),
    Compute {
        source: Source,
        mul: Number,
        add: Number,
    },
    /// Serialized once in `init`.
    Const(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn parse(raw: &str) -> Option<Self> {
        if let Ok(i) = raw.parse::<i64>() {
            return Some(Self::Int(i));
        }
        serde_json::from_str::<f64>(raw).ok().map(Self::Float)
    }

    fn from_config(v: Option<Value>, default: i64, what: &str) -> Result<Self, Error> {
        match v {
            None => Ok(Self::Int(default)),
            Some(Value::Number(n)) => Ok(n
                .as_i64()
                .map(Self::Int)
                .unwrap_or_else(|| Self::Float(n.as_f64().unwrap_or(f64::NAN)))),
            Some(other) => Err(Error::invalid_config(format!(
                "`{what}` must be a number, not {other}"
            ))),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// `self × mul + add`, in integers while everything is an integer and nothing overflows.
    fn compute(self, mul: Self, add: Self) -> Self {
        if let (Self::Int(x), Self::Int(m), Self::Int(a)) = (self, mul, add)
            && let Some(r) = x.checked_mul(m).and_then(|p| p.checked_add(a))
        {
            return Self::Int(r);
        }
        Self::Float(self.as_f64() * mul.as_f64() + add.as_f64())
    }

    fn write(self, buf: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Int(i) => write!(buf, "{i}").map_err(Error::failed),
            Self::Float(f) if f.is_finite() => {
                serde_json::to_writer(buf, &f).map_err(Error::failed)
            }
            Self::Float(_) => Err(Error::reject("computed value is not a finite number")),
        }
    }
}

fn source(pointer: &str) -> Result<Source, Error> {
    let p = Pointer::parse(pointer).map_err(Error::invalid_config)?;
    let (top, rest) = p.split_first().ok_or_else(|| {
        Error::invalid_config("a field source must name a field, e.g. `/id`, not the empty pointer")
    })?;
    Ok(Source {
        pointer: pointer.to_owned(),
        top: top.to_owned(),
        rest,
    })
}

/// An output value, resolved before anything is written so that a rejection emits nothing.
enum Resolved<'a> {
    Raw(&'a RawValue),
    Number(Number),
    Missing,
    Const,
}

pub struct Mapper {
    /// Output fields: the name as JSON (with quotes) and where the value comes from.
    fields: Vec<(String, String, Spec)>,
    keep: bool,
    drop: Vec<String>,
    missing: Missing,
}

impl Mapper {
    fn lookup<'a>(
        &self,
        input: &[(std::borrow::Cow<'a, str>, &'a RawValue)],
        src: &Source,
    ) -> Result<Option<&'a RawValue>, Error> {
        let Some((_, top)) = input.iter().find(|(k, _)| *k == src.top) else {
            return Ok(None);
        };
        if src.rest.as_str().is_empty() {
            return Ok(Some(*top));
        }
        Ok(src.rest.find(top.get().as_bytes())?)
    }
}

impl Operator for Mapper {
    fn init(config: Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let mut fields = Vec::with_capacity(s.fields.len());
        for (name, spec) in s.fields {
            let spec = match spec {
                Value::String(pointer) => Spec::Copy(source(&pointer)?),
                Value::Object(obj) if obj.contains_key("value") => {
                    if obj.len() != 1 {
                        return Err(Error::invalid_config(format!(
                            "field `{name}`: a constant is `{{value: …}}` alone"
                        )));
                    }
                    Spec::Const(serde_json::to_string(&obj["value"]).map_err(Error::failed)?)
                }
                Value::Object(obj) => {
                    let c: ComputeSpec = serde_json::from_value(Value::Object(obj))
                        .map_err(|e| Error::invalid_config(format!("field `{name}`: {e}")))?;
                    Spec::Compute {
                        source: source(&c.from)?,
                        mul: Number::from_config(c.mul, 1, "mul")?,
                        add: Number::from_config(c.add, 0, "add")?,
                    }
                }
                other => {
                    return Err(Error::invalid_config(format!(
                        "field `{name}`: expected a JSON pointer, {{from, mul, add}} or {{value}}, not {other}"
                    )));
                }
            };
            let name_json = serde_json::to_string(&name).map_err(Error::failed)?;
            fields.push((name, name_json, spec));
        }
        if !s.keep && !s.drop.is_empty() {
            return Err(Error::invalid_config(
                "`drop` applies only with `keep: true`",
            ));
        }
        Ok(Self {
            fields,
            keep: s.keep,
            drop: s.drop,
            missing: s.missing,
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let input = event.fields()?;
        let mut values = Vec::with_capacity(self.fields.len());
        for (_, _, spec) in &self.fields {
            let (src, found) = match spec {
                Spec::Const(_) => {
                    values.push(Resolved::Const);
                    continue;
                }
                Spec::Copy(src) | Spec::Compute { source: src, .. } => {
                    (src, self.lookup(&input, src)?)
                }
            };
            values.push(match (spec, found) {
                (_, None) if self.missing == Missing::Reject => {
                    return Err(Error::reject(format!("field {} is missing", src.pointer)));
                }
                (_, None) => Resolved::Missing,
                (Spec::Compute { mul, add, .. }, Some(raw)) => {
                    let n = Number::parse(raw.get()).ok_or_else(|| {
                        Error::reject(format!(
                            "field {} is {}, not a number",
                            src.pointer,
                            raw.get()
                        ))
                    })?;
                    Resolved::Number(n.compute(*mul, *add))
                }
                (_, Some(raw)) => Resolved::Raw(raw),
            });
        }
        out.emit_in_place(|buf| {
            buf.push(b'{');
            let mut first = true;
            let mut separate = |buf: &mut Vec<u8>| {
                if !std::mem::take(&mut first) {
                    buf.push(b',');
                }
            };
            if self.keep {
                for (key, raw) in &input {
                    let replaced = self.fields.iter().any(|(n, _, _)| n == key);
                    if replaced || self.drop.iter().any(|d| d == key) {
                        continue;
                    }
                    separate(buf);
                    serde_json::to_writer(&mut *buf, key.as_ref()).map_err(Error::failed)?;
                    buf.push(b':');
                    buf.extend_from_slice(raw.get().as_bytes());
                }
            }
            for ((_, name_json, spec), value) in self.fields.iter().zip(&values) {
                if matches!(value, Resolved::Missing) && self.missing == Missing::Omit {
                    continue;
                }
                separate(buf);
                buf.extend_from_slice(name_json.as_bytes());
                buf.push(b':');
                match (spec, value) {
                    (Spec::Const(json), _) => buf.extend_from_slice(json.as_bytes()),
                    (_, Resolved::Raw(raw)) => buf.extend_from_slice(raw.get().as_bytes()),
                    (_, Resolved::Number(n)) => n.write(buf)?,
                    (_, Resolved::Missing | Resolved::Const) => buf.extend_from_slice(b"null"),
                }
            }
            buf.push(b'}');
            Ok(())
        })
    }
}

flowlet_sdk::export_operator!(Mapper);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;
    use serde_json::json;

    fn run(config: Value, events: &[&str]) -> (Vec<Value>, Vec<u32>) {
        let mut h = Harness::<Mapper>::new(config).unwrap();
        let out = h.process_json(events).unwrap();
        (out.json(), out.rejected_indexes())
    }

    #[test]
    fn project_rename_compute_and_constants_in_order() {
        let (out, rejected) = run(
            json!({"fields": {
                "id": "/id",
                "customer": "/user/name",
                "cents": {"from": "/amount", "mul": 100},
                "net": {"from": "/amount", "mul": 0.5, "add": -1},
                "currency": {"value": "EUR"}
            }}),
            &[r#"{"id":7,"user":{"name":"ann"},"amount":12,"x":true}"#],
        );
        assert!(rejected.is_empty());
        assert_eq!(
            serde_json::to_string(&out[0]).unwrap(),
            r#"{"id":7,"customer":"ann","cents":1200,"net":5.0,"currency":"EUR"}"#
        );
    }

    #[test]
    fn keep_replace_and_drop() {
        let (out, _) = run(
            json!({"keep": true, "drop": ["b"], "fields": {"a": {"from": "/a", "add": 1}, "z": {"value": 0}}}),
            &[r#"{"a":1,"b":2,"c":3}"#],
        );
        assert_eq!(
            serde_json::to_string(&out[0]).unwrap(),
            r#"{"c":3,"a":2,"z":0}"#
        );
    }

    #[test]
    fn missing_fields_follow_the_policy() {
        let events = [r#"{"a":1}"#, r#"{"b":2}"#];
        let (out, _) = run(json!({"fields": {"a": "/a"}}), &events);
        assert_eq!(out, vec![json!({"a": 1}), json!({"a": null})]);
        let (out, _) = run(json!({"fields": {"a": "/a"}, "missing": "omit"}), &events);
        assert_eq!(out, vec![json!({"a": 1}), json!({})]);
        let (out, rejected) = run(json!({"fields": {"a": "/a"}, "missing": "reject"}), &events);
        assert_eq!(out, vec![json!({"a": 1})]);
        assert_eq!(rejected, vec![1]);
    }

    #[test]
    fn bad_events_are_rejected() {
        let (out, rejected) = run(
            json!({"fields": {"c": {"from": "/a", "mul": 2}}}),
            &["[1,2]", r#"{"a":"x"}"#, "nope", r#"{"a":2}"#],
        );
        assert_eq!(out, vec![json!({"c": 4})]);
        assert_eq!(rejected, vec![0, 1, 2]);
    }

    #[test]
    fn bad_config_is_reported() {
        for config in [
            json!({"fields": {"a": 1}}),
            json!({"fields": {"a": "nope"}}),
            json!({"fields": {"a": ""}}),
            json!({"fields": {"a": {"from": "/a", "mul": "x"}}}),
            json!({"fields": {"a": {"value": 1, "from": "/a"}}}),
            json!({"fields": {}, "drop": ["a"]}),
            json!({}),
        ] {
            let err = Harness::<Mapper>::new(config.clone()).err().unwrap();
            assert!(matches!(err, Error::InvalidConfig(_)), "{config}: {err:?}");
        }
    }
}
