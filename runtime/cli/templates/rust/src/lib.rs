//! `{{name}}`: adds `"label": <config.label>` to every JSON object event; anything else is
//! rejected (and meets the operator's `on-error` policy).

use flowlet_sdk::serde_json::{Map, Value};
use flowlet_sdk::{Config, Error, Event, Operator, Output};

pub struct Label {
    label: String,
}

impl Operator for Label {
    fn init(config: Config) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            label: Option<String>,
        }
        let label = if config.value().is_null() {
            None
        } else {
            config.parse::<Settings>()?.label
        };
        Ok(Self {
            label: label.unwrap_or_else(|| "hello".into()),
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
        let Ok(mut object) = event.json::<Map<String, Value>>() else {
            return Err(Error::reject("the value is not a JSON object"));
        };
        object.insert("label".into(), Value::String(self.label.clone()));
        out.emit_json(&object)
    }
}

flowlet_sdk::export_operator!(Label);

#[cfg(test)]
mod tests {
    use super::*;
    use flowlet_sdk::testing::Harness;

    #[test]
    fn labels_objects_and_rejects_the_rest() {
        let mut h = Harness::<Label>::new(serde_json::json!({"label": "x"})).unwrap();
        let out = h.process_json(&[r#"{"a":1}"#, "[1]"]).unwrap();
        assert_eq!(out.values(), vec![r#"{"a":1,"label":"x"}"#]);
        assert_eq!(out.rejected_indexes(), vec![1]);
    }
}
