//! Failpoints: named steps of the checkpoint and two-phase-commit protocol where a test makes
//! flowlet crash, fail or stall on purpose, so that every interleaving of docs/CHECKPOINTS.md's
//! failure table is exercised by design and not by the luck of a random `kill -9`.
//!
//! They are compiled into every build and cost a lock-free check of one flag until
//! `FLOWLET_FAILPOINTS` turns some on (`flowlet run` reads it at start):
//!
//! ```text
//! FLOWLET_FAILPOINTS='kafka.committed=kill'                   crash at the first commit
//! FLOWLET_FAILPOINTS='checkpoint.pending-written=3*off->kill' crash at the fourth
//! FLOWLET_FAILPOINTS='checkpoint.write=error;sink.flushed=sleep(200)'
//! ```
//!
//! Actions are the [`fail`] crate's (`[p%][n*]task[(arg)]`, chained with `->`: `off`,
//! `sleep(ms)`, `panic(msg)`, `pause`, …) plus two of flowlet's: `kill` — the process sends
//! itself SIGKILL, a crash with nothing flushed, as `kill -9` from outside — and `error`, which
//! makes the step fail with an error naming the failpoint (the points that can fail say so in
//! [`POINTS`]). An unknown name or a malformed action is refused at start, by name.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that turns failpoints on.
pub const ENV: &str = "FLOWLET_FAILPOINTS";

/// Every failpoint: its name, whether `error` applies, and the step it stands after.
pub const POINTS: &[(&str, bool, &str)] = &[
    (
        "source.barrier",
        false,
        "a source sent barrier n downstream and reported its position",
    ),
    (
        "task.snapshot",
        false,
        "an operator instance or a sink handed its snapshot for checkpoint n to the coordinator",
    ),
    (
        "sink.flushed",
        true,
        "a sink made its output up to barrier n durable (file: fsync; Kafka: flush)",
    ),
    (
        "checkpoint.pending-written",
        false,
        "two-phase: checkpoint n is in the state store as `pending`, Kafka not asked yet",
    ),
    (
        "kafka.offsets-sent",
        true,
        "the sources' offsets of checkpoint n were added to the Kafka transaction",
    ),
    (
        "kafka.committed",
        false,
        "Kafka committed checkpoint n's transaction; the state store has not applied it",
    ),
    (
        "checkpoint.write",
        true,
        "checkpoint n is about to be written to the state store (`error`: the write fails, as on a full disk)",
    ),
    (
        "checkpoint.applied",
        false,
        "checkpoint n is complete in the state store; the sinks are not told yet",
    ),
    (
        "file-sink.truncated",
        false,
        "a resumed file sink was cut back to its length at the last checkpoint",
    ),
    (
        "savepoint.written",
        false,
        "a savepoint's `.partial` file is complete and synced, not yet renamed into place",
    ),
];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turn on the failpoints `spec` names (the value of [`ENV`]); empty turns none on.
pub fn configure(spec: &str) -> Result<(), String> {
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, actions) = part.split_once('=').ok_or_else(|| {
            format!("{ENV}: `{part}` is not NAME=ACTIONS (e.g. kafka.committed=kill)")
        })?;
        let name = name.trim();
        let Some((_, can_fail, _)) = POINTS.iter().find(|(n, ..)| *n == name) else {
            let known: Vec<&str> = POINTS.iter().map(|(n, ..)| *n).collect();
            return Err(format!(
                "{ENV}: no failpoint `{name}`; the failpoints are {}",
                known.join(", ")
            ));
        };
        let mut translated = Vec::new();
        for action in actions.split("->") {
            let action = action.trim();
            // `[p%][n*]task`: flowlet's two tasks are the fail crate's `return` with an argument.
            let task_at = action.rfind(['%', '*']).map_or(0, |i| i + 1);
            let (prefix, task) = action.split_at(task_at);
            let task = match task {
                "kill" => "return(kill)".to_owned(),
                "error" if *can_fail => "return(error)".to_owned(),
                "error" => {
                    return Err(format!(
                        "{ENV}: failpoint `{name}` cannot fail with `error` (only crash or stall: kill, panic, sleep(ms), pause)"
                    ));
                }
                t if t.starts_with("return") => {
                    return Err(format!(
                        "{ENV}: `{action}` for `{name}`: use `kill` or `error`, not `return`"
                    ));
                }
                t => t.to_owned(),
            };
            translated.push(format!("{prefix}{task}"));
        }
        fail::cfg(name, &translated.join("->"))
            .map_err(|e| format!("{ENV}: failpoint `{name}`: {e}"))?;
        ENABLED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Turn on what [`ENV`] names, if set.
pub fn from_env() -> Result<(), String> {
    match std::env::var(ENV) {
        Ok(spec) => configure(&spec),
        Err(_) => Ok(()),
    }
}

/// Pass failpoint `name`: crash, stall or do nothing as configured. `Err` (only where the
/// point can fail) carries the message of an injected failure.
pub fn hit(name: &'static str) -> Result<(), String> {
    if !ENABLED.load(Ordering::Relaxed) {
        return Ok(());
    }
    match fail::eval(name, |arg| arg) {
        Some(Some(a)) if a == "kill" => kill(name),
        Some(Some(a)) if a == "error" => Err(format!("failpoint `{name}` injected a failure")),
        _ => Ok(()),
    }
}

/// Crash here, as `kill -9` would: no destructor runs, nothing buffered is flushed.
fn kill(name: &str) -> ! {
    eprintln!("failpoint `{name}`: killing flowlet (SIGKILL)");
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; should it not be delivered at once, do not go on.
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_actions_are_checked() {
        let e = configure("kafka.comitted=kill").unwrap_err();
        assert!(e.contains("no failpoint `kafka.comitted`"), "{e}");
        assert!(e.contains("kafka.committed"), "{e}");
        let e = configure("source.barrier=error").unwrap_err();
        assert!(e.contains("cannot fail"), "{e}");
        let e = configure("kafka.committed").unwrap_err();
        assert!(e.contains("NAME=ACTIONS"), "{e}");
        let e = configure("kafka.committed=return(x)").unwrap_err();
        assert!(e.contains("use `kill` or `error`"), "{e}");
        let e = configure("kafka.committed=bogus(").unwrap_err();
        assert!(e.contains("kafka.committed"), "{e}");
    }

    /// Every `fault::hit("…")` in the runtime names a listed failpoint, and every listed one
    /// is used (so FLOWLET_FAILPOINTS's check of names is the truth).
    #[test]
    fn every_failpoint_used_is_listed_and_every_listed_one_used() {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs")
                    && !p.ends_with("dataflow/src/fault.rs")
                {
                    let text = std::fs::read_to_string(&p).unwrap();
                    for part in text.split("fault::hit(\"").skip(1) {
                        out.push(part.split('"').next().unwrap().to_owned());
                    }
                }
            }
        }
        let runtime = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut used = Vec::new();
        walk(&runtime, &mut used);
        for name in &used {
            assert!(
                POINTS.iter().any(|(n, ..)| n == name),
                "failpoint `{name}` is used but not in POINTS"
            );
        }
        for (name, ..) in POINTS {
            assert!(
                used.iter().any(|u| u == name),
                "failpoint `{name}` is never hit"
            );
        }
    }

    #[test]
    fn an_error_point_fails_after_its_count() {
        configure("sink.flushed=2*off->1*error").unwrap();
        assert!(hit("sink.flushed").is_ok());
        assert!(hit("sink.flushed").is_ok());
        let e = hit("sink.flushed").unwrap_err();
        assert!(e.contains("failpoint `sink.flushed`"), "{e}");
        assert!(hit("sink.flushed").is_ok(), "1* fires once");
        fail::remove("sink.flushed");
    }
}
