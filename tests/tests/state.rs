//! Keyed state, timers, TTL, idle sources, processing time and restarts, end to end through
//! the Wasm plugins, with a controllable clock where time matters.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flowlet_dataflow::{LiveStats, ManualClock, RunOptions, RunReport, Stop};
use flowlet_tests::{host, json_lines, write_manifest};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

fn write_lines(path: &Path, values: &[Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

async fn run_with(
    manifest: PathBuf,
    clock: Arc<ManualClock>,
    stdin: Option<tokio::io::DuplexStream>,
    stop: Arc<Stop>,
) -> anyhow::Result<RunReport> {
    run_live(manifest, clock, stdin, stop, LiveStats::default()).await
}

/// [`run_with`], with the run's counters readable through `live` while it runs.
async fn run_live(
    manifest: PathBuf,
    clock: Arc<ManualClock>,
    stdin: Option<tokio::io::DuplexStream>,
    stop: Arc<Stop>,
    live: LiveStats,
) -> anyhow::Result<RunReport> {
    let m = flowlet::load_manifest(&manifest)?;
    let options = RunOptions {
        clock,
        connectors: Some(Arc::new(match stdin {
            Some(s) => flowlet_connectors::Connectors::with_stdin(Box::new(s)),
            None => flowlet_connectors::Connectors::default(),
        })),
        tick: Duration::from_millis(10),
        live,
        ..RunOptions::default()
    };
    flowlet::run_manifest_with(&host(), &m, options, stop).await
}

/// Wait until operator `node` has handled `n` events — it read the clock for them — (failing
/// at once if the run stopped).
async fn wait_handled(live: &LiveStats, node: &str, n: u64, run: &mut Running) {
    for _ in 0..1000 {
        if live.get(node).is_some_and(|s| s.events_in >= n) {
            return;
        }
        if run.is_finished() {
            let result = run.await.unwrap();
            panic!("the run ended before `{node}` handled {n} events: {result:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("`{node}` never handled {n} events: {:?}", live.get(node));
}

type Running = tokio::task::JoinHandle<anyhow::Result<RunReport>>;

/// Wait until `path` has at least `n` lines (failing at once if the run stopped).
async fn wait_lines(path: &Path, n: usize, run: &mut Running) {
    for _ in 0..1000 {
        if json_lines(path).len() >= n {
            return;
        }
        if run.is_finished() {
            let result = run.await.unwrap();
            panic!(
                "the run ended before {} had {n} lines: {result:?}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} never had {n} lines: {} lines",
        path.display(),
        json_lines(path).len()
    );
}

fn ids(path: &Path) -> Vec<i64> {
    json_lines(path)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dedupe_remembers_ids_across_restarts_until_the_ttl_expires() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: state}
sources:
  payments: {kind: file, path: in.jsonl}
operators:
  once:
    plugin: {plugins}/dedupe.wasm
    key-by: /id
    config: {ttl: 10s}
    inputs: [payments]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [once]}
"#,
    );
    let ev = |id: i64| json!({"id": id, "amount": id * 10});
    let clock = ManualClock::new(1_000_000);
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");

    write_lines(&input, &[ev(1), ev(2), ev(2), ev(3), ev(1)]);
    run_with(manifest.clone(), clock.clone(), None, Stop::new())
        .await
        .unwrap();
    assert_eq!(ids(&out), vec![1, 2, 3]);

    // A clean restart 5 s later: 3 was seen within the TTL, 4 is new.
    clock.advance(5_000);
    write_lines(&input, &[ev(3), ev(4)]);
    let report = run_with(manifest.clone(), clock.clone(), None, Stop::new())
        .await
        .unwrap();
    assert_eq!(ids(&out), vec![4]);
    assert_eq!(report.nodes["once"].events_in, 2);

    // 20 s after the first run, 3 has expired (10 s TTL); 4 (seen 15 s ago) too.
    clock.advance(15_000);
    write_lines(&input, &[ev(3), ev(4), ev(4)]);
    run_with(manifest.clone(), clock.clone(), None, Stop::new())
        .await
        .unwrap();
    assert_eq!(ids(&out), vec![3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn reorder_releases_buffered_events_in_event_time_order_via_timers_and_map_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: state}
sources:
  clicks:
    kind: file
    path: in.jsonl
    batch-size: 7
    event-time: {field: /ts, max-out-of-orderness: 5s}
operators:
  sorted:
    plugin: {plugins}/reorder.wasm
    key-by: /user
    inputs: [clicks]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [sorted]}
"#,
    );
    // Unique timestamps, shuffled by up to 4 s (within the bound): the output must be the
    // input sorted by time — a reference that needs no model of batches or watermarks.
    let mut x = 7u64;
    let mut noisy: Vec<(i64, Value)> = (0..500)
        .map(|i: i64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let ts = 100_000 + i * 100 + (i * 7919 % 13);
            let arrival = ts + (x >> 33) as i64 % 4_000;
            (arrival, json!({"user": format!("u{}", i % 5), "ts": ts}))
        })
        .collect();
    // Arrival order: each event at most 4 s behind the newest one.
    noisy.sort_by_key(|(arrival, _)| *arrival);
    let events: Vec<Value> = noisy.into_iter().map(|(_, v)| v).collect();
    write_lines(&dir.path().join("in.jsonl"), &events);
    let report = run_with(manifest.clone(), ManualClock::new(0), None, Stop::new())
        .await
        .unwrap();
    let mut expected = events.clone();
    expected.sort_by_key(|v| v["ts"].as_i64().unwrap());
    let actual = json_lines(&dir.path().join("out.jsonl"));
    assert!(
        actual == expected,
        "the output is not the input in time order"
    );
    assert_ne!(events, expected, "the input is out of order");
    assert_eq!(report.nodes["sorted"].events_out, 500);
}

fn window_rows(path: &Path) -> Vec<(String, i64, i64, u64)> {
    json_lines(path)
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["start"].as_i64().unwrap(),
                v["end"].as_i64().unwrap(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn processing_time_windows_fire_when_the_clock_passes_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: state}
sources:
  typed: {kind: stdin}
operators:
  counts:
    plugin: {plugins}/aggregate.wasm
    key-by: /user
    window: {kind: tumbling, size: 1s, time: processing}
    config: {function: count}
    inputs: [typed]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [counts]}
"#,
    );
    let (mut writer, reader) = tokio::io::duplex(1 << 16);
    let clock = ManualClock::new(10_000);
    let live = LiveStats::default();
    let mut run = tokio::spawn(run_live(
        manifest.clone(),
        clock.clone(),
        Some(reader),
        Stop::new(),
        live.clone(),
    ));
    let out = dir.path().join("out.jsonl");

    writer
        .write_all(b"{\"user\":\"a\"}\n{\"user\":\"a\"}\n{\"user\":\"b\"}\n")
        .await
        .unwrap();
    wait_handled(&live, "counts", 3, &mut run).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        window_rows(&out).is_empty(),
        "nothing fires before the clock moves"
    );
    clock.set(11_000);
    wait_lines(&out, 2, &mut run).await;
    writer
        .write_all(b"{\"user\":\"a\"}\n{\"user\":\"a\"}\n")
        .await
        .unwrap();
    wait_handled(&live, "counts", 5, &mut run).await;
    clock.set(12_500);
    wait_lines(&out, 3, &mut run).await;
    drop(writer);
    run.await.unwrap().unwrap();
    let mut rows = window_rows(&out);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("a".into(), 10_000, 11_000, 2),
            ("a".into(), 11_000, 12_000, 2),
            ("b".into(), 10_000, 11_000, 1),
        ]
    );
}

fn two_source_manifest(dir: &Path, idle: &str) -> PathBuf {
    write_manifest(
        dir,
        &format!(
            r#"
version: 1
state: {{dir: state}}
sources:
  gen: {{kind: generator, count: 1500, rate: 3000}}
  quiet:
    kind: stdin
    event-time: {{field: /ts{idle}}}
operators:
  counts:
    plugin: {{plugins}}/aggregate.wasm
    key-by: /country
    window: {{kind: tumbling, size: 100ms}}
    config: {{function: count}}
    inputs: [gen, quiet]
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [counts]}}
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_source_stops_holding_back_the_watermark() {
    for (idle, fires_while_open) in [(", idle-timeout: 200ms", true), ("", false)] {
        let dir = tempfile::tempdir().unwrap();
        let manifest = two_source_manifest(dir.path(), idle);
        let (writer, reader) = tokio::io::duplex(1024);
        let run = tokio::spawn(run_with(
            manifest.clone(),
            ManualClock::new(0),
            Some(reader),
            Stop::new(),
        ));
        // The generator takes 0.5 s; the quiet source stays open for 1.5 s.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let fired = window_rows(&dir.path().join("out.jsonl")).len();
        assert_eq!(
            fired > 0,
            fires_while_open,
            "idle {idle:?}: {fired} windows fired"
        );
        drop(writer);
        run.await.unwrap().unwrap();
        // At the end of both inputs every window fires: 1500 events in 100 ms windows.
        let rows = window_rows(&dir.path().join("out.jsonl"));
        assert_eq!(rows.iter().map(|r| r.3).sum::<u64>(), 1500);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_windows_survive_a_stop_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: state, commit-interval: 1h}
sources:
  typed:
    kind: stdin
    event-time: {field: /ts}
operators:
  counts:
    plugin: {plugins}/aggregate.wasm
    key-by: /user
    window: {kind: tumbling, size: 10s}
    config: {function: count}
    inputs: [typed]
sinks:
  seen: {kind: file, path: seen.jsonl, inputs: [typed]}
  out: {kind: file, path: out.jsonl, inputs: [counts]}
"#,
    );
    let line = |u: &str, ts: i64| format!("{}\n", json!({"user": u, "ts": ts}));
    let seen = dir.path().join("seen.jsonl");
    let out = dir.path().join("out.jsonl");

    // Run 1: [0, 10s) fires; [10s, 20s) is open when the run is stopped.
    let (mut writer, reader) = tokio::io::duplex(1 << 16);
    let stop = Stop::new();
    let mut run = tokio::spawn(run_with(
        manifest.clone(),
        ManualClock::new(0),
        Some(reader),
        stop.clone(),
    ));
    let first = [
        line("a", 1_000),
        line("a", 2_000),
        line("b", 12_000),
        line("a", 13_000),
        line("a", 14_000),
    ];
    writer.write_all(first.concat().as_bytes()).await.unwrap();
    wait_lines(&seen, 5, &mut run).await;
    stop.stop();
    run.await.unwrap().unwrap();
    assert_eq!(window_rows(&out), vec![("a".into(), 0, 10_000, 2)]);

    // Run 2 continues the open windows.
    let (mut writer, reader) = tokio::io::duplex(1 << 16);
    let run = tokio::spawn(run_with(
        manifest.clone(),
        ManualClock::new(0),
        Some(reader),
        Stop::new(),
    ));
    writer
        .write_all([line("a", 15_000), line("b", 25_000)].concat().as_bytes())
        .await
        .unwrap();
    drop(writer);
    run.await.unwrap().unwrap();
    let mut rows = window_rows(&out);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("a".into(), 10_000, 20_000, 3),
            ("b".into(), 10_000, 20_000, 1),
            ("b".into(), 20_000, 30_000, 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn processing_time_timers_fire_when_the_clock_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: state}
sources:
  typed: {kind: stdin}
operators:
  quiet:
    plugin: {plugins}/inactivity.wasm
    key-by: /device
    config: {timeout: 1s}
    inputs: [typed]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [quiet]}
"#,
    );
    let (mut writer, reader) = tokio::io::duplex(1 << 16);
    let clock = ManualClock::new(1_000);
    let live = LiveStats::default();
    let mut run = tokio::spawn(run_live(
        manifest.clone(),
        clock.clone(),
        Some(reader),
        Stop::new(),
        live.clone(),
    ));
    let out = dir.path().join("out.jsonl");
    writer
        .write_all(b"{\"device\":\"a\"}\n{\"device\":\"b\"}\n")
        .await
        .unwrap();
    wait_handled(&live, "quiet", 2, &mut run).await;
    clock.set(1_500);
    writer.write_all(b"{\"device\":\"a\"}\n").await.unwrap();
    wait_handled(&live, "quiet", 3, &mut run).await;
    // b's deadline (2000) passes; a was re-armed to 2500.
    clock.set(2_100);
    wait_lines(&out, 1, &mut run).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alerts = json_lines(&out);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0],
        json!({"key": "b", "last_seen": 1000, "silent_ms": 1000, "events": 1})
    );
    clock.set(2_600);
    wait_lines(&out, 2, &mut run).await;
    assert_eq!(
        json_lines(&out)[1],
        json!({"key": "a", "last_seen": 1500, "silent_ms": 1000, "events": 2})
    );
    drop(writer);
    run.await.unwrap().unwrap();
}
