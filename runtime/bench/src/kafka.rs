//! `flowlet bench kafka` and `flowlet bench checkpoint` (docs/BENCHMARKS.md).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use flowlet_dataflow::{RunOptions, Stop};
use flowlet_host::Host;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::Runner;

#[derive(Args)]
pub struct KafkaArgs {
    /// Bootstrap servers (e.g. what `scripts/kafka-broker start` prints).
    #[arg(long, env = "FLOWLET_KAFKA_BROKERS")]
    brokers: String,
    /// Events in the backlog for the throughput runs.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Events per second during the latency runs.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Seconds of each latency run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Checkpoint interval of the flowlet runs.
    #[arg(long, default_value = "1s")]
    interval: humantime::Duration,
    /// Folder with map.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
}

#[derive(Args)]
pub struct CheckpointArgs {
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Folder with dedupe.wasm and aggregate.wasm.
    #[arg(long, default_value = "dist/plugins")]
    plugins: PathBuf,
    /// Recovery after a crash instead of a clean stop: `flowlet run` in a child process is
    /// killed (SIGKILL, by the `checkpoint.applied` failpoint) the moment its checkpoint of
    /// every key is durable, and the recovery is the wall time of the next `flowlet run`
    /// (process start, opening the store as it was left, loading every key, to its end). The
    /// keyed-state case only.
    #[arg(long)]
    after_kill: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn client(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client(brokers).create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }
    Ok(())
}

fn event(i: u64, sent_us: u64) -> (String, String) {
    let user = format!("u{:05}", i % 10_000);
    let value = format!(
        r#"{{"id":{i},"user":"{user}","amount":{}.{:02},"country":"JP","sent_us":{sent_us}}}"#,
        (i * 7919) % 1000,
        i % 100
    );
    (user, value)
}

fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(client(brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()?)
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &[u8], value: &[u8]) {
    let mut rec = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, r)) => {
                rec = r;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// A consumer of every partition of `topic` from the beginning.
fn reader(brokers: &str, topic: &str, committed: bool) -> anyhow::Result<BaseConsumer> {
    let c: BaseConsumer = client(brokers)
        .set("group.id", "flowlet-bench-reader")
        .set("enable.auto.commit", "false")
        .set(
            "isolation.level",
            if committed {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    Ok(c)
}

/// The raw loop: consume every record of `input` and produce it to `output`, until `n`
/// records (or `stop`).
fn raw_loop(
    brokers: &str,
    input: &str,
    output: &str,
    n: u64,
    stop: &AtomicBool,
) -> anyhow::Result<u64> {
    let c = reader(brokers, input, true)?;
    let p = producer(brokers)?;
    let mut count = 0;
    while count < n && !stop.load(Ordering::Relaxed) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                send(
                    &p,
                    output,
                    m.key().unwrap_or_default(),
                    m.payload().unwrap_or_default(),
                );
                count += 1;
            }
            Some(Err(e)) => anyhow::bail!("raw loop: {e}"),
            None => {}
        }
    }
    p.flush(Duration::from_secs(60))?;
    Ok(count)
}

fn manifest(
    brokers: &str,
    input: &str,
    output: &str,
    guarantee: &str,
    bounded: bool,
    interval: &str,
    map: &str,
) -> String {
    format!(
        r#"
version: 1
name: bench-kafka-{guarantee}-{output}
checkpoint: {{interval: {interval}}}
guarantee: {guarantee}
sources:
  in: {{kind: kafka, brokers: "{brokers}", topic: {input}, bounded: {bounded}}}
operators:
  map:
    plugin: {map}
    config:
      fields:
        id: /id
        user: /user
        cents: {{from: /amount, mul: 100}}
        sent_us: /sent_us
    inputs: [in]
sinks:
  out: {{kind: kafka, brokers: "{brokers}", topic: {output}, key: /user, inputs: [map]}}
"#
    )
}

async fn run_flowlet(
    fl: &dyn Runner,
    host: &Host,
    text: &str,
    stop: Arc<Stop>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.yaml");
    std::fs::write(&path, text)?;
    let m = crate::runner::load(fl, &path)?;
    fl.run(host, &m, RunOptions::default(), stop).await?;
    Ok(())
}

/// Percentile `p` (0–100) of sorted values.
fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Produce at `rate` for `seconds` into `input`, read `output` (committed records) and return
/// the end-to-end latencies (µs) of the events seen.
fn latency_run(
    brokers: &str,
    input: &str,
    output: &str,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Vec<u64>> {
    let total = (rate * seconds as f64) as u64;
    let brokers_p = brokers.to_owned();
    let input_p = input.to_owned();
    let pacer = std::thread::spawn(move || -> anyhow::Result<()> {
        let p = producer(&brokers_p)?;
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let (k, v) = event(i, now_us());
            send(&p, &input_p, k.as_bytes(), v.as_bytes());
        }
        p.flush(Duration::from_secs(60))?;
        Ok(())
    });
    let c = reader(brokers, output, true)?;
    let mut lat = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while (lat.len() as u64) < total && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let now = now_us();
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())?;
            if let Some(sent) = v["sent_us"].as_u64() {
                lat.push(now.saturating_sub(sent));
            }
        }
    }
    pacer.join().expect("pacer")?;
    lat.sort_unstable();
    Ok(lat)
}

/// `flowlet bench kafka`: fill a backlog, then measure throughput and end-to-end latency of
/// a raw rdkafka loop and of flowlet at each guarantee.
pub(crate) async fn kafka(a: KafkaArgs, host: Host, fl: Arc<dyn Runner>) -> anyhow::Result<()> {
    let plugins = std::fs::canonicalize(&a.plugins)
        .with_context(|| format!("plugin folder {}", a.plugins.display()))?;
    let map = plugins.join("map.wasm").display().to_string();
    let tag = now_us();
    let input = format!("bench-in-{tag}");
    create_topic(&a.brokers, &input, a.partitions).await?;
    println!(
        "filling {input} with {} events ({} partitions)…",
        a.events, a.partitions
    );
    fill_backlog(&a.brokers, &input, a.events).await?;
    let runs = KafkaRuns {
        args: &a,
        host: &host,
        fl,
        map,
        tag,
        interval: a.interval.to_string(),
    };
    runs.throughput(&input).await?;
    runs.latency().await
}

/// Produce events `0..n` into `input`, as fast as the broker takes them.
async fn fill_backlog(brokers: &str, input: &str, n: u64) -> anyhow::Result<()> {
    let (b, input) = (brokers.to_owned(), input.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let p = producer(&b)?;
        for i in 0..n {
            let (k, v) = event(i, 0);
            send(&p, &input, k.as_bytes(), v.as_bytes());
        }
        p.flush(Duration::from_secs(120))?;
        Ok(())
    })
    .await?
}

/// What the runs of `flowlet bench kafka` share.
struct KafkaRuns<'a> {
    args: &'a KafkaArgs,
    host: &'a Host,
    fl: Arc<dyn Runner>,
    /// The path of map.wasm.
    map: String,
    /// Makes the names of this bench's topics unique.
    tag: u64,
    /// The checkpoint interval of the flowlet runs.
    interval: String,
}

/// The guarantees flowlet is measured at.
const GUARANTEES: [&str; 2] = ["at-least-once", "exactly-once"];

impl KafkaRuns<'_> {
    /// The throughput runs over the backlog in `input`: the raw loop, then flowlet at each
    /// guarantee (compared with the raw loop).
    async fn throughput(&self, input: &str) -> anyhow::Result<()> {
        let a = self.args;
        let b = &a.brokers;
        println!("\nthroughput over a backlog of {} events", a.events);
        println!("{:<28} {:>12} {:>10}", "pipeline", "events/s", "seconds");
        let raw_rate = self.throughput_raw(input).await?;
        for guarantee in GUARANTEES {
            let out = format!("bench-{guarantee}-{}", self.tag);
            create_topic(b, &out, a.partitions).await?;
            let text = manifest(b, input, &out, guarantee, true, &self.interval, &self.map);
            let started = Instant::now();
            run_flowlet(&*self.fl, self.host, &text, Stop::new()).await?;
            let secs = started.elapsed().as_secs_f64();
            let rate = a.events as f64 / secs;
            println!(
                "{:<28} {:>12.0} {:>10.2}   ({:.2}× the raw loop)",
                format!("flowlet {guarantee}"),
                rate,
                secs,
                rate / raw_rate
            );
        }
        Ok(())
    }

    /// The raw loop over the backlog in `input`: prints its line and returns its events/s.
    async fn throughput_raw(&self, input: &str) -> anyhow::Result<f64> {
        let a = self.args;
        let raw_out = format!("bench-raw-{}", self.tag);
        create_topic(&a.brokers, &raw_out, a.partitions).await?;
        let started = Instant::now();
        let (b2, i2, o2, n) = (a.brokers.clone(), input.to_owned(), raw_out, a.events);
        let count = tokio::task::spawn_blocking(move || {
            raw_loop(&b2, &i2, &o2, n, &AtomicBool::new(false))
        })
        .await??;
        let raw_secs = started.elapsed().as_secs_f64();
        let raw_rate = count as f64 / raw_secs;
        println!(
            "{:<28} {:>12.0} {:>10.2}",
            "raw rdkafka loop", raw_rate, raw_secs
        );
        Ok(raw_rate)
    }

    /// The latency runs at the configured rate: the raw loop, then flowlet at each guarantee.
    async fn latency(&self) -> anyhow::Result<()> {
        let a = self.args;
        println!(
            "\nend-to-end latency at {} events/s for {} s (ms; producer send → committed record read)",
            a.rate, a.seconds
        );
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>9}",
            "pipeline", "p50", "p99", "max", "events"
        );
        let lat = self.latency_raw().await?;
        report_latency("raw rdkafka loop", &lat);
        for guarantee in GUARANTEES {
            let lat = self.latency_flowlet(guarantee).await?;
            report_latency(&format!("flowlet {guarantee}"), &lat);
        }
        Ok(())
    }

    /// The latencies (µs, sorted) through the raw loop between two new topics.
    async fn latency_raw(&self) -> anyhow::Result<Vec<u64>> {
        let (a, b, tag) = (self.args, &self.args.brokers, self.tag);
        let (lin, lout) = (format!("lat-raw-in-{tag}"), format!("lat-raw-out-{tag}"));
        create_topic(b, &lin, a.partitions).await?;
        create_topic(b, &lout, a.partitions).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, i2, o2, s2) = (b.clone(), lin.clone(), lout.clone(), stop.clone());
        let looper = std::thread::spawn(move || raw_loop(&b2, &i2, &o2, u64::MAX, &s2));
        let (b3, rate, secs) = (b.clone(), a.rate, a.seconds);
        let lat = tokio::task::spawn_blocking(move || latency_run(&b3, &lin, &lout, rate, secs))
            .await??;
        stop.store(true, Ordering::Relaxed);
        looper.join().expect("raw loop")?;
        Ok(lat)
    }

    /// The latencies (µs, sorted) through an unbounded flowlet pipeline at `guarantee`
    /// between two new topics.
    async fn latency_flowlet(&self, guarantee: &str) -> anyhow::Result<Vec<u64>> {
        let (a, b, tag) = (self.args, &self.args.brokers, self.tag);
        let (lin, lout) = (
            format!("lat-{guarantee}-in-{tag}"),
            format!("lat-{guarantee}-out-{tag}"),
        );
        create_topic(b, &lin, a.partitions).await?;
        create_topic(b, &lout, a.partitions).await?;
        let text = manifest(b, &lin, &lout, guarantee, false, &self.interval, &self.map);
        let stop = Stop::new();
        let (h, fl) = (self.host.clone(), self.fl.clone());
        let s = stop.clone();
        let running = tokio::spawn(async move { run_flowlet(&*fl, &h, &text, s).await });
        let (b3, rate, secs) = (b.clone(), a.rate, a.seconds);
        let lat = tokio::task::spawn_blocking(move || latency_run(&b3, &lin, &lout, rate, secs))
            .await??;
        stop.stop();
        running.await??;
        Ok(lat)
    }
}

/// Print the latency line of pipeline `name`: p50, p99 and max (ms), and the events seen.
fn report_latency(name: &str, lat: &[u64]) {
    println!(
        "{:<28} {:>9.1} {:>9.1} {:>9.1} {:>9}",
        name,
        pct(lat, 50.0),
        pct(lat, 99.0),
        pct(lat, 100.0),
        lat.len()
    );
}

/// `flowlet bench checkpoint`: the time to checkpoint and to recover large keyed state and
/// many open windows, and their size on disk.
pub(crate) async fn checkpoint(
    a: CheckpointArgs,
    host: Host,
    fl: &dyn Runner,
) -> anyhow::Result<()> {
    let plugins = std::fs::canonicalize(&a.plugins)
        .with_context(|| format!("plugin folder {}", a.plugins.display()))?;
    println!(
        "{:<34} {:>14} {:>14} {:>12}",
        "state", "checkpoint ms", "recovery ms", "on disk MB"
    );
    for (i, (name, op, node)) in checkpoint_cases(&plugins).into_iter().enumerate() {
        if a.after_kill {
            // Only keyed state: a bounded generator's end fires every open window, so the
            // windows case has nothing left to recover after its last checkpoint.
            if i == 0 {
                checkpoint_after_kill(a.keys, name, &op, node)?;
            }
        } else {
            checkpoint_case(fl, &host, a.keys, name, &op, node).await?;
        }
    }
    Ok(())
}

/// The manifest of a checkpoint case in `dir`: source `gen` (`source`), operator text `op`
/// whose node is `node`, a null sink; one checkpoint an hour, state in `dir/state`.
fn write_checkpoint_manifest(
    dir: &std::path::Path,
    source: &str,
    op: &str,
    node: &str,
) -> anyhow::Result<PathBuf> {
    let text = format!(
        r#"
version: 1
name: bench-checkpoint
checkpoint: {{interval: 1h}}
state: {{dir: state}}
sources:
  gen: {source}
operators:{op}
sinks:
  out: {{kind: "null", inputs: [{node}]}}
"#
    );
    let path = dir.join("bench.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `flowlet bench checkpoint --after-kill`: one case in child processes of this binary.
fn checkpoint_after_kill(keys: u64, name: &str, op: &str, node: &str) -> anyhow::Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir()?;
    // The generator's `count` ends the first run after every key; its final checkpoint is
    // the only one (1 h interval), and the failpoint kills it once that is durable.
    let source = format!("{{kind: generator, count: {keys}}}");
    let path = write_checkpoint_manifest(dir.path(), &source, op, node)?;
    let exe = std::env::current_exe()?;
    let run = |failpoints: &str| {
        std::process::Command::new(&exe)
            .arg("run")
            .arg(&path)
            .env("FLOWLET_FAILPOINTS", failpoints)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
    };
    let first = run("checkpoint.applied=kill")?;
    anyhow::ensure!(
        first.status.signal() == Some(9),
        "the first run was not killed after its checkpoint: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let disk = dir_size(&dir.path().join("state")) as f64 / 1e6;
    let started = Instant::now();
    let second = run("")?;
    let rec_ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        second.status.success(),
        "the recovery run failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    println!(
        "{:<34} {:>14} {:>14.0} {:>12.1}",
        format!("{name}, {keys} keys, after kill -9"),
        "-",
        rec_ms,
        disk
    );
    Ok(())
}

/// The cases of `flowlet bench checkpoint`: a name, the operator's manifest text, and the
/// operator's name.
fn checkpoint_cases(plugins: &std::path::Path) -> [(&'static str, String, &'static str); 2] {
    [
        (
            "keyed state (dedupe, 1 entry/key)",
            format!(
                r#"
  once:
    plugin: {}
    key-by: /id
    config: {{ttl: 1h}}
    inputs: [gen]"#,
                plugins.join("dedupe.wasm").display()
            ),
            "once",
        ),
        (
            "open windows (count per key)",
            format!(
                r#"
  counts:
    plugin: {}
    key-by: /id
    config: {{function: count}}
    window: {{kind: tumbling, size: 1d}}
    inputs: [gen]"#,
                plugins.join("aggregate.wasm").display()
            ),
            "counts",
        ),
    ]
}

/// Run one checkpoint case (operator `op`, named `node`) over `keys` keys and print its line:
/// the final checkpoint's time, the recovery time and the state's size on disk.
async fn checkpoint_case(
    fl: &dyn Runner,
    host: &Host,
    keys: u64,
    name: &str,
    op: &str,
    node: &str,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = write_checkpoint_manifest(dir.path(), "{kind: generator}", op, node)?;
    let m = crate::runner::load(fl, &path)?;
    // One run, stopped once the generator has sent `keys` events: every key is new and
    // no window has closed, so the final checkpoint writes all of them.
    let options = RunOptions::default();
    let stop = stop_after_generated(options.live.clone(), keys);
    let report = fl.run(host, &m, options, stop).await?;
    let ck = &report.nodes[flowlet_dataflow::CHECKPOINTS];
    let ck_ms = ck.commit_nanos as f64 / 1e6;
    let disk = dir_size(&dir.path().join("state")) as f64 / 1e6;
    // Recovery: a new run opens the store and loads the state of every key; it is stopped
    // from the start, so it reads nothing more.
    let stop = Stop::new();
    stop.stop();
    let started = Instant::now();
    fl.run(host, &m, RunOptions::default(), stop).await?;
    let rec_ms = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "{:<34} {:>14.0} {:>14.0} {:>12.1}",
        format!("{name}, {keys} keys"),
        ck_ms,
        rec_ms,
        disk
    );
    Ok(())
}

/// A stop signal that a background task gives once the `gen` node of `live` has sent `keys`
/// events.
fn stop_after_generated(live: flowlet_dataflow::LiveStats, keys: u64) -> Arc<Stop> {
    let stop = Stop::new();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if live.get("gen").is_some_and(|g| g.events_out >= keys) {
                s.stop();
                return;
            }
        }
    });
    stop
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
