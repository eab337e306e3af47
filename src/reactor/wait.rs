//! How long a reactor sleeps in `io_uring_enter`, and for how many
//! completions.
//!
//! By default a reactor wakes for its first completion, which is what
//! latency wants. With a coalescing window (`ReactorConfig::coalesce`), a
//! reactor that has just had work sleeps until the window has passed or
//! [`COALESCE_COMPLETIONS`] completions are waiting, like a NIC's
//! interrupt moderation. Under `IORING_SETUP_DEFER_TASKRUN` the kernel then
//! does not run a connection's receive when its data arrives but when the
//! reactor wakes, so one receive takes everything that came in the
//! meantime: fewer receives, fewer window-update ACKs, fewer wake-ups
//! (docs/benchmarks.md, logger ingest). That relies on the kernel waking
//! the waiter lazily for poll-driven task work (recent 6.x); where it wakes
//! for each arrival, the wait is still bounded by the window but saves
//! less. An idle reactor sleeps as usual, so
//! the first event after a quiet spell is served at once, and a quiet
//! reactor does not tick at the window's rate.

use std::time::Duration;

/// The completions a coalescing wait is content with before its window
/// ends (at most the ring's size). Completions from distinct operations
/// add up: with many busy connections the reactor wakes before the window
/// ends, with a batch for each.
pub(crate) const COALESCE_COMPLETIONS: u32 = 64;

/// One turn's wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Work is queued already: submit and look for completions, no sleep.
    None,
    /// Sleep until `want` completions are ready, or `timeout` (if any)
    /// has passed.
    For {
        want: u32,
        timeout: Option<Duration>,
    },
}

/// The wait for this turn.
///
/// - `queued`: commands or broker work wait already;
/// - `deadline`: time to the next timer (heartbeats, deferred wakes,
///   retries), if any;
/// - `coalesce`: the configured window, if any;
/// - `busy`: the last wait brought completions;
/// - `ring_entries`: the ring's size; the completion queue holds at least
///   that many, and `want` stays within it.
pub(crate) fn plan(
    queued: bool,
    deadline: Option<Duration>,
    coalesce: Option<Duration>,
    busy: bool,
    ring_entries: u32,
) -> Wait {
    if queued {
        return Wait::None;
    }
    match coalesce.filter(|w| busy && !w.is_zero()) {
        Some(window) => Wait::For {
            want: COALESCE_COMPLETIONS.min(ring_entries).max(1),
            timeout: Some(deadline.map_or(window, |d| d.min(window))),
        },
        None => Wait::For {
            want: 1,
            timeout: deadline,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn queued_work_never_sleeps() {
        assert_eq!(plan(true, None, Some(MS), true, 1024), Wait::None);
        assert_eq!(plan(true, Some(MS), None, false, 1024), Wait::None);
    }

    #[test]
    fn without_a_window_the_first_completion_or_the_deadline_wakes() {
        assert_eq!(
            plan(false, None, None, true, 1024),
            Wait::For {
                want: 1,
                timeout: None
            }
        );
        assert_eq!(
            plan(false, Some(3 * MS), None, true, 1024),
            Wait::For {
                want: 1,
                timeout: Some(3 * MS)
            }
        );
    }

    #[test]
    fn a_busy_reactor_waits_out_the_window_or_a_batch() {
        assert_eq!(
            plan(false, None, Some(MS / 5), true, 1024),
            Wait::For {
                want: COALESCE_COMPLETIONS,
                timeout: Some(MS / 5)
            }
        );
        // A timer due sooner than the window ends the wait first.
        assert_eq!(
            plan(false, Some(MS / 10), Some(MS / 5), true, 1024),
            Wait::For {
                want: COALESCE_COMPLETIONS,
                timeout: Some(MS / 10)
            }
        );
        // Never more completions than the ring can hold.
        assert_eq!(
            plan(false, None, Some(MS), true, 16),
            Wait::For {
                want: 16,
                timeout: Some(MS)
            }
        );
    }

    #[test]
    fn an_idle_reactor_sleeps_until_its_first_event() {
        // No tick at the window's rate, and the first event is served at
        // once.
        assert_eq!(
            plan(false, None, Some(MS), false, 1024),
            Wait::For {
                want: 1,
                timeout: None
            }
        );
        // A zero window is no window.
        assert_eq!(
            plan(false, None, Some(Duration::ZERO), true, 1024),
            Wait::For {
                want: 1,
                timeout: None
            }
        );
    }
}
