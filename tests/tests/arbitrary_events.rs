//! Arbitrary bytes through every path an event takes on the host — event-time extraction at the
//! source, key extraction on a keyed edge, a Wasm operator that rejects what it cannot read,
//! a window aggregate, dead-letter and late encoding, file sinks — with `on-error:
//! dead-letter` everywhere: the run never fails or panics, and nothing is lost: at every node,
//! what came in went out, was rejected into a dead letter, or was late. Each dead letter
//! carries the original bytes.

use std::collections::BTreeMap;
use std::path::Path;

use flowlet_tests::{manifest_text, run_text};
use proptest::prelude::*;
use serde_json::value::RawValue;

/// One input line (no newline in it).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("\"a\"".to_owned()),
        Just("\"b\"".to_owned()),
        Just("42".to_owned()),
        Just("{\"nested\":[1,2]}".to_owned()),
        Just("\"\\u00e9\\ud83d\\ude00\"".to_owned()),
        Just("null".to_owned()),
        Just("1e400".to_owned()),
    ];
    let time = prop_oneof![
        (0i64..5_000).prop_map(|t| t.to_string()),
        Just(i64::MIN.to_string()),
        Just(i64::MAX.to_string()),
        Just((flowlet_types::MAX_EVENT_TIME).to_string()),
        Just((flowlet_types::MAX_EVENT_TIME as i128 + 1).to_string()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("1e400".to_owned()),
        Just("NaN".to_owned()),
        Just("\"1970-01-01T00:00:01.250+00:00\"".to_owned()),
        Just("\"1970-01-01t00:00:02z\"".to_owned()),
        Just("\"1969-12-31T23:59:59-04:30\"".to_owned()),
        Just("\"soon\"".to_owned()),
        Just("[]".to_owned()),
    ];
    let event = (key, time, any::<bool>()).prop_map(|(k, t, with_time)| {
        let mut s = format!("{{\"k\":{k}");
        if with_time {
            s.push_str(&format!(",\"t\":{t}"));
        }
        s.push('}');
        s.into_bytes()
    });
    prop_oneof![
        6 => event,
        1 => proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..60),
        1 => (100usize..300).prop_map(|n| format!("{{\"k\":\"a\",\"t\":1,\"deep\":{}{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => Just(b"   ".to_vec()),
        1 => Just(b"{\"k\":\"a\",\"t\":1,\"s\":\"\xff\xfe\"}".to_vec()),
    ]
}

const TOPOLOGY: &str = r#"
version: 1
state: {dir: state}
sources:
  src:
    kind: file
    path: in.jsonl
    batch-size: 7
    event-time: {field: /t, max-out-of-orderness: 1s}
    on-error: dead-letter
operators:
  m:
    plugin: {plugins}/map.wasm
    config: {fields: {k: /k, t: /t}, missing: reject}
    on-error: dead-letter
    inputs: [src]
  w:
    plugin: {plugins}/aggregate.wasm
    key-by: /k
    window: {kind: tumbling, size: 1s, allowed-lateness: 500ms}
    config: {function: count}
    on-error: dead-letter
    inputs: [m]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [w]}
  late: {kind: file, path: late.jsonl, inputs: [w.late]}
  dead-src: {kind: file, path: dead-src.jsonl, inputs: [src.dead-letter]}
  dead-m: {kind: file, path: dead-m.jsonl, inputs: [m.dead-letter]}
  dead-w: {kind: file, path: dead-w.jsonl, inputs: [w.dead-letter]}
"#;

fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap_or_default()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// What a dead letter's `event` says the original bytes may be: its `value` as JSON text, or
/// as the string it is, or its `value-base64` decoded.
fn carried(record: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        #[serde(borrow)]
        event: Event<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        value: Option<&'a RawValue>,
        #[serde(rename = "value-base64")]
        value_base64: Option<String>,
    }
    let r: Record<'_> = serde_json::from_slice(record).unwrap_or_else(|e| {
        panic!(
            "a dead letter is not JSON ({e}): {}",
            String::from_utf8_lossy(record)
        )
    });
    if let Some(b) = r.event.value_base64 {
        return vec![
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64"),
        ];
    }
    let raw = r.event.value.expect("a value").get();
    let mut out = vec![raw.as_bytes().to_vec()];
    if let Ok(s) = serde_json::from_str::<String>(raw) {
        out.push(s.into_bytes());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_are_answered_and_nothing_is_lost(lines in proptest::collection::vec(line(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let mut input = Vec::new();
        for l in &lines {
            input.extend_from_slice(l);
            input.push(b'\n');
        }
        std::fs::write(dir.path().join("in.jsonl"), &input).unwrap();
        let report = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(run_text(dir.path(), &manifest_text(TOPOLOGY)))
            .unwrap_or_else(|e| panic!("the run failed: {e:#}"));
        let n = |node: &str| report.nodes[node].clone();
        let (src, m, w) = (n("src"), n("m"), n("w"));
        let blank = lines.iter().filter(|l| l.trim_ascii().is_empty()).count() as u64;
        // The source: every line is an event, a dead letter, or a blank line (skipped).
        prop_assert_eq!(src.events_out + src.dead_lettered + src.skipped, lines.len() as u64);
        prop_assert_eq!(src.skipped, blank);
        // The operator: one output per event, or a dead letter.
        prop_assert_eq!(m.events_in, src.events_out);
        prop_assert_eq!(m.events_out + m.dead_lettered, m.events_in);
        // The windows: each event counted in the last result of its window, late, or dead.
        prop_assert_eq!(w.events_in, m.events_out);
        let mut last: BTreeMap<(String, i64), u64> = BTreeMap::new();
        for r in flowlet_tests::json_lines(&dir.path().join("out.jsonl")) {
            let k = (r["key"].to_string(), r["start"].as_i64().unwrap());
            last.insert(k, r["count"].as_u64().unwrap());
        }
        let counted: u64 = last.values().sum();
        prop_assert_eq!(counted + w.late + w.dead_lettered, w.events_in);
        // Side outputs: one line per counted event, each carrying the original bytes.
        for (file, count) in [("dead-src.jsonl", src.dead_lettered), ("dead-m.jsonl", m.dead_lettered), ("dead-w.jsonl", w.dead_lettered)] {
            let dead = lines_of(&dir.path().join(file));
            prop_assert_eq!(dead.len() as u64, count, "{}", file);
        }
        prop_assert_eq!(lines_of(&dir.path().join("late.jsonl")).len() as u64, w.late);
        let originals: std::collections::BTreeSet<Vec<u8>> =
            lines.iter().map(|l| l.trim_ascii().to_vec()).collect();
        for d in lines_of(&dir.path().join("dead-src.jsonl")) {
            prop_assert!(
                carried(&d).iter().any(|c| originals.contains(c)),
                "the dead letter {} does not carry an input line",
                String::from_utf8_lossy(&d)
            );
        }
    }
}

/// The poison pills an independent test found: an array nested 200 deep that an operator
/// rejects, and `{"t":1e400}` in a source's event-time field, both under `on-error:
/// dead-letter`. Each becomes a dead letter carrying its bytes as written, and the run goes on
/// to the events after them.
#[tokio::test(flavor = "multi_thread")]
async fn events_serde_json_cannot_represent_are_dead_lettered_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        "{{\"do\":\"reject\",\"t\":1,\"x\":{}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let input =
        format!("{{\"k\":\"a\",\"t\":1}}\n{{\"t\":1e400}}\n{deep}\n{{\"k\":\"b\",\"t\":2}}\n");
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let report = run_text(
        dir.path(),
        &manifest_text(
            r#"
version: 1
sources:
  src: {kind: file, path: in.jsonl, event-time: {field: /t}, on-error: dead-letter}
operators:
  m:
    plugin: {plugins}/hostile.wasm
    on-error: dead-letter
    inputs: [src]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [m]}
  dead-src: {kind: file, path: dead-src.jsonl, inputs: [src.dead-letter]}
  dead-m: {kind: file, path: dead-m.jsonl, inputs: [m.dead-letter]}
"#,
        ),
    )
    .await
    .unwrap();
    let text = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
    assert_eq!(report.nodes["src"].dead_lettered, 1);
    assert!(
        text("dead-src.jsonl").contains(r#""value":{"t":1e400}"#)
            && text("dead-src.jsonl").contains("out of range"),
        "{}",
        text("dead-src.jsonl")
    );
    assert_eq!(report.nodes["m"].dead_lettered, 1);
    let dead = text("dead-m.jsonl");
    assert!(dead.contains(&format!("\"value\":{deep}")), "{dead}");
    assert!(
        text("out.jsonl").contains(r#"{"k":"b","t":2}"#),
        "the run went on"
    );
}
