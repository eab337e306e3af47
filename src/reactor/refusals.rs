//! Log lines for refused peers that a person and fail2ban can both use:
//! the first refusal of each peer address for each reason at WARN, with
//! the address; after that, at most one summary a minute with the count.
//! A misconfigured node retrying ten times a second, or a scan from many
//! addresses, costs a handful of lines, while the counters
//! (`*_access_denied_total`, `*_security_failures_total`) count them all.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a peer's repeated refusals are summarised, at most.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Peer addresses remembered at once; beyond, refusals of new addresses
/// are summarised together.
const MAX_PEERS: usize = 4096;

/// Why a peer was refused, as the log's `reason` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// Its address is denied or in no allowed range.
    Address = 0,
    /// Its CURVE or PLAIN handshake failed or was refused.
    Security = 1,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Refusal::Address => "address",
            Refusal::Security => "security",
        }
    }
}

/// What happened to one refusal: logged now, or counted for later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Logged {
    /// The first for this address and reason: a warning.
    First,
    /// Counted; no line.
    Counted,
    /// A summary is due: this many refusals since the last line, over
    /// this long.
    Summary { count: u64, over: Duration },
}

#[derive(Debug)]
struct Window {
    /// Refusals since the last line.
    count: u64,
    /// When the last line was written.
    since: Instant,
}

/// The memory of recent refusals.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    peers: Peers,
    /// Refusals of addresses not remembered (the table was full).
    overflow: Option<Window>,
    /// When a full table was last swept of quiet addresses: at most once a
    /// window, since a sweep walks the whole table under the process-wide
    /// lock, and a scan from new addresses would otherwise pay it on each
    /// refusal while finding nothing to forget.
    last_sweep: Option<Instant>,
}

/// Remembered addresses, one table per reason, so a known address is
/// found by the `&str` it arrives as, without copying it.
#[derive(Debug, Default)]
struct Peers([HashMap<String, Window>; 2]);

impl Peers {
    fn table(&mut self, why: Refusal) -> &mut HashMap<String, Window> {
        &mut self.0[why as usize]
    }

    fn len(&self) -> usize {
        self.0.iter().map(HashMap::len).sum()
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.0.iter().map(HashMap::capacity).sum()
    }

    /// Forgets addresses quiet for a whole window as of `now`.
    fn forget_quiet(&mut self, now: Instant) {
        for table in &mut self.0 {
            table.retain(|_, w| w.count > 0 || now.duration_since(w.since) < SUMMARY_EVERY);
        }
    }
}

impl RefusalLog {
    /// Records a refusal of `host` at `now` and says what to log.
    pub(crate) fn record(&mut self, host: &str, why: Refusal, now: Instant) -> Logged {
        if let Some(w) = self.peers.table(why).get_mut(host) {
            return w.count_one(now);
        }
        if self.peers.len() >= MAX_PEERS && !self.make_room(now) {
            // Still full: count this one with the other strangers.
            return match &mut self.overflow {
                Some(w) => w.count_one(now),
                None => {
                    self.overflow = Some(Window::new(now));
                    Logged::First
                }
            };
        }
        self.peers
            .table(why)
            .insert(host.to_owned(), Window::new(now));
        Logged::First
    }

    /// Forgets addresses quiet for a whole window, if the table was not
    /// swept within the last one; whether there is room now.
    fn make_room(&mut self, now: Instant) -> bool {
        let due = self
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= SUMMARY_EVERY);
        if due {
            self.last_sweep = Some(now);
            self.peers.forget_quiet(now);
        }
        self.peers.len() < MAX_PEERS
    }
}

impl Window {
    /// A window opened by a refusal that was logged at `now`.
    fn new(now: Instant) -> Window {
        Window {
            count: 0,
            since: now,
        }
    }

    fn count_one(&mut self, now: Instant) -> Logged {
        self.count += 1;
        let over = now.duration_since(self.since);
        if over < SUMMARY_EVERY {
            return Logged::Counted;
        }
        let count = std::mem::take(&mut self.count);
        self.since = now;
        Logged::Summary { count, over }
    }
}

/// The process's refusal memory: one for every listener and reactor, so
/// an address is warned about once however its connections were spread.
fn log() -> &'static Mutex<RefusalLog> {
    static LOG: OnceLock<Mutex<RefusalLog>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// The address part of a peer's name (`10.0.0.5:41234` → `10.0.0.5`,
/// `[::1]:5555` → `::1`): reconnects come from new ports.
pub(crate) fn host_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}

/// Logs a refusal of `peer` (at `endpoint`, when known) as the rules above
/// say.
pub(crate) fn refused(
    peer: &str,
    endpoint: Option<&str>,
    why: Refusal,
    detail: &dyn std::fmt::Display,
) {
    let endpoint = endpoint.unwrap_or("-");
    let host = host_of(peer);
    let logged = log()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .record(host, why, Instant::now());
    let reason = why.name();
    match logged {
        Logged::First => tracing::warn!(
            peer = host,
            endpoint,
            reason,
            "refused {host}: {detail} (further refusals of this address are summarised \
             once a minute)"
        ),
        Logged::Counted => tracing::debug!(peer, endpoint, reason, "refused again: {detail}"),
        Logged::Summary { count, over } => tracing::warn!(
            peer = host,
            endpoint,
            reason,
            count,
            "refused {host} {count} more time(s) in the last {} s: {detail}",
            over.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_warns_then_one_summary_a_minute() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            log.record("10.0.0.5", Refusal::Security, at(0)),
            Logged::First
        );
        for s in 1..60 {
            assert_eq!(
                log.record("10.0.0.5", Refusal::Security, at(s)),
                Logged::Counted
            );
        }
        // Another reason and another address are firsts of their own.
        assert_eq!(
            log.record("10.0.0.5", Refusal::Address, at(30)),
            Logged::First
        );
        assert_eq!(
            log.record("10.0.0.6", Refusal::Security, at(30)),
            Logged::First
        );
        assert_eq!(
            log.record("10.0.0.5", Refusal::Security, at(60)),
            Logged::Summary {
                count: 60,
                over: Duration::from_secs(60)
            }
        );
        assert_eq!(
            log.record("10.0.0.5", Refusal::Security, at(61)),
            Logged::Counted
        );
        assert_eq!(
            log.record("10.0.0.5", Refusal::Security, at(200)),
            Logged::Summary {
                count: 2,
                over: Duration::from_secs(140)
            }
        );
    }

    #[test]
    fn a_scan_from_many_addresses_is_bounded() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let mut firsts = 0;
        for i in 0..(MAX_PEERS as u32 + 1000) {
            let host = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            if log.record(&host, Refusal::Address, t0) == Logged::First {
                firsts += 1;
            }
        }
        // Each remembered address once, then one line for the rest.
        assert_eq!(firsts, MAX_PEERS + 1);
        assert!(log.peers.len() <= MAX_PEERS);
        // A minute on, quiet addresses are forgotten to make room.
        let later = t0 + SUMMARY_EVERY;
        assert_eq!(
            log.record("192.0.2.1", Refusal::Address, later),
            Logged::First
        );
        assert_eq!(log.peers.len(), 1);
    }

    /// A scan from ever new addresses, beyond the table: the table does not
    /// grow, is swept at most once a window, and the strangers are still
    /// summarised once a minute.
    #[test]
    fn refusals_beyond_the_table_stay_bounded_and_are_summarised() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let host = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        for i in 0..MAX_PEERS as u32 {
            assert_eq!(log.record(&host(i), Refusal::Address, at(0)), Logged::First);
        }
        // Each remembered address is refused again: none is quiet, so no
        // sweep can make room.
        for i in 0..MAX_PEERS as u32 {
            assert_eq!(
                log.record(&host(i), Refusal::Address, at(1)),
                Logged::Counted
            );
        }
        let capacity = log.peers.capacity();
        let strangers = 50_000u32;
        let mut firsts = 0;
        for i in 0..strangers {
            let when = at(2000 + u64::from(i));
            let logged = log.record(&host(MAX_PEERS as u32 + i), Refusal::Address, when);
            match logged {
                Logged::First => firsts += 1,
                Logged::Counted => {}
                summary => panic!("no summary within the minute: {summary:?}"),
            }
        }
        assert_eq!(firsts, 1, "one line for all the strangers");
        assert_eq!(log.peers.len(), MAX_PEERS);
        assert_eq!(log.peers.capacity(), capacity, "the table did not grow");
        assert_eq!(log.last_sweep, Some(at(2000)), "swept once, for the first");
        // A minute after the bucket opened, the next stranger is summarised
        // with the rest (the sweep then due finds no quiet address).
        let later = at(2000 + SUMMARY_EVERY.as_millis() as u64);
        assert_eq!(
            log.record("192.0.2.1", Refusal::Address, later),
            Logged::Summary {
                count: u64::from(strangers),
                over: SUMMARY_EVERY
            }
        );
        assert_eq!(log.peers.len(), MAX_PEERS);
    }

    #[test]
    fn hosts_are_taken_from_peer_names() {
        assert_eq!(host_of("10.0.0.5:41234"), "10.0.0.5");
        assert_eq!(host_of("[::1]:5555"), "::1");
        assert_eq!(host_of("/run/zring/x.sock"), "/run/zring/x.sock");
        assert_eq!(host_of("ipc"), "ipc");
    }
}
