//! `flowlet bench route`: splitting one stream three ways with one router (three named
//! outputs) against three filters reading the same input, as Wasm and natively: events/s of
//! the input and CPU seconds, the configurations alternated run by run.

use std::path::PathBuf;

use clap::Args;
use flowlet_host::Host;

use crate::Runner;

#[derive(Args)]
pub struct RouteArgs {
    /// Events per run.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    #[arg(long, default_value_t = 256)]
    batch_size: u32,
    /// Folder with router.wasm and filter.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
    /// Rounds; each runs every configuration once, alternating (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
}

/// The three branches: (output, filter predicate). Disjoint, covering every event.
const BRANCHES: [(&str, &str); 3] = [
    ("small", "{field: /amount, op: lt, value: 100}"),
    ("mid", "{field: /amount, op: lt, value: 900}"),
    ("large", "{field: /amount, op: ge, value: 900}"),
];

fn router_manifest(events: u64, batch: u32, plugin: &str) -> String {
    format!(
        r#"
version: 1
name: bench-route
sources:
  gen: {{kind: generator, count: {events}, batch-size: {batch}}}
operators:
  route:
    plugin: {plugin}
    outputs: [small, mid, large]
    config:
      routes:
        - {{to: small, field: /amount, op: lt, value: 100}}
        - {{to: mid, field: /amount, op: lt, value: 900}}
        - {{to: large, field: /amount, op: ge, value: 900}}
    inputs: [gen]
sinks:
  small: {{kind: "null", inputs: [route.small]}}
  mid: {{kind: "null", inputs: [route.mid]}}
  large: {{kind: "null", inputs: [route.large]}}
"#
    )
}

/// The same split with filters, which see one predicate each: `mid` (the router's first match
/// of `lt 900` after `lt 100`) is `ge 100` then `lt 900`, two chained filters.
fn filters_manifest(events: u64, batch: u32, plugin: &str) -> String {
    format!(
        r#"
version: 1
name: bench-route-filters
sources:
  gen: {{kind: generator, count: {events}, batch-size: {batch}}}
operators:
  small: {{plugin: {plugin}, config: {small}, inputs: [gen]}}
  not-small: {{plugin: {plugin}, config: {{field: /amount, op: ge, value: 100}}, inputs: [gen]}}
  mid: {{plugin: {plugin}, config: {mid}, inputs: [not-small]}}
  large: {{plugin: {plugin}, config: {large}, inputs: [gen]}}
sinks:
  small-out: {{kind: "null", inputs: [small]}}
  mid-out: {{kind: "null", inputs: [mid]}}
  large-out: {{kind: "null", inputs: [large]}}
"#,
        small = BRANCHES[0].1,
        mid = BRANCHES[1].1,
        large = BRANCHES[2].1,
    )
}

/// `flowlet bench route`.
pub async fn route(args: RouteArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    let plugins = std::fs::canonicalize(&args.plugins).map_err(|e| {
        anyhow::anyhow!(
            "plugin folder {}: {e}; build the plugins first (scripts/build-plugins)",
            args.plugins.display()
        )
    })?;
    let router = plugins.join("router.wasm").display().to_string();
    let filter = plugins.join("filter.wasm").display().to_string();
    let (n, batch) = (args.events, args.batch_size);
    let configs = [
        (
            "wasm",
            "1 router, 3 outputs",
            router_manifest(n, batch, &router),
        ),
        (
            "wasm",
            "3 filters (4 operators)",
            filters_manifest(n, batch, &filter),
        ),
        (
            "native",
            "1 router, 3 outputs",
            router_manifest(n, batch, "builtin:router"),
        ),
        (
            "native",
            "3 filters (4 operators)",
            filters_manifest(n, batch, "builtin:filter"),
        ),
    ];
    let mut best: Vec<Option<(f64, f64, u64)>> = vec![None; configs.len()];
    for _ in 0..args.repeat {
        for (i, (_, _, text)) in configs.iter().enumerate() {
            let manifest = crate::runner::parse(fl, text)?;
            let (report, wall, cpu) = crate::runner::timed_run(fl, &host, &manifest).await?;
            let out: u64 = report
                .nodes
                .iter()
                .filter(|(k, _)| manifest.sinks.contains_key(k.as_str()))
                .map(|(_, v)| v.events_in)
                .sum();
            anyhow::ensure!(
                out == n,
                "the branches should cover every event once: {out} of {n}"
            );
            if best[i].is_none_or(|(w, _, _)| wall < w) {
                best[i] = Some((wall, cpu, out));
            }
        }
    }
    println!("| build | split | events | events/s | CPU s |");
    println!("|---|---|---:|---:|---:|");
    for ((build, split, _), b) in configs.iter().zip(best) {
        let (wall, cpu, _) = b.expect("at least one round");
        println!(
            "| {build} | {split} | {n} | {:.0} | {cpu:.2} |",
            n as f64 / wall
        );
    }
    Ok(())
}
