//! Window aggregates end to end (file source → Wasm aggregate → file sinks), checked against a
//! plain reference implementation of the same semantics written here, on hand-made and
//! generated event vectors with out-of-order and late events.
//!
//! Semantics (see docs/ARCHITECTURE.md): a source's watermark is the largest timestamp seen
//! minus `max-out-of-orderness`, sent after each batch; a window `[start, end)` fires when the
//! watermark reaches `end`; an event is late for a window when `end + allowed-lateness <=
//! watermark`; an event late for all its windows goes to `.late`; an event added to a window
//! that fired already makes it fire again; the end of the input fires every open window.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use flowlet_tests::{json_lines, manifest_text, run_text};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
    /// size, step (Flink's CUMULATE).
    Cumulative(i64, i64),
}

/// The windows `[start, end)` an event at `ts` belongs to (all kinds but sessions).
fn windows_of(kind: Kind, ts: i64) -> Vec<(i64, i64)> {
    match kind {
        Kind::Tumbling(size) => vec![(
            ts.div_euclid(size) * size,
            ts.div_euclid(size) * size + size,
        )],
        Kind::Sliding(size, slide) => {
            let mut out = Vec::new();
            let mut s = ts.div_euclid(slide) * slide;
            while s > ts - size {
                out.push((s, s + size));
                s -= slide;
            }
            out
        }
        Kind::Cumulative(size, step) => {
            let start = ts.div_euclid(size) * size;
            (1..=size / step)
                .map(|k| (start, start + k * step))
                .filter(|(_, end)| *end > ts)
                .collect()
        }
        Kind::Session(_) => unreachable!("sessions merge"),
    }
}

/// One fired window as the aggregate plugin (function count) reports it.
type Row = (String, i64, i64, u64, u64); // key, start, end, count, firing

/// The reference: one event per batch, watermark after each.
fn reference(
    kind: Kind,
    bound: i64,
    lateness: i64,
    events: &[(String, i64)],
) -> (Vec<Row>, Vec<i64>) {
    // (key, start, end) -> (count, times fired, fired as this window)
    let mut windows: BTreeMap<(String, i64, i64), (u64, u64, bool)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut late = Vec::new();
    let mut wm = i64::MIN;
    let mut max_seen = i64::MIN;
    let fire = |w: &mut BTreeMap<(String, i64, i64), (u64, u64, bool)>,
                k: &(String, i64, i64),
                out: &mut Vec<Row>| {
        let e = w.get_mut(k).unwrap();
        out.push((k.0.clone(), k.1, k.2, e.0, e.1));
        e.1 += 1;
        e.2 = true;
    };
    let advance =
        |w: &mut BTreeMap<(String, i64, i64), (u64, u64, bool)>, to: i64, out: &mut Vec<Row>| {
            let mut due: Vec<_> = w
                .iter()
                .filter(|((_, _, end), (_, _, fired))| *end <= to && !*fired)
                .map(|(k, _)| k.clone())
                .collect();
            due.sort_by_key(|k| (k.2, k.1, k.0.clone()));
            for k in due {
                fire(w, &k, out);
            }
            // A window leaves only after its last result showed everything in it: nothing
            // counted is kept from the output (what lost merged sessions before).
            w.retain(|k, (count, _, _)| {
                let keep = k.2.saturating_add(lateness) > to;
                let last = out
                    .iter()
                    .rev()
                    .find(|r| (&r.0, r.1, r.2) == (&k.0, k.1, k.2))
                    .map(|r| r.3);
                assert!(
                    keep || last == Some(*count),
                    "the reference dropped {k:?} (count {count}) after a last result of {last:?}"
                );
                keep
            });
        };
    for (key, ts) in events {
        let (key, ts) = (key.clone(), *ts);
        match kind {
            Kind::Tumbling(_) | Kind::Sliding(..) | Kind::Cumulative(..) => {
                let live: Vec<(i64, i64)> = windows_of(kind, ts)
                    .into_iter()
                    .filter(|(_, end)| end + lateness > wm)
                    .collect();
                if live.is_empty() {
                    late.push(ts);
                }
                let mut refire = Vec::new();
                for (s, e) in live {
                    let k = (key.clone(), s, e);
                    windows.entry(k.clone()).or_insert((0, 0, false)).0 += 1;
                    if e <= wm {
                        refire.push(k);
                    }
                }
                refire.sort_by_key(|k| (k.2, k.1));
                for k in refire {
                    fire(&mut windows, &k, &mut out);
                }
            }
            Kind::Session(gap) => {
                let (mut start, mut end) = (ts, ts + gap);
                let overlapping: Vec<_> = windows
                    .keys()
                    .filter(|(k, s, e)| *k == key && *s < end && *e > start)
                    .cloned()
                    .collect();
                for (_, s, e) in &overlapping {
                    start = start.min(*s);
                    end = end.max(*e);
                }
                if end + lateness <= wm {
                    late.push(ts);
                } else {
                    let (mut count, mut firing) = (1, 0);
                    let mut same = None;
                    for k in overlapping {
                        let (c, f, done) = windows.remove(&k).unwrap();
                        count += c;
                        firing = firing.max(f);
                        if (k.1, k.2) == (start, end) {
                            same = Some(done); // the event falls inside one session
                        }
                    }
                    // A session that grew is a new window: it has not fired as such, even
                    // when a session it absorbed had (it fires with the next `firing`).
                    let k = (key.clone(), start, end);
                    windows.insert(k.clone(), (count, firing, same.unwrap_or(false)));
                    if end <= wm {
                        fire(&mut windows, &k, &mut out);
                    }
                }
            }
        }
        max_seen = max_seen.max(ts);
        let w = max_seen - bound;
        if w > wm {
            wm = w;
            advance(&mut windows, wm, &mut out);
        }
    }
    advance(&mut windows, i64::MAX, &mut out);
    (out, late)
}

fn window_yaml(kind: Kind, lateness: i64) -> String {
    match kind {
        Kind::Tumbling(s) => {
            format!("{{kind: tumbling, size: {s}ms, allowed-lateness: {lateness}ms}}")
        }
        Kind::Sliding(s, l) => {
            format!("{{kind: sliding, size: {s}ms, slide: {l}ms, allowed-lateness: {lateness}ms}}")
        }
        Kind::Session(g) => {
            format!("{{kind: session, gap: {g}ms, allowed-lateness: {lateness}ms}}")
        }
        Kind::Cumulative(s, l) => {
            format!(
                "{{kind: cumulative, size: {s}ms, step: {l}ms, allowed-lateness: {lateness}ms}}"
            )
        }
    }
}

/// Run the count aggregate over `events` (one per batch) and return what it fired and the
/// timestamps of the late events.
async fn run_engine(
    dir: &Path,
    kind: Kind,
    bound: i64,
    lateness: i64,
    events: &[(String, i64)],
) -> (Vec<Row>, Vec<i64>) {
    let input: String = events
        .iter()
        .map(|(k, t)| format!("{}\n", json!({"user": k, "ts": t})))
        .collect();
    std::fs::write(dir.join("in.jsonl"), input).unwrap();
    let text = manifest_text(&format!(
        r#"
version: 1
state: {{dir: state}}
sources:
  clicks:
    kind: file
    path: in.jsonl
    batch-size: 1
    event-time: {{field: /ts, max-out-of-orderness: {bound}ms}}
operators:
  counts:
    plugin: {{plugins}}/aggregate.wasm
    key-by: /user
    window: {window}
    config: {{function: count}}
    inputs: [clicks]
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [counts]}}
  late: {{kind: file, path: late.jsonl, inputs: [counts.late]}}
"#,
        window = window_yaml(kind, lateness)
    ));
    let report = run_text(dir, &text).await.unwrap();
    let rows: Vec<Row> = json_lines(&dir.join("out.jsonl"))
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["start"].as_i64().unwrap(),
                v["end"].as_i64().unwrap(),
                v["count"].as_u64().unwrap(),
                v.get("firing").and_then(Value::as_u64).unwrap_or(0),
            )
        })
        .collect();
    let late: Vec<i64> = json_lines(&dir.join("late.jsonl"))
        .iter()
        .map(|v| v["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        report.nodes["counts"].late,
        late.len() as u64,
        "late counter"
    );
    (rows, late)
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

async fn check(
    kind: Kind,
    bound: i64,
    lateness: i64,
    events: &[(&str, i64)],
) -> (Vec<Row>, Vec<i64>) {
    let events: Vec<(String, i64)> = events.iter().map(|(k, t)| (k.to_string(), *t)).collect();
    let dir = tempfile::tempdir().unwrap();
    let (rows, late) = run_engine(dir.path(), kind, bound, lateness, &events).await;
    let (expected_rows, expected_late) = reference(kind, bound, lateness, &events);
    assert_eq!(
        sorted(&rows),
        sorted(&expected_rows),
        "fired windows of {kind:?}"
    );
    assert_eq!(late, expected_late, "late events of {kind:?}");
    // Nothing lost: every event is counted in a window or sent to `late`.
    let counted: BTreeSet<_> = rows.iter().map(|r| (&r.0, r.1)).collect();
    assert!(!counted.is_empty() || events.is_empty());
    (rows, late)
}

/// A pseudo-random stream: `n` events over `keys` keys, timestamps moving forward with jitter
/// of up to `jitter` ms back.
fn disorderly(n: usize, keys: u64, jitter: i64, seed: u64) -> Vec<(String, i64)> {
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    (0..n)
        .map(|i| {
            let key = format!("k{}", next() % keys);
            let back = (next() % (jitter as u64 + 1)) as i64;
            (key, 1_000_000 + i as i64 * 37 - back)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tumbling_with_out_of_order_late_and_too_late_events() {
    let (rows, late) = check(
        Kind::Tumbling(10_000),
        2_000,
        5_000,
        &[
            ("a", 1_000),
            ("b", 3_000),
            ("a", 9_500),
            ("a", 8_000),  // out of order, within the bound: on time
            ("b", 12_500), // watermark 10_500: [0, 10_000) fires
            ("a", 9_900),  // late but within the allowed lateness: [0, 10_000) of a fires again
            ("a", 19_000),
            ("b", 21_000), // watermark 19_000: [0, 10_000) is dropped (10_000 + 5_000 <= 19_000)
            ("a", 4_000),  // too late: to `late`
            ("a", 25_000),
        ],
    )
    .await;
    assert_eq!(late, vec![4_000]);
    assert!(rows.contains(&("a".into(), 0, 10_000, 4, 1)), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sliding_windows_count_each_event_in_every_window() {
    let (rows, _) = check(
        Kind::Sliding(3_000, 1_000),
        500,
        0,
        &[
            ("a", 100),
            ("a", 1_100),
            ("b", 1_500),
            ("a", 2_900),
            ("a", 900),
            ("a", 5_000),
            ("a", 1_200),
        ],
    )
    .await;
    // [0, 3000) of a has 100, 1100, 2900 and the late-but-on-time 900.
    assert!(rows.contains(&("a".into(), 0, 3_000, 4, 0)), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_merge_when_a_late_event_bridges_them() {
    let (rows, late) = check(
        Kind::Session(1_000),
        300,
        5_000,
        &[
            ("u", 1_000),
            ("u", 1_500), // session [1000, 2500)
            ("u", 4_000), // session [4000, 5000); watermark 3700: [1000, 2500) fires with 2
            ("v", 4_200),
            ("u", 2_200), // bridges: [1000, 3200) overlaps nothing else yet... extends the first
            ("u", 3_100), // [3100, 4100) bridges [1000, 3200) and [4000, 5000): one session
            ("v", 9_000), // watermark 8700: the merged session fires again with 5 events
            ("u", 500),   // session [500, 1500) overlaps the merged one: it grows once more
            ("w", 20_000),
            ("u", 600), // watermark 19_700: u's session ended at 5000 + 5000 lateness: too late
        ],
    )
    .await;
    assert_eq!(late, vec![600]);
    let u: Vec<_> = rows.iter().filter(|r| r.0 == "u").collect();
    assert!(
        u.iter().any(|r| r.1 == 500 && r.2 == 5_000 && r.3 == 6),
        "{u:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_disorder_matches_the_reference_for_every_kind() {
    let events = disorderly(3_000, 7, 1_500, 42);
    for (kind, bound, lateness) in [
        (Kind::Tumbling(1_000), 150, 200),
        (Kind::Sliding(1_000, 250), 100, 150),
        (Kind::Session(120), 200, 300),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (rows, late) = run_engine(dir.path(), kind, bound, lateness, &events).await;
        let (expected_rows, expected_late) = reference(kind, bound, lateness, &events);
        assert!(
            !expected_late.is_empty(),
            "the vector has too-late events for {kind:?}"
        );
        assert!(
            expected_rows.iter().any(|r| r.4 > 0),
            "the vector re-fires windows for {kind:?}"
        );
        assert_eq!(sorted(&rows), sorted(&expected_rows), "{kind:?}");
        assert_eq!(late, expected_late, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plugins_and_windows_must_match() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{}\n").unwrap();
    let run = |op: &str| {
        manifest_text(&format!(
            r#"
version: 1
state: {{dir: state}}
sources:
  src: {{kind: file, path: in.jsonl}}
operators:
  op:
    inputs: [src]
{op}
sinks:
  out: {{kind: stdout, inputs: [op]}}
"#
        ))
    };
    let err = run_text(
        dir.path(),
        &run("    plugin: {plugins}/filter.wasm\n    config: {field: /a, op: exists}\n    window: {kind: tumbling, size: 1s}"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("operator `op`") && err.contains("cannot run windows"),
        "{err}"
    );
    let err = run_text(
        dir.path(),
        &run("    plugin: {plugins}/aggregate.wasm\n    config: {function: count}"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`aggregator` world") && err.contains("needs a `window:`"),
        "{err}"
    );
}

/// The clickstream example with the test plugins: sessions by a gap of 30 s, computed here from
/// the same file, and the one click that arrives too late on `late`.
#[tokio::test(flavor = "multi_thread")]
async fn the_clickstream_example_sessionizes_its_file() {
    let example = flowlet_tests::root().join("examples/clickstream");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        example.join("clicks.jsonl"),
        dir.path().join("clicks.jsonl"),
    )
    .unwrap();
    let text = std::fs::read_to_string(example.join("topology.yaml"))
        .unwrap()
        .replace("../../dist/plugins/", "{plugins}/")
        .replace("../../.flowlet/state/clickstream", "state")
        .replace(
            "kind: stdout, inputs: [sessions, hot-pages]",
            "kind: file, path: out.jsonl, inputs: [sessions]}\n  hot: {kind: \"null\", inputs: [hot-pages]",
        );
    let report = run_text(dir.path(), &manifest_text(&text)).await.unwrap();
    assert_eq!(
        report.nodes["clicks"].rejected, 1,
        "the line whose time is `yesterday`"
    );
    let bad = json_lines(&dir.path().join("bad-clicks.jsonl"));
    assert_eq!(bad.len(), 1, "nothing lost: the bad line is dead-lettered");
    assert_eq!(bad[0]["source"], "clicks");
    assert_eq!(bad[0]["event"]["value"]["time"], "yesterday");
    assert!(
        bad[0]["error"].as_str().unwrap().contains("/time"),
        "{}",
        bad[0]
    );
    let late = json_lines(&dir.path().join("late-clicks.jsonl"));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["user"], "ana");

    // Reference: per user, sort the on-time clicks and cut where the gap is 30 s or more.
    let mut by_user: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for v in json_lines(&dir.path().join("clicks.jsonl")) {
        let Ok(t) = humantime::parse_rfc3339(v["time"].as_str().unwrap()) else {
            continue;
        };
        if v == late[0] {
            continue;
        }
        let ms = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        by_user
            .entry(v["user"].as_str().unwrap().into())
            .or_default()
            .push(ms);
    }
    let mut expected = Vec::new();
    for (user, mut times) in by_user {
        times.sort();
        let mut start = times[0];
        let mut count = 0;
        for (i, t) in times.iter().enumerate() {
            if i > 0 && t - times[i - 1] >= 30_000 {
                expected.push((user.clone(), start, times[i - 1], count));
                start = *t;
                count = 0;
            }
            count += 1;
        }
        expected.push((user, start, *times.last().unwrap(), count));
    }
    let mut actual: Vec<(String, i64, i64, u64)> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|v| {
            (
                v["user"].as_str().unwrap().into(),
                v["start"].as_i64().unwrap(),
                v["end"].as_i64().unwrap(),
                v["events"].as_u64().unwrap(),
            )
        })
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(actual, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_events_are_dead_lettered_and_left_out_of_their_windows() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        json!({"user": "a", "ts": 100, "amount": 10}),
        json!({"user": "a", "ts": 200, "amount": "lots"}),
        json!({"user": "a", "ts": 300}),
        json!({"user": "b", "ts": 400, "amount": 5}),
        json!({"user": "a", "ts": 500, "amount": 30}),
    ];
    let text: String = lines.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let manifest = manifest_text(
        r#"
version: 1
state: {dir: state}
sources:
  src: {kind: file, path: in.jsonl, event-time: {field: /ts}}
operators:
  avg:
    plugin: {plugins}/aggregate.wasm
    key-by: /user
    window: {kind: tumbling, size: 1s}
    config: {function: avg, field: /amount}
    on-error: dead-letter
    inputs: [src]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [avg]}
  dead: {kind: file, path: dead.jsonl, inputs: [avg.dead-letter]}
"#,
    );
    let report = run_text(dir.path(), &manifest).await.unwrap();
    assert_eq!(report.nodes["avg"].dead_lettered, 2);
    let mut out: Vec<(String, f64, u64)> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().into(),
                v["avg"].as_f64().unwrap(),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(out, vec![("a".into(), 20.0, 2), ("b".into(), 5.0, 1)]);
    let dead: Vec<i64> = json_lines(&dir.path().join("dead.jsonl"))
        .iter()
        .map(|v| v["event"]["value"]["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(dead, vec![200, 300]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_without_a_readable_time_stops_a_failing_source_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"ts\": 1}\n{\"ts\": \"soon\"}\n{\"ts\": 3}\n",
    )
    .unwrap();
    let text = manifest_text(
        r#"
version: 1
sources:
  src: {kind: file, path: in.jsonl, event-time: {field: /ts}}
sinks:
  out: {kind: file, path: out.jsonl, inputs: [src]}
"#,
    );
    let err = run_text(dir.path(), &text).await.unwrap_err().to_string();
    assert!(err.contains("source `src`"), "{err}");
    assert!(err.contains("/ts") && err.contains("soon"), "{err}");
    assert!(err.contains("on-error"), "{err}");

    // With `skip` the run goes on and counts it.
    let report = run_text(
        dir.path(),
        &text.replace("field: /ts}}", "field: /ts}, on-error: skip}"),
    )
    .await
    .unwrap();
    assert_eq!(report.nodes["src"].skipped, 1);
    assert_eq!(json_lines(&dir.path().join("out.jsonl")).len(), 2);
}

/// An on-time event that extends a session which already fired (allowed lateness keeps it)
/// makes a new, longer session: it fires when the watermark passes its new end, with the next
/// `firing` index — it is not lost because a part of it fired before.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_that_grows_after_it_fired_fires_again_at_its_new_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"k\":\"a\",\"t\":0}\n{\"k\":\"b\",\"t\":1000}\n{\"k\":\"a\",\"t\":500}\n{\"k\":\"b\",\"t\":3000}\n",
    )
    .unwrap();
    let text = manifest_text(
        r#"
version: 1
state: {dir: state}
sources:
  src: {kind: file, path: in.jsonl, batch-size: 1, event-time: {field: /t}}
operators:
  s:
    plugin: {plugins}/aggregate.wasm
    key-by: /k
    window: {kind: session, gap: 1s, allowed-lateness: 5s}
    config: {function: sum, field: /t}
    inputs: [src]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [s]}
  late: {kind: file, path: late.jsonl, inputs: [s.late]}
"#,
    );
    run_text(dir.path(), &text).await.unwrap();
    let mut got: Vec<String> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            r#"{"key":"a","start":0,"end":1000,"sum":0.0,"count":1}"#,
            r#"{"key":"a","start":0,"end":1500,"sum":500.0,"count":2,"firing":1}"#,
            r#"{"key":"b","start":1000,"end":2000,"sum":1000.0,"count":1}"#,
            r#"{"key":"b","start":3000,"end":4000,"sum":3000.0,"count":1}"#,
        ]
    );
    assert_eq!(
        json_lines(&dir.path().join("late.jsonl")),
        Vec::<Value>::new()
    );
}

/// Nothing lost, judged from the output alone (tumbling windows: each event is in one window):
/// every event is in the last result of its window, or on `late`. (For sessions the output
/// cannot tell which windows are final — an expired session may lie inside a later one —; the
/// reference checks there that no window leaves before its last result showed all of it.)
fn conserved(kind: Kind, rows_in_order: &[Row], late: usize, events: usize) {
    let mut finals: Vec<&Row> = Vec::new();
    for row in rows_in_order {
        // A window that fired again replaces its earlier result.
        finals.retain(|f| (&f.0, f.1, f.2) != (&row.0, row.1, row.2));
        finals.push(row);
    }
    let counted: u64 = finals.iter().map(|r| r.3).sum();
    assert_eq!(
        counted as usize + late,
        events,
        "{kind:?}: events counted in final windows ({counted}) + late ({late}) != events in; final windows: {finals:?}"
    );
}

/// Random out-of-order streams with allowed lateness, for every window kind and several
/// seeds, bounds and gaps: the engine equals the reference, sessions that fired are merged
/// again (the case that lost results), and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn random_streams_with_lateness_match_the_reference_and_lose_nothing() {
    let mut merged_after_firing = 0;
    for (seed, keys, jitter) in [(7u64, 5u64, 2_000i64), (8, 3, 1_200), (9, 11, 3_000)] {
        let events = disorderly(3_000, keys, jitter, seed);
        for (kind, bound, lateness) in [
            (Kind::Tumbling(700), 100, 1_000),
            (Kind::Sliding(1_200, 300), 50, 800),
            (Kind::Session(700), 0, 1_000),
            (Kind::Session(150), 300, 2_000),
            (Kind::Cumulative(2_000, 500), 100, 800),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (rows, late) = run_engine(dir.path(), kind, bound, lateness, &events).await;
            let (expected_rows, expected_late) = reference(kind, bound, lateness, &events);
            assert_eq!(
                sorted(&rows),
                sorted(&expected_rows),
                "{kind:?} seed {seed}"
            );
            assert_eq!(late, expected_late, "{kind:?} seed {seed}");
            if matches!(kind, Kind::Tumbling(_)) {
                conserved(kind, &rows, late.len(), events.len());
            }
            if matches!(kind, Kind::Session(_)) {
                // A result whose firing > 0 for a window no earlier result had: a fired
                // session grew and fired again.
                let seen: BTreeSet<_> = rows
                    .iter()
                    .filter(|r| r.4 == 0)
                    .map(|r| (r.0.clone(), r.1, r.2))
                    .collect();
                merged_after_firing += rows
                    .iter()
                    .filter(|r| r.4 > 0 && !seen.contains(&(r.0.clone(), r.1, r.2)))
                    .count();
            }
        }
    }
    assert!(
        merged_after_firing > 10,
        "the streams must merge fired sessions ({merged_after_firing})"
    );
}

/// Cumulative windows (Flink's CUMULATE): all start at `n·size` and end every `step`; each fires
/// at its end with the count from the start so far — a daily count updated hourly, in small.
#[tokio::test(flavor = "multi_thread")]
async fn cumulative_windows_give_the_total_so_far_at_every_step() {
    let (rows, late) = check(
        Kind::Cumulative(4_000, 1_000),
        0,
        0,
        &[
            ("a", 100),   // in [0,1000), [0,2000), [0,3000), [0,4000)
            ("a", 1_500), // in [0,2000), [0,3000), [0,4000); watermark 1500: [0,1000) fires with 1
            ("a", 3_900), // in [0,4000); watermark 3900: [0,2000) with 2 and [0,3000) with 2
            ("a", 4_100), // the next day: [4000,5000) …; watermark 4100: [0,4000) with 3
        ],
    )
    .await;
    assert!(late.is_empty());
    let a: Vec<(i64, i64, u64)> = rows.iter().map(|r| (r.1, r.2, r.3)).collect();
    for expected in [
        (0, 1_000, 1),
        (0, 2_000, 2),
        (0, 3_000, 2),
        (0, 4_000, 3),
        (4_000, 5_000, 1),
    ] {
        assert!(a.contains(&expected), "{expected:?} in {a:?}");
    }
}
