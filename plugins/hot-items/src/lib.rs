//! The hottest item per window: counts a field's values in each window and emits the most
//! frequent one (ties: the smallest value). Run it over sliding windows for "what is hot in the
//! last 10 minutes, every minute".
//!
//! ```yaml
//! plugin: ../../dist/plugins/hot-items.wasm
//! window: {kind: sliding, size: 10m, slide: 1m}
//! config: {item: /item, top: 1}
//! ```
//!
//! Output per window: `{"start", "end", "key", "top": [{"item": "i7", "count": 42}], "events": N}`.

use std::collections::BTreeMap;

use flowlet_sdk::aggregate::{Aggregate, Fired, Json};
use flowlet_sdk::{Config, Emitter, Error, Event, Pointer};

pub struct HotItems {
    item: Pointer,
    top: usize,
}

impl Aggregate for HotItems {
    type Acc = Json<BTreeMap<String, u64>>;

    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            item: String,
            #[serde(default = "one")]
            top: usize,
        }
        fn one() -> usize {
            1
        }
        let s: Settings = config.parse()?;
        Ok(Self {
            item: Pointer::parse(&s.item)
                .map_err(|e| Error::invalid_config(format!("`item`: {e}")))?,
            top: s.top.max(1),
        })
    }

    fn create_accumulator(&self) -> Self::Acc {
        Json(BTreeMap::new())
    }

    fn add(&self, acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), Error> {
        let raw = event
            .field(&self.item)?
            .ok_or_else(|| Error::reject(format!("no field {}", self.item)))?;
        // Strings by their text, anything else by its JSON.
        let item = serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().into());
        *acc.0.entry(item).or_default() += 1;
        Ok(())
    }

    fn merge(&self, mut a: Self::Acc, b: Self::Acc) -> Self::Acc {
        for (k, v) in b.0 {
            *a.0.entry(k).or_default() += v;
        }
        a
    }

    fn finish(&self, w: &Fired<'_>, acc: Self::Acc, out: &mut Emitter) -> Result<(), Error> {
        let mut items: Vec<(&String, &u64)> = acc.0.iter().collect();
        items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<_> = items
            .iter()
            .take(self.top)
            .map(|(i, c)| serde_json::json!({"item": i, "count": c}))
            .collect();
        out.emit_json(&serde_json::json!({
            "start": w.start,
            "end": w.end,
            "key": w.key_str(),
            "top": top,
            "events": acc.0.values().sum::<u64>(),
        }))
    }
}

flowlet_sdk::export_aggregate!(HotItems);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::AggregateHarness;

    #[test]
    fn most_frequent_wins_ties_by_name() {
        let h = AggregateHarness::<HotItems>::new(serde_json::json!({"item": "/item"})).unwrap();
        let out = h
            .fold_and_finish(&[
                r#"{"item":"b"}"#,
                r#"{"item":"a"}"#,
                r#"{"item":"b"}"#,
                r#"{"item":"a"}"#,
                r#"{"x":1}"#,
            ])
            .unwrap();
        assert_eq!(out.rejected, vec![4]);
        assert_eq!(
            out.json[0]["top"],
            serde_json::json!([{"item": "a", "count": 2}])
        );
        assert_eq!(out.json[0]["events"], 4);
    }
}
