//! `flat-map`: split an array field into one event per element.
//!
//! ```yaml
//! config:
//!   field: /items     # JSON pointer to an array
//!   into: item        # optional: emit the input object without `field`'s top-level field, plus
//!                     # `item: <element>`; without `into`, each element alone is the event
//! ```
//!
//! An event without the field emits nothing; a field that is not an array, or an event that is
//! not JSON, is rejected (→ the operator's `on-error` policy).

use flowlet_sdk::serde_json::{self, value::RawValue};
use flowlet_sdk::{Config, Error, Event, Operator, Output, Pointer};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    field: String,
    #[serde(default)]
    into: Option<String>,
}

pub struct FlatMap {
    field: Pointer,
    /// With `into`: the top-level field holding the array (left out of the output) and the
    /// output field name as JSON.
    into: Option<(String, String)>,
}

impl Operator for FlatMap {
    fn init(config: Config) -> Result<Self, Error> {
        let s: Settings = config.parse()?;
        let field = Pointer::parse(&s.field).map_err(Error::invalid_config)?;
        let into = match s.into {
            None => None,
            Some(name) => {
                let (top, _) = field.split_first().ok_or_else(|| {
                    Error::invalid_config("with `into`, `field` must name a field, e.g. `/items`")
                })?;
                Some((
                    top.to_owned(),
                    serde_json::to_string(&name).map_err(Error::failed)?,
                ))
            }
        };
        Ok(Self { field, into })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let Some(array) = event.field(&self.field)? else {
            return Ok(());
        };
        let elements: Vec<&RawValue> = serde_json::from_str(array.get()).map_err(|_| {
            Error::reject(format!(
                "field {} is {}, not an array",
                self.field,
                array.get()
            ))
        })?;
        match &self.into {
            None => {
                for element in elements {
                    out.emit(element.get().as_bytes());
                }
            }
            Some((top, name_json)) => {
                let parent = event.fields()?;
                for element in elements {
                    out.emit_in_place(|buf| {
                        buf.push(b'{');
                        for (key, raw) in parent.iter().filter(|(k, _)| k != top) {
                            serde_json::to_writer(&mut *buf, key.as_ref())
                                .map_err(Error::failed)?;
                            buf.push(b':');
                            buf.extend_from_slice(raw.get().as_bytes());
                            buf.push(b',');
                        }
                        buf.extend_from_slice(name_json.as_bytes());
                        buf.push(b':');
                        buf.extend_from_slice(element.get().as_bytes());
                        buf.push(b'}');
                        Ok(())
                    })?;
                }
            }
        }
        Ok(())
    }
}

flowlet_sdk::export_operator!(FlatMap);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;
    use serde_json::{Value, json};

    #[test]
    fn splits_elements() {
        let mut h = Harness::<FlatMap>::new(json!({"field": "/xs"})).unwrap();
        let out = h
            .process_json(&[r#"{"xs":[1,{"a":2},"s"]}"#, r#"{"xs":[]}"#, r#"{"y":1}"#])
            .unwrap();
        assert_eq!(out.values(), vec!["1", r#"{"a":2}"#, r#""s""#]);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn into_keeps_the_parent_fields() {
        let mut h =
            Harness::<FlatMap>::new(json!({"field": "/order/lines", "into": "line"})).unwrap();
        let out = h
            .process_json(&[r#"{"id":1,"order":{"lines":["a","b"]},"z":0}"#])
            .unwrap();
        assert_eq!(
            out.values(),
            vec![
                r#"{"id":1,"z":0,"line":"a"}"#,
                r#"{"id":1,"z":0,"line":"b"}"#
            ]
        );
    }

    #[test]
    fn non_arrays_and_non_json_are_rejected_without_partial_output() {
        let mut h = Harness::<FlatMap>::new(json!({"field": "/xs"})).unwrap();
        let out = h
            .process_json(&[r#"{"xs":5}"#, "{", r#"{"xs":[true]}"#])
            .unwrap();
        assert_eq!(out.values(), vec!["true"]);
        assert_eq!(out.rejected_indexes(), vec![0, 1]);
    }

    #[test]
    fn keys_and_timestamps_carry_over() {
        let mut h = Harness::<FlatMap>::new(json!({"field": "/xs"})).unwrap();
        let mut batch = flowlet_sdk::Batch::new();
        batch.push(b"k", br#"{"xs":[1,2]}"#, 42);
        let out = h.process(&batch).unwrap();
        let got: Vec<(Option<&[u8]>, i64)> = out
            .events
            .iter()
            .map(|e| (e.key(), e.timestamp()))
            .collect();
        assert_eq!(got, vec![(Some(&b"k"[..]), 42), (Some(&b"k"[..]), 42)]);
        let _: Value = serde_json::from_slice(out.events.get(0).value()).unwrap();
    }

    #[test]
    fn bad_config_is_reported() {
        for config in [
            json!({"field": "xs"}),
            json!({"field": "", "into": "x"}),
            json!({}),
        ] {
            assert!(matches!(
                Harness::<FlatMap>::new(config).err().unwrap(),
                Error::InvalidConfig(_)
            ));
        }
    }
}
