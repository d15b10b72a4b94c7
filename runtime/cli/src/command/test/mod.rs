//! `flowlet test PLUGIN --input events.jsonl --expect expected.jsonl`: run one component (any
//! language) through the real host and executor over a file of events and compare what it
//! emits with the expected events, line by line as JSON; `--bless` writes the expected file.
//! An operator repository's CI then needs only the flowlet binary.
//!
//! Time is the test's: processing time is a virtual clock (`--processing-time`, then the
//! input's `{"@processing-time": T}` lines), and the watermark follows the event times after
//! every `--watermark-steps` events or jumps at `{"@watermark": T}` lines (script.rs). So
//! windows, timers and TTLs fire at the same points on every run. `--expect-state` compares
//! the keyed state the operator leaves.

mod script;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use flowlet_dataflow::{Clock, LiveStats, ManualClock, RunOptions};

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    /// The component to test (a processor, a stateful processor, or an aggregate with
    /// `--window`).
    plugin: PathBuf,
    /// The input events, one JSON document per line.
    #[arg(long)]
    input: PathBuf,
    /// The events the operator must emit, one JSON document per line, in order.
    #[arg(long)]
    expect: PathBuf,
    /// The operator's `config:` (YAML or JSON), e.g. `{field: /amount, op: ge, value: 500}`.
    #[arg(long, default_value = "null")]
    config: String,
    /// JSON pointer of the key (stateful processors and aggregates need one).
    #[arg(long, value_name = "POINTER")]
    key_by: Option<String>,
    /// JSON pointer of the event time (milliseconds or RFC 3339); watermarks follow it, and
    /// the end of the input fires every window and event-time timer.
    #[arg(long, value_name = "POINTER")]
    event_time: Option<String>,
    /// The window of an aggregate (YAML), e.g. `{kind: tumbling, size: 1m}`.
    #[arg(long)]
    window: Option<String>,
    /// The watermark follows the event times after every N events (lines
    /// `{"@watermark": T}` in the input move it explicitly).
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    watermark_steps: u32,
    /// Where the virtual processing-time clock starts, in ms (lines `{"@processing-time": T}`
    /// in the input move it: timers fire and state TTLs expire by it).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    processing_time: i64,
    /// The keyed state the operator must leave, one JSON line per entry
    /// (`{"key", "kind", "name", "map-key", "value"}`, sorted); `--bless` writes it too.
    #[arg(long, value_name = "FILE")]
    expect_state: Option<PathBuf>,
    /// Write what the operator emitted to `--expect` (and its state to `--expect-state`)
    /// instead of comparing.
    #[arg(long)]
    bless: bool,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let abs = |p: &Path| {
            std::fs::canonicalize(p).with_context(|| format!("cannot read {}", p.display()))
        };
        let (plugin, input) = (abs(&self.plugin)?, abs(&self.input)?);
        let out = dir.path().join("out.jsonl");
        let path = dir.path().join("test.yaml");
        std::fs::write(&path, self.manifest(&plugin, &input, &out))?;
        let m = crate::load_manifest(&path).context("the test's options")?;
        let clock = ManualClock::new(self.processing_time);
        let live = LiveStats::default();
        let script = script::Script {
            path: input,
            clock: clock.clone(),
            live: live.clone(),
            step: self.watermark_steps as usize,
        };
        let options = RunOptions {
            clock: clock.clone(),
            live,
            connectors: Some(Arc::new(script::TestConnect {
                inner: flowlet_connectors::connectors(),
                script: Mutex::new(Some(script)),
            })),
            ..Default::default()
        };
        let report = crate::run_manifest(&g.host()?, &m, options).await?;
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        let state = match &self.expect_state {
            Some(_) => Some(state_lines(&m, clock.now())?),
            None => None,
        };
        let stats = &report.nodes["operator"];
        if stats.dead_lettered > 0 {
            eprintln!(
                "{} input events rejected (their dead letters are above)",
                stats.dead_lettered
            );
        }
        if self.bless {
            for (path, text) in [(Some(&self.expect), &got)]
                .into_iter()
                .chain([(self.expect_state.as_ref(), state.as_ref().unwrap_or(&got))])
            {
                let Some(path) = path else { continue };
                std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("{}: {} lines written", path.display(), text.lines().count());
            }
            return Ok(());
        }
        let want = std::fs::read_to_string(&self.expect).with_context(|| {
            format!(
                "cannot read {} (write it with --bless)",
                self.expect.display()
            )
        })?;
        compare(&got, &want, &self.expect)?;
        println!("ok: {} events as expected", want.lines().count());
        if let (Some(path), Some(state)) = (&self.expect_state, &state) {
            let want = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read {} (write it with --bless)", path.display())
            })?;
            compare(state, &want, path).context("the operator's state after the run")?;
            println!("ok: {} state entries as expected", want.lines().count());
        }
        Ok(())
    }

    /// The topology of the test: the input file → the operator → a file; its dead letters to
    /// standard error.
    fn manifest(&self, plugin: &Path, input: &Path, out: &Path) -> String {
        let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("JSON");
        let event_time = match &self.event_time {
            Some(p) => format!(", event-time: {{field: {}}}", serde_json::json!(p)),
            None => String::new(),
        };
        let mut op = format!(
            "    plugin: {}\n    config: {}\n    inputs: [events]\n    on-error: dead-letter\n",
            quote(plugin),
            self.config
        );
        if let Some(k) = &self.key_by {
            op.push_str(&format!("    key-by: {}\n", serde_json::json!(k)));
        }
        if let Some(w) = &self.window {
            op.push_str(&format!("    window: {w}\n"));
        }
        format!(
            "version: 1\nname: flowlet-test\nsources:\n  events: {{kind: file, path: {}{event_time}}}\noperators:\n  operator:\n{op}sinks:\n  out: {{kind: file, path: {}, inputs: [operator]}}\n  rejected: {{kind: stdout, inputs: [operator.dead-letter]}}\n",
            quote(input),
            quote(out),
        )
    }
}

/// The keyed state the operator left, one JSON line per entry, sorted by key, name, map key.
fn state_lines(m: &flowlet_manifest::Manifest, now: i64) -> anyhow::Result<String> {
    use crate::serve::pipelines::bytes_json;
    let db = flowlet_dataflow::state::StateDb::open(&m.state_dir())?;
    let mut out = String::new();
    for (key, e) in flowlet_dataflow::state::stored_state(&db, "operator", now)? {
        let mut line = serde_json::json!({
            "key": bytes_json(&key), "kind": e.kind, "name": e.name, "value": bytes_json(&e.value),
        });
        if let Some(k) = e.map_key {
            line["map-key"] = bytes_json(&k);
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// Compare emitted and expected JSON lines (as JSON values, so key order and spacing do not
/// matter); the error shows the first difference and the counts.
fn compare(got: &str, want: &str, expect: &Path) -> anyhow::Result<()> {
    let parse = |text: &str, what: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{what}, line {}: not JSON: {l}", i + 1))
            })
            .collect()
    };
    let got_v = parse(got, "the operator's output")?;
    let want_v = parse(want, &expect.display().to_string())?;
    if let Some(i) = (0..got_v.len().max(want_v.len())).find(|&i| got_v.get(i) != want_v.get(i))
    {
        let show = |v: Option<&serde_json::Value>| v.map_or("(nothing)".into(), |v| v.to_string());
        bail!(
            "the output differs from {} at event {}:\n  expected: {}\n  got:      {}\n({} events expected, {} emitted; --bless to accept the output)",
            expect.display(),
            i + 1,
            show(want_v.get(i)),
            show(got_v.get(i)),
            want_v.len(),
            got_v.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparing_ignores_key_order_and_names_the_first_difference() {
        let p = Path::new("e.jsonl");
        compare("{\"a\":1,\"b\":2}\n", "{\"b\": 2, \"a\": 1}\n\n", p).unwrap();
        let err = compare("{\"a\":1}\n{\"a\":3}\n", "{\"a\":1}\n{\"a\":2}\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at event 2"), "{err}");
        assert!(err.contains("expected: {\"a\":2}"), "{err}");
        let err = compare("{\"a\":1}\n", "{\"a\":1}\n{\"a\":2}\n", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("got:      (nothing)"), "{err}");
        assert!(err.contains("2 events expected, 1 emitted"), "{err}");
        let err = compare("x\n", "", p).unwrap_err().to_string();
        assert!(err.contains("not JSON"), "{err}");
    }
}
