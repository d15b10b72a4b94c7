//! Helpers shared by the integration tests.

pub mod kafka;
pub mod proxy;

use std::path::{Path, PathBuf};

/// The folder with the Wasm plugins built for the tests (filter, map, flat-map, hostile,
/// other-world).
pub fn plugins() -> PathBuf {
    PathBuf::from(env!("FLOWLET_TEST_PLUGINS"))
}

/// The path of a test plugin.
pub fn plugin(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Substitute `{plugins}` in a manifest template with the test plugin folder.
pub fn manifest_text(template: &str) -> String {
    template.replace("{plugins}", &plugins().display().to_string())
}

/// Compare `actual` with the golden file `path`; `FLOWLET_BLESS=1` rewrites the file instead.
pub fn golden(path: &Path, actual: &str) {
    if std::env::var_os("FLOWLET_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing; run with FLOWLET_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (FLOWLET_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// A host with a component cache shared by the tests.
pub fn host() -> flowlet_host::Host {
    let cache = std::env::temp_dir().join("flowlet-test-cache");
    flowlet_host::Host::new(&cache).unwrap()
}

/// Write a manifest template (see [`manifest_text`]) to `dir/topology.yaml`; returns its path.
pub fn write_manifest(dir: &Path, template: &str) -> PathBuf {
    let path = dir.join("topology.yaml");
    std::fs::write(&path, manifest_text(template)).unwrap();
    path
}

/// Load and run a manifest given as text (written to `dir/topology.yaml`).
pub async fn run_text(dir: &Path, text: &str) -> anyhow::Result<flowlet_dataflow::RunReport> {
    let manifest = flowlet::load_manifest(&write_manifest(dir, text))?;
    flowlet::run_manifest(&host(), &manifest, Default::default()).await
}

/// The JSON values of a JSON-lines file (none when the file does not exist).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: `{l}`: {e}", path.display()))
        })
        .collect()
}

/// The `flowlet` binary (built before the tests by `scripts/test`), with the tests' component
/// cache.
pub fn flowlet_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(flowlet_exe());
    cmd.env("FLOWLET_CACHE_DIR", test_cache_dir());
    cmd
}

/// Run `cmd` to the end and expect it to succeed (its stderr is the failure message).
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The path of the `flowlet` binary (see [`flowlet_bin`]).
pub fn flowlet_exe() -> PathBuf {
    // Tests run from <target>/<profile>/deps/; the binary is <target>/<profile>/flowlet.
    let exe = std::env::current_exe().unwrap();
    let bin: PathBuf = exe.parent().unwrap().parent().unwrap().join("flowlet");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build --release -p flowlet` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The component cache the tests' `flowlet` processes share.
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join("flowlet-test-cache")
}

/// How many times the crash tests kill flowlet: 10, or `FLOWLET_CRASH_KILLS` (long mode).
pub fn crash_kills() -> usize {
    std::env::var("FLOWLET_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A small deterministic generator (xorshift) for random kill instants and inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Run `flowlet run ARGS` and kill it (SIGKILL) after `after`; returns whether it had already
/// ended by itself, with its stderr.
pub fn run_and_kill(args: &[&std::ffi::OsStr], after: std::time::Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let mut child = flowlet_bin()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + after;
    let mut ended = false;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    if !ended {
        child.kill().unwrap(); // SIGKILL
    }
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !ended || status.success(),
        "flowlet failed on its own: {err}"
    );
    (ended, err)
}

/// A child process that is killed when dropped, so that a failed assertion never leaves it
/// running (holding a port, a state directory or the machine's CPU).
pub struct Child(Option<std::process::Child>);

impl Child {
    /// Start `cmd` in the background.
    pub fn spawn(cmd: &mut std::process::Command) -> Self {
        Self(Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}")),
        ))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    pub fn inner(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("running")
    }

    /// Wait for the process to end; after `timeout` it is killed and the test fails, showing
    /// what it printed on stderr (when piped).
    pub fn wait_for(mut self, timeout: std::time::Duration) -> std::process::Output {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.0.as_mut().expect("running");
        // Read the pipes while waiting, so that a chatty child does not block on a full pipe.
        let pipe = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = pipe(child.stdout.take().map(|s| Box::new(s) as _));
        let stderr = pipe(child.stderr.take().map(|s| Box::new(s) as _));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            self.0 = None;
            let err = stderr.join().unwrap_or_default();
            panic!(
                "the process did not end within {timeout:?} (killed); its stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        };
        self.0 = None;
        std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One line per fault test for `scripts/soak` (docs/RELIABILITY.md): the class (`fault /
/// guarantee / source / sink`), flowlet runs, faults injected, input events, and what the
/// verifier found lost and duplicated. Printed after the verifier passed (a failure panics
/// instead, and the soak counts it with its seed).
pub fn report_faults(
    class: &str,
    runs: usize,
    faults: usize,
    events: usize,
    lost: usize,
    duplicated: usize,
) {
    eprintln!(
        "FAULTS class={class} runs={runs} faults={faults} events={events} lost={lost} duplicated={duplicated}"
    );
}

/// Wait until process `pid` holds the lock of the state directory `state` (its `flowlet.lock`
/// names it): from then on the directory is its, and a savepoint request must reach it even
/// before its control socket exists.
pub fn wait_for_lock(state: &std::path::Path, pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let lock = state.join(flowlet_dataflow::lock::LOCK_FILE);
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .starts_with(&format!("pid {pid} "))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never locked {}",
            state.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
