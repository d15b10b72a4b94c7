//! `flowlet bench`: throughput of operator chains through the real executor.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use flowlet_host::Host;

#[derive(Subcommand)]
pub enum Bench {
    /// generator → filter (passes half) → map → null, as Wasm plugins and as the same operators
    /// compiled natively, at several batch sizes.
    Chain {
        /// Events per run (batch size 1 runs a tenth of them).
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        /// Batch sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,64,1024")]
        batch_sizes: Vec<u32>,
        /// Folder with filter.wasm and map.wasm.
        #[arg(long, default_value = "dist/plugins")]
        plugins: PathBuf,
        /// Runs per configuration (the best is reported).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn chain_manifest(events: u64, batch: u32, filter: &str, map: &str) -> String {
    format!(
        r#"
version: 1
name: bench-chain
sources:
  gen: {{kind: generator, count: {events}, batch-size: {batch}}}
operators:
  filter:
    plugin: {filter}
    config: {{field: /amount, op: ge, value: 500}}
    inputs: [gen]
  map:
    plugin: {map}
    config:
      fields:
        id: /id
        user: /user
        cents: {{from: /amount, mul: 100}}
        country: /country
    inputs: [filter]
sinks:
  out: {{kind: "null", inputs: [map]}}
"#
    )
}

pub async fn run(which: Bench, host: Host) -> anyhow::Result<()> {
    let Bench::Chain {
        events,
        batch_sizes,
        plugins,
        repeat,
    } = which;
    let plugins = std::fs::canonicalize(&plugins).map_err(|e| {
        anyhow::anyhow!(
            "plugin folder {}: {e}; build the plugins first (scripts/build-plugins)",
            plugins.display()
        )
    })?;
    let wasm = (
        plugins.join("filter.wasm").display().to_string(),
        plugins.join("map.wasm").display().to_string(),
    );
    println!("| chain | batch size | events | events/s | CPU s | events/s per CPU s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for batch in batch_sizes {
        let n = if batch == 1 { events / 10 } else { events };
        for (label, filter, map) in [
            ("wasm", wasm.0.as_str(), wasm.1.as_str()),
            ("native", "builtin:filter", "builtin:map"),
        ] {
            let text = chain_manifest(n, batch, filter, map);
            let manifest =
                flowlet_manifest::parse_str(&text, "bench.yaml".as_ref(), &crate::options())
                    .map_err(|d| anyhow::anyhow!("{d}"))?;
            let mut best: Option<(f64, f64)> = None;
            for _ in 0..repeat {
                let factories = crate::factories(&host, &manifest)?;
                let cpu0 = cpu_seconds();
                let t0 = Instant::now();
                let report = flowlet_dataflow::run(
                    &manifest,
                    factories,
                    flowlet_dataflow::Stop::new(),
                    Default::default(),
                )
                .await?;
                let wall = t0.elapsed().as_secs_f64();
                let cpu = cpu_seconds() - cpu0;
                let out = report.nodes["out"].events_in;
                anyhow::ensure!(
                    out > 0 && out < n,
                    "the filter should pass about half the events, passed {out} of {n}"
                );
                if best.is_none_or(|(w, _)| wall < w) {
                    best = Some((wall, cpu));
                }
            }
            let (wall, cpu) = best.expect("at least one run");
            println!(
                "| {label} | {batch} | {n} | {:.0} | {cpu:.2} | {:.0} |",
                n as f64 / wall,
                n as f64 / cpu.max(0.01)
            );
        }
    }
    Ok(())
}
