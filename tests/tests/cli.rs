//! The `flowlet` binary as a user runs it. `scripts/test` builds it before the tests run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowlet_tests::{plugin, root, succeed, write_manifest};

fn flowlet() -> Command {
    flowlet_tests::flowlet_bin()
}

#[test]
fn validate_prints_every_error_and_fails() {
    let out = flowlet()
        .args(["validate", "manifests/invalid/bad-values.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("manifests/invalid/bad-values.yaml:2:13: error"),
        "{err}"
    );
    assert!(err.matches(": error: ").count() >= 8, "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn inspect_prints_the_contract() {
    let out = succeed(flowlet().args(["inspect", &plugin("map")]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("world:     processor"), "{text}");
    assert!(text.contains("contract:  0.2.0"), "{text}");
    assert!(text.contains("flowlet:operator/handler@0.2.0"), "{text}");
    // A plugin built with the 0.1 SDK still runs, and says so.
    let fixture = format!(
        "{}/fixtures/contract-0.1/filter.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = succeed(flowlet().args(["inspect", &fixture]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("contract:  0.1.0"), "{text}");
    assert!(text.contains("world:     processor"), "{text}");
}

#[test]
fn run_prints_to_stdout_and_logs_as_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
sources:
  gen: {kind: generator, count: 50}
operators:
  big:
    plugin: {plugins}/filter.wasm
    config: {field: /amount, op: ge, value: 500}
    inputs: [gen]
sinks:
  out: {kind: stdout, inputs: [big]}
"#,
    );
    let out = succeed(
        flowlet()
            .args(["--log-format", "json", "run"])
            .arg(&manifest),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let n = stdout.lines().count();
    assert!(n > 10 && n < 40, "{stdout}");
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["amount"].as_f64().unwrap() >= 500.0);
    }
    for line in String::from_utf8(out.stderr).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
    }
}

#[test]
fn ctrl_c_stops_an_unbounded_topology_with_everything_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
sources:
  gen: {kind: generator, rate: 2000}
operators:
  all:
    plugin: {plugins}/filter.wasm
    config: {field: /id, op: exists}
    inputs: [gen]
sinks:
  out: {kind: file, path: out.jsonl, inputs: [all]}
"#,
    );
    let child =
        flowlet_tests::Child::spawn(flowlet().arg("run").arg(&manifest).stderr(Stdio::piped()));
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_for(Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not stop promptly"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let ids: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(ids.len() > 100, "only {} events before Ctrl-C", ids.len());
    // Flushed and complete: every generated event up to the stop, none lost, none torn.
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    assert!(text.ends_with('\n'));
}

#[test]
fn readme_commands_exist() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("scripts/demo"));
    assert!(readme.contains("scripts/test"));
}

#[test]
fn inspect_names_the_world_of_aggregates_and_stateful_operators() {
    for (name, world, export) in [
        (
            "aggregate",
            "aggregator",
            "flowlet:operator/aggregate@0.2.0",
        ),
        (
            "dedupe",
            "stateful-processor",
            "flowlet:operator/stateful-handler@0.2.0",
        ),
    ] {
        let out = flowlet().args(["inspect", &plugin(name)]).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&format!("world:     {world}\n")), "{text}");
        assert!(text.contains(export), "{text}");
    }
}

#[test]
fn a_state_directory_of_another_format_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
state: {dir: old-state}
sources:
  gen: {kind: generator, count: 10}
operators:
  once:
    plugin: {plugins}/dedupe.wasm
    key-by: /id
    config: {ttl: 1m}
    inputs: [gen]
sinks:
  out: {kind: "null", inputs: [once]}
"#,
    );
    // Run once to create the database, then mark it as written by another format.
    succeed(flowlet().arg("run").arg(&manifest));
    sled_marker(&dir.path().join("old-state"));
    let out = flowlet().arg("run").arg(&manifest).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old-state") && err.contains("incompatible"),
        "{err}"
    );
}

/// Overwrite the format marker of a state database.
fn sled_marker(dir: &std::path::Path) {
    let db = flowlet_dataflow::state::StateDb::open(dir).unwrap();
    db.set_format_for_tests("flowlet-state-0").unwrap();
}

#[test]
fn bench_nexmark_reports_and_checks_the_reference() {
    for native in [false, true] {
        let mut cmd = flowlet();
        cmd.args(["bench", "nexmark", "--query", "q7", "--events", "1000000"])
            .arg("--plugins")
            .arg(flowlet_tests::plugins());
        if native {
            cmd.arg("--native");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in [
            "events/s",
            "CPU seconds",
            "peak RSS",
            "batch latency p50",
            "outputs       10",
            "checksum      99999328",
            "matches docs/NEXMARK.md",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}

/// `flowlet serve` with a token, driven by `flowlet deploy | swap | status`, stopped by Ctrl-C.
#[test]
fn serve_deploy_swap_status_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();

    // A public address without a token is refused.
    let out = flowlet()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));

    let mut server = flowlet();
    server
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--token-file")
        .arg(&token)
        .stderr(Stdio::piped());
    let server = flowlet_tests::Child::spawn(&mut server);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(format!("{url}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
name: counts
checkpoint: {interval: 1s}
sources:
  clicks: {kind: generator, rate: 1000}
operators:
  count:
    plugin: {plugins}/counter-v1.wasm
    inputs: [clicks]
    key-by: /user
sinks:
  out: {kind: file, path: out.jsonl, inputs: [count]}
"#,
    );
    let client = |args: &[&str], with_token: bool| {
        let mut c = flowlet();
        c.args(args).args(["--server", &url]);
        if with_token {
            c.arg("--token-file").arg(&token);
        }
        c.output().unwrap()
    };
    let m = manifest.to_str().unwrap();
    let out = client(&["deploy", m], false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("Bearer"), "{err}");

    let out = client(&["deploy", m], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "counts");

    let v2 = plugin("counter-v2");
    let out = client(&["swap", "counts", "count", &v2], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = client(&["status", "counts"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = s["operators"]["count"]["plugin-version"].as_str().unwrap();
    assert!(version.starts_with("counter-v2@sha256-"), "{s:#}");
    assert_eq!(s["phase"], "running");

    // Ctrl-C: every pipeline takes a final checkpoint, the server exits cleanly.
    let status = Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = server.wait_for(Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert!(text.contains(r#""version":"v1""#) && text.contains(r#""version":"v2""#));
}

/// Two `stdout` sinks (results and dead letters) share standard output: a sink must not hold
/// its lock while it waits for input, or the other waits for the lock, the operator for the
/// full channel, and the run hangs. Each line is written whole (lines never interleave).
#[test]
fn two_stdout_sinks_share_standard_output_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
sources: {g: {kind: generator, count: 100000}}
operators:
  m:
    plugin: {plugins}/map.wasm
    # events with fewer than two tags are rejected: both outputs get a large share
    config: {fields: {id: /id, second: /tags/1}, missing: reject}
    on-error: dead-letter
    inputs: [g]
sinks:
  out: {kind: stdout, inputs: [m]}
  dead: {kind: stdout, inputs: [m.dead-letter]}
"#,
    );
    let run = flowlet_tests::Child::spawn(
        flowlet()
            .arg("run")
            .arg(&manifest)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = run.wait_for(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut results, mut dead) = (0, 0);
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {line}"));
        if v.get("operator").is_some() {
            dead += 1;
        } else {
            results += 1;
        }
    }
    assert_eq!(
        results + dead,
        100_000,
        "every event once, on one of the two"
    );
    assert!(
        results > 10_000 && dead > 10_000,
        "{results} results, {dead} dead letters"
    );
}

/// A compiled-cache entry is bound to the component it is filed under: filter's compiled code
/// and checksum copied over map's entry are not executed as map (they do not match map's
/// digest), map is compiled again and runs as map.
#[test]
fn a_cache_entry_copied_under_another_component_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let digest = |name: &str| -> String {
        let out = succeed(flowlet().env("FLOWLET_CACHE_DIR", &cache).args([
            "inspect",
            "--json",
            &plugin(name),
        ]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let d = v["digest"].as_str().unwrap();
        d.strip_prefix("sha256:").unwrap_or(d).to_owned()
    };
    let (map, filter) = (digest("map"), digest("filter"));
    let entry = |digest: &str, ext: &str| -> std::path::PathBuf {
        let engines = cache.join("components");
        let engine = std::fs::read_dir(&engines)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        engine.join(format!("{digest}.{ext}"))
    };
    for ext in ["cwasm", "cwasm.sha256"] {
        assert!(entry(&filter, ext).is_file(), "{ext} of filter was cached");
        std::fs::copy(entry(&filter, ext), entry(&map, ext)).unwrap();
    }
    std::fs::write(dir.path().join("in.jsonl"), "{\"id\":1,\"x\":2}\n").unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
sources: {src: {kind: file, path: in.jsonl}}
operators:
  m: {plugin: {plugins}/map.wasm, config: {fields: {renamed: /x}}, inputs: [src]}
sinks: {out: {kind: stdout, inputs: [m]}}
"#,
    );
    let out = succeed(
        flowlet()
            .env("FLOWLET_CACHE_DIR", &cache)
            .arg("run")
            .arg(&manifest),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"renamed\":2}\n");
}

/// `inspect` and `run` read regular files only: a FIFO is refused at once (it would wait for
/// a writer forever), a directory is called a directory, and a component that is not a
/// flowlet operator makes `inspect` fail.
#[test]
fn plugins_that_are_not_regular_files_or_not_operators_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("op.wasm");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = flowlet_tests::Child::spawn(
        flowlet()
            .arg("inspect")
            .arg(&fifo)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .wait_for(Duration::from_secs(30));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("named pipe (FIFO)"), "{err}");

    let out = flowlet().arg("inspect").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a directory"), "{err}");

    // A valid component of no flowlet world (the other-world test plugin).
    let out = flowlet()
        .args(["inspect", &plugin("other-world")])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "inspect must fail for a non-operator"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("world:     none"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a flowlet operator"), "{err}");
}

/// Half-sent requests (headers never finished) are closed after `--header-timeout`, so that
/// they cannot pile up; a complete request still gets its answer meanwhile.
#[test]
fn serve_closes_connections_whose_headers_do_not_arrive() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let _server = flowlet_tests::Child::spawn(
        flowlet()
            .args([
                "serve",
                "--header-timeout",
                "1s",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(format!("{url}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let mut slow: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    assert!(
        ureq::get(format!("{url}/healthz")).call().is_ok(),
        "a whole request is answered"
    );
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        // The server closes the connection (possibly after a 408): the read ends.
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "half-sent requests were held {took:?}"
    );
}

#[test]
fn run_ends_with_one_plain_table_on_stderr_and_stats_keeps_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
name: table
sources:
  gen: {kind: generator, count: 50}
operators:
  big:
    plugin: {plugins}/filter.wasm
    config: {field: /amount, op: ge, value: 500}
    inputs: [gen]
sinks:
  out: {kind: "null", inputs: [big]}
"#,
    );
    let out = succeed(flowlet().arg("run").arg(&manifest));
    let err = String::from_utf8(out.stderr).unwrap();
    // stderr is a pipe here: no terminal colour codes, and one table, not a line per node.
    assert!(!err.contains('\x1b'), "colour codes in a pipe: {err:?}");
    let table: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("topology `table` finished in"))
        .collect();
    assert_eq!(table.len(), 5, "{err}");
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(cells(table[1])[..4], ["node", "kind", "in", "out"]);
    assert_eq!(cells(table[2])[..2], ["gen", "source"]);
    assert_eq!(cells(table[2])[3], "50");
    assert_eq!(cells(table[3])[..3], ["big", "operator", "50"]);
    let passed = cells(table[3])[3].clone();
    assert_eq!(cells(table[4])[..3], ["out", "sink", passed.as_str()]);
    // One table: its columns line up.
    let end_of = |l: &str| l.trim_end().len();
    assert!(
        table[1..].iter().all(|l| end_of(l) == end_of(table[1])),
        "{err}"
    );

    let out = succeed(flowlet().arg("run").arg(&manifest).arg("--stats"));
    let err = String::from_utf8(out.stderr).unwrap();
    let stats: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(stats["nodes"]["gen"]["events_out"], 50);
    assert!(!err.contains("finished in"), "{err}");
}

#[test]
fn flowlet_test_runs_a_component_over_events_and_diffs_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(
        p("in.jsonl"),
        "{\"user\":\"a\",\"amount\":600,\"ts\":1000}\n{\"user\":\"b\",\"amount\":100,\"ts\":2000}\n{\"user\":\"a\",\"amount\":700,\"ts\":3000}\nnot json\n",
    )
    .unwrap();
    let test = |expect: &str, extra: &[&str]| {
        let mut c = flowlet();
        c.args(["test", &plugin("filter"), "--input"])
            .arg(p("in.jsonl"))
            .arg("--expect")
            .arg(p(expect))
            .args(["--config", "{field: /amount, op: ge, value: 500}"])
            .args(extra);
        c.output().unwrap()
    };
    // No expected file yet: the error says how to make one.
    let out = test("filter.jsonl", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bless"));
    // --bless writes what the operator emitted; the bad line is a dead letter, counted.
    let out = test("filter.jsonl", &["--bless"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 input events rejected"));
    let blessed = std::fs::read_to_string(p("filter.jsonl")).unwrap();
    assert_eq!(blessed.lines().count(), 2, "{blessed}");
    let out = test("filter.jsonl", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Key order and spacing do not matter; a value does, and the error shows where.
    std::fs::write(
        p("other.jsonl"),
        "{\"ts\": 1000, \"amount\": 600, \"user\": \"a\"}\n{\"user\":\"a\",\"amount\":701,\"ts\":3000}\n",
    )
    .unwrap();
    let out = test("other.jsonl", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("differs from") && err.contains("at event 2"),
        "{err}"
    );
    assert!(
        err.contains("\"amount\":701") && err.contains("\"amount\":700"),
        "{err}"
    );

    // An aggregate with a window and event time: the end of the input fires every window.
    std::fs::write(
        p("clicks.jsonl"),
        "{\"user\":\"a\",\"ts\":1000}\n{\"user\":\"a\",\"ts\":1500}\n{\"user\":\"b\",\"ts\":2500}\n",
    )
    .unwrap();
    std::fs::write(
        p("counts.jsonl"),
        "{\"key\":\"a\",\"start\":1000,\"end\":2000,\"count\":2}\n{\"key\":\"b\",\"start\":2000,\"end\":3000,\"count\":1}\n",
    )
    .unwrap();
    let out = flowlet()
        .args(["test", &plugin("aggregate"), "--input"])
        .arg(p("clicks.jsonl"))
        .arg("--expect")
        .arg(p("counts.jsonl"))
        .args(["--config", "{function: count}", "--key-by", "/user"])
        .args([
            "--event-time",
            "/ts",
            "--window",
            "{kind: tumbling, size: 1s}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bad options are reported as the manifest diagnostics they make, not hidden.
    let out = flowlet()
        .args(["test", &plugin("aggregate"), "--input"])
        .arg(p("clicks.jsonl"))
        .arg("--expect")
        .arg(p("counts.jsonl"))
        .args(["--window", "{kind: tumbling, sise: 1s}"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unknown field `sise`") && err.contains("did you mean `size`"),
        "{err}"
    );
    // An aggregate without a window is refused, naming what is missing.
    let out = flowlet()
        .args(["test", &plugin("aggregate"), "--input"])
        .arg(p("clicks.jsonl"))
        .arg("--expect")
        .arg(p("counts.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("window"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flowlet_test_moves_time_by_the_script_and_checks_the_state_left() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |plugin: &str, input: &str, args: &[&str]| {
        std::fs::write(p("in.jsonl"), input).unwrap();
        flowlet()
            .args(["test", plugin, "--input"])
            .arg(p("in.jsonl"))
            .args(args)
            .output()
            .unwrap()
    };
    let expect = |name: &str, text: &str| {
        std::fs::write(p(name), text).unwrap();
        p(name).display().to_string()
    };
    // Dedupe with a 1 s TTL on the virtual clock: the duplicate at 999 ms is dropped, the one
    // at 1000 ms passes; the state left is what has not expired by the end.
    let input = "{\"id\":1,\"n\":\"a\"}\n{\"id\":2,\"n\":\"b\"}\n{\"id\":1,\"n\":\"c\"}\n{\"@processing-time\": 999}\n{\"id\":1,\"n\":\"d\"}\n{\"@processing-time\": \"1970-01-01T00:00:01Z\"}\n{\"id\":1,\"n\":\"e\"}\n";
    let out = expect(
        "dedupe.jsonl",
        "{\"id\":1,\"n\":\"a\"}\n{\"id\":2,\"n\":\"b\"}\n{\"id\":1,\"n\":\"e\"}\n",
    );
    let state = expect(
        "state.jsonl",
        "{\"key\":1,\"kind\":\"value\",\"name\":\"seen\",\"value\":\"\\u0001\"}\n",
    );
    let dedupe = plugin("dedupe");
    let args = [
        "--config",
        "{ttl: 1s}",
        "--key-by",
        "/id",
        "--expect",
        &out,
        "--expect-state",
        &state,
    ];
    let o = run(&dedupe, input, &args);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("ok: 1 state entries as expected"), "{text}");
    // At the end (1000 ms) the entry of id 2, put at 0 ms, has expired: expecting it fails.
    std::fs::write(
        p("state.jsonl"),
        "{\"key\":1,\"kind\":\"value\",\"name\":\"seen\",\"value\":\"\\u0001\"}\n{\"key\":2,\"kind\":\"value\",\"name\":\"seen\",\"value\":\"\\u0001\"}\n",
    )
    .unwrap();
    let o = run(&dedupe, input, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("the operator's state after the run"),
        "{err}"
    );

    // Windows: with the watermark after every event, the event at 500 ms comes after the
    // watermark passed 1500 ms and is late; in one step it is counted. An explicit
    // `@watermark` fires the first window before the rest of the input is read.
    let agg = plugin("aggregate");
    let input = "{\"user\":\"a\",\"ts\":1500}\n{\"user\":\"a\",\"ts\":500}\n";
    let window = [
        "--config",
        "{function: count}",
        "--key-by",
        "/user",
        "--event-time",
        "/ts",
        "--window",
        "{kind: tumbling, size: 1s}",
        "--expect",
    ];
    let one_step = expect(
        "one.jsonl",
        "{\"key\":\"a\",\"start\":0,\"end\":1000,\"count\":1}\n{\"key\":\"a\",\"start\":1000,\"end\":2000,\"count\":1}\n",
    );
    let o = run(&agg, input, &[&window[..], &[one_step.as_str()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let each = expect(
        "each.jsonl",
        "{\"key\":\"a\",\"start\":1000,\"end\":2000,\"count\":1}\n",
    );
    let o = run(
        &agg,
        input,
        &[&window[..], &[each.as_str(), "--watermark-steps", "1"]].concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &agg,
        "{\"user\":\"a\",\"ts\":500}\n{\"@watermark\": 1000}\n{\"user\":\"a\",\"ts\":600}\n{\"user\":\"a\",\"ts\":1500}\n",
        &[&window[..], &[one_step.as_str()]].concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Time steps that make no sense are refused with the line.
    for (input, want) in [
        (
            "{\"@watermark\": 10}\n{\"@watermark\": 5}\n",
            "in.jsonl:2: the watermark cannot go back",
        ),
        (
            "{\"@processing-time\": -1}\n",
            "in.jsonl:1: processing time cannot go back",
        ),
        (
            "{\"a\":1}\n{\"@clock\": 5}\n",
            "in.jsonl:2: unknown time step `@clock`",
        ),
        ("{\"@watermark\": \"noon\"}\n", "in.jsonl:1: `@watermark`"),
    ] {
        let o = run(&agg, input, &[&window[..], &[one_step.as_str()]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{input}: {err}");
    }
}
