//! `flowlet bench`: throughput of operator chains through the real executor.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use flowlet_host::Host;

use crate::Runner;

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
    /// Keyed window aggregate (count per key) over generated keyed events, through the Wasm
    /// aggregate plugin and the same aggregate compiled natively; the operator runs on one
    /// thread and its CPU time is reported.
    Window(WindowArgs),
    /// Kafka → Wasm map → Kafka under at-least-once and exactly-once, beside a raw rdkafka
    /// consume→produce loop: throughput over a backlog, then end-to-end latency at a steady
    /// rate.
    Kafka(crate::kafka::KafkaArgs),
    /// One Nexmark query (docs/NEXMARK.md) over the `nexmark` source, as Wasm or native:
    /// events/s, CPU seconds, peak RSS, batch latency, outputs and checksum.
    Nexmark(crate::nexmark::NexmarkArgs),
    /// Time to checkpoint and to recover the keyed state of N keys (a stateful Wasm operator)
    /// and the open windows of N keys.
    Checkpoint(crate::kafka::CheckpointArgs),
    /// The pause a hot swap causes: largest gap in a stateful topology's output around each of
    /// N swaps under a steady load, beside the gaps without swaps.
    Swap(crate::swap::SwapArgs),
    /// The enrich-and-filter operator in Rust, C, Python and JavaScript over the same generated
    /// events: events/s per language (build them with `scripts/build-plugins --all`).
    Languages(LanguagesArgs),
    /// Splitting a stream three ways: one router with three named outputs against three
    /// filters on the same events, as Wasm and natively.
    Route(crate::route::RouteArgs),
    /// An interval join of two generated streams at several bounds: events/s, pairs, and the
    /// most events the join held at once.
    Join(crate::join::JoinArgs),
}

#[derive(Args)]
pub struct LanguagesArgs {
    /// Events per run (the same for every language).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[arg(long, default_value_t = 256)]
    batch_size: u32,
    /// Folder with enrich.wasm, enrich-c.wasm, enrich-python.wasm and enrich-js.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
    /// Runs per language (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Only these languages (rust, c, python, js), e.g. to compare two builds of one.
    #[arg(long, value_delimiter = ',', default_value = "rust,c,python,js",
          value_parser = ["rust", "c", "python", "js"])]
    only: Vec<String>,
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

/// Run one benchmark, printing its table on stdout.
pub async fn run(which: Bench, host: Host, fl: Arc<dyn Runner>) -> anyhow::Result<()> {
    let (events, batch_sizes, plugins, repeat) = match which {
        Bench::Chain {
            events,
            batch_sizes,
            plugins,
            repeat,
        } => (events, batch_sizes, plugins, repeat),
        Bench::Window(args) => {
            return tokio::task::spawn_blocking(move || window(args, host, &*fl)).await?;
        }
        Bench::Kafka(args) => return crate::kafka::kafka(args, host, fl).await,
        Bench::Checkpoint(args) => return crate::kafka::checkpoint(args, host, &*fl).await,
        Bench::Nexmark(args) => return crate::nexmark::nexmark(args, host, &*fl).await,
        Bench::Swap(args) => return crate::swap::swap(args, host, &*fl).await,
        Bench::Languages(args) => return languages(args, host, &*fl).await,
        Bench::Route(args) => return crate::route::route(args, host, &*fl).await,
        Bench::Join(args) => return crate::join::join(args, host, &*fl).await,
    };
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
            let manifest = crate::runner::parse(&*fl, &text)?;
            let mut best: Option<(f64, f64)> = None;
            for _ in 0..repeat {
                let (report, wall, cpu) = crate::runner::timed_run(&*fl, &host, &manifest).await?;
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

/// `flowlet bench languages`.
async fn languages(args: LanguagesArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    let (events, batch, repeat) = (args.events, args.batch_size, args.repeat);
    println!("| language | plugin | component size | events | passed | events/s | vs Rust |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut rust_rate = None;
    for (id, lang, file) in [
        ("rust", "Rust", "enrich.wasm"),
        ("c", "C", "enrich-c.wasm"),
        ("python", "Python", "enrich-python.wasm"),
        ("js", "JavaScript", "enrich-js.wasm"),
    ] {
        if !args.only.iter().any(|o| o == id) {
            continue;
        }
        let path = args.plugins.join(file);
        let size = std::fs::metadata(&path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; build the plugins of every language first (scripts/build-plugins --all)",
                    path.display()
                )
            })?
            .len();
        let text = format!(
            r#"
version: 1
name: bench-languages
sources:
  gen: {{kind: generator, count: {events}, batch-size: {batch}}}
operators:
  enrich:
    plugin: {}
    config: {{min-amount: 100, high-amount: 500}}
    inputs: [gen]
sinks:
  out: {{kind: "null", inputs: [enrich]}}
"#,
            path.display()
        );
        let manifest = crate::runner::parse(fl, &text)?;
        // Compiled (or loaded from the cache) before the clock starts.
        fl.factories(&host, &manifest)?;
        let mut best: Option<f64> = None;
        let mut passed = 0;
        for _ in 0..repeat {
            let (report, wall, _) = crate::runner::timed_run(fl, &host, &manifest).await?;
            passed = report.nodes["out"].events_in;
            best = Some(best.map_or(wall, |b: f64| b.min(wall)));
        }
        let rate = events as f64 / best.expect("at least one run");
        if id == "rust" {
            rust_rate = Some(rate);
        }
        let vs = rust_rate.map_or("–".to_owned(), |r| format!("{:.2}×", rate / r));
        println!(
            "| {lang} | {file} | {:.1} MB | {events} | {passed} | {rate:.0} | {vs} |",
            size as f64 / 1e6,
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct WindowArgs {
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Events per millisecond of event time (10M events at 20/ms span 500 s).
    #[arg(long, default_value_t = 20)]
    events_per_ms: u64,
    /// `tumbling` (60 s) or `sliding` (60 s every 10 s).
    #[arg(long, value_delimiter = ',', default_value = "tumbling,sliding")]
    kinds: Vec<String>,
    /// The aggregate plugin.
    #[arg(long, default_value = "dist/plugins/aggregate.wasm")]
    plugin: PathBuf,
    /// Also run the natively compiled aggregate.
    #[arg(long)]
    native: bool,
}

fn window(a: WindowArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    use std::time::Duration;
    let plugin = host
        .load(&a.plugin)
        .map_err(|e| anyhow::anyhow!("{e}; build the plugins first (scripts/build-plugins)"))?;
    let config = r#"{"function":"count"}"#;
    println!(
        "| window | aggregate | events | keys | operator CPU s | of which final commit s | events/s on one core (without the commit) | wall events/s | windows fired | peak RSS MiB | state on disk MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in &a.kinds {
        let window = match kind.as_str() {
            "tumbling" => flowlet_dataflow::window::tumbling(Duration::from_secs(60)),
            "sliding" => {
                flowlet_dataflow::window::sliding(Duration::from_secs(60), Duration::from_secs(10))
            }
            other => anyhow::bail!("unknown window kind `{other}`: tumbling or sliding"),
        };
        let mut runs: Vec<(&str, std::sync::Arc<dyn flowlet_dataflow::OperatorFactory>)> = vec![(
            "wasm",
            std::sync::Arc::new(plugin.factory(
                &host,
                "bench",
                flowlet_host::InstanceSettings {
                    config: config.into(),
                    memory: 256 << 20,
                    call_timeout: Duration::from_secs(10),
                    init_timeout: Duration::from_secs(10),
                    env: Vec::new(),
                    dirs: Default::default(),
                },
            )),
        )];
        if a.native {
            runs.push((
                "native",
                fl.builtin("aggregate", serde_json::from_str(config)?)
                    .expect("the aggregate built-in"),
            ));
        }
        for (label, factory) in runs {
            let dir = tempfile::tempdir()?;
            let cfg = flowlet_dataflow::bench::WindowBench {
                events: a.events,
                keys: a.keys,
                batch_size: a.batch_size,
                events_per_ms: a.events_per_ms,
                window: window.clone(),
            };
            let r = flowlet_dataflow::bench::window_throughput(&cfg, factory, dir.path())?;
            let mib = |b: u64| b as f64 / (1 << 20) as f64;
            println!(
                "| {kind} | {label} | {} | {} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {:.0} | {:.1} |",
                r.events,
                a.keys,
                r.operator_cpu_seconds,
                r.commit_seconds,
                r.events as f64 / (r.operator_cpu_seconds - r.commit_seconds).max(0.001),
                r.events as f64 / r.wall_seconds,
                r.windows_fired,
                mib(r.peak_rss_bytes),
                mib(r.state_bytes),
            );
        }
    }
    Ok(())
}
