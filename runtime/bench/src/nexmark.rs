//! `flowlet bench nexmark`: one Nexmark query over the `nexmark` source (docs/NEXMARK.md), as
//! Wasm plugins or the same plugins linked natively.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flowlet_dataflow::{RunOptions, Stop};
use flowlet_host::Host;

use crate::Runner;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Query {
    Q0,
    Q1,
    Q2,
    Q3,
    Q5,
    Q7,
    Q8,
    Q9,
    Wc,
}

#[derive(Args)]
pub struct NexmarkArgs {
    #[arg(long, value_enum)]
    query: Query,
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Run the queries linked natively instead of as Wasm components.
    #[arg(long)]
    native: bool,
    #[arg(long, default_value_t = 1024)]
    batch_size: u32,
    /// Folder with nexmark-queries.wasm and nexmark-windows.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
}

/// The query's operators (the last is named `q`) and the field its checksum sums (`None`: the
/// number of outputs).
pub fn operators(
    query: Query,
    queries: &str,
    windows: &str,
    winning: &str,
) -> (String, Option<&'static str>) {
    let stateless = |q: &str| {
        format!("  q:\n    plugin: {queries}\n    config: {{query: {q}}}\n    inputs: [events]")
    };
    match query {
        Query::Q0 => (stateless("q0"), None),
        Query::Q1 => (stateless("q1"), Some("/price")),
        Query::Q2 => (stateless("q2"), Some("/price")),
        Query::Q7 => (
            format!(
                "  q:\n    plugin: {windows}\n    config: {{query: q7}}\n    window: {{kind: tumbling, size: 10s}}\n    inputs: [events]"
            ),
            Some("/price"),
        ),
        Query::Wc => (
            format!(
                "  q:\n    plugin: {windows}\n    config: {{query: wc}}\n    key-by: /bid/auction\n    window: {{kind: tumbling, size: 10s}}\n    inputs: [events]"
            ),
            Some("/count"),
        ),
        // The join queries: a select routing persons and auctions to two outputs, a join kept
        // by the host, and a shape of the merged pairs.
        Query::Q3 => (
            format!(
                "  select:\n    plugin: {queries}\n    config: {{query: q3-select}}\n    outputs: [persons, auctions]\n    inputs: [events]\n  join:\n    join: {{kind: temporal, left: select.auctions, right: select.persons, left-key: /auction/seller, right-key: /person/id}}\n  q:\n    plugin: {queries}\n    config: {{query: q3-shape}}\n    inputs: [join]"
            ),
            Some("/auction"),
        ),
        Query::Q8 => (
            format!(
                "  select:\n    plugin: {queries}\n    config: {{query: q8-select}}\n    outputs: [persons, auctions]\n    inputs: [events]\n  join:\n    join: {{kind: window, type: semi, left: select.persons, right: select.auctions, left-key: /person/id, right-key: /auction/seller, window: {{kind: tumbling, size: 10s}}}}\n  q:\n    plugin: {queries}\n    config: {{query: q8-shape}}\n    inputs: [join]"
            ),
            Some("/person"),
        ),
        Query::Q9 => (
            format!(
                "  select:\n    plugin: {queries}\n    config: {{query: q9-select}}\n    outputs: [auctions, bids]\n    inputs: [events]\n  join:\n    join: {{kind: interval, left: select.auctions, right: select.bids, left-key: /auction/id, right-key: /bid/auction, between: [0ms, 9999ms]}}\n  q:\n    plugin: {winning}\n    key-by: /left/auction/id\n    inputs: [join]"
            ),
            Some("/price"),
        ),
        Query::Q5 => (
            format!(
                "  counts:\n    plugin: {windows}\n    config: {{query: q5-count}}\n    key-by: /bid/auction\n    window: {{kind: sliding, size: 10s, slide: 2s}}\n    inputs: [events]\n  q:\n    plugin: {windows}\n    config: {{query: q5-max}}\n    window: {{kind: tumbling, size: 2s}}\n    inputs: [counts]"
            ),
            Some("/count"),
        ),
    }
}

/// The reference results of docs/NEXMARK.md: (outputs, checksum).
fn reference(query: Query, events: u64) -> Option<(u64, u64)> {
    Some(match (query, events) {
        (Query::Q0, 1_000_000) => (1_000_000, 1_000_000),
        (Query::Q1, 1_000_000) => (920_000, 4_172_036_428_692),
        (Query::Q2, 1_000_000) => (7_312, 36_677_481_512),
        (Query::Q5, 1_000_000) => (54, 5_431),
        (Query::Q7, 1_000_000) => (10, 99_999_328),
        (Query::Wc, 1_000_000) => (60_778, 920_000),
        (Query::Q3, 1_000_000) => (4_777, 148_706_686),
        (Query::Q8, 1_000_000) => (20_000, 219_990_000),
        (Query::Q9, 1_000_000) => (59_993, 560_454_271_189),
        (Query::Q9, 10_000_000) => (599_992, 5_607_749_263_287),
        (Query::Q3, 10_000_000) => (48_119, 14_445_665_056),
        (Query::Q8, 10_000_000) => (200_000, 20_199_900_000),
        (Query::Q0, 10_000_000) => (10_000_000, 10_000_000),
        (Query::Q1, 10_000_000) => (9_200_000, 41_759_599_921_551),
        (Query::Q2, 10_000_000) => (73_651, 368_113_365_094),
        (Query::Q5, 10_000_000) => (504, 19_633),
        (Query::Q7, 10_000_000) => (100, 999_997_459),
        (Query::Wc, 10_000_000) => (608_611, 9_200_000),
        _ => return None,
    })
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The plugins of the query: (queries, windows, winning bids).
fn plugins(a: &NexmarkArgs) -> anyhow::Result<(String, String, String)> {
    let dir = || {
        std::fs::canonicalize(&a.plugins).with_context(|| {
            format!(
                "plugin folder {}: build the plugins first (scripts/build-plugins)",
                a.plugins.display()
            )
        })
    };
    let (queries, windows) = if a.native {
        (
            "builtin:nexmark-queries".to_string(),
            "builtin:nexmark-windows".to_string(),
        )
    } else {
        (
            dir()?.join("nexmark-queries.wasm").display().to_string(),
            dir()?.join("nexmark-windows.wasm").display().to_string(),
        )
    };
    // q9's last step is a stateful plugin, which is not linked natively: Wasm in both modes.
    let winning = match a.query {
        Query::Q9 => dir()?
            .join("nexmark-winning-bids.wasm")
            .display()
            .to_string(),
        _ => String::new(),
    };
    Ok((queries, windows, winning))
}

pub(crate) async fn nexmark(a: NexmarkArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    let (queries, windows, winning) = plugins(&a)?;
    let (ops, field) = operators(a.query, &queries, &windows, &winning);
    let checksum = field.map_or(String::new(), |f| format!(", checksum: {f}"));
    let text = format!(
        "version: 1\nname: nexmark\nbatch-size: {}\nsources:\n  events: {{kind: nexmark, events: {}}}\noperators:\n{ops}\nsinks:\n  out: {{kind: \"null\", inputs: [q]{checksum}}}\n",
        a.batch_size, a.events
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nexmark.yaml");
    std::fs::write(&path, &text)?;
    let m = crate::runner::load(fl, &path)?;
    let options = RunOptions::default();
    let live = options.live.clone();
    let cpu0 = flowlet_dataflow::bench::process_cpu();
    let started = Instant::now();
    let report = fl.run(&host, &m, options, Stop::new()).await?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = (flowlet_dataflow::bench::process_cpu() - cpu0).as_secs_f64();
    let out = &report.nodes["out"];
    let outputs = out.events_in;
    let sum = if field.is_some() {
        out.checksum
    } else {
        outputs
    };
    let q = live.counters("q").context("the query operator")?;
    let ms = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "query {:?} ({}), {} events, batch {}",
        a.query,
        match (a.native, a.query) {
            (true, Query::Q9) => "native, but nexmark-winning-bids as Wasm",
            (true, _) => "native",
            _ => "wasm",
        },
        a.events,
        a.batch_size
    );
    println!("  events/s      {:.0}", a.events as f64 / secs);
    println!("  seconds       {secs:.2}");
    println!("  CPU seconds   {cpu:.2}");
    println!("  peak RSS      {:.0} MiB", peak_rss_mib());
    println!(
        "  batch latency p50 {:.3} ms, p99 {:.3} ms (operator `q`, per batch handled)",
        ms(q.batch_latency.percentile(50.0)),
        ms(q.batch_latency.percentile(99.0))
    );
    println!("  outputs       {outputs}");
    println!("  checksum      {sum}");
    match reference(a.query, a.events) {
        Some(r) if r == (outputs, sum) => println!("  reference     matches docs/NEXMARK.md"),
        Some((o, c)) => {
            anyhow::bail!(
                "the result differs from docs/NEXMARK.md: expected {o} outputs and checksum {c}"
            )
        }
        None => println!("  reference     none for {} events", a.events),
    }
    Ok(())
}
