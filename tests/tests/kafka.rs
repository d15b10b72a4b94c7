//! Kafka sources and sinks against a real Kafka-protocol broker (see tests/src/kafka.rs), with
//! the crash harness: `kill -9` at random instants, run again, and compare what Kafka holds
//! with the result computed here from the input.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use flowlet_tests::kafka::{self, Broker, Record};
use flowlet_tests::{
    Rng, crash_kills, flowlet_bin, json_lines, report_faults, run_and_kill, succeed, write_manifest,
};

/// A window count: (user, window start, count).
type Count = (String, i64, u64);

/// `n` clicks keyed by user, in time order (so every partition is in order too).
fn clicks(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let mut ts = 1_700_000_000_000i64;
    (0..n)
        .map(|i| {
            ts += rng.below(4) as i64;
            let user = format!("u{}", rng.below(2000));
            let value = format!(r#"{{"i":{i},"user":"{user}","ts":{ts}}}"#);
            (user, value)
        })
        .collect()
}

/// Counts per user and 1-second window, by a plain loop.
fn reference(clicks: &[(String, String)]) -> BTreeSet<Count> {
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (user, value) in clicks {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        let ts = v["ts"].as_i64().unwrap();
        *counts
            .entry((user.clone(), ts.div_euclid(1000) * 1000))
            .or_default() += 1;
    }
    counts.into_iter().map(|((u, s), c)| (u, s, c)).collect()
}

/// Equal sets, or a short account of the difference.
fn assert_same(got: &BTreeSet<Count>, expected: &BTreeSet<Count>) {
    let missing: Vec<_> = expected.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} windows expected, {} got; {} missing (e.g. {missing:?}), {} unexpected (e.g. {extra:?})",
        expected.len(),
        got.len(),
        expected.difference(got).count(),
        got.difference(expected).count()
    );
}

/// The window counts of Kafka records.
fn counts_in(records: &[Record]) -> Vec<Count> {
    records
        .iter()
        .map(|r| count_of(&serde_json::from_str(&r.value).unwrap()))
        .collect()
}

/// Exactly once: no window twice, and the windows of a plain loop over `events`.
fn assert_exactly_once(got: &[Count], events: &[(String, String)]) {
    let distinct: BTreeSet<Count> = got.iter().cloned().collect();
    assert_eq!(
        got.len(),
        distinct.len(),
        "{} windows written twice",
        got.len() - distinct.len()
    );
    assert_same(&distinct, &reference(events));
}

/// The sink of the window counts into `topic`.
fn kafka_sink(broker: &Broker, topic: &str) -> String {
    format!(
        "  out: {{kind: kafka, brokers: {}, topic: {topic}, key: /key, inputs: [counts]}}",
        broker.brokers
    )
}

fn count_of(v: &serde_json::Value) -> Count {
    (
        v["key"].as_str().unwrap().to_owned(),
        v["start"].as_i64().unwrap(),
        v["count"].as_u64().unwrap(),
    )
}

fn topology(brokers: &str, input: &str, sink: &str, guarantee: &str) -> String {
    format!(
        r#"
version: 1
name: counts-{input}
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

fn run_args(manifest: &Path) -> Vec<&OsStr> {
    vec![OsStr::new("run"), manifest.as_os_str()]
}

/// Kill flowlet `kills` times at random instants (fewer if it finishes first), then run it to
/// the end. Returns the kills.
fn crash_until_done(manifest: &Path, kills: usize, seed: u64, max_ms: u64) -> usize {
    let mut rng = Rng(seed);
    let mut killed = 0;
    while killed < kills {
        let (ended, err) = run_and_kill(
            &run_args(manifest),
            Duration::from_millis(100 + rng.below(max_ms)),
        );
        if let Ok(keep) = std::env::var("FLOWLET_KEEP") {
            let name = manifest
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let _ = std::fs::create_dir_all(&keep);
            std::fs::write(
                Path::new(&keep).join(format!("{name}-run-{killed}.log")),
                err,
            )
            .unwrap();
        }
        if ended {
            break;
        }
        killed += 1;
    }
    killed
}

fn finish(manifest: &Path) {
    succeed(flowlet_bin().args(run_args(manifest)));
}

// Every topology is named after its input topic, so that tests sharing an external cluster
// never share a transactional id or a consumer group.

/// The committed output records: `read_committed` on a compliant broker; on the test broker,
/// which shows aborted records, the verifier drops aborted attempts from flowlet's headers.
fn committed(broker: &Broker, topic: &str) -> Vec<Record> {
    // On the test broker the reader takes every record (read_uncommitted) and decides from the
    // headers: a `read_committed` librdkafka reader filters aborted transactions on the client
    // from the broker's aborted-transaction list, and nisshi's list can cover *committed*
    // records of the same producer id (runs share it, with new epochs) — earlier runs' output
    // then vanished from the reader, which once looked like lost windows.
    let records = broker.read_all(topic, kafka::hides_aborted());
    if kafka::hides_aborted() {
        records
    } else {
        let kept = kafka::committed_by_headers(&records, None);
        eprintln!("{}", kafka::attempts(&records, &kept));
        kept
    }
}

/// The last event of the input, far in the future, so that the final run always writes a
/// window (and its records carry the lineage of every committed attempt before it).
fn flush_event() -> (String, String) {
    (
        "flush".into(),
        r#"{"i":-1,"user":"flush","ts":1750000000000}"#.into(),
    )
}

#[test]
fn kafka_to_kafka_window_counts_are_exactly_once_across_kill_9() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker (tansu) has no transactions");
        return;
    }
    let broker = Broker::start();
    let input = broker.topic("clicks", 3);
    let output = broker.topic("counts", 2);
    let mut events = clicks(60_000, 1);
    broker.produce(&input, &events);
    let dir = tempfile::tempdir().unwrap();
    let sink = kafka_sink(&broker, &output);
    let manifest = write_manifest(
        dir.path(),
        &topology(&broker.brokers, &input, &sink, "exactly-once"),
    );
    let kills = crash_kills();
    let killed = crash_until_done(&manifest, kills, 3, 900);
    assert!(
        killed >= kills,
        "finished after {killed} kills; give it more input"
    );
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    finish(&manifest);

    let records = committed(&broker, &output);
    assert_exactly_once(&counts_in(&records), &events);
    report_faults(
        "sigkill/exactly-once/kafka/kafka",
        killed + 1,
        killed,
        events.len(),
        0,
        0,
    );
    // Records are keyed by the user, and carry the checkpoint they belong to.
    let r = &records[0];
    assert_eq!(
        r.key.as_deref(),
        serde_json::from_str::<serde_json::Value>(&r.value).unwrap()["key"].as_str()
    );
    assert!(r.headers.contains_key("flowlet-checkpoint"));
}

#[test]
fn kafka_at_least_once_loses_nothing_across_kill_9() {
    let broker = Broker::start();
    let input = broker.topic("clicks", 3);
    let output = broker.topic("counts", 1);
    let events = clicks(40_000, 2);
    broker.produce(&input, &events);
    let dir = tempfile::tempdir().unwrap();
    let sink = kafka_sink(&broker, &output);
    let manifest = write_manifest(
        dir.path(),
        &topology(&broker.brokers, &input, &sink, "at-least-once"),
    );
    let kills = crash_kills();
    let killed = crash_until_done(&manifest, kills, 4, 600);
    finish(&manifest);
    let got = counts_in(&broker.read_all(&output, false));
    let distinct: BTreeSet<Count> = got.iter().cloned().collect();
    // A replayed window is recomputed from the checkpoint, so a repeat is identical.
    assert_same(&distinct, &reference(&events));
    eprintln!(
        "at-least-once: {} windows, {} repeated after the crashes",
        distinct.len(),
        got.len() - distinct.len()
    );
    // Repeats are allowed under at-least-once: not counted as duplicates.
    report_faults(
        "sigkill/at-least-once/kafka/kafka",
        killed + 1,
        killed,
        events.len(),
        0,
        0,
    );
}

#[test]
fn kafka_to_file_is_exactly_once_across_kill_9() {
    let broker = Broker::start();
    let input = broker.topic("clicks", 3);
    let events = clicks(60_000, 5);
    broker.produce(&input, &events);
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &topology(
            &broker.brokers,
            &input,
            "  out: {kind: file, path: counts.jsonl, inputs: [counts]}",
            "exactly-once",
        ),
    );
    let kills = crash_kills();
    let killed = crash_until_done(&manifest, kills, 6, 900);
    finish(&manifest);
    let got: Vec<Count> = json_lines(&dir.path().join("counts.jsonl"))
        .iter()
        .map(count_of)
        .collect();
    assert_exactly_once(&got, &events);
    report_faults(
        "sigkill/exactly-once/kafka/file",
        killed + 1,
        killed,
        events.len(),
        0,
        0,
    );
    // Each checkpoint's offsets reach the consumer group (lag monitoring); the final one's
    // are the end of the input.
    let committed = broker.committed_offsets(&format!("flowlet-counts-{input}"), &input);
    assert_eq!(committed, events.len() as i64);
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds a process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based); after the `)` they are 12 and 13.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_broker_down_at_start_is_waited_for_with_backoff() {
    let Some(mut broker) = Broker::not_started() else {
        eprintln!("skipped: FLOWLET_KAFKA_BROKERS points at a cluster this test cannot stop");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        &topology(
            &broker.brokers,
            "late-clicks",
            "  out: {kind: file, path: counts.jsonl, inputs: [counts]}",
            "exactly-once",
        ),
    );
    let log = dir.path().join("stderr");
    let mut child = Killed(
        flowlet_bin()
            .args(run_args(&manifest))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    std::thread::sleep(Duration::from_secs(5));
    assert!(child.try_wait().unwrap().is_none(), "flowlet gave up");
    let cpu = cpu_seconds(child.id());
    assert!(cpu < 1.0, "{cpu} CPU seconds while waiting: a busy loop");
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains("waiting for Kafka at") && err.contains("retrying in"),
        "{err}"
    );
    // The broker comes up: the run goes on by itself.
    broker.launch();
    let input = broker.topic_named("late-clicks", 2);
    let events = clicks(2_000, 9);
    broker.produce(&input, &events);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let got: BTreeSet<Count> = json_lines(&dir.path().join("counts.jsonl"))
        .iter()
        .map(count_of)
        .collect();
    assert_same(&got, &reference(&events));
}

#[test]
fn a_broker_restarted_mid_run_loses_and_repeats_nothing() {
    if !kafka::transactions() {
        eprintln!("skipped: the test broker (tansu) has no transactions");
        return;
    }
    let mut broker = Broker::start();
    if !broker.owned() {
        eprintln!("skipped: FLOWLET_KAFKA_BROKERS points at a cluster this test cannot restart");
        return;
    }
    let input = broker.topic("clicks", 2);
    let output = broker.topic("counts", 1);
    let mut events = clicks(150_000, 8);
    broker.produce(&input, &events);
    let dir = tempfile::tempdir().unwrap();
    let sink = kafka_sink(&broker, &output);
    let manifest = write_manifest(
        dir.path(),
        &topology(&broker.brokers, &input, &sink, "exactly-once"),
    );
    let log = dir.path().join("stderr");
    let mut child = Killed(
        flowlet_bin()
            .args(run_args(&manifest))
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    std::thread::sleep(Duration::from_millis(400));
    broker.restart();
    let status = child.wait().unwrap();
    eprintln!(
        "the run across the broker restart ended with {status}; its log:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // Whether the run rode out the restart or stopped on a failed transaction, running the
    // same command again completes it.
    broker.produce(&input, &[flush_event()]);
    events.push(flush_event());
    finish(&manifest);
    let records = committed(&broker, &output);
    assert_exactly_once(&counts_in(&records), &events);
    report_faults(
        "broker-restart/exactly-once/kafka/kafka",
        2,
        1,
        events.len(),
        0,
        0,
    );
}

/// What the verifiers of these tests rely on from the broker they run against (docs/
/// TEST-BROKER.md lists what the test broker gets wrong, and how the verifiers avoid depending
/// on it): end offsets are exact (a bounded read up to them gets every record — nisshi's memory
/// engine fails this), acknowledged records survive a broker `kill -9`, and the offsets sent
/// with a transaction are committed with it and not with an aborted one.
#[test]
fn the_broker_does_what_the_verifiers_rely_on() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::{Offset, TopicPartitionList};
    let mut broker = Broker::start();
    let topic = broker.topic("conformance", 3);
    let records: Vec<(String, String)> = (0..30_000)
        .map(|i| (format!("k{}", i % 97), format!(r#"{{"i":{i}}}"#)))
        .collect();
    broker.produce(&topic, &records);
    // The records a bounded read (up to the end offsets) misses, as the first few of them.
    let missing = |b: &Broker| -> Vec<i64> {
        let seen: BTreeSet<i64> = b
            .read_all(&topic, false)
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.value).unwrap()["i"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        (0..30_000).filter(|i| !seen.contains(i)).collect()
    };
    let lost = missing(&broker);
    assert!(
        lost.is_empty(),
        "a bounded read missed {} records, from {:?}",
        lost.len(),
        lost.first()
    );
    if broker.owned() {
        broker.restart(); // SIGKILL, then the same storage
        let lost = missing(&broker);
        assert!(
            lost.is_empty(),
            "after a kill -9 of the broker {} records are missing",
            lost.len()
        );
    }
    if !kafka::transactions() {
        return;
    }
    let group = format!("conformance-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assigned = TopicPartitionList::new();
    assigned.add_partition(&topic, 0);
    consumer.assign(&assigned).unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set(
            "transactional.id",
            format!("conformance-{}", std::process::id()),
        )
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    let transaction = |offset: i64, commit: bool| {
        producer.begin_transaction().unwrap();
        producer
            .send(BaseRecord::to(&topic).key("t").payload("in a transaction"))
            .map_err(|(e, _)| e)
            .unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        let metadata = consumer.group_metadata().unwrap();
        producer
            .send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(30))
            .unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
        } else {
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
        }
    };
    transaction(7, true);
    assert_eq!(
        broker.committed_offsets(&group, &topic),
        7,
        "offsets of a committed transaction"
    );
    transaction(12, false);
    assert_eq!(
        broker.committed_offsets(&group, &topic),
        7,
        "offsets of an aborted transaction"
    );
}
