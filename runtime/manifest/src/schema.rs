//! The manifest's JSON Schema: the manifest's own fields, and for sources, sinks and
//! windows the union of their kinds' schemas.

use crate::{Catalog, EventTime, Kind, Manifest};

/// The JSON Schema of the manifest (published as `docs/manifest.schema.json`).
pub fn json_schema(catalog: &Catalog) -> serde_json::Value {
    use serde_json::json;
    let mut root = serde_json::to_value(schemars::schema_for!(Manifest)).expect("a schema is JSON");
    // Referenced by every source kind's schema only.
    let mut event_time = serde_json::to_value(schemars::schema_for!(EventTime)).expect("JSON");
    if let Some(o) = event_time.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    root["$defs"]["EventTime"] = event_time;
    let source = json!({
        "batch-size": {"type": "integer", "minimum": 1, "maximum": 65536, "description": "Events per batch (1–65536)"},
        "event-time": {"$ref": "#/$defs/EventTime"},
        "on-error": {"$ref": "#/$defs/OnError"}
    });
    root["$defs"]["Source"] = union(&catalog.sources, source, &mut root);
    let sink = json!({
        "inputs": {"type": "array", "items": {"type": "string"}, "description": "Sources, operators or side outputs (`OPERATOR.dead-letter`) this sink reads"}
    });
    root["$defs"]["Sink"] = union(&catalog.sinks, sink, &mut root);
    let window = json!({
        "allowed-lateness": {"type": "string", "description": "How long after a window's end (in event time) late events still update it (default 0)"},
        "time": {"enum": ["event", "processing"], "description": "`event` (default): windows of event time; `processing`: of the operator's clock"}
    });
    root["$defs"]["Window"] = union(&catalog.windows, window, &mut root);
    root
}

/// One schema per kind (its own fields, `kind`, and the `common` fields), as `oneOf`; the
/// kinds' definitions move to the root's `$defs`.
fn union(
    kinds: &[Kind],
    common: serde_json::Value,
    root: &mut serde_json::Value,
) -> serde_json::Value {
    let mut variants = Vec::new();
    for kind in kinds {
        let mut s = serde_json::to_value((kind.schema)()).expect("a schema is JSON");
        if let Some(serde_json::Value::Object(defs)) =
            s.as_object_mut().and_then(|o| o.remove("$defs"))
        {
            for (k, v) in defs {
                root["$defs"][k] = v;
            }
        }
        if let Some(o) = s.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
        }
        s["properties"]["kind"] = serde_json::json!({ "const": kind.name });
        if let Some(c) = common.as_object() {
            for (k, v) in c {
                s["properties"][k] = v.clone();
            }
        }
        let required = s["required"].as_array().cloned().unwrap_or_default();
        let mut required: Vec<serde_json::Value> = required;
        required.insert(0, "kind".into());
        s["required"] = serde_json::Value::Array(required);
        variants.push(s);
    }
    serde_json::json!({ "oneOf": variants })
}
