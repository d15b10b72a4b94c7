//! Field types for component configurations: each deserializes with the manifest's own words
//! for what is wrong ("must be a duration, not the string `soon`"), a hint after `\nhint: `,
//! and describes itself in the JSON Schema.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{Deserialize, Deserializer, Error};
use serde_json::Value;

use crate::config::describe_json;
use crate::model::Pointer;

fn duration_of(v: &Value, zero: bool) -> Result<std::time::Duration, String> {
    let text = match v {
        Value::Number(n) if n.as_u64() == Some(0) => Some("0s"),
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    match text.map(humantime::parse_duration) {
        Some(Ok(d)) if d.as_millis() > u128::from(flowlet_types::MAX_DURATION_MS) => Err(format!(
            "must be at most 100 years, not {}\nhint: durations this long overflow the clocks and windows they set",
            describe_json(v)
        )),
        Some(Ok(d)) if zero || !d.is_zero() => Ok(d),
        Some(Ok(_)) => Err("must be longer than 0".into()),
        _ => Err(format!(
            "must be a duration, not {}\nhint: write it like `250ms`, `5s` or `1m 30s`",
            describe_json(v)
        )),
    }
}

fn whole_ms(d: std::time::Duration, v: &Value) -> Result<std::time::Duration, String> {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        Ok(d)
    } else {
        Err(format!(
            "must be a whole number of milliseconds, not {}\nhint: event times are in milliseconds; write it like `1500ms`",
            describe_json(v)
        ))
    }
}

fn duration_schema() -> Schema {
    json_schema!({
        "type": "string",
        "description": "a duration such as `250ms`, `5s` or `1m 30s` (at most 100 years)"
    })
}

macro_rules! duration_type {
    ($(#[$doc:meta])* $name:ident, $zero:expr, $ms:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name(pub std::time::Duration);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                let t = duration_of(&v, $zero).map_err(D::Error::custom)?;
                let t = if $ms { whole_ms(t, &v).map_err(D::Error::custom)? } else { t };
                Ok(Self(t))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                duration_schema()
            }
        }
    };
}

duration_type!(
    /// A duration longer than 0, at most 100 years: `250ms`, `5s`, `1m 30s`.
    Duration,
    false,
    false
);
duration_type!(
    /// A duration that may be 0 (`0s` or `0`): bounds and lateness.
    Bound,
    true,
    false
);
duration_type!(
    /// A window's size, slide, gap or step: a whole number of milliseconds, longer than 0.
    WindowTime,
    false,
    true
);

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole<const MIN: u64, const MAX: u64>(pub u64);

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Whole<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.as_u64() {
            Some(n) if (MIN..=MAX).contains(&n) => Ok(Self(n)),
            _ => Err(D::Error::custom(format!(
                "must be a whole number from {MIN} to {MAX}, not {}",
                describe_json(&v)
            ))),
        }
    }
}

impl<const MIN: u64, const MAX: u64> JsonSchema for Whole<MIN, MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("Whole_{MIN}_{MAX}").into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
    }
}

/// A number greater than 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Positive(pub f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(Self(x)),
            _ => Err(D::Error::custom(format!(
                "must be a positive number, not {}",
                describe_json(&v)
            ))),
        }
    }
}

impl JsonSchema for Positive {
    fn schema_name() -> Cow<'static, str> {
        "Positive".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "exclusiveMinimum": 0 })
    }
}

/// A JSON pointer (RFC 6901), e.g. `/user/id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer(pub Pointer);

impl<'de> Deserialize<'de> for JsonPointer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let Value::String(s) = &v else {
            return Err(D::Error::custom(format!(
                "must be a string, not {}",
                describe_json(&v)
            )));
        };
        Pointer::parse(s).map(Self).map_err(|e| {
            let hint = Some(format!("did you mean `/{s}`?"));
            D::Error::custom(match hint {
                Some(h) => format!("{e}\nhint: {h}"),
                None => e.to_string(),
            })
        })
    }
}

impl JsonSchema for JsonPointer {
    fn schema_name() -> Cow<'static, str> {
        "JsonPointer".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "description": "a JSON pointer, e.g. `/user/id`" })
    }
}

/// A string, number or boolean, kept as text (properties handed to a client library).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(n.to_string())),
            Value::Bool(b) => Ok(Self(b.to_string())),
            other => Err(D::Error::custom(format!(
                "must be a string, number or boolean, not {}",
                describe_json(&other)
            ))),
        }
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A string that is not empty (nor only whitespace): names, addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s.trim().is_empty() => Err(D::Error::custom("is empty")),
            Value::String(s) => Ok(Self(s)),
            other => Err(D::Error::custom(format!(
                "must be a string, not {}",
                describe_json(&other)
            ))),
        }
    }
}

impl JsonSchema for NonEmpty {
    fn schema_name() -> Cow<'static, str> {
        "NonEmpty".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1 })
    }
}

impl std::ops::Deref for NonEmpty {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A path, relative to the manifest's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath(pub std::path::PathBuf);

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NonEmpty::deserialize(d).map(|s| Self(s.0.into()))
    }
}

impl JsonSchema for FilePath {
    fn schema_name() -> Cow<'static, str> {
        "FilePath".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "description": "a path, relative to the manifest's folder" })
    }
}

/// Whether `name` is usable as a plugin name or version, a pipeline or an operator name in
/// the control plane's URLs and files: 1–128 of letters, digits, `.`, `_`, `-`, `+`, starting
/// with a letter or digit (so never `.` or `..`, never a path).
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && name.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}
