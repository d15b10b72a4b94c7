//! Components the manifest does not know itself — connectors and window kinds — each described
//! once, as a serde struct (`deny_unknown_fields`, `JsonSchema`), and registered in a
//! [`Catalog`] with one line. The manifest hands each one its part of the YAML as a [`Config`];
//! [`Config::parse`] deserializes it and maps every serde error back to the line and column of
//! the field, with "did you mean" — reporting every bad field, not only the first.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use saphyr::{MarkedYaml, Scalar, YamlData};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diag::{Diagnostics, Pos, did_you_mean};

/// A component's configuration as parsed: what the executor runs it from (back as its own
/// type with `<dyn Spec>::downcast_ref`).
pub trait Spec: Any + Debug + Send + Sync {
    /// What the component does with files, standard input and topics (relative paths as
    /// written in the manifest): the graph checks find nodes that would lose data by sharing
    /// one.
    fn resources(&self) -> Vec<Resource> {
        Vec::new()
    }

    /// Whether what a source read can be read again after a crash (standard input cannot).
    fn replayable(&self) -> bool {
        true
    }

    /// Whether a sink takes back, after a crash, what it wrote since the last checkpoint (a
    /// file is cut back, a Kafka transaction aborted); `false`: the replay writes it again
    /// (standard output, HTTP), so the sink is at-least-once whatever the topology's guarantee.
    fn takes_back(&self) -> bool {
        true
    }

    /// Whether a source's own timestamps (without `event-time:`) are event time: a generator's
    /// synthetic clock is; the time a line or record is read is not.
    fn own_event_time(&self) -> bool {
        false
    }
}

impl dyn Spec {
    /// The configuration as the type its kind parsed it into.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }
}

/// A configuration type is a [`Spec`] that uses no resource: `flowlet_manifest::spec!(T);`.
#[macro_export]
macro_rules! spec {
    ($t:ty) => {
        impl $crate::Spec for $t {}
    };
}

/// Parse a configuration `T` with no checks beyond its fields' own (see [`Kind::of`]).
pub fn parse_as<T: DeserializeOwned + Spec>(
    c: &Config<'_, '_>,
    d: &mut Diagnostics,
) -> Option<Arc<dyn Spec>> {
    Some(Arc::new(c.parse::<T>(d)?))
}

/// The JSON Schema of a configuration `T`.
pub fn schema_of<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(T)
}

/// Something outside the topology a node reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A file a source reads (relative to the manifest).
    ReadsFile(PathBuf),
    /// A file a sink writes.
    WritesFile(PathBuf),
    /// The process's standard input.
    Stdin,
    /// A Kafka topic a source reads; `bounded` sources stop at the end offsets of their start.
    ReadsTopic {
        brokers: String,
        topic: String,
        bounded: bool,
    },
    /// A Kafka topic a sink writes.
    WritesTopic { brokers: String, topic: String },
}

/// One kind of component: its name, how its configuration is parsed, its JSON Schema.
#[derive(Clone)]
pub struct Kind {
    pub name: &'static str,
    /// Parse the configuration (errors go to the diagnostics; `None` when there were any).
    pub parse: fn(&Config<'_, '_>, &mut Diagnostics) -> Option<Arc<dyn Spec>>,
    /// The JSON Schema of the configuration's own fields.
    pub schema: fn() -> schemars::Schema,
}

impl Kind {
    /// The kind whose configuration is the serde struct `T`, with no checks beyond its
    /// fields' own.
    pub const fn of<T: DeserializeOwned + Spec + schemars::JsonSchema>(name: &'static str) -> Self {
        Self::new(name, parse_as::<T>, schema_of::<T>)
    }

    /// A kind with its own parse function (checks across fields after [`Config::parse`]).
    pub const fn new(
        name: &'static str,
        parse: fn(&Config<'_, '_>, &mut Diagnostics) -> Option<Arc<dyn Spec>>,
        schema: fn() -> schemars::Schema,
    ) -> Self {
        Self {
            name,
            parse,
            schema,
        }
    }
}

impl Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The component kinds a manifest may use: one line each.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: Vec<Kind>,
    pub sinks: Vec<Kind>,
    pub windows: Vec<Kind>,
}

impl Catalog {
    pub(crate) fn find<'k>(kinds: &'k [Kind], name: &str) -> Option<&'k Kind> {
        kinds.iter().find(|k| k.name == name)
    }

    pub(crate) fn names(kinds: &[Kind]) -> Vec<&'static str> {
        kinds.iter().map(|k| k.name).collect()
    }
}

type Node<'i> = MarkedYaml<'i>;

/// Where each field of a configuration is: its key and its value.
#[derive(Default)]
struct Positions {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

/// A component's part of the YAML: a mapping, minus the fields the manifest reads itself.
pub struct Config<'a, 'i> {
    node: &'a Node<'i>,
    /// What the component is called in messages: "source `gen`", "`window` of operator `w`".
    what: String,
    /// The fields the manifest reads itself (left out here, but offered as "did you mean").
    common: &'a [&'a str],
}

pub(crate) fn pos(n: &Node<'_>) -> Pos {
    Pos {
        line: n.span.start.line(),
        col: n.span.start.col() + 1,
    }
}

/// A YAML value in words, for messages.
pub(crate) fn describe(n: &Node<'_>) -> String {
    match &n.data {
        YamlData::Value(Scalar::Null) => "nothing (null)".into(),
        YamlData::Value(Scalar::Boolean(b)) => format!("the boolean `{b}`"),
        YamlData::Value(Scalar::Integer(i)) => format!("the number `{i}`"),
        YamlData::Value(Scalar::FloatingPoint(f)) => format!("the number `{f}`"),
        YamlData::Value(Scalar::String(s)) => format!("the string `{s}`"),
        YamlData::Representation(s, _, _) => format!("the string `{s}`"),
        YamlData::Sequence(_) => "a list".into(),
        YamlData::Mapping(_) => "a mapping".into(),
        YamlData::Tagged(_, inner) => describe(inner),
        _ => "an unsupported YAML node".into(),
    }
}

/// A JSON value in words, for messages (as [`describe`] says the YAML it came from).
pub fn describe_json(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// Any YAML node as JSON, with the positions of its keys and values (by dotted path), or the
/// position and reason it cannot be.
fn to_json(n: &Node<'_>, path: &str, at: &mut Positions) -> Result<Value, (Pos, String)> {
    at.values.insert(path.to_owned(), pos(n));
    Ok(match &n.data {
        YamlData::Value(Scalar::Null) => Value::Null,
        YamlData::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        YamlData::Value(Scalar::Integer(i)) => Value::from(*i),
        YamlData::Value(Scalar::FloatingPoint(f)) => serde_json::Number::from_f64(f.into_inner())
            .map(Value::Number)
            .ok_or_else(|| (pos(n), format!("`{f}` cannot be represented in JSON")))?,
        YamlData::Value(Scalar::String(s)) => Value::String(s.to_string()),
        YamlData::Representation(s, _, _) => Value::String(s.to_string()),
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(to_json(item, &join(path, &i.to_string()), at)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut obj = serde_json::Map::new();
            for (k, v) in map {
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                    YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                    _ => {
                        let what = format!("a mapping key must be a string, not {}", describe(k));
                        return Err((pos(k), what));
                    }
                };
                let p = join(path, &key);
                at.keys.insert(p.clone(), pos(k));
                obj.insert(key, to_json(v, &p, at)?);
            }
            Value::Object(obj)
        }
        YamlData::Tagged(_, inner) => to_json(inner, path, at)?,
        YamlData::Alias(_) => return Err((pos(n), "YAML aliases are not supported here".into())),
        YamlData::BadValue => return Err((pos(n), "not a valid YAML value".into())),
    })
}

/// Any YAML node as JSON (an operator's `config:`).
pub(crate) fn yaml_to_json(n: &Node<'_>) -> Result<Value, (Pos, String)> {
    to_json(n, "", &mut Positions::default())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Remove the value at `path` (serde_path_to_error's segments) from `v`.
fn remove(v: &mut Value, segments: &[String]) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut at = v;
    for s in parents {
        at = match at {
            Value::Object(m) => match m.get_mut(s) {
                Some(x) => x,
                None => return,
            },
            Value::Array(a) => match s.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(x) => x,
                None => return,
            },
            _ => return,
        };
    }
    match at {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a[i] = Value::Null;
            }
        }
        _ => {}
    }
}

fn get<'v>(v: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments.iter().try_fold(v, |at, s| match at {
        Value::Object(m) => m.get(s),
        Value::Array(a) => a.get(s.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The words serde uses for what it expected, as the manifest's messages say them.
fn expected_words(serde: &str) -> String {
    let s = serde.trim();
    match s {
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number".into()
        }
        "f32" | "f64" => "a number".into(),
        _ if s.starts_with("struct ") || s.starts_with("a map") => "a mapping".into(),
        _ => s.to_owned(),
    }
}

/// `message\nhint: hint` → (message, hint): custom field types carry their hint this way.
pub fn split_hint(message: &str) -> (String, Option<String>) {
    match message.split_once("\nhint: ") {
        Some((m, h)) => (m.to_owned(), Some(h.to_owned())),
        None => (message.to_owned(), None),
    }
}

impl<'a, 'i> Config<'a, 'i> {
    pub(crate) fn new(node: &'a Node<'i>, what: impl Into<String>, common: &'a [&'a str]) -> Self {
        Self {
            node,
            what: what.into(),
            common,
        }
    }

    /// What the component is called in messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Where the configuration starts (for errors about it as a whole).
    pub fn pos(&self) -> Pos {
        pos(self.node)
    }

    /// "`b` in `a` of source `s`" — how a field at `segments` is named in a message.
    fn field(&self, segments: &[String]) -> String {
        // "`count` of source `gen`", but "`size` in `window` of operator `w`".
        let of = if self.what.starts_with('`') {
            "in"
        } else {
            "of"
        };
        match segments {
            [] => self.what.clone(),
            [parents @ .., leaf] if !parents.is_empty() && leaf.parse::<usize>().is_ok() => {
                let n = leaf.parse::<usize>().unwrap_or(0) + 1;
                format!("entry {n} of `{}` {of} {}", parents.join("."), self.what)
            }
            [one] => format!("`{one}` {of} {}", self.what),
            [parents @ .., leaf] => format!("`{leaf}` in `{}` of {}", parents.join("."), self.what),
        }
    }

    /// The JSON of the configuration (minus the manifest's own fields) and its positions.
    fn json(&self, d: &mut Diagnostics) -> Option<(Value, Positions)> {
        let mut at = Positions::default();
        match to_json(self.node, "", &mut at) {
            Ok(Value::Object(mut m)) => {
                for c in self.common {
                    m.remove(*c);
                }
                Some((Value::Object(m), at))
            }
            Ok(_) => {
                d.error(
                    self.pos(),
                    format!(
                        "{} must be a mapping, not {}",
                        self.what,
                        describe(self.node)
                    ),
                );
                None
            }
            Err((p, message)) => {
                d.error(p, message);
                None
            }
        }
    }

    /// Deserialize the configuration into `T`, reporting every bad field at its line and
    /// column (a field that failed is left out and the rest tried again).
    pub fn parse<T: DeserializeOwned>(&self, d: &mut Diagnostics) -> Option<T> {
        let (mut value, at) = self.json(d)?;
        let mut removed: Vec<String> = Vec::new();
        let mut failed = false;
        for _ in 0..64 {
            let e = match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(t) => return (!failed).then_some(t),
                Err(e) => e,
            };
            failed = true;
            let segments: Vec<String> = e.path().iter().map(|s| s.to_string()).collect();
            let message = e.into_inner().to_string();
            if let Some(missing) = message.strip_prefix("missing field `") {
                let field = missing.trim_end_matches('`');
                // A field left out because its value was bad is not reported twice.
                if !removed
                    .iter()
                    .any(|r| r == &join(&segments.join("."), field))
                {
                    let parent = self.field(&segments);
                    let p = at
                        .values
                        .get(&segments.join("."))
                        .copied()
                        .unwrap_or(self.pos());
                    d.error_hint(
                        p,
                        format!("{parent} has no `{field}`"),
                        format!("add `{field}:`"),
                    );
                }
                return None;
            }
            self.report(&segments, &message, &value, &at, d);
            if segments.is_empty() {
                return None;
            }
            removed.push(segments.join("."));
            remove(&mut value, &segments);
        }
        None
    }

    /// Report serde's `message` about the field at `segments`.
    fn report(
        &self,
        segments: &[String],
        message: &str,
        value: &Value,
        at: &Positions,
        d: &mut Diagnostics,
    ) {
        let path = segments.join(".");
        let value_pos = at.values.get(&path).copied().unwrap_or(self.pos());
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let known: Vec<&str> = expected
                .split('`')
                .skip(1)
                .step_by(2)
                .chain(if segments.len() == 1 {
                    self.common.to_vec()
                } else {
                    Vec::new()
                })
                .collect();
            let hint = did_you_mean(name, known.iter().copied())
                .unwrap_or_else(|| format!("known fields: {}", known.join(", ")));
            let p = at.keys.get(&path).copied().unwrap_or(value_pos);
            let parent = &segments[..segments.len().saturating_sub(1)];
            let within = if parent.is_empty() {
                self.what.clone()
            } else {
                format!("`{}` of {}", parent.join("."), self.what)
            };
            d.error_hint(p, format!("unknown field `{name}` in {within}"), hint);
            return;
        }
        let field = self.field(segments);
        let got = get(value, segments).map(describe_json).unwrap_or_default();
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
            let hint = format!("choose one of: {}", expected.join(", "));
            d.error_hint(value_pos, format!("{field} cannot be {got}"), hint);
            return;
        }
        for prefix in ["invalid type: ", "invalid value: "] {
            if let Some(rest) = message.strip_prefix(prefix)
                && let Some((_, expected)) = rest.rsplit_once(", expected ")
            {
                let words = expected_words(expected);
                d.error(value_pos, format!("{field} must be {words}, not {got}"));
                return;
            }
        }
        // A field type's own message: "must …", "cannot …", "is …" read on from the field's
        // name; anything else after a colon.
        let (message, hint) = split_hint(message);
        let text = if ["must ", "cannot ", "is "]
            .iter()
            .any(|p| message.starts_with(p))
        {
            format!("{field} {message}")
        } else {
            format!("{field}: {message}")
        };
        match hint {
            Some(h) => d.error_hint(value_pos, text, h),
            None => d.error(value_pos, text),
        }
    }

    /// Report a problem with the field `name` (a top-level field of the configuration), at its
    /// value; at the configuration when it has no such field.
    pub fn error(&self, d: &mut Diagnostics, name: &str, message: &str, hint: Option<&str>) {
        let mut at = Positions::default();
        let _ = to_json(self.node, "", &mut at);
        let p = at.values.get(name).copied().unwrap_or(self.pos());
        let text = format!("{} {message}", self.field(&[name.to_owned()]));
        match hint {
            Some(h) => d.error_hint(p, text, h),
            None => d.error(p, text),
        }
    }

    /// Report a problem with the configuration as a whole, at its start.
    pub fn error_here(&self, d: &mut Diagnostics, message: &str, hint: Option<&str>) {
        match hint {
            Some(h) => d.error_hint(self.pos(), message, h),
            None => d.error(self.pos(), message),
        }
    }

    /// The value of field `name` (a top-level field) as JSON, if it is there.
    pub fn value(&self, name: &str) -> Option<Value> {
        match to_json(self.node, "", &mut Positions::default()) {
            Ok(Value::Object(mut m)) => m.remove(name),
            _ => None,
        }
    }

    /// The position of field `name`'s value (a top-level field), if it is there.
    pub fn value_pos(&self, name: &str) -> Option<Pos> {
        let mut at = Positions::default();
        let _ = to_json(self.node, "", &mut at);
        at.values.get(name).copied()
    }

    /// The position of field `name`'s key (a top-level field), if it is there.
    pub fn key_pos(&self, name: &str) -> Option<Pos> {
        let mut at = Positions::default();
        let _ = to_json(self.node, "", &mut at);
        at.keys.get(name).copied()
    }
}
