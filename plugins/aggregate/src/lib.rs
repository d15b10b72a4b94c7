//! Keyed window statistics: count, sum, average, minimum and maximum of a numeric field per key
//! and window.
//!
//! ```yaml
//! plugin: ../../dist/plugins/aggregate.wasm
//! key-by: /user
//! window: {kind: tumbling, size: 1m}
//! config: {function: avg, field: /amount}   # count needs no field
//! ```
//!
//! Output per (key, window): `{"key": "u0042", "start": …, "end": …, "avg": 12.5, "count": 3}`
//! (`count` is always included; `firing` is added when late events update a window).

use std::io::Write;

use flowlet_sdk::aggregate::{Accumulator, Aggregate, Fired};
use flowlet_sdk::{Config, Emitter, Error, Event, Pointer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

pub struct WindowAggregate {
    function: Function,
    field: Option<Pointer>,
    /// Name of the result field (default: the function's name).
    output: String,
}

/// Count, sum, min and max: enough for every function, 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Accumulator for Stats {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Result<Self, Error> {
        if b.len() != 32 {
            return Err(Error::failed("corrupt accumulator"));
        }
        let f = |i: usize| f64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Stats {
            count: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            sum: f(8),
            min: f(16),
            max: f(24),
        })
    }
}

impl Aggregate for WindowAggregate {
    type Acc = Stats;

    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            function: Function,
            field: Option<String>,
            output: Option<String>,
        }
        let s: Settings = config.parse()?;
        let field = s
            .field
            .as_deref()
            .map(Pointer::parse)
            .transpose()
            .map_err(|e| Error::invalid_config(format!("`field`: {e}")))?;
        if field.is_none() && s.function != Function::Count {
            return Err(Error::invalid_config(format!(
                "`{:?}` needs a `field` (a JSON pointer to a number, e.g. /amount)",
                s.function
            )));
        }
        let output = s
            .output
            .unwrap_or_else(|| format!("{:?}", s.function).to_lowercase());
        // Every result has these fields; `count` may name the count itself.
        let taken = ["key", "start", "end", "firing"];
        if taken.contains(&output.as_str()) || (output == "count" && s.function != Function::Count)
        {
            return Err(Error::invalid_config(format!(
                "`output: {output}` would collide with the `{output}` field every result carries; choose another name"
            )));
        }
        Ok(Self {
            function: s.function,
            field,
            output,
        })
    }

    fn create_accumulator(&self) -> Stats {
        Stats {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&self, acc: &mut Stats, event: &Event<'_>) -> Result<(), Error> {
        let Some(field) = &self.field else {
            acc.count += 1;
            return Ok(());
        };
        let raw = event
            .field(field)?
            .ok_or_else(|| Error::reject(format!("no field {field}")))?;
        let x: f64 = serde_json::from_str(raw.get())
            .map_err(|_| Error::reject(format!("{field} is not a number: {}", raw.get())))?;
        acc.count += 1;
        acc.sum += x;
        acc.min = acc.min.min(x);
        acc.max = acc.max.max(x);
        Ok(())
    }

    fn merge(&self, a: Stats, b: Stats) -> Stats {
        Stats {
            count: a.count + b.count,
            sum: a.sum + b.sum,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        }
    }

    fn finish(&self, w: &Fired<'_>, acc: Stats, out: &mut Emitter) -> Result<(), Error> {
        // Written directly rather than through a `serde_json::Map`: `finish` runs once per key
        // and window, about as often as `add` when keys are many.
        let mut line = Vec::with_capacity(96);
        let json = |v: &mut Vec<u8>, x: &dyn erased::Json| x.write(v);
        line.extend_from_slice(b"{\"key\":");
        json(&mut line, &w.key_str().as_ref());
        write!(line, ",\"start\":{},\"end\":{},", w.start, w.end).expect("Vec");
        json(&mut line, &self.output.as_str());
        line.push(b':');
        match self.function {
            Function::Count => write!(line, "{}", acc.count).expect("Vec"),
            Function::Sum => json(&mut line, &acc.sum),
            Function::Avg => json(&mut line, &(acc.sum / acc.count.max(1) as f64)),
            Function::Min => json(&mut line, &acc.min),
            Function::Max => json(&mut line, &acc.max),
        }
        if self.output != "count" {
            write!(line, ",\"count\":{}", acc.count).expect("Vec");
        }
        if w.firing > 0 {
            write!(line, ",\"firing\":{}", w.firing).expect("Vec");
        }
        line.push(b'}');
        out.emit(&line);
        Ok(())
    }
}

/// A JSON value written into a buffer (strings escaped; floats as serde_json writes them, with
/// non-finite values as `null`).
mod erased {
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }
    impl Json for &str {
        fn write(&self, out: &mut Vec<u8>) {
            serde_json::to_writer(out, self).expect("a string is JSON");
        }
    }
    impl Json for f64 {
        fn write(&self, out: &mut Vec<u8>) {
            serde_json::to_writer(out, self).expect("a number is JSON");
        }
    }
}

flowlet_sdk::export_aggregate!(WindowAggregate);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::AggregateHarness;

    #[test]
    fn average_per_window_and_bad_events_rejected() {
        let h = AggregateHarness::<WindowAggregate>::new(
            serde_json::json!({"function": "avg", "field": "/amount"}),
        )
        .unwrap();
        let out = h
            .fold_and_finish(&[
                r#"{"amount": 1}"#,
                r#"{"amount": 2}"#,
                r#"{"amount": "x"}"#,
                "{}",
            ])
            .unwrap();
        assert_eq!(out.rejected, vec![2, 3]);
        assert_eq!(out.json[0]["avg"], 1.5);
        assert_eq!(out.json[0]["count"], 2);
    }

    #[test]
    fn count_is_written_once_and_output_names_cannot_collide() {
        let h = AggregateHarness::<WindowAggregate>::new(serde_json::json!({"function": "count"}))
            .unwrap();
        let acc = h.fold(&["{}", "{}"]).unwrap();
        let text = h.finish_raw(&acc).unwrap().remove(0);
        assert_eq!(text.matches("\"count\"").count(), 1, "{text}");
        for output in ["count", "key", "start", "end", "firing"] {
            let err = AggregateHarness::<WindowAggregate>::new(
                serde_json::json!({"function": "sum", "field": "/x", "output": output}),
            )
            .err()
            .unwrap();
            assert!(err.to_string().contains("collide"), "{err}");
        }
    }

    #[test]
    fn sum_needs_a_field() {
        let err = AggregateHarness::<WindowAggregate>::new(serde_json::json!({"function": "sum"}))
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs a `field`"), "{err}");
    }

    #[test]
    fn merge_combines_sessions() {
        let h = AggregateHarness::<WindowAggregate>::new(
            serde_json::json!({"function": "max", "field": "/x"}),
        )
        .unwrap();
        let a = h.fold(&[r#"{"x": 5}"#]).unwrap();
        let b = h.fold(&[r#"{"x": 9}"#, r#"{"x": 1}"#]).unwrap();
        let m = h.merge(&a, &b).unwrap();
        assert_eq!(h.finish_one(&m).unwrap()[0]["max"], 9.0);
        assert_eq!(h.finish_one(&m).unwrap()[0]["count"], 3);
    }
}
