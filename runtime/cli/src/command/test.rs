//! `flowlet test PLUGIN --input events.jsonl --expect expected.jsonl`: run one component (any
//! language) through the real host and executor over a file of events and compare what it
//! emits with the expected events, line by line as JSON; `--bless` writes the expected file.
//! An operator repository's CI then needs only the flowlet binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

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
    /// Write what the operator emitted to `--expect` instead of comparing.
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
        let report = crate::run_manifest(&g.host()?, &m, Default::default()).await?;
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        let stats = &report.nodes["operator"];
        if stats.dead_lettered > 0 {
            eprintln!(
                "{} input events rejected (their dead letters are above)",
                stats.dead_lettered
            );
        }
        if self.bless {
            std::fs::write(&self.expect, &got)
                .with_context(|| format!("cannot write {}", self.expect.display()))?;
            println!("{}: {} events written", self.expect.display(), got.lines().count());
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
