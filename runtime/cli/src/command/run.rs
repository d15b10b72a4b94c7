//! `flowlet run MANIFEST`: run a topology to the end of its bounded sources (or Ctrl-C), then
//! print what each node did as one table on stderr (`--stats`: as JSON instead).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use flowlet_dataflow::{CHECKPOINTS, NodeStats, RunOptions, RunReport};
use flowlet_manifest::Manifest;

use super::Globals;

#[derive(clap::Args)]
pub struct Args {
    manifest: PathBuf,
    /// Print the per-node counters as JSON on stderr at the end (instead of the table).
    #[arg(long)]
    stats: bool,
    /// Ignore the state, positions and outputs of earlier runs.
    #[arg(long)]
    from_scratch: bool,
    /// Start from a savepoint written by `flowlet savepoint`.
    #[arg(long, value_name = "FILE", conflicts_with = "from_scratch")]
    from_savepoint: Option<PathBuf>,
}

impl Args {
    pub async fn run(self, g: &Globals) -> anyhow::Result<()> {
        let m = crate::load_manifest(&self.manifest)?;
        if m.checkpoint.is_none() && (self.from_scratch || self.from_savepoint.is_some()) {
            bail!(
                "{} has no `checkpoint:`, so there is nothing to resume or restore: add `checkpoint: {{interval: 5s}}` or drop the flag",
                self.manifest.display()
            );
        }
        // Before the (possibly slow) engine start: the state directory is taken at once.
        let state_lock = match m.checkpoint {
            Some(_) => Some(crate::lock_state_dir(&m).await?),
            None => None,
        };
        let host = g.host()?;
        let options = RunOptions {
            from_scratch: self.from_scratch,
            from_savepoint: self.from_savepoint,
            state_lock,
            ..RunOptions::default()
        };
        let started = Instant::now();
        let report = crate::run_manifest(&host, &m, options).await?;
        let secs = started.elapsed().as_secs_f64();
        if self.stats {
            eprintln!("{}", serde_json::to_string(&report)?);
        } else if g.json_logs {
            let nodes = serde_json::to_string(&report.nodes)?;
            tracing::info!(topology = %m.name, secs, nodes, "finished");
        } else {
            eprint!("{}", summary(&m, &report, secs));
        }
        Ok(())
    }
}

/// The columns of the summary: a header and the counter it shows. Columns that are zero for
/// every node are left out.
/// A column: its header and the counter it shows.
type Column = (&'static str, fn(&NodeStats) -> u64);

const COLUMNS: [Column; 8] = [
    ("in", |s| s.events_in),
    ("out", |s| s.events_out),
    ("rejected", |s| s.rejected),
    ("skipped", |s| s.skipped),
    ("dead-lettered", |s| s.dead_lettered),
    ("late", |s| s.late),
    ("windows", |s| s.windows_fired),
    ("restarts", |s| s.restarts),
];

/// What each node did, as a table (sources, then operators, then sinks, in manifest order).
pub fn summary(m: &Manifest, report: &RunReport, secs: f64) -> String {
    let rows: Vec<(&str, &str, &NodeStats)> = [
        ("source", m.sources.keys().collect::<Vec<_>>()),
        ("operator", m.operators.keys().collect()),
        ("sink", m.sinks.keys().collect()),
    ]
    .into_iter()
    .flat_map(|(kind, names)| {
        names
            .into_iter()
            .filter_map(move |n| Some((n.as_str(), kind, report.nodes.get(n)?)))
    })
    .collect();
    let columns: Vec<_> = COLUMNS
        .iter()
        .enumerate()
        .filter(|(i, (_, get))| *i < 2 || rows.iter().any(|(_, _, s)| get(s) > 0))
        .map(|(_, c)| c)
        .collect();
    let name_width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(4).max(4);
    let mut out = format!("topology `{}` finished in {secs:.3}s\n", m.name);
    let _ = write!(out, "{:<name_width$}  {:<8}", "node", "kind");
    for (header, _) in &columns {
        let _ = write!(out, "  {header:>13}");
    }
    out.push('\n');
    for (name, kind, stats) in &rows {
        let _ = write!(out, "{name:<name_width$}  {kind:<8}");
        for (_, get) in &columns {
            let _ = write!(out, "  {:>13}", get(stats));
        }
        out.push('\n');
    }
    if let Some(c) = report.nodes.get(CHECKPOINTS).filter(|c| c.commits > 0) {
        let _ = writeln!(
            out,
            "checkpoints: {} taken, {:.1} ms each on average",
            c.commits,
            c.commit_nanos as f64 / c.commits as f64 / 1e6
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_one_aligned_table_without_empty_columns() {
        let text = "version: 1\nname: t\nsources:\n  gen: {kind: generator, count: 3}\noperators:\n  keep:\n    plugin: builtin:aggregate\n    inputs: [gen]\nsinks:\n  out: {kind: \"null\", inputs: [keep]}\n";
        let m = flowlet_manifest::parse_str(text, "t.yaml".as_ref(), &crate::options()).unwrap();
        let stats = |i, o, r| NodeStats {
            events_in: i,
            events_out: o,
            rejected: r,
            ..NodeStats::default()
        };
        let mut report = RunReport::default();
        report.nodes.insert("gen".into(), stats(0, 3, 0));
        report.nodes.insert("keep".into(), stats(3, 2, 1));
        report.nodes.insert("out".into(), stats(2, 0, 0));
        let got = summary(&m, &report, 1.5);
        let want = "topology `t` finished in 1.500s
node  kind                 in            out       rejected
gen   source                0              3              0
keep  operator              3              2              1
out   sink                  2              0              0
";
        assert_eq!(got, want);
    }
}
