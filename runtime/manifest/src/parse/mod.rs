//! From YAML text to a [`Manifest`], reporting every problem with its line and column.
//!
//! The YAML is loaded with positions (saphyr's `MarkedYaml`); each object is read field by field
//! so that one bad field does not hide the next, and the fields left over are reported as
//! unknown with a "did you mean".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::Value;

use crate::config::{Catalog, Config, Kind, describe, pos, yaml_to_json as to_json};
use crate::diag::{Diagnostics, Pos, did_you_mean};
use crate::model::*;

pub(crate) mod join;

pub(crate) type Node<'a> = MarkedYaml<'a>;

pub(crate) fn as_str<'a>(n: &'a Node<'_>) -> Option<&'a str> {
    match &n.data {
        YamlData::Value(Scalar::String(s)) => Some(s),
        YamlData::Representation(s, _, _) => Some(s),
        YamlData::Tagged(_, inner) => as_str(inner),
        _ => None,
    }
}

/// A YAML mapping being read field by field.
pub(crate) struct Obj<'a, 'i> {
    what: String,
    entries: Vec<(&'a str, Pos, &'a Node<'i>)>,
    used: Vec<bool>,
}

impl<'a, 'i> Obj<'a, 'i> {
    /// `n` as a mapping with string keys, or an error on `d`.
    pub(crate) fn new(n: &'a Node<'i>, what: &str, d: &mut Diagnostics) -> Option<Self> {
        let YamlData::Mapping(map) = &n.data else {
            d.error(
                pos(n),
                format!("{what} must be a mapping, not {}", describe(n)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            match as_str(k) {
                Some(key) => entries.push((key, pos(k), v)),
                None => d.error(
                    pos(k),
                    format!("keys of {what} must be strings, not {}", describe(k)),
                ),
            }
        }
        let used = vec![false; entries.len()];
        Some(Self {
            what: what.to_owned(),
            entries,
            used,
        })
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| *k == key)
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<&'a Node<'i>> {
        let i = self.entries.iter().position(|(k, _, _)| *k == key)?;
        self.used[i] = true;
        Some(self.entries[i].2)
    }

    pub(crate) fn require(
        &mut self,
        key: &str,
        at: Pos,
        d: &mut Diagnostics,
    ) -> Option<&'a Node<'i>> {
        let n = self.take(key);
        if n.is_none() {
            d.error_hint(
                at,
                format!("{} has no `{key}`", self.what),
                format!("add `{key}:`"),
            );
        }
        n
    }

    /// Take every key: when the kind is unknown, its fields cannot be judged.
    fn ignore_rest(&mut self) {
        self.used.iter_mut().for_each(|u| *u = true);
    }

    /// Report the keys nobody took.
    pub(crate) fn finish(self, known: &[&str], d: &mut Diagnostics) {
        for ((key, at, _), used) in self.entries.iter().zip(self.used) {
            if !used {
                let hint = did_you_mean(key, known.iter().copied())
                    .unwrap_or_else(|| format!("known fields: {}", known.join(", ")));
                d.error_hint(*at, format!("unknown field `{key}` in {}", self.what), hint);
            }
        }
    }
}

pub(crate) fn string(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<String> {
    match as_str(n) {
        Some(s) => Some(s.to_owned()),
        None => {
            d.error(
                pos(n),
                format!("{what} must be a string, not {}", describe(n)),
            );
            None
        }
    }
}

fn integer(
    n: &Node<'_>,
    what: &str,
    range: std::ops::RangeInclusive<u64>,
    d: &mut Diagnostics,
) -> Option<u64> {
    match &n.data {
        YamlData::Value(Scalar::Integer(i)) if *i >= 0 && range.contains(&(*i as u64)) => {
            Some(*i as u64)
        }
        _ => {
            d.error(
                pos(n),
                format!(
                    "{what} must be a whole number from {} to {}, not {}",
                    range.start(),
                    range.end(),
                    describe(n)
                ),
            );
            None
        }
    }
}

fn duration(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Duration> {
    duration_in(n, what, false, d)
}

/// A duration that may be zero (`0s`): lateness and out-of-orderness bounds.
pub(crate) fn bound(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Duration> {
    duration_in(n, what, true, d)
}

fn duration_in(n: &Node<'_>, what: &str, zero: bool, d: &mut Diagnostics) -> Option<Duration> {
    let text = match &n.data {
        YamlData::Value(Scalar::Integer(0)) => Some("0s"),
        _ => as_str(n),
    };
    match text.map(humantime::parse_duration) {
        Some(Ok(v)) if v.as_millis() > u128::from(flowlet_types::MAX_DURATION_MS) => {
            d.error_hint(
                pos(n),
                format!("{what} must be at most 100 years, not {}", describe(n)),
                "durations this long overflow the clocks and windows they set",
            );
            None
        }
        Some(Ok(v)) if zero || !v.is_zero() => Some(v),
        Some(Ok(_)) => {
            d.error(pos(n), format!("{what} must be longer than 0"));
            None
        }
        _ => {
            d.error_hint(
                pos(n),
                format!("{what} must be a duration, not {}", describe(n)),
                "write it like `250ms`, `5s` or `1m 30s`",
            );
            None
        }
    }
}

/// Window times are whole milliseconds: `1500us` would silently become `1ms`.
pub(crate) fn whole_ms(n: &Node<'_>, t: &Duration, what: &str, d: &mut Diagnostics) -> bool {
    if t.subsec_nanos().is_multiple_of(1_000_000) {
        return true;
    }
    d.error_hint(
        pos(n),
        format!(
            "{what} must be a whole number of milliseconds, not {}",
            describe(n)
        ),
        "event times are in milliseconds; write it like `1500ms`",
    );
    false
}

fn byte_size(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<u64> {
    let parsed = as_str(n).and_then(|s| s.parse::<bytesize::ByteSize>().ok());
    match parsed {
        Some(b) if b.as_u64() >= 1 << 20 && b.as_u64() <= 4 << 30 => Some(b.as_u64()),
        _ => {
            d.error_hint(
                pos(n),
                format!(
                    "{what} must be a size from 1MiB to 4GiB, not {}",
                    describe(n)
                ),
                "write it like `64MiB`",
            );
            None
        }
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn inputs(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Vec<Input>> {
    let YamlData::Sequence(items) = &n.data else {
        d.error_hint(
            pos(n),
            format!("`inputs` of {what} must be a list, not {}", describe(n)),
            "write `inputs: [name]`",
        );
        return None;
    };
    if items.is_empty() {
        d.error_hint(
            pos(n),
            format!("{what} has no inputs"),
            "name at least one source or operator",
        );
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        if let Some(input) = input_item(item, &format!("an input of {what}"), d) {
            out.push(input);
        }
    }
    Some(out)
}

/// One input, `NODE` or `NODE.PORT`.
pub(crate) fn input_item(item: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Input> {
    let text = string(item, what, d)?;
    let (node, port) = match text.split_once('.') {
        None => (text.as_str(), Port::Main),
        Some((node, "dead-letter")) => (node, Port::DeadLetter),
        Some((node, "late")) => (node, Port::Late),
        Some((node, other)) if name_ok(other) => (node, Port::Named(other.to_owned())),
        Some((_, other)) => {
            d.error_hint(
                pos(item),
                format!("`{text}` is not an input: `{other}` is not an output name"),
                "write `NODE`, `NODE.dead-letter`, `NODE.late` or `NODE.OUTPUT` with one of NODE's `outputs:` (letters, digits, - and _)",
            );
            return None;
        }
    };
    Some(Input {
        node: node.to_owned(),
        port,
        pos: pos(item),
    })
}

const TOP: &[&str] = &[
    "version",
    "name",
    "batch-size",
    "state",
    "checkpoint",
    "guarantee",
    "sources",
    "operators",
    "sinks",
];
const OPERATOR: &[&str] = &[
    "plugin",
    "config",
    "inputs",
    "parallelism",
    "key-by",
    "on-error",
    "limits",
    "grants",
    "outputs",
    "join",
    "window",
];

/// Report an unknown `kind` with the closest known one (a missing or non-string `kind` has
/// been reported already).
fn unknown_kind(
    d: &mut Diagnostics,
    at: Option<&Node<'_>>,
    kind: Option<&str>,
    what: &str,
    kinds: &[&str],
) {
    if let (Some(at), Some(other)) = (at, kind) {
        let hint = did_you_mean(other, kinds.iter().copied())
            .unwrap_or_else(|| format!("{what} kinds: {}", kinds.join(", ")));
        d.error_hint(pos(at), format!("unknown {what} kind `{other}`"), hint);
    }
}

/// The fields of a source the manifest reads itself; the connector reads the rest.
const SOURCE_FIELDS: &[&str] = &["kind", "batch-size", "event-time", "on-error"];
/// The fields of a sink the manifest reads itself.
const SINK_FIELDS: &[&str] = &["kind", "inputs"];
/// The fields of `window:` the manifest reads itself; the kind's module reads the rest.
const WINDOW_FIELDS: &[&str] = &["kind", "allowed-lateness", "time"];

/// The `kind` of a source, sink or window and its configuration, parsed by the kind's module
/// (the fields in `common` are the manifest's: the rest are the kind's to judge).
fn component(
    o: &mut Obj<'_, '_>,
    n: &Node<'_>,
    what: &str,
    (family, kinds): (&str, &[Kind]),
    common: &[&str],
    d: &mut Diagnostics,
) -> Option<Component> {
    let kind_node = o.require("kind", pos(n), d);
    // A kind YAML reads as another type (`kind: null`: no value, not the null sink).
    let unquoted = kind_node.and_then(|k| Some((k, plain_scalar(k)?)));
    if let Some((k, text)) = unquoted.filter(|(_, t)| Catalog::find(kinds, t).is_some()) {
        d.error_hint(
            pos(k),
            format!("`kind` of {what} must be a string, not {}", describe(k)),
            format!("quote it: `kind: \"{text}\"` (unquoted, YAML reads `{text}` as another type)"),
        );
        o.ignore_rest();
        return None;
    }
    let kind = kind_node.and_then(|k| string(k, &format!("`kind` of {what}"), d));
    o.ignore_rest();
    match kind.as_deref().map(|k| (k, Catalog::find(kinds, k))) {
        Some((_, Some(k))) => {
            let config = Config::new(n, what, common);
            (k.parse)(&config, d).map(|spec| Component { kind: k.name, spec })
        }
        other => {
            let names = Catalog::names(kinds);
            unknown_kind(d, kind_node, other.map(|(k, _)| k), family, &names);
            None
        }
    }
}

/// The text of a scalar YAML reads as something other than a string (`null`, `true`, `8`).
fn plain_scalar(n: &Node<'_>) -> Option<String> {
    match &n.data {
        YamlData::Value(Scalar::Null) => Some("null".to_owned()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        _ => None,
    }
}

fn source(name: &str, n: &Node<'_>, catalog: &Catalog, d: &mut Diagnostics) -> Option<Source> {
    let what = format!("source `{name}`");
    let mut o = Obj::new(n, &what, d)?;
    let batch_size = o
        .take("batch-size")
        .and_then(|n| integer(n, &format!("`batch-size` of {what}"), 1..=65_536, d))
        .map(|v| v as u32);
    let event_time = match o.take("event-time") {
        None => Some(None),
        Some(n) => event_time(n, &what, d).map(Some),
    };
    let on_error = on_error(&mut o, &what, d);
    let family = ("source", &catalog.sources[..]);
    let kind = component(&mut o, n, &what, family, SOURCE_FIELDS, d);
    Some(Source {
        kind: kind?,
        batch_size,
        event_time: event_time?,
        on_error: on_error?,
    })
}

/// The `on-error` of a source or operator (default `fail`).
fn on_error(o: &mut Obj<'_, '_>, what: &str, d: &mut Diagnostics) -> Option<OnError> {
    match o.take("on-error") {
        None => Some(OnError::Fail),
        Some(n) => match as_str(n) {
            Some("fail") => Some(OnError::Fail),
            Some("skip") => Some(OnError::Skip),
            Some("dead-letter") => Some(OnError::DeadLetter),
            _ => {
                let choices = ["fail", "skip", "dead-letter"];
                let hint = as_str(n)
                    .and_then(|s| did_you_mean(s, choices))
                    .unwrap_or_else(|| format!("choose one of: {}", choices.join(", ")));
                d.error_hint(
                    pos(n),
                    format!("`on-error` of {what} cannot be {}", describe(n)),
                    hint,
                );
                None
            }
        },
    }
}

pub(crate) fn pointer(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Pointer> {
    string(n, what, d).and_then(|s| match Pointer::parse(&s) {
        Ok(p) => Some(p),
        Err(e) => {
            d.error_hint(
                pos(n),
                format!("{what}: {e}"),
                format!("did you mean `/{s}`?"),
            );
            None
        }
    })
}

fn event_time(n: &Node<'_>, of: &str, d: &mut Diagnostics) -> Option<EventTime> {
    let what = format!("`event-time` of {of}");
    let mut o = Obj::new(n, &what, d)?;
    let mut ok = true;
    let mut e = EventTime::default();
    if let Some(f) = o.take("field") {
        e.field = pointer(f, &format!("`field` in {what}"), d);
        ok &= e.field.is_some();
    }
    if let Some(t) = o.take("max-out-of-orderness") {
        ok &= bound(t, &format!("`max-out-of-orderness` in {what}"), d)
            .map(|v| e.max_out_of_orderness = v)
            .is_some();
    }
    if let Some(t) = o.take("idle-timeout") {
        e.idle_timeout = duration(t, &format!("`idle-timeout` in {what}"), d);
        ok &= e.idle_timeout.is_some();
    }
    o.finish(&["field", "max-out-of-orderness", "idle-timeout"], d);
    ok.then_some(e)
}

pub(crate) fn window(
    n: &Node<'_>,
    of: &str,
    catalog: &Catalog,
    d: &mut Diagnostics,
) -> Option<Window> {
    let what = format!("`window` of {of}");
    let mut o = Obj::new(n, &what, d)?;
    let allowed_lateness = match o.take("allowed-lateness") {
        None => Some(Duration::ZERO),
        Some(t) => {
            let what = format!("`allowed-lateness` in {what}");
            bound(t, &what, d).filter(|l| whole_ms(t, l, &what, d))
        }
    };
    let time = match o.take("time") {
        None => Some(TimeDomain::Event),
        Some(t) => match as_str(t) {
            Some("event") => Some(TimeDomain::Event),
            Some("processing") => Some(TimeDomain::Processing),
            _ => {
                d.error_hint(
                    pos(t),
                    format!("`time` in {what} cannot be {}", describe(t)),
                    "choose `event` or `processing`",
                );
                None
            }
        },
    };
    let kind = component(
        &mut o,
        n,
        &what,
        ("window", &catalog.windows[..]),
        WINDOW_FIELDS,
        d,
    );
    Some(Window {
        kind: kind?,
        allowed_lateness: allowed_lateness?,
        time: time?,
    })
}

fn state(n: &Node<'_>, d: &mut Diagnostics) -> Option<State> {
    let what = "`state`";
    let mut o = Obj::new(n, what, d)?;
    let mut s = State::default();
    let mut ok = true;
    if let Some(p) = o.take("dir") {
        s.dir = string(p, &format!("`dir` in {what}"), d).map(PathBuf::from);
        ok &= s.dir.is_some();
    }
    if let Some(t) = o.take("commit-interval") {
        s.commit_interval = duration(t, &format!("`commit-interval` in {what}"), d);
        ok &= s.commit_interval.is_some();
    }
    o.finish(&["dir", "commit-interval"], d);
    ok.then_some(s)
}

/// One of `choices`, or an error with the closest.
fn choice<'c>(
    n: &Node<'_>,
    what: &str,
    choices: &[&'c str],
    d: &mut Diagnostics,
) -> Option<&'c str> {
    let found = as_str(n).and_then(|s| choices.iter().find(|c| **c == s).copied());
    if found.is_none() {
        let hint = as_str(n)
            .and_then(|s| did_you_mean(s, choices.iter().copied()))
            .unwrap_or_else(|| format!("choose one of: {}", choices.join(", ")));
        d.error_hint(pos(n), format!("{what} cannot be {}", describe(n)), hint);
    }
    found
}

fn checkpoint(n: &Node<'_>, d: &mut Diagnostics) -> Option<Checkpoint> {
    let what = "`checkpoint`";
    let mut o = Obj::new(n, what, d)?;
    let interval = o
        .require("interval", pos(n), d)
        .and_then(|t| duration(t, &format!("`interval` in {what}"), d));
    o.finish(&["interval"], d);
    // A bad interval has been reported; the rest of the manifest is still checked as one
    // with checkpoints.
    Some(Checkpoint {
        interval: interval.unwrap_or(Duration::from_secs(10)),
    })
}

fn sink(name: &str, n: &Node<'_>, catalog: &Catalog, d: &mut Diagnostics) -> Option<Sink> {
    let what = format!("sink `{name}`");
    let mut o = Obj::new(n, &what, d)?;
    let ins = o
        .require("inputs", pos(n), d)
        .and_then(|i| inputs(i, &what, d));
    let kind = component(
        &mut o,
        n,
        &what,
        ("sink", &catalog.sinks[..]),
        SINK_FIELDS,
        d,
    );
    Some(Sink {
        kind: kind?,
        inputs: ins?,
    })
}

fn operator(name: &str, n: &Node<'_>, catalog: &Catalog, d: &mut Diagnostics) -> Option<Operator> {
    let what = format!("operator `{name}`");
    let mut o = Obj::new(n, &what, d)?;
    let plugin = match o.take("plugin") {
        None if o.has("join") => Some(PluginRef::Builtin(join::MERGE.into())),
        None => {
            o.require("plugin", pos(n), d);
            None
        }
        Some(p) => string(p, &format!("`plugin` of {what}"), d).map(|p| PluginRef::parse(&p)),
    };
    let config = match o.take("config").map(to_json) {
        None => Some(Value::Null),
        Some(Ok(v)) => Some(v),
        Some(Err((at, msg))) => {
            d.error(at, format!("`config` of {what}: {msg}"));
            None
        }
    };
    let join = match o.take("join") {
        None => Some(None),
        Some(j) => join::parse(j, &what, catalog, d).map(Some),
    };
    let ins = match (o.take("inputs"), &join) {
        (None, Some(Some(j))) => Some(vec![j.left.clone(), j.right.clone()]),
        (Some(i), Some(Some(_))) => {
            d.error_hint(
                pos(i),
                format!("{what} has `inputs` and a `join`"),
                "a join's inputs are its `left` and `right`: remove `inputs:`",
            );
            None
        }
        // A join that did not parse has its error already.
        (None, None) => None,
        (None, _) => {
            o.require("inputs", pos(n), d);
            None
        }
        (Some(i), _) => inputs(i, &what, d),
    };
    let parallelism = match o.take("parallelism") {
        None => Some(1),
        Some(p) => integer(p, &format!("`parallelism` of {what}"), 1..=1024, d).map(|v| v as u32),
    };
    let key_by = match o.take("key-by") {
        None => Some(None),
        Some(k) => pointer(k, &format!("`key-by` of {what}"), d).map(Some),
    };
    let window = match o.take("window") {
        None => Some(None),
        Some(w) => window(w, &what, catalog, d).map(Some),
    };
    let on_error = on_error(&mut o, &what, d);
    let limits = match o.take("limits") {
        None => Some(Limits::default()),
        Some(n) => limits(n, &what, d),
    };
    let grants = match o.take("grants") {
        None => Some(Grants::default()),
        Some(n) => grants(n, &what, d),
    };
    let outputs = match o.take("outputs") {
        None => Some(Vec::new()),
        Some(n) => outputs(n, &what, d),
    };
    o.finish(OPERATOR, d);
    Some(Operator {
        plugin: plugin?,
        config: config?,
        inputs: ins?,
        parallelism: parallelism?,
        key_by: key_by?,
        on_error: on_error?,
        limits: limits?,
        grants: grants?,
        window: window?,
        outputs: outputs?,
        join: join?,
    })
}

/// `outputs:` of an operator: distinct names, none of them a side output's, at most 31.
fn outputs(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<Vec<String>> {
    let YamlData::Sequence(items) = &n.data else {
        d.error_hint(
            pos(n),
            format!("`outputs` of {what} must be a list, not {}", describe(n)),
            "write `outputs: [valid, invalid]`",
        );
        return None;
    };
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(name) = string(item, &format!("an output of {what}"), d) else {
            ok = false;
            continue;
        };
        let problem = if !name_ok(&name) {
            Some("use letters, digits, - and _")
        } else if Port::SIDE_OUTPUTS.contains(&name.as_str()) {
            Some(
                "`dead-letter` and `late` are side outputs every operator may have; pick another name",
            )
        } else if out.contains(&name) {
            Some("list each output once")
        } else {
            None
        };
        if let Some(hint) = problem {
            d.error_hint(
                pos(item),
                format!("{what} has an invalid output `{name}`"),
                hint,
            );
            ok = false;
        }
        out.push(name);
    }
    if out.len() > Port::MAX_NAMED {
        d.error_hint(
            pos(n),
            format!(
                "{what} declares {} outputs; at most {} are allowed",
                out.len(),
                Port::MAX_NAMED
            ),
            "route by a field to fewer outputs, or chain two routers",
        );
        ok = false;
    }
    ok.then_some(out)
}

fn limits(n: &Node<'_>, of: &str, d: &mut Diagnostics) -> Option<Limits> {
    let what = format!("`limits` of {of}");
    let mut o = Obj::new(n, &what, d)?;
    let mut l = Limits::default();
    let mut ok = true;
    if let Some(m) = o.take("memory") {
        ok &= byte_size(m, &format!("`memory` in {what}"), d)
            .map(|v| l.memory = v)
            .is_some();
    }
    if let Some(t) = o.take("call-timeout") {
        ok &= duration(t, &format!("`call-timeout` in {what}"), d)
            .map(|v| l.call_timeout = v)
            .is_some();
    }
    if let Some(t) = o.take("init-timeout") {
        ok &= duration(t, &format!("`init-timeout` in {what}"), d)
            .map(|v| l.init_timeout = v)
            .is_some();
    }
    o.finish(&["memory", "call-timeout", "init-timeout"], d);
    ok.then_some(l)
}

fn grants(n: &Node<'_>, of: &str, d: &mut Diagnostics) -> Option<Grants> {
    let what = format!("`grants` of {of}");
    let mut o = Obj::new(n, &what, d)?;
    let mut g = Grants::default();
    let mut ok = true;
    if let Some(e) = o.take("env") {
        match &e.data {
            YamlData::Sequence(items) => {
                for item in items {
                    match string(item, &format!("an `env` entry in {what}"), d) {
                        Some(s) => g.env.push(s),
                        None => ok = false,
                    }
                }
            }
            _ => {
                d.error(
                    pos(e),
                    format!("`env` in {what} must be a list of variable names"),
                );
                ok = false;
            }
        }
    }
    if let Some(dirs) = o.take("dirs") {
        if let Some(mut m) = Obj::new(dirs, &format!("`dirs` in {what}"), d) {
            for i in 0..m.entries.len() {
                m.used[i] = true;
                let (guest, _, host) = m.entries[i];
                match string(host, &format!("host path of `{guest}` in {what}"), d) {
                    Some(h) => {
                        g.dirs.insert(guest.to_owned(), h.into());
                    }
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
    }
    o.finish(&["env", "dirs"], d);
    ok.then_some(g)
}

/// Read the named entries of a top-level section with `read`.
fn section<T>(
    top: &mut Obj<'_, '_>,
    key: &str,
    required: bool,
    d: &mut Diagnostics,
    names: &mut BTreeMap<String, (&'static str, Pos)>,
    kind: &'static str,
    read: impl Fn(&str, &Node<'_>, &mut Diagnostics) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let Some(n) = top.take(key) else {
        if required {
            d.error_hint(
                Pos { line: 1, col: 1 },
                format!("the manifest has no `{key}`"),
                format!("add a `{key}:` section with at least one {kind}"),
            );
        }
        return out;
    };
    let Some(mut o) = Obj::new(n, &format!("`{key}`"), d) else {
        return out;
    };
    if required && o.entries.is_empty() {
        d.error(
            pos(n),
            format!("`{key}` is empty: a topology needs at least one {kind}"),
        );
    }
    for i in 0..o.entries.len() {
        o.used[i] = true;
        let (name, at, node) = o.entries[i];
        if !name_ok(name) {
            d.error_hint(
                at,
                format!("`{name}` is not a valid {kind} name"),
                "use letters, digits, `-` and `_` (a `.` would read as a side output)",
            );
        }
        if let Some((other, _)) = names.get(name) {
            d.error_hint(
                at,
                format!("the name `{name}` is used by a {other} and a {kind}"),
                "give every source, operator and sink its own name",
            );
        } else {
            names.insert(name.to_owned(), (kind, at));
        }
        if let Some(v) = read(name, node, d) {
            out.insert(name.to_owned(), v);
        }
    }
    out
}

/// Load `text` as YAML documents, or report why it is not YAML.
fn load<'t>(text: &'t str, d: &mut Diagnostics) -> Option<Vec<Node<'t>>> {
    match MarkedYaml::load_from_str(text) {
        Ok(docs) => Some(docs),
        Err(e) => {
            let m = e.marker();
            d.error_hint(
                Pos {
                    line: m.line(),
                    col: m.col() + 1,
                },
                format!("this is not valid YAML: {}", e.info()),
                "check the indentation and quoting around this point",
            );
            None
        }
    }
}

/// The manifest's one document, reporting an empty manifest or documents after the first.
fn root<'a, 't>(docs: &'a [Node<'t>], d: &mut Diagnostics) -> Option<&'a Node<'t>> {
    let Some(root) = docs.first() else {
        d.error_hint(
            Pos { line: 1, col: 1 },
            "the manifest is empty",
            "start with `version: 1`",
        );
        return None;
    };
    if docs.len() > 1 {
        d.error(
            pos(&docs[1]),
            "a manifest is one YAML document; remove the `---` and what follows",
        );
    }
    Some(root)
}

/// Check the top-level `version` (it must be there and be 1).
fn check_version(top: &mut Obj<'_, '_>, root: &Node<'_>, d: &mut Diagnostics) {
    match top.take("version") {
        None => d.error_hint(
            pos(root),
            "the manifest has no `version`",
            "add `version: 1`",
        ),
        Some(v) if matches!(v.data, YamlData::Value(Scalar::Integer(1))) => {}
        Some(v) => d.error_hint(
            pos(v),
            format!("unsupported manifest version: {}", describe(v)),
            "this flowlet reads `version: 1`",
        ),
    }
}

/// The top-level `name`, or the file name without extension when it is missing or invalid.
fn topology_name(top: &mut Obj<'_, '_>, file: &Path, d: &mut Diagnostics) -> String {
    top.take("name")
        .and_then(|n| {
            let s = string(n, "`name`", d)?;
            if crate::valid_name(&s) {
                return Some(s);
            }
            d.error_hint(
                pos(n),
                format!("`name` cannot be `{s}`: it must be 1–128 letters, digits, `.`, `_`, `-` or `+`, starting with a letter or digit"),
                "the name is a directory under .flowlet/state and the Kafka group and transactional id: choose one like `orders-v2`",
            );
            None
        })
        .unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "topology".into())
        })
}

/// The top-level `state` and `checkpoint`, reporting a `commit-interval` made moot by checkpoints.
fn state_and_checkpoint(top: &mut Obj<'_, '_>, d: &mut Diagnostics) -> (State, Option<Checkpoint>) {
    let state_node = top.take("state");
    let state = match state_node {
        None => State::default(),
        Some(n) => self::state(n, d).unwrap_or_default(),
    };
    let checkpoint = top.take("checkpoint").and_then(|n| self::checkpoint(n, d));
    if let (Some(_), Some(_), Some(n)) = (&checkpoint, state.commit_interval, state_node) {
        d.error_hint(
            pos(n),
            "`state.commit-interval` has no effect with `checkpoint:`: state is written at each checkpoint",
            "remove `commit-interval`",
        );
    }
    (state, checkpoint)
}

/// The top-level `guarantee` (default exactly-once), reporting one that needs checkpoints
/// when there are none.
fn top_guarantee(
    top: &mut Obj<'_, '_>,
    checkpoint: Option<&Checkpoint>,
    d: &mut Diagnostics,
) -> Guarantee {
    let guarantee_node = top.take("guarantee");
    let guarantee = match guarantee_node {
        None => Guarantee::default(),
        Some(n) => {
            let g = choice(
                n,
                "`guarantee`",
                &["at-most-once", "at-least-once", "exactly-once"],
                d,
            );
            match g {
                Some("at-most-once") => Guarantee::AtMostOnce,
                Some("at-least-once") => Guarantee::AtLeastOnce,
                _ => Guarantee::ExactlyOnce,
            }
        }
    };
    if let (Some(n), None, false) = (
        guarantee_node,
        checkpoint,
        guarantee == Guarantee::AtMostOnce,
    ) {
        d.error_hint(
            pos(n),
            format!("`guarantee: {guarantee}` needs checkpoints"),
            "add `checkpoint: {interval: 5s}`",
        );
    }
    guarantee
}

/// The sources, operators and sinks of a topology, read from its top-level sections.
struct Components {
    sources: BTreeMap<String, Source>,
    operators: BTreeMap<String, Operator>,
    sinks: BTreeMap<String, Sink>,
    /// Where each of them is named.
    positions: BTreeMap<String, Pos>,
}

/// Read the `sources`, `operators` and `sinks` sections, in that order, checking that every
/// name is used once.
fn components(top: &mut Obj<'_, '_>, catalog: &Catalog, d: &mut Diagnostics) -> Components {
    let mut names = BTreeMap::new();
    let sources = section(
        top,
        "sources",
        true,
        d,
        &mut names,
        "source",
        |name, n, d| source(name, n, catalog, d),
    );
    let operators = section(
        top,
        "operators",
        false,
        d,
        &mut names,
        "operator",
        |name, n, d| operator(name, n, catalog, d),
    );
    let sinks = section(top, "sinks", true, d, &mut names, "sink", |name, n, d| {
        sink(name, n, catalog, d)
    });
    Components {
        sources,
        operators,
        sinks,
        positions: names.into_iter().map(|(k, (_, p))| (k, p)).collect(),
    }
}

/// Parse a manifest's YAML. `file` is used for messages and to resolve relative paths. Returns
/// what could be read (entries with errors are left out) and the problems found.
pub(crate) fn parse(text: &str, file: &Path, catalog: &Catalog) -> (Option<Manifest>, Diagnostics) {
    let mut d = Diagnostics::new(file);
    let Some(docs) = load(text, &mut d) else {
        return (None, d);
    };
    let Some(root) = root(&docs, &mut d) else {
        return (None, d);
    };
    let Some(mut top) = Obj::new(root, "the manifest", &mut d) else {
        return (None, d);
    };
    check_version(&mut top, root, &mut d);
    let name = topology_name(&mut top, file, &mut d);
    let batch_size = top
        .take("batch-size")
        .and_then(|n| integer(n, "`batch-size`", 1..=65_536, &mut d))
        .map(|v| v as u32);
    let (state, checkpoint) = state_and_checkpoint(&mut top, &mut d);
    let guarantee = top_guarantee(&mut top, checkpoint.as_ref(), &mut d);
    let components = components(&mut top, catalog, &mut d);
    top.finish(TOP, &mut d);
    let manifest = Manifest {
        version: 1,
        name,
        batch_size,
        sources: components.sources,
        operators: components.operators,
        sinks: components.sinks,
        state,
        checkpoint,
        guarantee,
        base_dir: file.parent().map(Path::to_owned).unwrap_or_default(),
        positions: components.positions,
        warnings: Vec::new(),
    };
    (Some(manifest), d)
}
