//! Checkpoints and recovery, as a user sees them: `kill -9` at random instants, run the same
//! command again, and the output is exactly what one clean run gives — computed here by a
//! plain loop over the input, not by flowlet.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flowlet_tests::{
    Rng, crash_kills, flowlet_bin, json_lines, run_and_kill, succeed, write_manifest,
};

/// `n` clicks `{"id", "user", "ts"}` in time order; one in ten repeats an earlier id.
fn clicks(path: &Path, n: usize, seed: u64) -> Vec<(u64, String, i64)> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n);
    let mut text = String::new();
    let mut ts = 1_700_000_000_000i64;
    for i in 0..n as u64 {
        ts += rng.below(5) as i64;
        let id = if i > 10 && rng.below(10) == 0 {
            i - 1 - rng.below(10)
        } else {
            i
        };
        let user = format!("u{}", rng.below(5000));
        text.push_str(&format!(r#"{{"id":{id},"user":"{user}","ts":{ts}}}"#));
        text.push('\n');
        out.push((id, user, ts));
    }
    std::fs::write(path, text).unwrap();
    out
}

/// What the topology must give: first event per id, counted per user and 1-second window.
fn reference(clicks: &[(u64, String, i64)]) -> BTreeMap<(String, i64), u64> {
    let mut seen = std::collections::HashSet::new();
    let mut counts = BTreeMap::new();
    for (id, user, ts) in clicks {
        if seen.insert(*id) {
            *counts
                .entry((user.clone(), ts.div_euclid(1000) * 1000))
                .or_default() += 1;
        }
    }
    counts
}

/// The window counts of an output file, as (user, start) → count (a repeated window counts
/// twice, so that duplicates show).
fn counts(path: &Path) -> (BTreeMap<(String, i64), u64>, usize) {
    let mut out = BTreeMap::new();
    let mut lines = 0;
    for v in json_lines(path) {
        lines += 1;
        let key = (
            v["key"].as_str().unwrap().to_owned(),
            v["start"].as_i64().unwrap(),
        );
        *out.entry(key).or_default() += v["count"].as_u64().unwrap();
    }
    (out, lines)
}

const TOPOLOGY: &str = r#"
version: 1
name: clicks
checkpoint: {interval: 50ms}
batch-size: 128
sources:
  clicks:
    kind: file
    path: clicks.jsonl
    event-time: {field: /ts}
operators:
  once:
    plugin: {plugins}/dedupe.wasm
    key-by: /id
    config: {ttl: 1h}
    inputs: [clicks]
  counts:
    plugin: {plugins}/aggregate.wasm
    config: {function: count}
    key-by: /user
    window: {kind: tumbling, size: 1s}
    inputs: [once]
sinks:
  out: {kind: file, path: counts.jsonl, inputs: [counts]}
"#;

fn args<'a>(manifest: &'a Path, extra: &'a [&'a str]) -> Vec<&'a OsStr> {
    let mut a: Vec<&OsStr> = vec![OsStr::new("run"), manifest.as_os_str()];
    a.extend(extra.iter().map(OsStr::new));
    a
}

/// `flowlet run MANIFEST` in the background (killed if the test fails first).
fn spawn_run(manifest: &Path) -> flowlet_tests::Child {
    flowlet_tests::Child::spawn(
        flowlet_bin()
            .args(args(manifest, &[]))
            .stderr(std::process::Stdio::null()),
    )
}

/// `flowlet savepoint MANIFEST EXTRA…`, which must succeed; the file it wrote.
fn take_savepoint(manifest: &Path, extra: &[&OsStr]) -> PathBuf {
    let out = succeed(flowlet_bin().arg("savepoint").arg(manifest).args(extra));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Kill flowlet at random instants until it has been killed `kills` times, then let it finish.
fn crash_until_done(manifest: &Path, kills: usize, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let mut killed = 0;
    while killed < kills {
        let after = Duration::from_millis(20 + rng.below(100));
        let (ended, _) = run_and_kill(&args(manifest, &[]), after);
        if ended {
            break;
        }
        killed += 1;
    }
    succeed(flowlet_bin().args(args(manifest, &[])));
    killed
}

#[test]
fn file_to_file_is_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let input = clicks(&dir.path().join("clicks.jsonl"), 600_000, 7);
    let manifest = write_manifest(dir.path(), TOPOLOGY);
    let kills = crash_kills();
    let killed = crash_until_done(&manifest, kills, 11);
    assert!(
        killed >= kills,
        "the topology finished after {killed} kills; the test needs {kills}: give it more input"
    );
    let (got, lines) = counts(&dir.path().join("counts.jsonl"));
    let expected = reference(&input);
    assert_eq!(lines, expected.len(), "a window is missing or repeated");
    assert_eq!(got, expected);
    flowlet_tests::report_faults(
        "sigkill/exactly-once/file/file",
        killed + 1,
        killed,
        input.len(),
        0,
        0,
    );
}

#[test]
fn a_savepoint_taken_while_running_restarts_the_same_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = clicks(&dir.path().join("clicks.jsonl"), 150_000, 3);
    let manifest = write_manifest(dir.path(), TOPOLOGY);
    let child = spawn_run(&manifest);
    let savepoint = dir.path().join("sp.flowlet");
    // As soon as the run has its state directory (its engine and control socket may still be
    // starting): the savepoint waits for it rather than failing.
    flowlet_tests::wait_for_lock(&dir.path().join(".flowlet/state/clicks"), child.id());
    let written = take_savepoint(&manifest, &[OsStr::new("--output"), savepoint.as_os_str()]);
    assert_eq!(written, savepoint);
    assert!(child.wait_for(Duration::from_secs(120)).status.success());
    let first = std::fs::read_to_string(dir.path().join("counts.jsonl")).unwrap();
    // Start again from the savepoint: the output is cut back to it and written again.
    succeed(
        flowlet_bin()
            .args(args(&manifest, &["--from-savepoint"]))
            .arg(&savepoint),
    );
    let second = std::fs::read_to_string(dir.path().join("counts.jsonl")).unwrap();
    assert_eq!(first.lines().count(), second.lines().count());
    assert_eq!(
        counts(&dir.path().join("counts.jsonl")).0,
        reference(&input)
    );
    // A damaged savepoint is refused, naming it.
    std::fs::write(&savepoint, b"flowlet-savepoint-1\nnot really").unwrap();
    let out = flowlet_bin()
        .args(args(&manifest, &["--from-savepoint"]))
        .arg(&savepoint)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("sp.flowlet") && err.contains("checksum"),
        "{err}"
    );
}

#[test]
fn a_stopping_savepoint_ends_the_run_and_the_next_run_continues() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
name: gen
checkpoint: {interval: 1h}
sources:
  gen: {kind: generator, rate: 2000, count: 100000}
sinks:
  out: {kind: file, path: out.jsonl, inputs: [gen]}
"#,
    );
    let child = spawn_run(&manifest);
    std::thread::sleep(Duration::from_millis(700));
    let path = take_savepoint(&manifest, &[OsStr::new("--stop")]);
    assert!(path.is_file(), "{}", path.display());
    assert!(child.wait_for(Duration::from_secs(60)).status.success());
    let before = json_lines(&dir.path().join("out.jsonl")).len();
    assert!(before > 0 && before < 100_000, "{before}");
    // The generator goes on where it stopped: no event twice, none missing.
    let child = spawn_run(&manifest);
    std::thread::sleep(Duration::from_millis(500));
    take_savepoint(&manifest, &[OsStr::new("--stop")]);
    assert!(child.wait_for(Duration::from_secs(60)).status.success());
    let events = json_lines(&dir.path().join("out.jsonl"));
    assert!(events.len() > before);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"].as_u64(), Some(i as u64), "event {i}: {e}");
    }
}

#[test]
fn damaged_or_missing_checkpoints_are_refused_and_from_scratch_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let input = clicks(&dir.path().join("clicks.jsonl"), 5_000, 5);
    let manifest = write_manifest(dir.path(), TOPOLOGY);
    let run = |extra: &[&str]| flowlet_bin().args(args(&manifest, extra)).output().unwrap();
    assert!(run(&[]).status.success());
    let state = dir.path().join(".flowlet/state/clicks");
    let key = flowlet_dataflow::state::StateDb::meta_key(flowlet_dataflow::checkpoint::RECORD);
    for damage in [Some(b"{\"id\": 3, damaged on disk}".to_vec()), None] {
        {
            let db = flowlet_dataflow::state::StateDb::open(&state).unwrap();
            db.apply(vec![(key.clone(), damage.clone())]).unwrap();
        }
        let out = run(&[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a damaged checkpoint was accepted");
        assert!(
            err.contains(&state.display().to_string()) && err.contains("--from-scratch"),
            "{err}"
        );
        assert!(
            err.contains(if damage.is_some() {
                "checksum"
            } else {
                "no complete checkpoint"
            }),
            "{err}"
        );
    }
    let out = run(&["--from-scratch"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        counts(&dir.path().join("counts.jsonl")).0,
        reference(&input)
    );
}

#[test]
fn at_most_once_never_repeats_output() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
name: amo
checkpoint: {interval: 1h}
guarantee: at-most-once
sources:
  gen: {kind: generator, rate: 20000, count: 40000}
sinks:
  out: {kind: file, path: out.jsonl, inputs: [gen]}
"#,
    );
    let mut rng = Rng(5);
    for _ in 0..3 {
        run_and_kill(
            &args(&manifest, &[]),
            Duration::from_millis(100 + rng.below(300)),
        );
    }
    succeed(flowlet_bin().args(args(&manifest, &[])));
    let mut seen = std::collections::HashSet::new();
    for e in json_lines(&dir.path().join("out.jsonl")) {
        assert!(seen.insert(e["id"].as_u64().unwrap()), "{e} repeated");
    }
    assert!(seen.len() <= 40_000);
}

/// Run `flowlet run MANIFEST` with the directory `state` on a tmpfs of `size` (mounted in a
/// private user and mount namespace: no root needed, no mount left behind). When the run has
/// ended, what it holds is copied to `saved` — the same files on a disk with space.
fn run_on_a_small_disk(
    manifest: &Path,
    state: &Path,
    saved: &Path,
    size: &str,
) -> std::process::Output {
    std::fs::create_dir_all(state).unwrap();
    std::fs::create_dir_all(saved).unwrap();
    let script = r#"mount -t tmpfs -o "size=$1" tmpfs "$2" || exit 90
"$3" run "$4"; code=$?
cp -a "$2/." "$5/" || exit 91
exit $code"#;
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        script,
        "sh",
        size,
    ])
    .arg(state)
    .arg(flowlet_tests::flowlet_exe())
    .arg(manifest)
    .arg(saved)
    .env("FLOWLET_CACHE_DIR", flowlet_tests::test_cache_dir())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let out = flowlet_tests::Child::spawn(&mut cmd).wait_for(Duration::from_secs(300));
    let code = out.status.code();
    assert!(
        code != Some(90) && code != Some(91),
        "could not mount a tmpfs in a private namespace (unshare): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The state directory's disk fills up (a small tmpfs) while checkpoints are taken every
/// 50 ms: the first failed write stops the run at once with an error that names the
/// directory and the cause, no checkpoint is recorded that is not wholly durable, and the next
/// run, with space, resumes from the last complete checkpoint and gives exactly the output of
/// a clean run. Disks of several sizes fill at different points of the run.
#[test]
fn a_full_state_disk_stops_the_run_and_the_next_run_resumes_exactly() {
    // Full at the first checkpoint, the third, the sixth, and near the end (the state
    // reaches 18 MB).
    for size in ["64k", "6m", "12m", "16m"] {
        let dir = tempfile::tempdir().unwrap();
        let input = clicks(&dir.path().join("clicks.jsonl"), 200_000, 17);
        let topology = TOPOLOGY.replace(
            "checkpoint: {interval: 50ms}",
            "checkpoint: {interval: 50ms}\nstate: {dir: state}",
        );
        let manifest = write_manifest(dir.path(), &topology);
        let (state, saved) = (dir.path().join("state"), dir.path().join("saved"));
        let out = run_on_a_small_disk(&manifest, &state, &saved, size);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{size}: the state did not fill the disk; use more input"
        );
        assert!(
            err.contains("No space left on device") && err.contains(&state.display().to_string()),
            "{size}: the error names neither the cause nor the directory:\n{err}"
        );
        assert!(err.contains("cannot write the state"), "{size}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        if size == "64k" {
            // Stopped at the first checkpoint (50 ms in), not after reading everything.
            let (_, lines) = counts(&dir.path().join("counts.jsonl"));
            assert!(
                lines < reference(&input).len() / 2,
                "the run went on after the failed checkpoint ({lines} windows written)"
            );
        }
        // The same state, on a disk with space.
        let resumed = write_manifest(
            dir.path(),
            &topology.replace("state: {dir: state}", "state: {dir: saved}"),
        );
        let out = succeed(flowlet_bin().arg("run").arg(&resumed));
        let log = String::from_utf8_lossy(&out.stderr);
        let (got, lines) = counts(&dir.path().join("counts.jsonl"));
        let expected = reference(&input);
        assert_eq!(
            lines,
            expected.len(),
            "{size}: a window is missing or repeated\n{log}"
        );
        assert_eq!(got, expected, "{size}");
        flowlet_tests::report_faults("disk-full/exactly-once/file/file", 2, 1, input.len(), 0, 0);
    }
}

/// `flowlet savepoint` tells a topology that is starting (it holds the state directory's lock
/// but has no control socket yet) from a stopped one: it waits, and once the directory is
/// free it copies the last checkpoint. A second `flowlet run` on the directory is refused,
/// naming the holder.
#[test]
fn savepoint_waits_for_a_starting_topology_and_a_second_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    clicks(&dir.path().join("clicks.jsonl"), 2_000, 9);
    let manifest = write_manifest(dir.path(), TOPOLOGY);
    succeed(flowlet_bin().args(args(&manifest, &[])));
    let state = dir.path().join(".flowlet/state/clicks");
    let holder =
        flowlet_dataflow::lock::StateLock::acquire(&state, "a test that holds it").unwrap();

    let out = flowlet_bin().args(args(&manifest, &[])).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use by another flowlet") && err.contains("a test that holds it"),
        "{err}"
    );

    let mut savepoint = flowlet_tests::Child::spawn(
        flowlet_bin()
            .arg("savepoint")
            .arg(&manifest)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        savepoint.inner().try_wait().unwrap().is_none(),
        "the savepoint did not wait for the topology that holds the directory"
    );
    drop(holder);
    let out = savepoint.wait_for(Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(path.is_file(), "{}", path.display());
}

/// A full disk under a file sink (kept as it was: the sink fails, naming itself and the cause)
/// with checkpoints: the run stops, and the next run with space cuts the sink back to its last
/// checkpointed length and gives exactly the output of a clean run.
#[test]
fn a_full_sink_disk_stops_the_run_and_the_next_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = clicks(&dir.path().join("clicks.jsonl"), 200_000, 23);
    let topology = TOPOLOGY.replace("path: counts.jsonl", "path: out/counts.jsonl");
    let manifest = write_manifest(dir.path(), &topology);
    let (out, saved) = (dir.path().join("out"), dir.path().join("saved"));
    let run = run_on_a_small_disk(&manifest, &out, &saved, "1m");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success(),
        "the output did not fill the disk; use more input"
    );
    assert!(
        err.contains("sink `out`") && err.contains("No space left on device"),
        "{err}"
    );
    // The sink's file, back on a disk with space.
    std::fs::copy(saved.join("counts.jsonl"), out.join("counts.jsonl")).unwrap();
    succeed(flowlet_bin().arg("run").arg(&manifest));
    let (got, lines) = counts(&out.join("counts.jsonl"));
    let expected = reference(&input);
    assert_eq!(lines, expected.len(), "a window is missing or repeated");
    assert_eq!(got, expected);
}

#[test]
fn a_stopping_savepoint_is_always_answered_before_the_run_exits() {
    // The reply to `savepoint --stop` is sent as the run ends; the process must not exit
    // before it is written (it once did: the client saw the socket close without a reply).
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(
        dir.path(),
        r#"
version: 1
name: quick
checkpoint: {interval: 1h}
sources:
  gen: {kind: generator, rate: 1000}
sinks:
  out: {kind: "null", inputs: [gen]}
"#,
    );
    let state = dir.path().join(".flowlet/state/quick");
    for round in 0..15 {
        let child = spawn_run(&manifest);
        flowlet_tests::wait_for_lock(&state, child.id());
        let path = take_savepoint(&manifest, &[OsStr::new("--stop")]);
        assert!(path.is_file(), "round {round}: {}", path.display());
        assert!(child.wait_for(Duration::from_secs(60)).status.success());
    }
}
