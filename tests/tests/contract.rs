//! Contract 0.2 end to end: named outputs (routing), input names, and plugins of contract 0.1
//! running unchanged beside 0.2 ones (tests/fixtures/contract-0.1: components built with the
//! 0.1 SDKs, commit 111c466).

use flowlet_tests::{flowlet_bin as flowlet, json_lines, succeed, write_manifest};
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!(
        "{}/fixtures/contract-0.1/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn amount(v: &Value) -> f64 {
    v["amount"].as_f64().unwrap()
}

/// The router (Wasm and built-in) sends each event where a plain loop over the input says,
/// and a 0.1 filter reading one of its outputs runs unchanged beside it.
#[test]
fn a_router_splits_a_stream_into_named_outputs_beside_a_0_1_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let routes = r#"{routes: [
        {to: small, field: /amount, op: lt, value: 100},
        {to: [large, audit], field: /amount, op: ge, value: 900},
        {to: audit, field: /country, op: eq, value: FR}]}"#;
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
version: 1
sources:
  gen: {{kind: generator, count: 5000}}
operators:
  router:
    plugin: {{plugins}}/router.wasm
    outputs: [small, large, audit]
    config: {routes}
    inputs: [gen]
  native:
    plugin: builtin:router
    outputs: [small, large, audit]
    config: {routes}
    inputs: [gen]
  old:
    plugin: {old}
    config: {{field: /kind, op: eq, value: cart}}
    inputs: [router.large]
  enrich-old:
    plugin: {old_c}
    config: {{min-amount: 300}}
    inputs: [router]
  enrich-new:
    plugin: {{plugins}}/enrich.wasm
    config: {{min-amount: 300}}
    inputs: [router]
sinks:
  all: {{kind: file, path: all.jsonl, inputs: [gen]}}
  main: {{kind: file, path: main.jsonl, inputs: [router]}}
  small: {{kind: file, path: small.jsonl, inputs: [router.small]}}
  large: {{kind: file, path: large.jsonl, inputs: [router.large]}}
  audit: {{kind: file, path: audit.jsonl, inputs: [router.audit]}}
  n-main: {{kind: file, path: n-main.jsonl, inputs: [native]}}
  n-small: {{kind: file, path: n-small.jsonl, inputs: [native.small]}}
  n-large: {{kind: file, path: n-large.jsonl, inputs: [native.large]}}
  n-audit: {{kind: file, path: n-audit.jsonl, inputs: [native.audit]}}
  old-out: {{kind: file, path: old.jsonl, inputs: [old]}}
  enrich-old-out: {{kind: file, path: enrich-old.jsonl, inputs: [enrich-old]}}
  enrich-new-out: {{kind: file, path: enrich-new.jsonl, inputs: [enrich-new]}}
"#,
            old = fixture("filter.wasm"),
            old_c = fixture("enrich-c.wasm"),
        ),
    );
    succeed(flowlet().arg("run").arg(&manifest));
    let read = |f: &str| json_lines(&dir.path().join(f));
    let all = read("all.jsonl");
    assert_eq!(all.len(), 5000);
    // The reference: first matching route; no match goes to the main output.
    let (mut main, mut small, mut large, mut audit) = (vec![], vec![], vec![], vec![]);
    for e in &all {
        if amount(e) < 100.0 {
            small.push(e.clone());
        } else if amount(e) >= 900.0 {
            large.push(e.clone());
            audit.push(e.clone());
        } else if e["country"] == "FR" {
            audit.push(e.clone());
        } else {
            main.push(e.clone());
        }
    }
    assert!(!small.is_empty() && !large.is_empty() && !main.is_empty());
    for (prefix, what) in [("", "Wasm"), ("n-", "built-in")] {
        assert_eq!(read(&format!("{prefix}main.jsonl")), main, "{what} main");
        assert_eq!(read(&format!("{prefix}small.jsonl")), small, "{what} small");
        assert_eq!(read(&format!("{prefix}large.jsonl")), large, "{what} large");
        assert_eq!(read(&format!("{prefix}audit.jsonl")), audit, "{what} audit");
    }
    let carts: Vec<Value> = large.into_iter().filter(|e| e["kind"] == "cart").collect();
    assert_eq!(read("old.jsonl"), carts, "the 0.1 filter");
    // The C enrich built with the 0.1 SDK gives what the Rust one of 0.2 gives.
    let enriched = read("enrich-new.jsonl");
    assert!(!enriched.is_empty() && enriched.len() < main.len());
    assert_eq!(read("enrich-old.jsonl"), enriched, "the 0.1 C enrich");
}

/// Every plugin kind of contract 0.1 (processor, stateful processor, aggregator) runs
/// unchanged, and an operator with several inputs is told which one each event came from.
#[test]
fn plugins_of_both_contracts_run_side_by_side_and_know_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // Events ids `ids` (keys k0..k3, time = id) that ask the hostile plugin for their input.
    let write = |file: &str, ids: std::ops::Range<u32>| {
        let lines: String = ids
            .map(|i| {
                format!(
                    "{{\"do\":\"input\",\"id\":{i},\"key\":\"k{}\",\"ts\":{i}}}\n",
                    i % 4
                )
            })
            .collect();
        std::fs::write(dir.path().join(file), lines).unwrap();
    };
    write("a.jsonl", 0..40);
    write("b.jsonl", 40..50);
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
version: 1
sources:
  a: {{kind: file, path: a.jsonl, event-time: {{field: /ts}}}}
  b: {{kind: file, path: b.jsonl, event-time: {{field: /ts}}}}
operators:
  which:
    plugin: {{plugins}}/hostile.wasm
    inputs: [a, b]
  count:
    plugin: {counter}
    key-by: /key
    inputs: [a, b]
  window:
    plugin: {aggregate}
    key-by: /key
    window: {{kind: tumbling, size: 100ms}}
    config: {{function: count}}
    inputs: [a]
sinks:
  which-out: {{kind: file, path: which.jsonl, inputs: [which]}}
  count-out: {{kind: file, path: count.jsonl, inputs: [count]}}
  window-out: {{kind: file, path: window.jsonl, inputs: [window]}}
"#,
            counter = fixture("counter.wasm"),
            aggregate = fixture("aggregate.wasm"),
        ),
    );
    succeed(flowlet().arg("run").arg(&manifest));
    let which = json_lines(&dir.path().join("which.jsonl"));
    let from = |name: &str| which.iter().filter(|v| v["input"] == name).count();
    assert_eq!(
        (from("a"), from("b"), which.len()),
        (40, 10, 50),
        "{which:?}"
    );
    let counts = json_lines(&dir.path().join("count.jsonl"));
    assert_eq!(counts.len(), 50);
    let max = counts.iter().map(|v| v["n"].as_u64().unwrap()).max();
    assert_eq!(
        max,
        Some(13),
        "k0..k3 hold 13, 13, 12, 12 events: {counts:?}"
    );
    let windows = json_lines(&dir.path().join("window.jsonl"));
    let total: u64 = windows
        .iter()
        .map(|v| v["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 40, "{windows:?}");
}

/// What the contract refuses, each naming the operator: a 0.1 plugin asked to route, a read of
/// an output the producer does not declare, outputs on an aggregate; an event routed past the
/// declared outputs meets `on-error`; an output nobody reads is a warning.
#[test]
fn bad_routes_are_refused_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let run = |yaml: &str| {
        let m = write_manifest(dir.path(), yaml);
        flowlet().arg("run").arg(&m).output().unwrap()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let old = run(&format!(
        r#"
version: 1
sources: {{gen: {{kind: generator, count: 10}}}}
operators:
  split:
    plugin: {}
    outputs: [odd]
    config: {{field: /id, op: ge, value: 0}}
    inputs: [gen]
sinks: {{out: {{kind: stdout, inputs: [split.odd]}}}}
"#,
        fixture("filter.wasm")
    ));
    assert!(!old.status.success());
    let e = text(&old);
    assert!(
        e.contains("`split`") && e.contains("contract 0.1.0") && e.contains("outputs: [odd]"),
        "{e}"
    );

    let undeclared = run(r#"
version: 1
sources: {gen: {kind: generator, count: 10}}
operators:
  split: {plugin: builtin:router, outputs: [small], config: {routes: [{to: small, field: /amount, op: lt, value: 1}]}, inputs: [gen]}
sinks:
  out: {kind: stdout, inputs: [split.smal]}
  rest: {kind: stdout, inputs: [split.small]}
"#);
    assert!(!undeclared.status.success());
    let e = text(&undeclared);
    assert!(
        e.contains("has no output `smal`") && e.contains("did you mean `small`?"),
        "{e}"
    );

    let unread = run(r#"
version: 1
sources: {gen: {kind: generator, count: 10}}
operators:
  split: {plugin: builtin:router, outputs: [small, big], config: {routes: [{to: small, field: /amount, op: lt, value: 1}]}, inputs: [gen]}
sinks:
  out: {kind: "null", inputs: [split.small]}
"#);
    assert!(unread.status.success(), "{}", text(&unread));
    let e = text(&unread);
    assert!(
        e.contains("warning") && e.contains("`split.big`, which nothing reads"),
        "{e}"
    );
    assert!(!e.contains("`split.main`"), "{e}");

    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"do\":\"route\",\"port\":1}\n{\"do\":\"route\",\"port\":4}\n{\"do\":\"route\",\"port\":2}\n",
    )
    .unwrap();
    let past = run(r#"
version: 1
sources: {in: {kind: file, path: in.jsonl}}
operators:
  h: {plugin: "{plugins}/hostile.wasm", outputs: [one], on-error: dead-letter, inputs: [in]}
sinks:
  main: {kind: file, path: main.jsonl, inputs: [h]}
  one: {kind: file, path: one.jsonl, inputs: [h.one]}
  dead: {kind: file, path: dead.jsonl, inputs: [h.dead-letter]}
"#);
    assert!(past.status.success(), "{}", text(&past));
    assert_eq!(json_lines(&dir.path().join("main.jsonl")).len(), 1);
    assert_eq!(json_lines(&dir.path().join("one.jsonl")).len(), 1);
    let dead = json_lines(&dir.path().join("dead.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = dead[0]["error"].as_str().unwrap();
    assert!(
        error.contains("routed event 0 to output 2") && error.contains("1 named output"),
        "{error}"
    );
}
