//! Operators in C, Python and JavaScript: the same enrich-and-filter operator in four languages
//! (plugins/enrich, enrich-c, enrich-python, enrich-js) over the same input must give the same
//! output and the same rejections; the Python window aggregate must give the Rust aggregate's
//! windows, also across a kill and a restore; and `flowlet new` projects in every language must
//! build and pass their own `make test`.
//!
//! The toolchains come from `scripts/toolchains env` (installed once, cached); the language
//! plugins are built here by their own Makefiles, so a broken build fails a test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use flowlet_tests::{
    Rng, flowlet_bin, flowlet_exe, json_lines, plugin, root, run_and_kill, succeed, test_cache_dir,
};
use serde_json::{Value, json};

/// `scripts/toolchains env`: PATH and the componentize tools.
fn toolchains() -> &'static BTreeMap<String, String> {
    static ENV: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let out = Command::new(root().join("scripts/toolchains"))
            .arg("env")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/toolchains env");
        assert!(out.status.success(), "scripts/toolchains env failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

/// `make` in `dir` with the toolchains and this build's flowlet.
fn make(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("make");
    cmd.current_dir(dir)
        .args(args)
        .envs(toolchains())
        .env("FLOWLET", flowlet_exe())
        .env("FLOWLET_CACHE_DIR", test_cache_dir());
    let out = cmd.output().expect("run make");
    assert!(
        out.status.success(),
        "make {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Cargo's target directory (the `flowlet` binary is in `<target>/<profile>/`).
fn target_dir() -> PathBuf {
    flowlet_exe().parent().unwrap().parent().unwrap().to_owned()
}

/// The plugins on the C, Python and JavaScript SDKs.
const LANGUAGE_PLUGINS: [&str; 8] = [
    "enrich-c",
    "enrich-python",
    "enrich-js",
    "aggregate-python",
    "aggregate-js",
    "aggregate-c",
    "dedupe-python",
    "dedupe-js",
];

/// The C, Python and JavaScript plugins, built once by their Makefiles.
fn language_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // In the target directory (beside the Rust plugins), not left behind in /tmp.
        let dir = target_dir().join("lang-plugins");
        let out = format!("OUT={}", dir.display());
        for p in LANGUAGE_PLUGINS {
            make(&root().join("plugins").join(p), &["-B", &out]);
        }
        dir
    })
}

fn lang_plugin(name: &str) -> String {
    language_plugins()
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// Orders with every shape the operator must handle, and some it must reject.
fn orders(n: usize) -> (String, usize) {
    let mut rng = Rng(7);
    let countries = ["DE", "de", "Fr", "us", "JP", "sg", "BR", "xx", ""];
    let mut lines = Vec::new();
    let mut bad = 0;
    for i in 0..n {
        let country = countries[rng.below(countries.len() as u64) as usize];
        let amount: Value = match rng.below(4) {
            0 => json!(rng.below(3000)),
            1 => json!(rng.below(300_000) as f64 / 100.0),
            2 => json!(rng.below(200)),
            _ => json!(-(rng.below(50) as i64)),
        };
        let mut e = json!({"id": i, "user": format!("u{}", rng.below(50)), "amount": amount,
            "tags": ["a", {"b": [1, 2]}], "note": "caf\u{e9} \"quoted\" \\ text"});
        match rng.below(20) {
            0 => {
                e.as_object_mut().unwrap().remove("country");
            }
            1 => e["tier"] = json!("stale"),
            2 => e["country"] = json!(49),
            _ => e["country"] = json!(country),
        }
        lines.push(e.to_string());
        if i % 97 == 0 {
            bad += 4;
            lines.push("[1,2]".into());
            lines.push(r#"{"id":-1,"amount":"12"}"#.into());
            lines.push(r#"{"id":-2}"#.into());
            lines.push(r#"{"id":-3,"amount":null}"#.into());
        }
    }
    lines.push(String::new());
    (lines.join("\n"), bad)
}

/// `v` with every number as a float: languages write `12.0` as `12` or `12.0`.
fn normalized(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalized(v))).collect()),
        other => other,
    }
}

/// Run `plugin` over `input` in a topology; (output values, dead letters as (value, error)).
fn run_enrich(dir: &Path, plugin: &str, input: &Path) -> (Vec<Value>, Vec<(Value, String)>) {
    let name = Path::new(plugin)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let run = dir.join(&name);
    std::fs::create_dir_all(&run).unwrap();
    let manifest = run.join("topology.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"
version: 1
sources:
  orders: {{kind: file, path: {input}}}
operators:
  enrich:
    plugin: {plugin}
    config: {{min-amount: 100, high-amount: 1000}}
    inputs: [orders]
    on-error: dead-letter
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [enrich]}}
  dead: {{kind: file, path: dead.jsonl, inputs: [enrich.dead-letter]}}
"#,
            input = input.display()
        ),
    )
    .unwrap();
    succeed(flowlet_bin().arg("run").arg(&manifest));
    let dead = json_lines(&run.join("dead.jsonl"))
        .into_iter()
        .map(|d| {
            (
                normalized(d["event"]["value"].clone()),
                d["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let out = json_lines(&run.join("out.jsonl"))
        .into_iter()
        .map(normalized)
        .collect();
    (out, dead)
}

#[test]
fn enrich_gives_the_same_output_in_rust_c_python_and_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let (text, bad) = orders(3000);
    let input = dir.path().join("orders.jsonl");
    std::fs::write(&input, text).unwrap();

    let (expected, expected_dead) = run_enrich(dir.path(), &plugin("enrich"), &input);
    // The reference itself: filtered, enriched, and every bad line rejected with its reason.
    assert!(
        expected.len() > 1000 && expected.len() < 3000,
        "{}",
        expected.len()
    );
    assert!(
        expected
            .iter()
            .all(|e| e["amount"].as_f64().unwrap() >= 100.0
                && e["tier"]
                    == if e["amount"].as_f64().unwrap() >= 1000.0 {
                        "high"
                    } else {
                        "low"
                    })
    );
    let regions: BTreeMap<&str, usize> = expected.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e["region"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        regions.keys().copied().collect::<Vec<_>>(),
        ["apac", "eu", "na", "other"]
    );
    assert_eq!(expected_dead.len(), bad);

    for lang in ["enrich-c", "enrich-python", "enrich-js"] {
        let (got, dead) = run_enrich(dir.path(), &lang_plugin(lang), &input);
        assert_eq!(got.len(), expected.len(), "{lang}: number of events");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g, e, "{lang}: event {i} differs from the Rust operator's");
        }
        assert_eq!(
            dead, expected_dead,
            "{lang}: rejections differ from the Rust operator's"
        );
    }
}

#[test]
fn a_bad_config_is_refused_by_every_language_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"amount\":1}\n").unwrap();
    for plugin in [
        plugin("enrich"),
        lang_plugin("enrich-c"),
        lang_plugin("enrich-python"),
        lang_plugin("enrich-js"),
    ] {
        let manifest = dir.path().join("bad.yaml");
        std::fs::write(
            &manifest,
            format!(
                "version: 1\nsources: {{in: {{kind: file, path: {}}}}}\noperators:\n  enrich: {{plugin: {plugin}, config: {{min-amount: lots}}, inputs: [in]}}\nsinks: {{out: {{kind: stdout, inputs: [enrich]}}}}\n",
                input.display()
            ),
        )
        .unwrap();
        let out = flowlet_bin().arg("run").arg(&manifest).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{plugin}");
        assert!(
            err.contains("operator `enrich`") && err.contains("`min-amount` must be a number"),
            "{plugin}: {err}"
        );
    }
}

/// Clicks with event times, for the window aggregates.
fn clicks(n: usize) -> String {
    let mut rng = Rng(11);
    let mut ts = 1_700_000_000_000i64;
    let mut out = String::new();
    for i in 0..n {
        ts += rng.below(40) as i64;
        // Now and then a gap, which closes sessions.
        if rng.below(200) == 0 {
            ts += 5_000;
        }
        let amount = rng.below(10_000) as f64 / 100.0;
        out.push_str(&format!(
            "{}\n",
            json!({"i": i, "user": format!("u{}", rng.below(20)), "amount": amount, "ts": ts})
        ));
        if i % 500 == 0 {
            out.push_str("{\"user\":\"u1\",\"ts\":1700000000001,\"amount\":\"x\"}\n");
        }
    }
    out
}

fn aggregate_manifest(input: &Path, plugin: &str, window: &str, checkpoint: bool) -> String {
    format!(
        r#"
version: 1
{checkpoint}
sources:
  clicks: {{kind: file, path: {input}, event-time: {{field: /ts}}, batch-size: 64}}
operators:
  totals:
    plugin: {plugin}
    config: {{function: sum, field: /amount}}
    key-by: /user
    parallelism: 2
    window: {window}
    on-error: skip
    inputs: [clicks]
sinks:
  out: {{kind: file, path: out.jsonl, inputs: [totals]}}
"#,
        input = input.display(),
        checkpoint = if checkpoint {
            "checkpoint: {interval: 50ms}\nguarantee: exactly-once"
        } else {
            ""
        }
    )
}

/// The windows of an output file, in a canonical order, with sums rounded (float addition in
/// another order may differ in the last bits).
fn windows(path: &Path) -> Vec<(String, i64, i64, u64, i64)> {
    let mut w: Vec<_> = json_lines(path)
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["start"].as_i64().unwrap(),
                v["end"].as_i64().unwrap(),
                v["count"].as_u64().unwrap(),
                (v["sum"].as_f64().unwrap() * 100.0).round() as i64,
            )
        })
        .collect();
    w.sort();
    w
}

fn run_aggregate(dir: &Path, manifest_text: &str) -> Vec<(String, i64, i64, u64, i64)> {
    std::fs::create_dir_all(dir).unwrap();
    let manifest = dir.join("topology.yaml");
    std::fs::write(&manifest, manifest_text).unwrap();
    succeed(flowlet_bin().arg("run").arg(&manifest));
    windows(&dir.join("out.jsonl"))
}

#[test]
fn the_window_aggregates_in_python_javascript_and_c_give_the_rust_aggregates_windows() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clicks.jsonl");
    std::fs::write(&input, clicks(6000)).unwrap();
    for (name, window) in [
        ("tumbling", "{kind: tumbling, size: 1s}"),
        ("sliding", "{kind: sliding, size: 2s, slide: 500ms}"),
        ("session", "{kind: session, gap: 1s}"),
    ] {
        let rust = run_aggregate(
            &dir.path().join(format!("{name}-rust")),
            &aggregate_manifest(&input, &plugin("aggregate"), window, false),
        );
        assert!(rust.len() > 100, "{name}: {} windows", rust.len());
        for lang in ["aggregate-python", "aggregate-js", "aggregate-c"] {
            let got = run_aggregate(
                &dir.path().join(format!("{name}-{lang}")),
                &aggregate_manifest(&input, &lang_plugin(lang), window, false),
            );
            assert_eq!(got, rust, "{lang}: {name} windows differ");
        }
    }
}

#[test]
fn the_python_window_aggregate_resumes_from_a_checkpoint_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clicks.jsonl");
    std::fs::write(&input, clicks(20_000)).unwrap();
    let window = "{kind: tumbling, size: 1s}";
    let expected = run_aggregate(
        &dir.path().join("rust"),
        &aggregate_manifest(&input, &plugin("aggregate"), window, false),
    );
    let run = dir.path().join("python");
    std::fs::create_dir_all(&run).unwrap();
    let manifest = run.join("topology.yaml");
    std::fs::write(
        &manifest,
        aggregate_manifest(&input, &lang_plugin("aggregate-python"), window, true),
    )
    .unwrap();
    // Compile (and cache) the component first, so that the kills land while events flow.
    succeed(flowlet_bin().args([
        "inspect".as_ref(),
        Path::new(&lang_plugin("aggregate-python")).as_os_str(),
    ]));
    // How long a whole run takes on this machine, so that the kills land while events flow
    // (fixed delays ended after the run on a fast machine, or before its start on a slow one).
    let timing = dir.path().join("timing");
    std::fs::create_dir_all(&timing).unwrap();
    std::fs::write(
        timing.join("topology.yaml"),
        aggregate_manifest(&input, &lang_plugin("aggregate-python"), window, true),
    )
    .unwrap();
    let started = std::time::Instant::now();
    succeed(flowlet_bin().arg("run").arg(timing.join("topology.yaml")));
    let whole = started.elapsed();
    let mut rng = Rng(5);
    let mut killed = 0;
    for _ in 0..3 {
        let (ended, _) = run_and_kill(
            &["run".as_ref(), manifest.as_os_str()],
            whole * (30 + rng.below(50) as u32) / 100,
        );
        if ended {
            break;
        }
        killed += 1;
    }
    assert!(
        killed > 0,
        "the run ended before any kill; give it more input"
    );
    succeed(flowlet_bin().arg("run").arg(&manifest));
    assert_eq!(windows(&run.join("out.jsonl")), expected);
}

#[test]
fn flowlet_new_projects_build_and_pass_their_own_tests_in_every_language() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["rust", "c", "python", "js"] {
        let name = format!("my-{lang}-op");
        succeed(
            flowlet_bin()
                .args(["new", &name, "--lang", lang, "--dir"])
                .arg(dir.path()),
        );
        let project = dir.path().join(&name);
        assert!(project.join("README.md").is_file());
        let mut args = vec!["test".to_owned()];
        if lang == "rust" {
            // The plugins' target directory: the SDK's dependencies are compiled there already.
            let target = target_dir().join("wasm-plugins");
            args.push(format!("CARGO_TARGET_DIR={}", target.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = make(&project, &args);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ok: the output equals"),
            "{lang}"
        );
        assert_eq!(
            json_lines(&project.join("out/rejected.jsonl")).len(),
            1,
            "{lang}"
        );
    }
    // Bad names, an existing project and an unknown language are refused with the reason.
    for (args, want) in [
        (vec!["new", "My_Op", "--lang", "c"], "lowercase letters"),
        (vec!["new", "my-c-op", "--lang", "c"], "already exists"),
        (
            vec!["new", "x", "--lang", "go"],
            "possible values: rust, c, python, js",
        ),
    ] {
        let out = flowlet_bin()
            .args(&args)
            .args(["--dir".as_ref(), dir.path().as_os_str()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// Events with repeated ids, some without one, and clock moves for `flowlet test`: the TTL
/// runs out for some ids between their repeats.
fn dedupe_script() -> String {
    let mut rng = Rng(23);
    let mut out = String::new();
    for i in 0..3000 {
        if i % 500 == 499 {
            out.push_str(&format!(
                "{{\"@processing-time\": {}}}\n",
                (i / 500 + 1) * 1000
            ));
        }
        let line = match rng.below(50) {
            0 => json!({"n": i}),
            1 => json!({"id": null, "n": i}),
            _ => json!({"id": format!("o{}", rng.below(400)), "n": i}),
        };
        out.push_str(&format!("{line}\n"));
    }
    out
}

#[test]
fn dedupe_in_python_and_javascript_gives_the_rust_dedupes_output_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    std::fs::write(&input, dedupe_script()).unwrap();
    let test = |plugin: &str, bless: bool| {
        let mut cmd = flowlet_bin();
        cmd.args(["test", plugin, "--input"])
            .arg(&input)
            .args(["--config", "{ttl: 2s}", "--key-by", "/id", "--expect"])
            .arg(dir.path().join("out.jsonl"))
            .arg("--expect-state")
            .arg(dir.path().join("state.jsonl"));
        if bless {
            cmd.arg("--bless");
        }
        cmd.output().unwrap()
    };
    let rust = test(&plugin("dedupe"), true);
    assert!(
        rust.status.success(),
        "{}",
        String::from_utf8_lossy(&rust.stderr)
    );
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let passed = out.lines().count();
    assert!(passed > 400 && passed < 2900, "{passed} events passed");
    let state = std::fs::read_to_string(dir.path().join("state.jsonl")).unwrap();
    assert!(state.lines().count() > 100, "{state}");
    for lang in ["dedupe-python", "dedupe-js"] {
        let got = test(&lang_plugin(lang), false);
        assert!(
            got.status.success(),
            "{lang}: {}\n{}",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&got.stderr)
        );
        // The events without a key are dead letters, with the same reason as in Rust.
        let dead = |o: &std::process::Output| -> Vec<Value> {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|d| json!([d["event"]["value"], d["error"]]))
                .collect()
        };
        assert_eq!(dead(&got), dead(&rust), "{lang}: dead letters differ");
    }
}

/// A Python operator built on the SDK in a temporary directory.
fn python_operator(dir: &Path, world: &str, source: &str) -> String {
    std::fs::write(dir.join("app.py"), source).unwrap();
    let out = dir.join("op.wasm");
    let status = Command::new(&toolchains()["COMPONENTIZE_PY"])
        .envs(toolchains())
        .current_dir(dir)
        .args(["-d"])
        .arg(root().join("wit"))
        .args(["-w", world, "componentize", "-p", "."])
        .arg("-p")
        .arg(root().join("sdk/python"))
        .args(["app", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "componentize-py failed");
    out.display().to_string()
}

#[test]
fn an_exception_on_one_event_rejects_that_event_only_in_python() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = python_operator(
        dir.path(),
        "processor",
        r#"
import flowlet

@flowlet.processor
def process(event, out):
    out.emit({"n": event.json["n"], "first": True})
    if event.json["n"] % 3 == 0:
        raise ValueError(f"{event.json['n']} is a multiple of three")
    out.emit(1 / (event.json["n"] % 5))
"#,
    );
    // Events 3, 6, 9, 12, 15 raise ValueError, 5 and 10 ZeroDivisionError, the string a
    // TypeError.
    let dead = rejections_of_a_throwing_operator(dir.path(), Path::new(&plugin));
    assert!(
        dead[0].ends_with("ValueError: 3 is a multiple of three"),
        "{dead:?}"
    );
    assert!(
        dead[1].ends_with("ZeroDivisionError: division by zero"),
        "{dead:?}"
    );
    assert!(
        dead[7].contains("TypeError: string indices must be integers"),
        "{dead:?}"
    );
}

/// Run an operator that emits `{"n", "first"}` then throws for multiples of 3 and of 5 (and on
/// a value without `n`), else emits a second event, over n = 1..=15 and a string: what the
/// throwing events emitted is gone, the others' two events each remain; the dead letters'
/// reasons, in order.
fn rejections_of_a_throwing_operator(dir: &Path, plugin: &Path) -> Vec<String> {
    let input = dir.join("in.jsonl");
    let lines: Vec<String> = (1..=15).map(|n| json!({"n": n}).to_string()).collect();
    std::fs::write(&input, lines.join("\n") + "\n\"no n\"\n").unwrap();
    let out = flowlet_bin()
        .arg("test")
        .arg(plugin)
        .arg("--input")
        .arg(&input)
        .arg("--expect")
        .arg(dir.join("out.jsonl"))
        .arg("--bless")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json_lines(&dir.join("out.jsonl"));
    let kept: Vec<i64> = got.iter().filter_map(|v| v["n"].as_i64()).collect();
    assert_eq!(kept, [1, 2, 4, 7, 8, 11, 13, 14]);
    assert_eq!(got.len(), 16);
    let dead: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|d| d["error"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead.len(), 8, "{dead:?}");
    dead
}

#[test]
fn an_exception_on_one_event_rejects_that_event_only_in_javascript() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = root().join("sdk/js/index.js");
    std::fs::write(
        dir.path().join("op.js"),
        format!(
            r#"
import {{ processor }} from '{}';
export const handler = processor({{
  process(event, out) {{
    const {{ n }} = event.object;
    out.emit({{ n, first: true }});
    if (n % 3 === 0) throw new RangeError(`${{n}} is a multiple of three`);
    if (n % 5 === 0) null.boom;
    out.emit(1 / (n % 5));
  }},
}});
"#,
            sdk.display()
        ),
    )
    .unwrap();
    let plugin = dir.path().join("op.wasm");
    let out = Command::new("node")
        .envs(toolchains())
        .arg(root().join("sdk/js/build.mjs"))
        .arg(dir.path().join("op.js"))
        .args(["--world", "processor", "--wit"])
        .arg(root().join("wit"))
        .arg("-o")
        .arg(&plugin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build.mjs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dead = rejections_of_a_throwing_operator(dir.path(), &plugin);
    assert!(
        dead[0].ends_with("RangeError: 3 is a multiple of three"),
        "{dead:?}"
    );
    assert!(dead[1].contains("rejected: TypeError: "), "{dead:?}");
    assert!(
        dead[7].ends_with("the value is not a JSON object"),
        "{dead:?}"
    );
}

/// `scripts/package-sdks`: a wheel that installs and runs, an npm tarball that imports, a C
/// tarball an operator compiles and passes its unit test against.
#[test]
fn the_sdks_package_as_a_wheel_an_npm_tarball_and_a_c_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    let out = Command::new(root().join("scripts/package-sdks"))
        .arg(&dist)
        .envs(toolchains())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |cmd: &mut Command| {
        let out = cmd.envs(toolchains()).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Python: installed from the wheel alone, the harness runs an operator.
    let site = dir.path().join("site");
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
        ])
        .arg(&site)
        .arg(dist.join("flowlet-0.2.0-py3-none-any.whl")));
    let got = run(Command::new("python3")
        .current_dir(dir.path())
        .env("PYTHONPATH", &site)
        .args(["-c", "import flowlet, sys\nfrom flowlet.testing import Harness\n@flowlet.processor\ndef p(e, out): out.emit({'x': e.json['x'] * 2})\nprint(flowlet.CONTRACT, Harness(sys.modules[__name__]).process([{'x': 21}]).json)"]));
    assert_eq!(got.trim(), "0.2.0 [{'x': 42}]");
    // JavaScript: the tarball's package imports and runs under its harness.
    run(Command::new("tar")
        .current_dir(dir.path())
        .args(["xzf"])
        .arg(dist.join("flowlet-sdk-0.2.0.tgz")));
    let script = dir.path().join("t.mjs");
    std::fs::write(
        &script,
        "import { processor, CONTRACT } from './package/index.js';\nimport { Harness } from './package/testing.js';\nconst h = new Harness(processor({ process(e, out) { out.emit({ x: e.object.x * 2 }); } }));\nconsole.log(CONTRACT, JSON.stringify(h.process([{ x: 21 }]).json));\n",
    )
    .unwrap();
    let got = run(Command::new("node").arg(&script));
    assert_eq!(got.trim(), "0.2.0 [{\"x\":42}]");
    // C: enrich-c and its unit test compile against the tarball's library and pass.
    run(Command::new("tar")
        .current_dir(dir.path())
        .args(["xzf"])
        .arg(dist.join("flowlet-c-sdk-0.2.0.tar.gz")));
    let c = dir.path().join("flowlet-c-sdk-0.2.0");
    let enrich = root().join("plugins/enrich-c");
    let exe = dir.path().join("enrich-test");
    run(Command::new("cc")
        .arg("-I")
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .arg(enrich.join("enrich.c"))
        .arg(enrich.join("enrich_test.c"))
        .arg(c.join("flowlet.c"))
        .arg(c.join("flowlet_testing.c"))
        .arg("-lm"));
    assert!(run(&mut Command::new(&exe)).contains(" 0 failed"));
}

/// The Python SDK's stateful glue through the real host: value state as JSON, map state, timers
/// in both domains (the processing-time ones fire at the clock step, before the next event),
/// the watermark seen by a timer, and the state left.
#[test]
fn a_python_stateful_operator_keeps_state_and_fires_timers_in_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = python_operator(
        dir.path(),
        "stateful-processor",
        r#"
import flowlet

@flowlet.stateful
def process(event, out):
    n = event.state.get_json("count", 0) + 1
    event.state.put_json("count", n)
    event.state.map_put("seen", str(event.timestamp).zfill(8), event.value)
    event.timers.register(event.timestamp + 1000)
    if n == 1:
        event.timers.register(event.timers.now() + 500, flowlet.PROCESSING_TIME)
    flowlet.log.info(f"event {n} of {event.key_text}")

@flowlet.on_timer
def fired(timer, out):
    out.emit({"key": timer.key_text, "domain": timer.domain, "at": timer.at,
              "count": timer.state.get_json("count"), "seen": len(timer.state.map_range("seen")),
              "wm": timer.timers.watermark()})
"#,
    );
    let p = |n: &str| dir.path().join(n);
    std::fs::write(
        p("in.jsonl"),
        "{\"u\":\"a\",\"ts\":100}\n{\"u\":\"b\",\"ts\":200}\n{\"u\":\"a\",\"ts\":300}\n{\"@processing-time\": 500}\n{\"u\":\"a\",\"ts\":2500}\n",
    )
    .unwrap();
    std::fs::write(
        p("out.jsonl"),
        r#"{"key":"a","domain":"processing-time","at":500,"count":2,"seen":2,"wm":300}
{"key":"b","domain":"processing-time","at":500,"count":1,"seen":1,"wm":300}
{"key":"a","domain":"event-time","at":1100,"count":3,"seen":3,"wm":2500}
{"key":"b","domain":"event-time","at":1200,"count":1,"seen":1,"wm":2500}
{"key":"a","domain":"event-time","at":1300,"count":3,"seen":3,"wm":2500}
{"key":"a","domain":"event-time","at":3500,"count":3,"seen":3,"wm":9223372036854775807}
"#,
    )
    .unwrap();
    std::fs::write(
        p("state.jsonl"),
        r#"{"key":"a","kind":"value","name":"count","value":3}
{"key":"a","kind":"map","name":"seen","value":{"u":"a","ts":100},"map-key":"00000100"}
{"key":"a","kind":"map","name":"seen","value":{"u":"a","ts":300},"map-key":"00000300"}
{"key":"a","kind":"map","name":"seen","value":{"u":"a","ts":2500},"map-key":"00002500"}
{"key":"b","kind":"value","name":"count","value":1}
{"key":"b","kind":"map","name":"seen","value":{"u":"b","ts":200},"map-key":"00000200"}
"#,
    )
    .unwrap();
    let out = flowlet_bin()
        .args(["test", &plugin, "--input"])
        .arg(p("in.jsonl"))
        .arg("--expect")
        .arg(p("out.jsonl"))
        .arg("--expect-state")
        .arg(p("state.jsonl"))
        .args(["--key-by", "/u", "--event-time", "/ts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("event 3 of a"));
}
