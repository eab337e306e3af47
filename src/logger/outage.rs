//! A stretch of time in which writes fail: when to try again, and what
//! to tell the operator. A pure state machine (time is passed in), so its
//! rules are tested without a failing disk.
//!
//! The rules: the first failure starts an outage and is reported at once;
//! retries back off from [`FIRST_RETRY`] by doubling up to [`MAX_RETRY`];
//! while it lasts, a reminder is due at most every [`REMINDER`]; the first
//! success ends it, reported once with how many writes failed and for how
//! long. One line when a disk fills, one when it has room again, and a
//! few in between: never a line per failed batch.

use std::time::{Duration, Instant};

/// The first retry after a failure.
pub const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest wait between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(5);
/// The shortest time between two reminders that writes still fail.
pub const REMINDER: Duration = Duration::from_secs(30);

/// What a failure asks to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Writes just started failing.
    Started,
    /// Still failing: `failures` so far, for `lasted`.
    Reminder {
        /// Failed writes since the outage began.
        failures: u64,
        /// How long it has lasted.
        lasted: Duration,
    },
    /// Nothing new to say.
    Quiet,
}

/// An outage that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Writes that failed in it.
    pub failures: u64,
    /// From its first failure to the success that ended it.
    pub lasted: Duration,
}

#[derive(Debug, Clone)]
struct Outage {
    since: Instant,
    failures: u64,
    backoff: Duration,
    retry_at: Instant,
    remind_at: Instant,
}

/// Whether writes are failing now, and since when.
#[derive(Debug, Clone, Default)]
pub struct Outages {
    current: Option<Outage>,
}

impl Outages {
    /// A write failed at `now`.
    pub fn failed(&mut self, now: Instant) -> Report {
        match &mut self.current {
            None => {
                self.current = Some(Outage {
                    since: now,
                    failures: 1,
                    backoff: FIRST_RETRY,
                    retry_at: now + FIRST_RETRY,
                    remind_at: now + REMINDER,
                });
                Report::Started
            }
            Some(o) => {
                o.failures += 1;
                o.backoff = (o.backoff * 2).min(MAX_RETRY);
                o.retry_at = now + o.backoff;
                if now >= o.remind_at {
                    o.remind_at = now + REMINDER;
                    Report::Reminder {
                        failures: o.failures,
                        lasted: now.saturating_duration_since(o.since),
                    }
                } else {
                    Report::Quiet
                }
            }
        }
    }

    /// A write succeeded at `now`; ends an outage if there was one.
    pub fn succeeded(&mut self, now: Instant) -> Option<Ended> {
        self.current.take().map(|o| Ended {
            failures: o.failures,
            lasted: now.saturating_duration_since(o.since),
        })
    }

    /// When to try again (None: writes are not failing).
    pub fn retry_at(&self) -> Option<Instant> {
        self.current.as_ref().map(|o| o.retry_at)
    }

    /// Whether writes are failing.
    pub fn is_on(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_reports_are_rate_limited() {
        let t0 = Instant::now();
        let mut o = Outages::default();
        assert_eq!(o.retry_at(), None);
        assert_eq!(o.failed(t0), Report::Started);
        assert_eq!(o.retry_at(), Some(t0 + FIRST_RETRY));
        // Each retry that fails waits twice as long, up to the cap.
        let mut waits = Vec::new();
        for _ in 0..10 {
            let now = o.retry_at().unwrap();
            let report = o.failed(now);
            waits.push(o.retry_at().unwrap() - now);
            if now < t0 + REMINDER {
                assert_eq!(report, Report::Quiet, "{now:?}");
            }
        }
        let ms: Vec<u128> = waits.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000]
        );
        // Past 30 s: one reminder, then quiet for another 30 s.
        let later = t0 + REMINDER + Duration::from_secs(1);
        assert_eq!(
            o.failed(later),
            Report::Reminder {
                failures: 12,
                lasted: REMINDER + Duration::from_secs(1)
            }
        );
        assert_eq!(o.failed(later + Duration::from_secs(5)), Report::Quiet);
        let end = later + Duration::from_secs(6);
        assert_eq!(
            o.succeeded(end),
            Some(Ended {
                failures: 13,
                lasted: REMINDER + Duration::from_secs(7)
            })
        );
        assert!(!o.is_on());
        assert_eq!(
            o.succeeded(end),
            None,
            "a success outside an outage says nothing"
        );
        // The next failure starts a new outage from the first retry.
        assert_eq!(o.failed(end), Report::Started);
        assert_eq!(o.retry_at(), Some(end + FIRST_RETRY));
    }
}
