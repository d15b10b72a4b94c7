//! `flowlet bench swap`: the pause a hot swap causes in a stateful topology under load.
//!
//! A generator at a steady rate feeds a keyed stateful Wasm operator (`reorder` by user: every
//! event waits in keyed map state for its event-time timer, so every event passes through state
//! and timers, and the state stays bounded) with 1 s exactly-once checkpoints into a null sink. A sampler thread watches
//! the sink's event counter every 100 µs; for each swap, the pause is the largest gap between
//! two arrivals at the sink from the swap request until 200 ms after the swap completed. The
//! same measure over stretches without a swap is the baseline (batching alone makes gaps).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use flowlet_dataflow::swap::Swaps;
use flowlet_dataflow::{LiveStats, NodeCounters, OperatorFactory, Stop};
use flowlet_host::{Host, InstanceSettings, Plugin};
use flowlet_manifest::Manifest;

use crate::Runner;

#[derive(Args)]
pub struct SwapArgs {
    /// Swaps to make.
    #[arg(long, default_value_t = 20)]
    swaps: u32,
    /// Events per second from the generator.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Events per batch from the generator (a batch every batch-size/rate seconds: the gaps
    /// batching alone makes).
    #[arg(long, default_value_t = 64)]
    batch_size: u32,
    /// Time between swaps.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    every: Duration,
    /// Folder with reorder.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The largest gap between arrivals in `[from, to]` (with the last arrival before `from`).
fn largest_gap(arrivals: &[Instant], from: Instant, to: Instant) -> Duration {
    let start = arrivals.partition_point(|t| *t < from).saturating_sub(1);
    let end = arrivals.partition_point(|t| *t <= to);
    let mut gap = Duration::ZERO;
    let mut prev = None;
    for t in &arrivals[start..end] {
        if let Some(p) = prev {
            gap = gap.max(t.duration_since(p));
        }
        prev = Some(*t);
    }
    if let Some(p) = prev {
        // Nothing arrived since `p` up to the end of the window: that is a gap too.
        gap = gap.max(to.saturating_duration_since(p));
    }
    gap
}

/// `flowlet bench swap`: run the topology, swap its operator's plugin `swaps` times, and
/// print the pauses the swaps caused against the baseline.
pub(crate) async fn swap(args: SwapArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    let plugin = std::fs::canonicalize(args.plugins.join("reorder.wasm")).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; build the plugins first (scripts/build-plugins)",
            args.plugins.join("reorder.wasm").display()
        )
    })?;
    let state = tempfile::tempdir()?;
    let path = state.path().join("bench-swap.yaml");
    std::fs::write(&path, bench_manifest(&args, &plugin, state.path()))?;
    let manifest = crate::runner::load(fl, &path)?;
    let factories = fl.factories(&host, &manifest)?;
    let loaded = host.load(&plugin)?;
    let options = flowlet_connectors::run_options();
    let swaps = options.swaps.clone();
    let live = options.live.clone();
    let stop = Stop::new();
    let run = {
        let (m, stop) = (manifest.clone(), stop.clone());
        tokio::spawn(async move { flowlet_dataflow::run(&m, factories, stop, options).await })
    };

    // Wait for the sink to see events, then sample its counter.
    let counters = first_output(&live).await;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_arrivals(counters, done.clone());
    tokio::time::sleep(args.every).await;
    let measured = make_swaps(&args, &host, &loaded, &manifest, &swaps).await?;
    done.store(true, Relaxed);
    let arrivals = sampler.join().expect("the sampler thread");
    stop.stop();
    run.await??;
    print_report(&args, measured, &arrivals);
    Ok(())
}

/// The manifest of the bench: the generator at `args`' rate and batch size, `plugin` as the
/// keyed `reorder` operator, its state under `state`.
fn bench_manifest(args: &SwapArgs, plugin: &Path, state: &Path) -> String {
    format!(
        r#"
version: 1
name: bench-swap
checkpoint: {{interval: 1s}}
guarantee: exactly-once
state: {{dir: {state}}}
sources:
  gen: {{kind: generator, rate: {rate}, batch-size: {batch}}}
operators:
  reorder:
    plugin: {plugin}
    inputs: [gen]
    key-by: /user
sinks:
  out: {{kind: "null", inputs: [reorder]}}
"#,
        state = state.join("state").display(),
        rate = args.rate,
        batch = args.batch_size,
        plugin = plugin.display(),
    )
}

/// The counters of the sink `out`, once it has seen events.
async fn first_output(live: &LiveStats) -> Arc<NodeCounters> {
    loop {
        if let Some(c) = live.counters("out")
            && c.events_in.load(Relaxed) > 0
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A thread that records when the events in of `c` change (every 100 µs) until `done`, and
/// returns those arrival times.
fn sample_arrivals(c: Arc<NodeCounters>, done: Arc<AtomicBool>) -> JoinHandle<Vec<Instant>> {
    std::thread::spawn(move || {
        let mut arrivals = Vec::with_capacity(1 << 20);
        let mut last = c.events_in.load(Relaxed);
        while !done.load(Relaxed) {
            let n = c.events_in.load(Relaxed);
            if n != last {
                arrivals.push(Instant::now());
                last = n;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        arrivals
    })
}

/// What the swaps measured, before the arrivals are looked at.
struct Measured {
    /// Around each swap: from the request until 200 ms after it completed.
    windows: Vec<(Instant, Instant)>,
    /// Stretches without a swap, for the baseline.
    quiet: Vec<(Instant, Instant)>,
    /// Milliseconds from each swap request until the swap completed.
    latencies: Vec<f64>,
}

/// Swap `reorder` to a new instance of `loaded` `args.swaps` times, one every `args.every`.
async fn make_swaps(
    args: &SwapArgs,
    host: &Host,
    loaded: &Plugin,
    manifest: &Manifest,
    swaps: &Swaps,
) -> anyhow::Result<Measured> {
    let op = &manifest.operators["reorder"];
    let mut windows = Vec::new();
    let mut quiet = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..args.swaps {
        let factory: Arc<dyn OperatorFactory> = Arc::new(loaded.factory(
            host,
            "reorder",
            InstanceSettings::from_manifest(manifest, op),
        ));
        let asked = Instant::now();
        let result = swaps.swap("reorder", factory).await;
        let swapped = Instant::now();
        if let Err(e) = result {
            anyhow::bail!("swap {i} failed: {e}");
        }
        latencies.push(swapped.duration_since(asked).as_secs_f64() * 1e3);
        windows.push((asked, swapped + Duration::from_millis(200)));
        // Half-way to the next swap: a stretch without one, for the baseline.
        let rest = args.every.saturating_sub(swapped.elapsed());
        tokio::time::sleep(rest / 2).await;
        let q0 = Instant::now();
        tokio::time::sleep(rest / 2).await;
        quiet.push((q0, Instant::now().min(q0 + Duration::from_millis(400))));
    }
    Ok(Measured {
        windows,
        quiet,
        latencies,
    })
}

/// Print the setup and a Markdown table of the pauses, the baseline and the swap latencies.
fn print_report(args: &SwapArgs, measured: Measured, arrivals: &[Instant]) {
    let Measured {
        windows,
        quiet,
        mut latencies,
    } = measured;
    let mut pauses: Vec<f64> = windows
        .iter()
        .map(|(a, b)| largest_gap(arrivals, *a, *b).as_secs_f64() * 1e3)
        .collect();
    let mut base: Vec<f64> = quiet
        .iter()
        .map(|(a, b)| largest_gap(arrivals, *a, *b).as_secs_f64() * 1e3)
        .collect();
    pauses.sort_by(f64::total_cmp);
    base.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    println!(
        "generator at {} events/s in batches of {} → reorder (stateful Wasm: map state and timers, key-by /user) → null; checkpoints every 1s, exactly-once; {} swaps, one every {:?}",
        args.rate, args.batch_size, args.swaps, args.every
    );
    println!("| measure | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, v) in [
        ("largest output gap around a swap (the pause)", &pauses),
        ("largest output gap without a swap (baseline)", &base),
        (
            "swap request → swapped (new instances started, barrier passed)",
            &latencies,
        ),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            percentile(v, 50.0),
            percentile(v, 99.0),
            v.last().copied().unwrap_or(0.0)
        );
    }
}
