//! `flowlet bench join`: an interval join of two generated streams (on `user`) at several
//! bounds: events/s, pairs, and the most events the join held at once, against the bound.

use clap::Args;
use flowlet_host::Host;

use crate::Runner;

#[derive(Args)]
pub struct JoinArgs {
    /// Events per side.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Half-widths of the interval, in ms: the join runs with `between: [-B, B]` for each.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    bounds: Vec<u64>,
    /// Runs per bound (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
}

fn manifest(events: u64, bound: u64) -> String {
    format!(
        r#"
version: 1
name: bench-join
batch-size: 1024
sources:
  clicks: {{kind: generator, count: {events}, seed: 1}}
  views: {{kind: generator, count: {events}, seed: 2}}
operators:
  j:
    join: {{kind: interval, left: clicks, right: views, between: [-{bound}ms, {bound}ms]}}
    key-by: /user
sinks:
  out: {{kind: "null", inputs: [j]}}
"#
    )
}

/// `flowlet bench join`.
pub async fn join(args: JoinArgs, host: Host, fl: &dyn Runner) -> anyhow::Result<()> {
    println!("| bound | events (both sides) | events/s | CPU s | pairs | most events held |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for bound in args.bounds {
        let m = crate::runner::parse(fl, &manifest(args.events, bound))?;
        let mut best: Option<(f64, f64, u64, u64)> = None;
        for _ in 0..args.repeat {
            let (report, wall, cpu) = crate::runner::timed_run(fl, &host, &m).await?;
            let j = &report.nodes["j"];
            if best.is_none_or(|(w, ..)| wall < w) {
                best = Some((wall, cpu, j.events_out, j.state_rows));
            }
        }
        let (wall, cpu, pairs, held) = best.expect("at least one run");
        let n = 2 * args.events;
        println!(
            "| ±{bound} ms | {n} | {:.0} | {cpu:.2} | {pairs} | {held} |",
            n as f64 / wall
        );
    }
    Ok(())
}
