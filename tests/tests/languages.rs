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

/// The C, Python and JavaScript plugins, built once by their Makefiles.
fn language_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // In the target directory (beside the Rust plugins), not left behind in /tmp.
        let dir = target_dir().join("lang-plugins");
        let out = format!("OUT={}", dir.display());
        for p in ["enrich-c", "enrich-python", "enrich-js", "aggregate-python"] {
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
fn the_python_window_aggregate_gives_the_rust_aggregates_windows() {
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
        let python = run_aggregate(
            &dir.path().join(format!("{name}-python")),
            &aggregate_manifest(&input, &lang_plugin("aggregate-python"), window, false),
        );
        assert!(rust.len() > 100, "{name}: {} windows", rust.len());
        assert_eq!(python, rust, "{name} windows differ");
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
