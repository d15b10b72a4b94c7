//! One process per state directory.
//!
//! Two processes running on one state directory would interleave checkpoints and truncate each
//! other's outputs. A run holds an exclusive lock on `<state dir>/flowlet.lock` for as long as
//! it runs (the kernel drops it when the process dies, also on `kill -9`); the file says who
//! holds it, so that the next one can name the holder. `flowlet savepoint` uses the same lock to
//! tell a running topology (ask it through its control socket) from a stopped one (copy its
//! last checkpoint).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::state::StateError;

/// The lock file's name in a state directory.
pub const LOCK_FILE: &str = "flowlet.lock";

/// An exclusive lock on a state directory, released when dropped.
#[derive(Debug)]
pub struct StateLock {
    // Held open: closing the file releases the lock.
    _file: std::fs::File,
    dir: PathBuf,
}

/// Why a state directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; what it wrote about itself.
    Held {
        dir: PathBuf,
        holder: String,
    },
    Io {
        dir: PathBuf,
        message: String,
    },
}

impl From<LockError> for StateError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Held { dir, holder } => StateError::Locked { dir, holder },
            LockError::Io { dir, message } => StateError::Open {
                dir,
                message: format!("cannot lock it: {message}"),
            },
        }
    }
}

impl StateLock {
    /// Take the lock of `dir` (created if missing) for `holder` (who, shown to the next one),
    /// or say who holds it.
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self, LockError> {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let dir = absolute.as_path();
        let io = |e: std::io::Error| LockError::Io {
            dir: dir.to_owned(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Not truncated on open: the holder's note must survive a failed attempt.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: if holder.is_empty() {
                        "a process that has not said who it is yet".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let note = format!(
            "pid {} ({}), since {}",
            std::process::id(),
            holder,
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(note.as_bytes()).map_err(io)?;
        Ok(Self {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What the process running now is, for the lock file: its command line.
pub fn this_process() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut text = args.join(" ");
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Remove everything in the state directory `dir` but the lock and the control socket of the
/// run that holds it (`--from-scratch`, a savepoint restored).
pub fn clear(lock: &StateLock) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(&lock.dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name == LOCK_FILE || name == "control.sock" {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named_and_the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "flowlet run a.yaml").unwrap();
        match StateLock::acquire(dir.path(), "flowlet run b.yaml") {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains("flowlet run a.yaml"), "{holder}");
                assert!(
                    holder.contains(&format!("pid {}", std::process::id())),
                    "{holder}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        let again = StateLock::acquire(dir.path(), "flowlet run b.yaml").unwrap();
        std::fs::write(dir.path().join("db"), "x").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        clear(&again).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(LOCK_FILE)]);
    }
}
