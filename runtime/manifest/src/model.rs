//! The validated manifest. Field names are the manifest's (kebab-case); `flowlet schema` and
//! `docs/manifest.schema.json` are generated from these types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;

pub use flowlet_types::json::Pointer;

use crate::diag::Pos;

/// A topology: named sources, operators and sinks wired by their `inputs`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; must be 1.
    pub version: u32,
    /// Topology name (defaults to the file name without extension).
    #[serde(default)]
    pub name: String,
    /// Events per batch when a source does not say (default 256).
    #[serde(default)]
    pub batch_size: Option<u32>,
    pub sources: BTreeMap<String, Source>,
    #[serde(default)]
    pub operators: BTreeMap<String, Operator>,
    pub sinks: BTreeMap<String, Sink>,
    /// Where keyed state and window contents are kept.
    #[serde(default)]
    pub state: State,
    /// Consistent checkpoints: state, open windows, timers, watermarks and source positions
    /// saved together every `interval`; a restarted run resumes from the last one.
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
    /// What a crash may do to the output: lose events (`at-most-once`), repeat events since
    /// the last checkpoint (`at-least-once`), or neither (`exactly-once`, the default).
    #[serde(default)]
    pub guarantee: Guarantee,
    /// Where the manifest was read from; relative paths in it are relative to its folder.
    #[serde(skip)]
    #[schemars(skip)]
    pub base_dir: PathBuf,
    /// Where each source, operator and sink is named in the manifest.
    #[serde(skip)]
    #[schemars(skip)]
    pub positions: BTreeMap<String, Pos>,
    /// What validation found that is allowed but probably not meant (`FILE:LINE:COL: warning:
    /// …`), e.g. a named output nobody reads.
    #[serde(skip)]
    #[schemars(skip)]
    pub warnings: Vec<String>,
}

/// Where events come from: a connector (`generator`, `file`, `kafka`, …) and what every
/// source has.
#[derive(Debug, Clone)]
pub struct Source {
    /// The connector and its configuration, as the connector's module parsed it.
    pub kind: Component,
    /// Events per batch (1–65536).
    pub batch_size: Option<u32>,
    /// Where event time comes from and how far it may be out of order. Absent: the source's own
    /// timestamps (file and stdin: the time a line is read; generator: its synthetic clock),
    /// in order.
    pub event_time: Option<EventTime>,
    /// What happens to an event whose event time cannot be read: `fail` (default) stops the
    /// topology naming the source and the event, `skip` drops it (counted), `dead-letter` sends
    /// it to `SOURCE.dead-letter`.
    pub on_error: OnError,
}

/// A source's event time and watermarks.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EventTime {
    /// JSON pointer to the event's time: milliseconds since the Unix epoch, or an RFC 3339
    /// string. Absent: the source's own timestamp.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub field: Option<Pointer>,
    /// How much later than the newest event an event may arrive and still be on time, e.g.
    /// `4s`: the watermark trails the largest timestamp seen by this much (default 0).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_out_of_orderness: Duration,
    /// After this long without events the source is idle and stops holding back the watermark
    /// of the operators it feeds, e.g. `30s`. Absent: never idle.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Duration>,
}

/// Keyed state: a sled database with one tree per stateful operator.
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct State {
    /// Directory of the state database, relative to the manifest. Absent:
    /// `.flowlet/state/<topology name>` next to the manifest.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How often changes kept in memory are written to the database, e.g. `10s` (default 10s;
    /// always at the end of a run).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub commit_interval: Option<Duration>,
}

/// `checkpoint:` of a topology.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Checkpoint {
    /// Time between checkpoints (`5s`).
    #[schemars(with = "String")]
    pub interval: Duration,
}

/// Delivery guarantee of a topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Nothing is replayed after a crash: events in flight are lost, none is repeated.
    AtMostOnce,
    /// Everything since the last checkpoint is replayed: nothing is lost, some output may
    /// repeat.
    AtLeastOnce,
    /// Replayed output is discarded (files truncated, Kafka transactions aborted): every
    /// event's effect appears once.
    #[default]
    ExactlyOnce,
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AtMostOnce => "at-most-once",
            Self::AtLeastOnce => "at-least-once",
            Self::ExactlyOnce => "exactly-once",
        })
    }
}

/// A Wasm (or built-in) operator.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Operator {
    /// Path of the component (relative to the manifest), or `builtin:NAME`.
    pub plugin: PluginRef,
    /// Handed to the operator's `init` as JSON.
    #[serde(default)]
    pub config: serde_json::Value,
    pub inputs: Vec<Input>,
    /// Instances (1–1024).
    #[serde(default = "one")]
    pub parallelism: u32,
    /// JSON pointer to the key: events with the same key go to the same instance.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub key_by: Option<Pointer>,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
    /// Make this a window aggregate: the plugin implements the `aggregator` world.
    #[serde(default)]
    pub window: Option<Window>,
    /// Named outputs besides the main one (at most 31), e.g. `[valid, invalid]`: the plugin
    /// routes each event to the main output, to some of these, or to several; a node reads one
    /// as `OPERATOR.NAME`. Plugins of contract 0.2 only.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Make this a join of two of its inputs: the host keeps both sides' events in keyed state
    /// and emits the pairs that match (see [`Join`]). Without `plugin:` the pair is merged into
    /// `{"left": …, "right": …}` (and `"window"` for window joins).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub join: Option<Join>,
}

/// `join:` of an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    /// The left input (as written in `inputs:`): every left event appears in the output
    /// (outer), or only with matches (inner), or once if it has any (semi).
    pub left: Input,
    pub right: Input,
    /// JSON pointers to each side's join key (default: the operator's `key-by`).
    pub left_key: Option<Pointer>,
    pub right_key: Option<Pointer>,
    pub mode: JoinMode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JoinKind {
    /// Pairs with `left.ts + lower <= right.ts <= left.ts + upper` (milliseconds, either may be
    /// negative).
    Interval { lower: i64, upper: i64 },
    /// Pairs of the same window (tumbling, sliding, cumulative), fired with the window.
    Window(Window),
    /// Each left event with the right event (a version of the key's value) latest at or before
    /// its time, at most `ttl` older.
    Temporal { ttl: Option<Duration> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JoinMode {
    #[default]
    Inner,
    LeftOuter,
    /// Each left event once when it has a match (per window, for window joins).
    Semi,
}

impl Join {
    /// Which side an input is: `Some(true)` left, `Some(false)` right.
    pub fn side_of(&self, input: &Input) -> Option<bool> {
        if input.node == self.left.node && input.port == self.left.port {
            Some(true)
        } else if input.node == self.right.node && input.port == self.right.port {
            Some(false)
        } else {
            None
        }
    }
}

/// The windows of a window aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The window kind (`tumbling`, `sliding`, `session`, …) with its configuration, as the
    /// kind's module in the executor parsed it.
    pub kind: Component,
    /// How long after a window's end (in event time) late events still update it; the window
    /// fires again with the updated result. Later events go to `OPERATOR.late` (default 0).
    pub allowed_lateness: Duration,
    /// `event` (default): windows of event time, fired by watermarks. `processing`: windows of
    /// the operator's clock, fired by the clock.
    pub time: TimeDomain,
}

/// A component of a kind the manifest does not know itself (a connector, a window kind) and
/// its configuration, parsed by the kind's module (see [`crate::Catalog`]).
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: &'static str,
    pub spec: std::sync::Arc<dyn crate::Spec>,
}

impl Component {
    /// The configuration as the type the kind's module parsed it into.
    pub fn spec<T: 'static>(&self) -> Option<&T> {
        self.spec.downcast_ref()
    }
}

impl PartialEq for Component {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && format!("{:?}", self.spec) == format!("{:?}", other.spec)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TimeDomain {
    #[default]
    Event,
    Processing,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum PluginRef {
    Path(PathBuf),
    #[schemars(skip)]
    Builtin(String),
    /// `name@version` of a `flowlet serve` plugin registry.
    #[schemars(skip)]
    Registry {
        name: String,
        version: String,
    },
    /// `sha256:<hex>`: a plugin of a `flowlet serve` registry by digest.
    #[schemars(skip)]
    Digest(String),
}

impl PluginRef {
    /// `builtin:NAME`, `sha256:HEX`, `NAME@VERSION` (no `/`, not a `.wasm` file), else a path.
    pub fn parse(text: &str) -> Self {
        if let Some(b) = text.strip_prefix("builtin:") {
            return Self::Builtin(b.to_owned());
        }
        if let Some(d) = text.strip_prefix("sha256:") {
            return Self::Digest(d.to_owned());
        }
        if !text.contains('/')
            && !text.ends_with(".wasm")
            && let Some((name, version)) = text.split_once('@')
        {
            return Self::Registry {
                name: name.to_owned(),
                version: version.to_owned(),
            };
        }
        Self::Path(PathBuf::from(text))
    }
}

impl std::fmt::Display for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Builtin(b) => write!(f, "builtin:{b}"),
            Self::Registry { name, version } => write!(f, "{name}@{version}"),
            Self::Digest(d) => write!(f, "sha256:{d}"),
        }
    }
}

/// What happens to an event the operator rejects or that makes it fail or trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Stop the topology with an error naming the operator and the event.
    #[default]
    Fail,
    /// Drop the event (counted in the operator's metrics).
    Skip,
    /// Send the event, the error, the operator and the plugin digest to `OPERATOR.dead-letter`.
    DeadLetter,
}

/// Resource limits of each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Limits {
    /// Linear memory cap, e.g. `64MiB`.
    #[schemars(with = "String")]
    pub memory: u64,
    /// Deadline of one `process` call, e.g. `250ms`.
    #[schemars(with = "String")]
    pub call_timeout: Duration,
    /// Deadline of `init`, e.g. `5s`.
    #[schemars(with = "String")]
    pub init_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 64 << 20,
            call_timeout: Duration::from_millis(250),
            init_timeout: Duration::from_secs(5),
        }
    }
}

/// What an operator may reach beyond stderr, clocks and randomness. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Grants {
    /// Environment variables passed through from flowlet's environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Read-only directories: guest path → host path (relative to the manifest).
    #[serde(default)]
    pub dirs: BTreeMap<String, PathBuf>,
}

/// Where events go: a connector (`stdout`, `file`, `kafka`, `http`, …) and its inputs.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The connector and its configuration, as the connector's module parsed it.
    pub kind: Component,
    pub inputs: Vec<Input>,
}

/// The JSON Schemas of `sources:` and `sinks:` entries are the unions of the connectors' (see
/// `json_schema`).
macro_rules! union_schema {
    ($t:ty, $name:literal) => {
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "object" })
            }
        }
    };
}
union_schema!(Source, "Source");
union_schema!(Sink, "Sink");
union_schema!(Window, "Window");

/// An input: a source, an operator, an operator's side output (`OPERATOR.dead-letter`) or one
/// of its named outputs (`OPERATOR.invalid`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(with = "String")]
pub struct Input {
    pub node: String,
    pub port: Port,
    /// Where the input is written in the manifest.
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    Main,
    DeadLetter,
    /// Events too late for their windows (window aggregates only).
    Late,
    /// One of the operator's `outputs:`.
    Named(String),
}

impl Port {
    pub const SIDE_OUTPUTS: [&'static str; 2] = ["dead-letter", "late"];
    /// Most named outputs an operator may declare: bits 1..=31 of a route mask.
    pub const MAX_NAMED: usize = 31;
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.port {
            Port::Main => f.write_str(&self.node),
            Port::DeadLetter => write!(f, "{}.dead-letter", self.node),
            Port::Late => write!(f, "{}.late", self.node),
            Port::Named(n) => write!(f, "{}.{n}", self.node),
        }
    }
}

impl From<Input> for String {
    fn from(i: Input) -> String {
        i.to_string()
    }
}

impl Manifest {
    /// The batch size of `source` (its own, the topology's, or 256).
    pub fn batch_size(&self, source: &Source) -> usize {
        source.batch_size.or(self.batch_size).unwrap_or(256) as usize
    }

    /// The state directory (resolved).
    pub fn state_dir(&self) -> PathBuf {
        match &self.state.dir {
            Some(d) => self.resolve(d),
            None => self.resolve(Path::new(".flowlet/state")).join(&self.name),
        }
    }

    /// Resolve a path written in the manifest.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        self.base_dir.join(path)
    }
}
