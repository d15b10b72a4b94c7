//! Topologies end to end through the real executor and Wasm plugins, checked against results
//! computed independently in the test.

use std::collections::BTreeMap;

use flowlet_connectors::generator;
use flowlet_tests::{golden, json_lines, manifest_text, root, run_text};
use serde_json::{Value, json};

/// The generator's events, as JSON.
fn generated(count: u64) -> Vec<Value> {
    let mut b = flowlet_dataflow::Batch::new();
    for n in 0..count {
        generator::push_event(&mut b, 0, n);
    }
    b.iter()
        .map(|e| serde_json::from_slice(e.value()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_then_keyed_parallel_map_matches_a_plain_loop() {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest_text(
        r#"
version: 1
sources:
  gen: {kind: generator, count: 5000, batch-size: 100}
operators:
  big:
    plugin: {plugins}/filter.wasm
    config: {field: /amount, op: ge, value: 500}
    inputs: [gen]
  shape:
    plugin: {plugins}/map.wasm
    config: {fields: {id: /id, user: /user, country: /country, cents: {from: /amount, mul: 100}}}
    inputs: [big]
    parallelism: 3
    key-by: /user
sinks:
  out: {kind: file, path: out.jsonl, inputs: [shape]}
"#,
    );
    let report = run_text(dir.path(), &text).await.unwrap();

    let expected: Vec<Value> = generated(5000)
        .into_iter()
        .filter(|e| e["amount"].as_f64().unwrap() >= 500.0)
        .map(|e| {
            json!({"id": e["id"], "user": e["user"], "country": e["country"],
                   "cents": e["amount"].as_f64().unwrap() * 100.0})
        })
        .collect();
    let mut actual = json_lines(&dir.path().join("out.jsonl"));
    // Instances interleave, but each user's events stay in order on one instance.
    let by_user = |v: &[Value]| {
        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in v {
            m.entry(e["user"].as_str().unwrap().to_owned())
                .or_default()
                .push(e.clone());
        }
        m
    };
    assert_eq!(by_user(&actual), by_user(&expected));
    actual.sort_by_key(|e| e["id"].as_u64());
    assert_eq!(actual, expected);
    assert_eq!(report.nodes["big"].events_in, 5000);
    assert_eq!(report.nodes["out"].events_in, expected.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_and_fan_in_deliver_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest_text(
        r#"
version: 1
sources:
  gen: {kind: generator, count: 3000, batch-size: 64}
operators:
  low:
    plugin: {plugins}/filter.wasm
    config: {field: /amount, op: lt, value: 500}
    inputs: [gen]
    parallelism: 2
  high:
    plugin: {plugins}/filter.wasm
    config: {field: /amount, op: ge, value: 500}
    inputs: [gen]
sinks:
  all: {kind: file, path: all.jsonl, inputs: [low, high]}
"#,
    );
    run_text(dir.path(), &text).await.unwrap();
    let mut ids: Vec<u64> = json_lines(&dir.path().join("all.jsonl"))
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..3000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lines_are_dead_lettered_with_context_and_the_rest_flows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"id\":1,\"tags\":[\"a\",\"b\"]}\nnot json\n\n{\"id\":2,\"tags\":\"oops\"}\n{\"id\":3,\"tags\":[]}\n{\"id\":4,\"tags\":[\"c\"]}\n",
    )
    .unwrap();
    let text = manifest_text(
        r#"
version: 1
sources:
  lines: {kind: file, path: in.jsonl}
operators:
  split:
    plugin: {plugins}/flat-map.wasm
    config: {field: /tags, into: tag}
    inputs: [lines]
    on-error: dead-letter
sinks:
  out: {kind: file, path: out.jsonl, inputs: [split]}
  dead: {kind: file, path: dead.jsonl, inputs: [split.dead-letter]}
"#,
    );
    let report = run_text(dir.path(), &text).await.unwrap();
    assert_eq!(
        json_lines(&dir.path().join("out.jsonl")),
        vec![
            json!({"id":1,"tag":"a"}),
            json!({"id":1,"tag":"b"}),
            json!({"id":4,"tag":"c"})
        ]
    );
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["event"]["value"], json!("not json"));
    assert_eq!(dead[1]["event"]["value"], json!({"id":2,"tags":"oops"}));
    for d in &dead {
        assert_eq!(d["operator"], "split");
        assert!(d["plugin"].as_str().unwrap().starts_with("sha256:"), "{d}");
        assert!(d["error"].as_str().unwrap().contains("rejected"), "{d}");
    }
    assert_eq!(report.nodes["split"].dead_lettered, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_output_is_golden() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("examples/quickstart/topology.yaml"))
        .unwrap()
        .replace(
            "../../dist/plugins",
            &flowlet_tests::plugins().display().to_string(),
        )
        .replace("kind: stdout", "kind: file\n    path: out.jsonl")
        .replace("rate: 20", "rate: 10000");
    run_text(dir.path(), &text).await.unwrap();
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    golden(&root().join("tests/golden/quickstart.jsonl"), &out);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rejected.jsonl")).unwrap(),
        ""
    );
}
