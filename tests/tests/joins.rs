//! Joins kept by the host (`join:` on an operator) against plain loops over the same input:
//! interval, window and temporal joins, inner, left outer and semi, on generated out-of-order
//! streams with late events; and an interval join killed with SIGKILL and restored from its
//! checkpoints, exactly once.

use std::collections::BTreeMap;
use std::path::Path;

use flowlet_tests::{
    Rng, crash_kills, flowlet_bin, json_lines, run_and_kill, succeed, write_manifest,
};
use serde_json::Value;

/// One generated event: key, id, time, and whether it is late (behind its input's watermark
/// when it arrives).
#[derive(Debug, Clone)]
struct Ev {
    key: String,
    id: i64,
    ts: i64,
    late: bool,
}

/// `n` events over `keys` keys, one every `step` ms with up to `jitter` ms of disorder (the
/// inputs' `max-out-of-orderness` is `jitter`); `late_every`-th event is pushed further back
/// than that (0: none). Written to `path` in arrival order.
fn stream(
    path: &Path,
    n: i64,
    keys: u64,
    step: i64,
    jitter: i64,
    late_every: i64,
    rng: &mut Rng,
) -> Vec<Ev> {
    let mut max = i64::MIN;
    let mut out = Vec::new();
    let mut text = String::new();
    for i in 0..n {
        let mut ts = i * step + rng.below(jitter as u64 + 1) as i64;
        if late_every > 0 && i % late_every == late_every - 1 {
            ts -= jitter + 1 + rng.below(5 * step as u64) as i64;
        }
        // With one event per batch, the watermark before event i is max(ts before) - jitter.
        let late = max != i64::MIN && ts < max - jitter;
        max = max.max(ts);
        let key = format!("k{}", rng.below(keys));
        text.push_str(&format!("{{\"k\":\"{key}\",\"id\":{i},\"ts\":{ts}}}\n"));
        out.push(Ev {
            key,
            id: i,
            ts,
            late,
        });
    }
    std::fs::write(path, text).unwrap();
    out
}

/// A join result as (left id, right id or -1, window start or i64::MIN), counted.
type Pairs = BTreeMap<(i64, i64, i64), usize>;

fn pairs_of(path: &Path) -> Pairs {
    let mut out = Pairs::new();
    for v in json_lines(path) {
        let r = match &v["right"] {
            Value::Null => -1,
            r => r["id"].as_i64().unwrap(),
        };
        let w = v["window"]["start"].as_i64().unwrap_or(i64::MIN);
        *out.entry((v["left"]["id"].as_i64().unwrap(), r, w))
            .or_default() += 1;
    }
    out
}

fn add(p: &mut Pairs, l: i64, r: i64, w: i64) {
    *p.entry((l, r, w)).or_default() += 1;
}

/// Run a two-source join topology over l.jsonl and r.jsonl in `dir`; the pairs it wrote.
fn run_join(dir: &Path, join: &str, jitter: i64) -> Pairs {
    let manifest = write_manifest(
        dir,
        &format!(
            r#"
version: 1
sources:
  l: {{kind: file, path: l.jsonl, batch-size: 1, event-time: {{field: /ts, max-out-of-orderness: {jitter}ms}}}}
  r: {{kind: file, path: r.jsonl, batch-size: 1, event-time: {{field: /ts, max-out-of-orderness: {jitter}ms}}}}
operators:
  j:
    join: {join}
    key-by: /k
    parallelism: 2
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [j]}}
  late: {{kind: file, path: late.jsonl, inputs: [j.late]}}
"#
        ),
    );
    let _ = std::fs::remove_dir_all(dir.join(".flowlet"));
    let _ = std::fs::remove_file(dir.join("out.jsonl"));
    succeed(flowlet_bin().arg("run").arg(&manifest));
    pairs_of(&dir.join("out.jsonl"))
}

fn on_time(evs: &[Ev]) -> Vec<&Ev> {
    evs.iter().filter(|e| !e.late).collect()
}

/// The on-time events of `evs` by key (a plain loop per key instead of over all events).
fn by_key(evs: &[Ev]) -> BTreeMap<&str, Vec<&Ev>> {
    let mut out: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in evs.iter().filter(|e| !e.late) {
        out.entry(e.key.as_str()).or_default().push(e);
    }
    out
}

fn interval_reference(l: &[Ev], r: &[Ev], (lo, hi): (i64, i64), mode: &str) -> Pairs {
    let mut p = Pairs::new();
    let r = by_key(r);
    for a in on_time(l) {
        let m: Vec<&&Ev> = r
            .get(a.key.as_str())
            .into_iter()
            .flatten()
            .filter(|b| a.ts + lo <= b.ts && b.ts <= a.ts + hi)
            .collect();
        match mode {
            "semi" if !m.is_empty() => add(&mut p, a.id, -1, i64::MIN),
            "semi" => {}
            "left-outer" if m.is_empty() => add(&mut p, a.id, -1, i64::MIN),
            _ => m.iter().for_each(|b| add(&mut p, a.id, b.id, i64::MIN)),
        }
    }
    p
}

/// The windows `[start, start + size)` of a time, sliding by `slide`.
fn windows(ts: i64, size: i64, slide: i64) -> Vec<i64> {
    let last = ts - ts.rem_euclid(slide);
    (0..size / slide).map(|k| last - k * slide).collect()
}

fn window_reference(l: &[Ev], r: &[Ev], (size, slide): (i64, i64), mode: &str) -> Pairs {
    let mut p = Pairs::new();
    let r = on_time(r);
    for a in on_time(l) {
        for w in windows(a.ts, size, slide) {
            let m: Vec<&&Ev> = r
                .iter()
                .filter(|b| b.key == a.key && windows(b.ts, size, slide).contains(&w))
                .collect();
            match mode {
                "semi" if !m.is_empty() => add(&mut p, a.id, -1, w),
                "semi" => {}
                "left-outer" if m.is_empty() => add(&mut p, a.id, -1, w),
                _ => m.iter().for_each(|b| add(&mut p, a.id, b.id, w)),
            }
        }
    }
    p
}

fn temporal_reference(l: &[Ev], r: &[Ev], ttl: Option<i64>, mode: &str) -> Pairs {
    let mut p = Pairs::new();
    let r = on_time(r);
    for a in on_time(l) {
        // The latest version at or before the left event's time; of equal times the last read.
        let version = r
            .iter()
            .enumerate()
            .filter(|(_, b)| b.key == a.key && b.ts <= a.ts)
            .max_by_key(|(i, b)| (b.ts, *i))
            .map(|(_, b)| b)
            .filter(|b| ttl.is_none_or(|t| a.ts - b.ts <= t));
        match (mode, version) {
            ("semi", Some(_)) => add(&mut p, a.id, -1, i64::MIN),
            ("left-outer", None) => add(&mut p, a.id, -1, i64::MIN),
            (_, Some(b)) => add(&mut p, a.id, b.id, i64::MIN),
            _ => {}
        }
    }
    p
}

fn inputs(dir: &Path, seed: u64, late_every: i64) -> (Vec<Ev>, Vec<Ev>) {
    let mut rng = Rng(seed);
    let l = stream(&dir.join("l.jsonl"), 1500, 12, 4, 30, late_every, &mut rng);
    let r = stream(&dir.join("r.jsonl"), 1500, 12, 4, 30, late_every, &mut rng);
    assert!(
        late_every == 0 || l.iter().any(|e| e.late),
        "the input should have late events"
    );
    (l, r)
}

#[test]
fn interval_joins_match_a_plain_loop() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, late_every) in [(1, 0), (2, 37)] {
        let (l, r) = inputs(dir.path(), seed, late_every);
        for mode in ["inner", "left-outer", "semi"] {
            for (lo, hi) in [(-20, 15), (0, 0), (5, 40), (-60, -10)] {
                let join = format!(
                    "{{kind: interval, left: l, right: r, between: [{lo}ms, {hi}ms], type: {mode}}}"
                );
                let got = run_join(dir.path(), &join, 30);
                let want = interval_reference(&l, &r, (lo, hi), mode);
                assert!(!want.is_empty());
                assert_eq!(got, want, "{join}, seed {seed}");
            }
        }
        let late = json_lines(&dir.path().join("late.jsonl")).len();
        let expected = l.iter().chain(&r).filter(|e| e.late).count();
        assert_eq!(late, expected, "late events go to `.late`");
    }
}

#[test]
fn window_joins_match_a_plain_loop() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, late_every) in [(3, 0), (4, 41)] {
        let (l, r) = inputs(dir.path(), seed, late_every);
        for mode in ["inner", "left-outer", "semi"] {
            for (size, slide) in [(100, 100), (120, 40)] {
                let window = if size == slide {
                    format!("{{kind: tumbling, size: {size}ms}}")
                } else {
                    format!("{{kind: sliding, size: {size}ms, slide: {slide}ms}}")
                };
                let join =
                    format!("{{kind: window, left: l, right: r, window: {window}, type: {mode}}}");
                let got = run_join(dir.path(), &join, 30);
                let want = window_reference(&l, &r, (size, slide), mode);
                assert_eq!(got, want, "{join}, seed {seed}");
            }
        }
    }
}

#[test]
fn temporal_joins_match_a_plain_loop() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, late_every) in [(5, 0), (6, 29)] {
        let (l, r) = inputs(dir.path(), seed, late_every);
        for mode in ["inner", "left-outer", "semi"] {
            for ttl in [None, Some(25), Some(0)] {
                let ttl_field = ttl.map_or(String::new(), |t| format!(", ttl: {t}ms"));
                let join =
                    format!("{{kind: temporal, left: l, right: r, type: {mode}{ttl_field}}}");
                let got = run_join(dir.path(), &join, 30);
                let want = temporal_reference(&l, &r, ttl, mode);
                assert_eq!(got, want, "{join}, seed {seed}");
            }
        }
    }
}

#[test]
fn an_interval_join_is_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(9);
    let l = stream(
        &dir.path().join("l.jsonl"),
        1_500_000,
        5000,
        1,
        20,
        0,
        &mut rng,
    );
    let r = stream(
        &dir.path().join("r.jsonl"),
        1_500_000,
        5000,
        1,
        20,
        0,
        &mut rng,
    );
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
checkpoint: {interval: 50ms}
sources:
  l: {kind: file, path: l.jsonl, event-time: {field: /ts, max-out-of-orderness: 20ms}}
  r: {kind: file, path: r.jsonl, event-time: {field: /ts, max-out-of-orderness: 20ms}}
operators:
  j:
    join: {kind: interval, left: l, right: r, between: [-30ms, 30ms], type: left-outer}
    key-by: /k
    parallelism: 2
sinks:
  out: {kind: file, path: out.jsonl, inputs: [j]}
"#,
    );
    let args = [std::ffi::OsStr::new("run"), manifest.as_os_str()];
    let kills = crash_kills();
    let mut killed = 0;
    while killed < kills {
        let (ended, _) = run_and_kill(
            &args,
            std::time::Duration::from_millis(100 + rng.below(150)),
        );
        if ended {
            break;
        }
        killed += 1;
    }
    succeed(flowlet_bin().args(args));
    assert!(
        killed >= kills,
        "finished after {killed} kills; the test needs {kills}: give it more input"
    );
    let got = pairs_of(&dir.path().join("out.jsonl"));
    let want = interval_reference(&l, &r, (-30, 30), "left-outer");
    assert_eq!(got.len(), want.len(), "pairs missing or extra");
    let repeated = got.values().filter(|n| **n > 1).count();
    assert_eq!(repeated, 0, "pairs written twice");
    assert!(got == want, "the pairs differ from the reference");
    flowlet_tests::report_faults(
        "sigkill/exactly-once/file/interval-join",
        killed + 1,
        killed,
        l.len() + r.len(),
        0,
        0,
    );
}

/// An event without its join key matches nothing: it meets the operator's `on-error` (here a
/// dead letter saying why), and the rest of the input joins as before.
#[test]
fn an_event_without_a_join_key_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("l.jsonl"),
        "{\"k\":\"a\",\"id\":1,\"ts\":10}\n{\"id\":2,\"ts\":11}\n{\"k\":\"\",\"id\":3,\"ts\":12}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("r.jsonl"),
        "{\"k\":\"a\",\"id\":9,\"ts\":10}\n{\"id\":8,\"ts\":11}\n",
    )
    .unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
sources:
  l: {kind: file, path: l.jsonl, event-time: {field: /ts}}
  r: {kind: file, path: r.jsonl, event-time: {field: /ts}}
operators:
  j:
    join: {kind: interval, left: l, right: r, between: [-5ms, 5ms], type: left-outer}
    key-by: /k
    on-error: dead-letter
sinks:
  out: {kind: file, path: out.jsonl, inputs: [j]}
  dead: {kind: file, path: dead.jsonl, inputs: [j.dead-letter]}
"#,
    );
    succeed(flowlet_bin().arg("run").arg(&manifest));
    let mut want = Pairs::new();
    add(&mut want, 1, 9, i64::MIN);
    assert_eq!(pairs_of(&dir.path().join("out.jsonl")), want);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let ids: Vec<i64> = dead
        .iter()
        .map(|d| d["event"]["value"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{dead:?}");
    assert!(
        ids.contains(&2) && ids.contains(&3) && ids.contains(&8),
        "{dead:?}"
    );
    let error = dead[0]["error"].as_str().unwrap();
    assert!(error.contains("has no join key"), "{error}");
}
