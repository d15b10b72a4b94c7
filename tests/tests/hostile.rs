//! Bad plugins and hostile operators: each is contained, named, and costs only its own events.

use std::time::{Duration, Instant};

use flowlet_host::HostError;
use flowlet_tests::{host, json_lines, manifest_text, plugin, run_text};

fn topology(on_error: &str, config: &str, input: &str) -> String {
    manifest_text(&format!(
        r#"
version: 1
sources:
  lines: {{kind: file, path: {input}, batch-size: 16}}
operators:
  hostile:
    plugin: {{plugins}}/hostile.wasm
    config: {config}
    inputs: [lines]
    on-error: {on_error}
    limits: {{memory: 32MiB, call-timeout: 200ms}}
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [hostile]}}
{dead}
"#,
        dead = if on_error == "dead-letter" {
            "  dead: {kind: file, path: dead.jsonl, inputs: [hostile.dead-letter]}"
        } else {
            ""
        }
    ))
}

const EVENTS: &str = r#"{"do":"pass","n":1}
{"do":"panic"}
{"do":"pass","n":2}
{"do":"loop"}
{"do":"recurse"}
{"do":"alloc"}
{"do":"pass","n":3}
{"do":"reject"}
{"do":"fail"}
{"do":"log","n":4}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_hostile_event_is_dead_lettered_and_the_rest_comes_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), EVENTS).unwrap();
    let started = Instant::now();
    let report = run_text(dir.path(), &topology("dead-letter", "null", "in.jsonl"))
        .await
        .unwrap();
    let took = started.elapsed();

    let out: Vec<i64> = json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|e| e["n"].as_i64().unwrap())
        .collect();
    assert_eq!(out, vec![1, 2, 3, 4], "the good events come out, in order");

    let dead = json_lines(&dir.path().join("dead.jsonl"));
    let errors: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["event"]["value"]["do"].as_str().unwrap().to_owned(),
                d["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("panic", "hostile operator panics as asked"),
        ("loop", "deadline"),
        ("recurse", "stack"),
        ("alloc", "memory limit of 32 MiB"),
        ("reject", "rejected as asked"),
        ("fail", "failing the batch as asked"),
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for ((action, error), (want_action, want_text)) in errors.iter().zip(expect) {
        assert_eq!(action, want_action);
        assert!(error.contains(want_text), "{action}: {error}");
    }
    for d in &dead {
        assert_eq!(d["operator"], "hostile");
        assert!(d["plugin"].as_str().unwrap().starts_with("sha256:"));
    }
    let stats = &report.nodes["hostile"];
    assert!(stats.restarts >= 4, "{stats:?}");
    assert_eq!(stats.dead_lettered, 6);
    // The loop costs one deadline per attempt (the batch, then the event alone).
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_under_fail_stops_the_topology_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"do\":\"pass\"}\n{\"do\":\"panic\"}\n",
    )
    .unwrap();
    let err = run_text(dir.path(), &topology("fail", "null", "in.jsonl"))
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("operator `hostile`"), "{text}");
    assert!(text.contains("panics as asked"), "{text}");
    assert!(text.contains("on-error"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_drops_only_the_bad_events() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), EVENTS).unwrap();
    let report = run_text(dir.path(), &topology("skip", "null", "in.jsonl"))
        .await
        .unwrap();
    assert_eq!(json_lines(&dir.path().join("out.jsonl")).len(), 4);
    assert_eq!(report.nodes["hostile"].skipped, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn init_failures_stop_the_run_before_any_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"do\":\"pass\"}\n").unwrap();
    for (config, needle) in [
        ("{fail-init: true}", "invalid config: fail-init is set"),
        ("{panic-init: true}", "panics in init"),
        ("{fail-init: 3}", "invalid config"),
    ] {
        let err = run_text(dir.path(), &topology("fail", config, "in.jsonl"))
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("operator `hostile`") && text.contains("could not start"),
            "{text}"
        );
        assert!(text.contains(needle), "{config}: {text}");
        assert!(
            !dir.path().join("out.jsonl").exists()
                || json_lines(&dir.path().join("out.jsonl")).is_empty()
        );
    }
}

#[test]
fn files_that_are_not_flowlet_components_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let h = host();

    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(h.load(&text), Err(HostError::NotWasm { .. })));

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let err = h.load(&core).err().unwrap();
    assert!(matches!(err, HostError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"));

    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x0d\0\x01\0garbage").unwrap();
    assert!(matches!(h.load(&broken), Err(HostError::Invalid { .. })));

    let other = std::path::PathBuf::from(plugin("other-world"));
    let err = h.load(&other).err().unwrap();
    let text = err.to_string();
    assert!(matches!(err, HostError::WrongWorld { .. }), "{text}");
    assert!(
        text.contains("does not implement flowlet's `processor` world"),
        "{text}"
    );
    assert!(
        text.contains("greet"),
        "it lists what the component exports: {text}"
    );

    let missing = dir.path().join("missing.wasm");
    assert!(matches!(h.load(&missing), Err(HostError::Read { .. })));
}

#[test]
fn imports_a_world_may_not_use_are_refused_at_load_naming_what_it_may_use() {
    let h = host();
    let refused = |name: &str| {
        let err = h.load(plugin(name).as_ref()).err().unwrap();
        assert!(matches!(err, HostError::Import { .. }), "{err}");
        err.to_string()
    };
    let text = refused("imports-state");
    assert!(
        text.contains("imports flowlet:operator/state@0.2.0, which only a stateful-processor may import; a processor may import only flowlet:operator/{log,metrics} and WASI 0.2"),
        "{text}"
    );
    assert!(text.contains("sha256:"), "it names the plugin: {text}");
    let text = refused("imports-unknown");
    assert!(
        text.contains("imports test:imports/socket, which flowlet does not provide; a processor may import only flowlet:operator/{log,metrics} and WASI 0.2"),
        "{text}"
    );
    // A stateful processor may use state and timers.
    h.load(plugin("dedupe").as_ref()).unwrap();
}

#[test]
fn inspect_shows_world_version_exports_and_imports() {
    let info = host().inspect(plugin("filter").as_ref()).unwrap();
    assert_eq!(info.world.as_deref(), Some("processor"));
    assert_eq!(info.contract_version.as_deref(), Some("0.2.0"));
    assert!(
        info.exports
            .iter()
            .any(|e| e == "flowlet:operator/handler@0.2.0"),
        "{info:?}"
    );
    assert!(info.digest.starts_with("sha256:"));
    let hostile = host().inspect(plugin("hostile").as_ref()).unwrap();
    assert!(
        hostile
            .imports
            .iter()
            .any(|i| i.starts_with("flowlet:operator/log")),
        "{hostile:?}"
    );

    let other = host().inspect(plugin("other-world").as_ref()).unwrap();
    assert_eq!(other.world, None);
}
