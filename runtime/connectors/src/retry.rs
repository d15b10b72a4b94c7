//! Retrying with backoff, for connectors that wait for a service (a Kafka broker, an HTTP
//! server): the wait doubles from a first one to 10 s, a service's "retry after" is honoured,
//! and the attempts are logged (the first three, then every twentieth).

use std::time::{Duration, Instant};

/// What one attempt came to.
pub(crate) enum Attempt<T> {
    Done(T),
    /// Worth trying again (after at least this long, when the service said).
    Again(String, Option<Duration>),
    /// Not worth trying again: the same request would fail the same way.
    Fail(String),
}

/// Why retrying ended without success.
pub(crate) enum GaveUp {
    /// An attempt failed for good.
    Failed(String),
    /// The next wait would pass the deadline: the last reason, after so many attempts.
    Deadline {
        why: String,
        attempts: u64,
        elapsed: Duration,
    },
}

impl GaveUp {
    /// The reason alone.
    pub(crate) fn why(self) -> String {
        match self {
            Self::Failed(why) | Self::Deadline { why, .. } => why,
        }
    }
}

/// Call `attempt` until it is done, fails for good, or waiting once more would pass
/// `deadline` (never, without one); waits start at `first`. `what` names what is waited for
/// in the log.
pub(crate) fn with_backoff<T>(
    what: &str,
    first: Duration,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T, GaveUp> {
    let started = Instant::now();
    let mut wait = first;
    for n in 1u64.. {
        let (why, after) = match attempt() {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(why) => return Err(GaveUp::Failed(why)),
            Attempt::Again(why, after) => (why, after),
        };
        wait = after.map_or(wait, |a| a.max(wait));
        if deadline.is_some_and(|d| Instant::now() + wait > d) {
            return Err(GaveUp::Deadline {
                why,
                attempts: n,
                elapsed: started.elapsed(),
            });
        }
        if n <= 3 || n.is_multiple_of(20) {
            tracing::warn!("{what} (attempt {n}): {why}; retrying in {wait:?}");
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(10));
    }
    unreachable!("the loop returns")
}

/// [`with_backoff`] from 0.5 s for an attempt whose every error is worth retrying; the error
/// names `what`.
pub(crate) fn retry<T>(
    what: &str,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    with_backoff(
        what,
        Duration::from_millis(500),
        deadline,
        || match attempt() {
            Ok(v) => Attempt::Done(v),
            Err(e) => Attempt::Again(e, None),
        },
    )
    .map_err(|g| format!("{what}: {}", g.why()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_at_the_deadline_or_at_once_on_a_failure() {
        let mut n = 0;
        let got = with_backoff("t", Duration::from_millis(1), None, || {
            n += 1;
            if n < 3 {
                Attempt::Again("not yet".into(), None)
            } else {
                Attempt::Done(n)
            }
        });
        assert!(matches!(got, Ok(3)));
        let got = with_backoff::<()>("t", Duration::from_millis(1), None, || {
            Attempt::Fail("no".into())
        });
        assert!(matches!(got, Err(GaveUp::Failed(w)) if w == "no"));
        let deadline = Some(Instant::now() + Duration::from_millis(30));
        let got = with_backoff::<()>("t", Duration::from_millis(1), deadline, || {
            Attempt::Again("down".into(), None)
        });
        assert!(matches!(got, Err(GaveUp::Deadline { attempts, .. }) if attempts > 1));
        // A "retry after" longer than the deadline gives up at once.
        let got = with_backoff::<()>("t", Duration::from_millis(1), deadline, || {
            Attempt::Again("busy".into(), Some(Duration::from_secs(60)))
        });
        assert!(matches!(got, Err(GaveUp::Deadline { attempts: 1, .. })));
    }
}
