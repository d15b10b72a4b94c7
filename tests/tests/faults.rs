//! Fault injection at every step of the checkpoint protocol (docs/RELIABILITY.md): flowlet is
//! made to crash (`kill`: SIGKILL to itself), fail (`error`) or stall at a named failpoint
//! (runtime/dataflow/src/fault.rs), run again, and the output — read back and compared with a
//! plain loop over the input, never with flowlet's own log — must be what one clean run gives.
//!
//! Every failure prints the seed; `FLOWLET_FAULT_SEED=S` replays it, `FLOWLET_FAULT_ROUNDS=N`
//! crashes N times per failpoint (the soak, `scripts/soak`, raises both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flowlet_tests::kafka::{self, Broker};
use flowlet_tests::proxy::Mode;
use flowlet_tests::{Child, Rng, flowlet_bin, json_lines, succeed, write_manifest};

/// A window count: (user, window start) → count.
type Counts = BTreeMap<(String, i64), u64>;

/// The seed of this run of the suite: `FLOWLET_FAULT_SEED`, else a fresh one (printed).
fn seed() -> u64 {
    std::env::var("FLOWLET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Crashes per failpoint: 4, or `FLOWLET_FAULT_ROUNDS`.
fn rounds() -> usize {
    std::env::var("FLOWLET_FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// `n` clicks `(user, json)` in time order.
fn clicks(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let mut ts = 1_700_000_000_000i64;
    (0..n)
        .map(|i| {
            ts += rng.below(4) as i64;
            let user = format!("u{}", rng.below(500));
            (
                user.clone(),
                format!(r#"{{"i":{i},"user":"{user}","ts":{ts}}}"#),
            )
        })
        .collect()
}

/// Counts per user and 1-second window, by a plain loop.
fn reference(clicks: &[(String, String)]) -> Counts {
    let mut counts = Counts::new();
    for (user, value) in clicks {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        let ts = v["ts"].as_i64().unwrap();
        *counts
            .entry((user.clone(), ts.div_euclid(1000) * 1000))
            .or_default() += 1;
    }
    counts
}

/// What a verifier found: windows lost (missing or short) and repeated.
#[derive(Default, Debug)]
struct Verdict {
    lost: usize,
    duplicated: usize,
    wrong: usize,
}

/// Compare output windows (one entry per record, repeats included) with the reference.
fn verdict(records: &[((String, i64), u64)], expected: &Counts) -> Verdict {
    let mut v = Verdict::default();
    let mut seen: BTreeMap<&(String, i64), u64> = BTreeMap::new();
    for (k, c) in records {
        if let Some(prev) = seen.insert(k, *c) {
            v.duplicated += 1;
            if prev != *c {
                v.wrong += 1;
            }
        }
        if expected.get(k) != Some(c) {
            v.wrong += 1;
        }
    }
    v.lost = expected.keys().filter(|k| !seen.contains_key(k)).count();
    v
}

/// How one run ended.
#[derive(Debug, PartialEq)]
enum Ended {
    Finished,
    /// Killed by a failpoint (SIGKILL it sent itself).
    Crashed,
    /// Stopped with an error (its stderr).
    Failed(String),
}

/// `flowlet run MANIFEST` with `FLOWLET_FAILPOINTS=failpoints`, to its end.
fn run(manifest: &Path, failpoints: &str) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    let out = Child::spawn(
        flowlet_bin()
            .args(["run", manifest.to_str().unwrap()])
            .env("FLOWLET_FAILPOINTS", failpoints)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .wait_for(Duration::from_secs(120));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    match (out.status.success(), out.status.signal()) {
        (true, _) => Ended::Finished,
        (false, Some(9)) => {
            assert!(
                err.contains("failpoint"),
                "killed, but not by a failpoint: {err}"
            );
            Ended::Crashed
        }
        _ => Ended::Failed(err),
    }
}

/// One fault class's tally, printed for `scripts/soak` as a `FAULTS` line.
#[derive(Default)]
struct Tally {
    runs: usize,
    faults: usize,
    events: usize,
    lost: usize,
    duplicated: usize,
}

impl Tally {
    fn report(&self, class: &str) {
        flowlet_tests::report_faults(
            class,
            self.runs,
            self.faults,
            self.events,
            self.lost,
            self.duplicated,
        );
    }
}

/// Crash (or fail) at `point` on a random later hit, `rounds` times, then run to the end
/// without faults.
fn crash_at(manifest: &Path, point: &str, action: &str, rng: &mut Rng, tally: &mut Tally) {
    crash_at_then(manifest, point, action, rng, tally, || {});
}

// ---------------------------------------------------------------------------------------
// file → window → file

const FILE_TOPOLOGY: &str = r#"
version: 1
name: faults-file
checkpoint: {interval: 10ms}
guarantee: GUARANTEE
batch-size: 64
sources:
  clicks: {kind: file, path: clicks.jsonl, event-time: {field: /ts}}
operators:
  counts:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /user
    window: {kind: tumbling, size: 1s}
    inputs: [clicks]
sinks:
  out: {kind: file, path: counts.jsonl, inputs: [counts]}
"#;

fn file_records(path: &Path) -> Vec<((String, i64), u64)> {
    json_lines(path)
        .into_iter()
        .map(|v| {
            (
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["start"].as_i64().unwrap(),
                ),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

const FILE_POINTS: &[(&str, &str)] = &[
    ("source.barrier", "kill"),
    ("task.snapshot", "kill"),
    ("sink.flushed", "kill"),
    ("sink.flushed", "error"),
    ("checkpoint.write", "kill"),
    ("checkpoint.write", "error"),
    ("checkpoint.applied", "kill"),
    ("file-sink.truncated", "kill"),
];

fn file_to_file(guarantee: &str) {
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let events = clicks(60_000, seed);
    let expected = reference(&events);
    let mut tally = Tally::default();
    for (point, action) in FILE_POINTS {
        let dir = tempfile::tempdir().unwrap();
        let text: String = events.iter().map(|(_, v)| format!("{v}\n")).collect();
        std::fs::write(dir.path().join("clicks.jsonl"), text).unwrap();
        let manifest = write_manifest(dir.path(), &FILE_TOPOLOGY.replace("GUARANTEE", guarantee));
        crash_at(&manifest, point, action, &mut rng, &mut tally);
        let got = file_records(&dir.path().join("counts.jsonl"));
        let v = verdict(&got, &expected);
        tally.events += events.len();
        tally.lost += v.lost;
        let repeats_allowed = guarantee == "at-least-once";
        if !repeats_allowed {
            tally.duplicated += v.duplicated;
        }
        assert!(
            v.lost == 0 && v.wrong == 0 && (repeats_allowed || v.duplicated == 0),
            "{guarantee}, {point}={action}, seed {seed}: {v:?}"
        );
    }
    tally.report(&format!("failpoints/{guarantee}/file/file"));
}

#[test]
fn file_to_file_exactly_once_at_every_failpoint() {
    file_to_file("exactly-once");
}

#[test]
fn file_to_file_at_least_once_at_every_failpoint() {
    file_to_file("at-least-once");
}

// ---------------------------------------------------------------------------------------
// Kafka → window → Kafka and Kafka → window → file

fn kafka_topology(brokers: &str, input: &str, sink: &str, guarantee: &str) -> String {
    format!(
        r#"
version: 1
name: faults-{input}
checkpoint: {{interval: 100ms}}
guarantee: {guarantee}
batch-size: 128
sources:
  clicks:
    kind: kafka
    brokers: {brokers}
    topic: {input}
    bounded: true
    event-time: {{field: /ts}}
operators:
  counts:
    plugin: {{plugins}}/aggregate.wasm
    config: {{function: count}}
    key-by: /user
    window: {{kind: tumbling, size: 1s}}
    inputs: [clicks]
sinks:
{sink}
"#
    )
}

/// A Kafka → window → Kafka exactly-once case: its input topic (holding the events), its
/// output topic, and its manifest in a temporary directory.
struct KafkaCase {
    input: String,
    output: String,
    dir: tempfile::TempDir,
    manifest: std::path::PathBuf,
}

/// Make a [`KafkaCase`] on `broker` with `partitions` input partitions and `events`; `edit`
/// changes the manifest's text.
fn kafka_case(
    broker: &Broker,
    partitions: i32,
    events: &[(String, String)],
    edit: impl Fn(String) -> String,
) -> KafkaCase {
    let input = broker.topic("clicks", partitions);
    let output = broker.topic("counts", 2);
    broker.produce(&input, events);
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "  out: {{kind: kafka, brokers: {}, topic: {output}, key: /key, inputs: [counts]}}",
        broker.brokers
    );
    let manifest = write_manifest(
        dir.path(),
        &edit(kafka_topology(
            &broker.brokers,
            &input,
            &sink,
            "exactly-once",
        )),
    );
    KafkaCase {
        input,
        output,
        dir,
        manifest,
    }
}

const KAFKA_POINTS: &[(&str, &str)] = &[
    ("source.barrier", "kill"),
    ("task.snapshot", "kill"),
    ("sink.flushed", "kill"),
    ("checkpoint.pending-written", "kill"),
    ("kafka.offsets-sent", "kill"),
    ("kafka.offsets-sent", "error"),
    ("kafka.committed", "kill"),
    ("checkpoint.applied", "kill"),
];

/// The committed window records of a Kafka topic (see kafka.rs's `committed`).
fn kafka_records(broker: &Broker, topic: &str) -> Vec<((String, i64), u64)> {
    let records = broker.read_all(topic, kafka::hides_aborted());
    let records = if kafka::hides_aborted() {
        records
    } else {
        kafka::committed_by_headers(&records, None)
    };
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
            (
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["start"].as_i64().unwrap(),
                ),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The last input event, far ahead in event time: the final run always writes a window, so
/// the records carry the lineage of every committed attempt before it.
fn flush_event() -> (String, String) {
    (
        "flush".into(),
        r#"{"i":-1,"user":"flush","ts":1750000000000}"#.into(),
    )
}

#[test]
fn kafka_to_kafka_exactly_once_at_every_failpoint() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let broker = Broker::start();
    let mut tally = Tally::default();
    for (point, action) in KAFKA_POINTS {
        let mut events = clicks(20_000, rng.next_u64());
        let KafkaCase {
            input,
            output,
            dir: _dir,
            manifest,
        } = kafka_case(&broker, 2, &events, |t| t);
        // The last run reads the flush event (after every crash).
        let rounds_before = tally.runs;
        crash_at_then(&manifest, point, action, &mut rng, &mut tally, || {
            broker.produce(&input, &[flush_event()]);
        });
        events.push(flush_event());
        let got = kafka_records(&broker, &output);
        let v = verdict(&got, &reference(&events));
        tally.events += events.len();
        tally.lost += v.lost;
        tally.duplicated += v.duplicated;
        assert!(
            v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
            "exactly-once, {point}={action}, seed {seed}, {} runs: {v:?}",
            tally.runs - rounds_before
        );
    }
    tally.report("failpoints/exactly-once/kafka/kafka");
}

/// The lost windows of the exactly-once crash test (docs/RELIABILITY.md): a crash after Kafka
/// committed the first checkpoint that carried source offsets, before flowlet applied it. The
/// next run asked Kafka whether that checkpoint committed by the offset-commit metadata, which
/// the test broker does not return, so it dropped it; with no checkpoint left it started from
/// the consumer group's committed offsets — those of the checkpoint it had just dropped — with
/// empty state, and the input before them was never counted (16,765 of 51,077 windows).
/// Deterministic: the first checkpoint comes after the source has read (a 1.5 s interval; if
/// the input ends first, the first checkpoint is the final one, with every offset), and the
/// crash is at its commit.
#[test]
fn a_crash_between_kafkas_commit_and_the_state_loses_nothing() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let broker = Broker::start();
    let mut events = clicks(60_000, 1);
    let KafkaCase {
        input,
        output,
        dir: _dir,
        manifest,
    } = kafka_case(&broker, 3, &events, |t| {
        t.replace("interval: 100ms", "interval: 1500ms")
    });
    for point in ["kafka.committed=1*kill", "kafka.committed=1*kill"] {
        assert_eq!(run(&manifest, point), Ended::Crashed, "{point}");
    }
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    assert_eq!(run(&manifest, ""), Ended::Finished);
    let v = verdict(&kafka_records(&broker, &output), &reference(&events));
    assert!(
        v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
        "{v:?} (of {} windows)",
        reference(&events).len()
    );
}

/// [`crash_at`], with `before_last` run before the final, fault-free run.
fn crash_at_then(
    manifest: &Path,
    point: &str,
    action: &str,
    rng: &mut Rng,
    tally: &mut Tally,
    before_last: impl FnOnce(),
) {
    let mut injected = 0;
    for _ in 0..rounds() {
        let skip = rng.below(6);
        let spec = if point == "file-sink.truncated" {
            // Reached only when a run resumes: the run before crashes at another point.
            format!("{point}=1*{action};checkpoint.applied={skip}*off->1*kill")
        } else {
            format!("{point}={skip}*off->1*{action}")
        };
        tally.runs += 1;
        match run(manifest, &spec) {
            Ended::Finished => break,
            Ended::Crashed => injected += 1,
            Ended::Failed(err) => {
                assert!(
                    action == "error" && err.contains(&format!("failpoint `{point}`")),
                    "{spec}: the run failed, not by the injected fault: {err}"
                );
                injected += 1;
            }
        }
    }
    before_last();
    tally.runs += 1;
    assert_eq!(
        run(manifest, ""),
        Ended::Finished,
        "the final run of {point}"
    );
    tally.faults += injected;
}

#[test]
fn kafka_to_file_exactly_once_at_every_failpoint() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let broker = Broker::start();
    let mut tally = Tally::default();
    let points: BTreeSet<(&str, &str)> = KAFKA_POINTS
        .iter()
        .chain(FILE_POINTS)
        .copied()
        .filter(|(p, _)| !p.starts_with("kafka.") && *p != "checkpoint.pending-written")
        .collect();
    for (point, action) in points {
        let input = broker.topic("clicks", 2);
        let events = clicks(20_000, rng.next_u64());
        broker.produce(&input, &events);
        let dir = tempfile::tempdir().unwrap();
        let sink = "  out: {kind: file, path: counts.jsonl, inputs: [counts]}";
        let manifest = write_manifest(
            dir.path(),
            &kafka_topology(&broker.brokers, &input, sink, "exactly-once"),
        );
        crash_at(&manifest, point, action, &mut rng, &mut tally);
        let got = file_records(&dir.path().join("counts.jsonl"));
        let v = verdict(&got, &reference(&events));
        tally.events += events.len();
        tally.lost += v.lost;
        tally.duplicated += v.duplicated;
        assert!(
            v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
            "exactly-once Kafka → file, {point}={action}, seed {seed}: {v:?}"
        );
    }
    tally.report("failpoints/exactly-once/kafka/file");
}

/// An unknown failpoint, or one that cannot fail asked to, is refused at start by name.
#[test]
fn a_misspelt_failpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clicks.jsonl"), "").unwrap();
    let manifest = write_manifest(
        dir.path(),
        &FILE_TOPOLOGY.replace("GUARANTEE", "exactly-once"),
    );
    match run(&manifest, "kafka.comitted=kill") {
        Ended::Failed(err) => {
            assert!(err.contains("no failpoint `kafka.comitted`"), "{err}");
            assert!(err.contains("kafka.committed"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

/// Under exactly-once the first sink's topic carries the checkpoint marker, so it must exist
/// before the first run: a clear error naming it, not offsets a broker silently drops.
#[test]
fn a_missing_sink_topic_under_exactly_once_is_named() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let broker = Broker::start();
    let input = broker.topic("clicks", 1);
    broker.produce(&input, &clicks(100, 5));
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "  out: {{kind: kafka, brokers: {}, topic: never-created, key: /key, inputs: [counts]}}",
        broker.brokers
    );
    let manifest = write_manifest(
        dir.path(),
        &kafka_topology(&broker.brokers, &input, &sink, "exactly-once"),
    );
    match run(&manifest, "") {
        Ended::Failed(err) => {
            assert!(
                err.contains("topic `never-created` does not exist"),
                "{err}"
            );
            assert!(err.contains("sink `out`"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// A paused flowlet (SIGSTOP) while a successor takes over

/// Send `signal` to `pid` (the `kill` command: no libc in the tests).
fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {pid}");
}

/// Copy the directory `from` (manifest, state) to `to`, as a successor on another machine
/// would get it.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&e.path(), &target);
        } else if kind.is_file() {
            // (The control socket is not copied: it belongs to the running process.)
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Kafka sinks: flowlet A is paused mid-run; B, with a copy of A's state and the same manifest
/// (so the same transactional id), takes over and finishes. A, resumed, is fenced: it stops
/// with an error and commits nothing — the output is exactly once.
#[test]
fn a_paused_flowlet_is_fenced_by_its_successor() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let broker = Broker::start();
    let mut events = clicks(100_000, 9);
    let KafkaCase {
        input,
        output,
        dir: a_dir,
        manifest,
    } = kafka_case(&broker, 2, &events, |t| t);
    let mut a = Child::spawn(
        flowlet_bin()
            .args(["run", manifest.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        a.inner().try_wait().unwrap().is_none(),
        "A finished before it could be paused: give it more input"
    );
    signal(a.id(), "-STOP");
    let b_dir = tempfile::tempdir().unwrap();
    copy_dir(a_dir.path(), b_dir.path());
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    let b_manifest = b_dir.path().join(manifest.file_name().unwrap());
    assert_eq!(run(&b_manifest, ""), Ended::Finished, "the successor B");
    signal(a.id(), "-CONT");
    let out = a.wait_for(Duration::from_secs(180));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the paused flowlet went on after its successor took over: {err}"
    );
    eprintln!("A, resumed: {}", err.lines().last().unwrap_or_default());
    let v = verdict(&kafka_records(&broker, &output), &reference(&events));
    assert!(
        v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
        "{v:?}; A said: {err}"
    );
    Tally {
        runs: 2,
        faults: 1,
        events: events.len(),
        lost: v.lost,
        duplicated: v.duplicated,
    }
    .report("zombie/exactly-once/kafka/kafka");
}

/// File sinks: a second flowlet on the state directory of a paused one refuses to start,
/// naming the holder; once the first is gone, the next run continues exactly once.
#[test]
fn a_second_flowlet_on_a_paused_ones_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let events = clicks(300_000, 10);
    let text: String = events.iter().map(|(_, v)| format!("{v}\n")).collect();
    std::fs::write(dir.path().join("clicks.jsonl"), text).unwrap();
    let manifest = write_manifest(
        dir.path(),
        &FILE_TOPOLOGY.replace("GUARANTEE", "exactly-once"),
    );
    let mut a = Child::spawn(
        flowlet_bin()
            .args(["run", manifest.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let state = dir.path().join(".flowlet/state/faults-file");
    flowlet_tests::wait_for_lock(&state, a.id());
    signal(a.id(), "-STOP");
    match run(&manifest, "") {
        Ended::Failed(err) => assert!(
            err.contains("in use by another flowlet") && err.contains(&format!("pid {}", a.id())),
            "{err}"
        ),
        other => panic!("a second flowlet ran on a paused one's state directory: {other:?}"),
    }
    // The paused one dies without a word (as a frozen machine would be fenced off).
    signal(a.id(), "-KILL");
    let _ = a.inner().wait();
    assert_eq!(run(&manifest, ""), Ended::Finished);
    let v = verdict(
        &file_records(&dir.path().join("counts.jsonl")),
        &reference(&events),
    );
    assert!(v.lost == 0 && v.wrong == 0 && v.duplicated == 0, "{v:?}");
}

// ---------------------------------------------------------------------------------------
// Network faults between flowlet and the broker

/// Kafka → window → Kafka through a TCP proxy that adds latency, resets every connection
/// (three times) and black-holes all traffic for longer than librdkafka's request timeouts,
/// while flowlet runs. flowlet rides them out or stops with an error (never hangs); the next
/// run finishes; the output is exactly once.
#[test]
fn network_faults_between_flowlet_and_the_broker_lose_and_repeat_nothing() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let Some((broker, proxy)) = Broker::behind_proxy() else {
        eprintln!("skipped: FLOWLET_KAFKA_BROKERS points at a cluster this test cannot proxy");
        return;
    };
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut events = clicks(150_000, rng.next_u64());
    let KafkaCase {
        input,
        output,
        dir: _dir,
        manifest,
    } = kafka_case(&broker, 2, &events, |t| {
        t.replace(
            "bounded: true",
            // Short timeouts, so that a black hole outlasts them within the test.
            "bounded: true\n    properties: {socket.timeout.ms: '3000'}",
        )
    });
    let mut faults = 0;
    let mut runs = 0;
    let mut failed = Vec::new();
    // Run while faults are injected, until a run finishes by itself.
    loop {
        runs += 1;
        let child = Child::spawn(
            flowlet_bin()
                .args(["run", manifest.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let script = [
            (Mode::Latency(Duration::from_millis(1 + rng.below(30))), 800),
            (Mode::Pass, 300),
            (Mode::BlackHole, 4_000 + rng.below(3_000)),
            (Mode::Pass, 500),
        ];
        for (mode, ms) in script {
            proxy.set(mode);
            faults += 1;
            std::thread::sleep(Duration::from_millis(ms));
            if rng.below(2) == 0 {
                proxy.drop_connections();
                faults += 1;
            }
        }
        proxy.set(Mode::Pass);
        let out = child.wait_for(Duration::from_secs(300));
        if out.status.success() {
            break;
        }
        failed.push(String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(
            runs < 6,
            "no run got through the faults:\n{}",
            failed.join("\n---\n")
        );
    }
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    runs += 1;
    assert_eq!(run(&manifest, ""), Ended::Finished, "the final run");
    let v = verdict(&kafka_records(&broker, &output), &reference(&events));
    for f in &failed {
        eprintln!(
            "a run stopped on the faults: {}",
            f.lines().last().unwrap_or_default()
        );
    }
    assert!(
        v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
        "seed {seed}: {v:?}"
    );
    Tally {
        runs,
        faults,
        events: events.len(),
        lost: v.lost,
        duplicated: v.duplicated,
    }
    .report("network/exactly-once/kafka/kafka");
}

/// A crash while a savepoint is written (its `.partial` file complete, not yet renamed): no
/// savepoint appears half-made, the next run continues exactly once, and a savepoint taken
/// afterwards (from the stopped topology's last checkpoint) is whole.
#[test]
fn a_crash_while_a_savepoint_is_written_leaves_no_half_savepoint() {
    let dir = tempfile::tempdir().unwrap();
    let events = clicks(600_000, 12);
    let text: String = events.iter().map(|(_, v)| format!("{v}\n")).collect();
    std::fs::write(dir.path().join("clicks.jsonl"), text).unwrap();
    let manifest = write_manifest(
        dir.path(),
        &FILE_TOPOLOGY.replace("GUARANTEE", "exactly-once"),
    );
    let run_child = Child::spawn(
        flowlet_bin()
            .args(["run", manifest.to_str().unwrap()])
            .env("FLOWLET_FAILPOINTS", "savepoint.written=kill")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    flowlet_tests::wait_for_lock(
        &dir.path().join(".flowlet/state/faults-file"),
        run_child.id(),
    );
    let target = dir.path().join("sp.flowlet");
    let savepoint = flowlet_bin()
        .args(["savepoint", manifest.to_str().unwrap(), "--output"])
        .arg(&target)
        .output()
        .unwrap();
    let out = run_child.wait_for(Duration::from_secs(120));
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "the run was not killed at the failpoint: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The request failed, or (the directory being free again) the client copied the last
    // checkpoint instead: then the file is whole, and the next run starts from it.
    let whole = std::fs::read(&target).is_ok_and(|b| b.starts_with(b"flowlet-savepoint-1\n"));
    assert_eq!(
        savepoint.status.success(),
        whole,
        "savepoint: {}",
        String::from_utf8_lossy(&savepoint.stderr)
    );
    if whole {
        succeed(
            flowlet_bin()
                .args(["run", manifest.to_str().unwrap(), "--from-savepoint"])
                .arg(&target),
        );
    } else {
        assert_eq!(run(&manifest, ""), Ended::Finished);
    }
    let v = verdict(
        &file_records(&dir.path().join("counts.jsonl")),
        &reference(&events),
    );
    assert!(v.lost == 0 && v.wrong == 0 && v.duplicated == 0, "{v:?}");
    let again = flowlet_bin()
        .args(["savepoint", manifest.to_str().unwrap(), "--output"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(target.is_file());
}

/// The broker killed in the middle of a commit: every transaction stalls 400 ms between adding
/// the offsets and committing (`kafka.offsets-sent=sleep(400)`), so a kill at a random instant
/// lands mid-commit most of the time; the broker comes back on the same storage a second
/// later. flowlet rides it out or stops with an error; the next run finishes exactly once.
#[test]
fn the_broker_killed_mid_commit_loses_and_repeats_nothing() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker has no transactions");
        return;
    }
    let mut broker = Broker::start();
    if !broker.owned() {
        eprintln!("skipped: FLOWLET_KAFKA_BROKERS points at a cluster this test cannot restart");
        return;
    }
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let mut events = clicks(100_000, rng.next_u64());
    let KafkaCase {
        input,
        output,
        dir: _dir,
        manifest,
    } = kafka_case(&broker, 2, &events, |t| t);
    let mut runs = 0;
    let mut kills = 0;
    for _ in 0..rounds().min(3) {
        runs += 1;
        let child = Child::spawn(
            flowlet_bin()
                .args(["run", manifest.to_str().unwrap()])
                .env("FLOWLET_FAILPOINTS", "kafka.offsets-sent=sleep(400)")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        std::thread::sleep(Duration::from_millis(1_000 + rng.below(1_500)));
        broker.stop();
        kills += 1;
        std::thread::sleep(Duration::from_millis(1_000));
        broker.restart();
        let out = child.wait_for(Duration::from_secs(300));
        if out.status.success() {
            break;
        }
    }
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    runs += 1;
    assert_eq!(run(&manifest, ""), Ended::Finished, "the final run");
    let v = verdict(&kafka_records(&broker, &output), &reference(&events));
    assert!(
        v.lost == 0 && v.wrong == 0 && v.duplicated == 0,
        "seed {seed}: {v:?}"
    );
    Tally {
        runs,
        faults: kills,
        events: events.len(),
        lost: v.lost,
        duplicated: v.duplicated,
    }
    .report("broker-kill-mid-commit/exactly-once/kafka/kafka");
}

// ---------------------------------------------------------------------------------------
// A hot swap in the middle of a crash

/// `flowlet serve` as its own process on a free port, its data in `data`.
fn serve(data: &Path, failpoints: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Child::spawn(
        flowlet_bin()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("FLOWLET_FAILPOINTS", failpoints)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "flowlet serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, url)
}

fn wait_status(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let c = flowlet::client::Client::new(url, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = c.get("/v1/pipelines/counts")
            && ok(&s)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running count per key (the counter test plugins, each tagging its output with its
/// version) is swapped v1 → v2, and `flowlet serve` is killed with SIGKILL at a random instant
/// of the swap's probation or at the first checkpoint after it; a new server on the same data
/// directory resumes the pipeline. Every event is counted exactly once and every key's count
/// continues, whichever version the last checkpoint held.
#[test]
fn a_hot_swap_then_a_crash_loses_and_repeats_nothing() {
    let seed = seed();
    eprintln!("seed {seed} (FLOWLET_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let out = dir.path().join("out.jsonl");
    const EVENTS: u64 = 20_000;
    let manifest = dir.path().join("counts.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
version: 1
name: counts
checkpoint: {{interval: 300ms}}
guarantee: exactly-once
sources:
  clicks: {{kind: generator, count: {EVENTS}, rate: 4000}}
operators:
  count:
    plugin: counter@v1
    inputs: [clicks]
    key-by: /user
    parallelism: 2
sinks:
  out: {{kind: file, path: {}, inputs: [count]}}
"#,
            out.display()
        ),
    )
    .unwrap();
    // Half of the rounds: killed by the failpoint at the first checkpoint after the swap.
    let by_failpoint = rng.below(2) == 0;
    let (mut server, url) = serve(&data, "");
    let c = flowlet::client::Client::new(&url, None);
    for v in ["v1", "v2"] {
        let file = flowlet_tests::plugin(&format!("counter-{v}"));
        c.upload(Path::new(&file), "counter", v).unwrap();
    }
    c.deploy(&manifest, None).unwrap();
    wait_status(&url, "events before the swap", |s| {
        s["phase"] == "running" && s["operators"]["count"]["events-in"].as_u64() > Some(1_000)
    });
    if by_failpoint {
        // The next server process dies at its first checkpoint: restart this one with it.
        drop(server);
        let (s, u) = serve(&data, "checkpoint.applied=1*kill");
        server = s;
        let c = flowlet::client::Client::new(&u, None);
        wait_status(&u, "running again", |s| s["phase"] == "running");
        c.swap("counts", "count", "counter@v2").unwrap();
        let _ = server.wait_for(Duration::from_secs(60));
    } else {
        c.swap("counts", "count", "counter@v2").unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(1_500)));
        signal(server.id(), "-KILL");
        drop(server);
    }
    let (_server, url) = serve(&data, "");
    wait_status(&url, "the end of the input", |s| s["phase"] == "finished");

    let mut ids = BTreeSet::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_u64().unwrap();
        assert!(ids.insert(id), "seed {seed}: event {id} counted twice");
        let key = v["key"].as_str().unwrap().to_owned();
        let n = counts.entry(key.clone()).or_default();
        *n += 1;
        assert_eq!(
            v["n"].as_u64().unwrap(),
            *n,
            "seed {seed}: the count of {key} did not continue across the swap and the crash: {line}"
        );
    }
    assert_eq!(ids.len() as u64, EVENTS, "seed {seed}: events lost");
    flowlet_tests::report_faults(
        "swap+sigkill/exactly-once/generator/file",
        3,
        1,
        EVENTS as usize,
        0,
        0,
    );
}
