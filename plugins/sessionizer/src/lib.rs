//! Sessions of activity: with `window: {kind: session, gap: 30m}` and `key-by: /user`, one
//! record per session — when it started and ended, how many events, and the values of a field
//! seen in it (e.g. the pages or event kinds), in order of first appearance.
//!
//! ```yaml
//! plugin: ../../dist/plugins/sessionizer.wasm
//! key-by: /user
//! window: {kind: session, gap: 30m}
//! config: {collect: /kind}
//! ```
//!
//! Output: `{"user": "u1", "start": first event, "end": last event, "events": 4,
//! "duration_ms": …, "collected": ["view", "cart"]}`.

use flowlet_sdk::aggregate::{Aggregate, Fired, Json};
use flowlet_sdk::{Config, Emitter, Error, Event, Pointer};

pub struct Sessionizer {
    collect: Option<Pointer>,
    key_name: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    events: u64,
    first: i64,
    last: i64,
    collected: Vec<String>,
}

impl Aggregate for Sessionizer {
    type Acc = Json<Session>;

    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            collect: Option<String>,
            key_name: Option<String>,
        }
        let s: Settings = if config.value().is_null() {
            Settings::default()
        } else {
            config.parse()?
        };
        Ok(Self {
            collect: s
                .collect
                .as_deref()
                .map(Pointer::parse)
                .transpose()
                .map_err(|e| Error::invalid_config(format!("`collect`: {e}")))?,
            key_name: s.key_name.unwrap_or_else(|| "user".into()),
        })
    }

    fn create_accumulator(&self) -> Self::Acc {
        Json(Session {
            events: 0,
            first: i64::MAX,
            last: i64::MIN,
            collected: Vec::new(),
        })
    }

    fn add(&self, acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), Error> {
        let s = &mut acc.0;
        if let Some(p) = &self.collect
            && let Some(raw) = event.field(p)?
        {
            let v = serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().into());
            if !s.collected.contains(&v) {
                s.collected.push(v);
            }
        }
        s.events += 1;
        s.first = s.first.min(event.timestamp());
        s.last = s.last.max(event.timestamp());
        Ok(())
    }

    fn merge(&self, a: Self::Acc, b: Self::Acc) -> Self::Acc {
        // Keep first-appearance order: the earlier session's values first.
        let (mut early, late) = if a.0.first <= b.0.first {
            (a.0, b.0)
        } else {
            (b.0, a.0)
        };
        for v in late.collected {
            if !early.collected.contains(&v) {
                early.collected.push(v);
            }
        }
        Json(Session {
            events: early.events + late.events,
            first: early.first.min(late.first),
            last: early.last.max(late.last),
            collected: early.collected,
        })
    }

    fn finish(&self, w: &Fired<'_>, acc: Self::Acc, out: &mut Emitter) -> Result<(), Error> {
        let s = acc.0;
        let mut obj = serde_json::Map::new();
        obj.insert(self.key_name.clone(), w.key_str().into());
        obj.insert("start".into(), s.first.into());
        obj.insert("end".into(), s.last.into());
        obj.insert("events".into(), s.events.into());
        obj.insert("duration_ms".into(), (s.last - s.first).into());
        if self.collect.is_some() {
            obj.insert("collected".into(), s.collected.into());
        }
        if w.firing > 0 {
            obj.insert("firing".into(), w.firing.into());
        }
        out.emit_json(&obj)
    }
}

flowlet_sdk::export_aggregate!(Sessionizer);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::AggregateHarness;

    #[test]
    fn merge_keeps_first_appearance_order() {
        let h = AggregateHarness::<Sessionizer>::new(serde_json::json!({"collect": "/k"})).unwrap();
        let a = h.fold(&[r#"{"k":"view"}"#, r#"{"k":"cart"}"#]).unwrap();
        let b = h.fold(&[r#"{"k":"buy"}"#, r#"{"k":"view"}"#]).unwrap();
        let out = h.finish_one(&h.merge(&a, &b).unwrap()).unwrap();
        assert_eq!(
            out[0]["collected"],
            serde_json::json!(["view", "cart", "buy"])
        );
        assert_eq!(out[0]["events"], 4);
    }
}
