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
    Address,
    /// Its CURVE or PLAIN handshake failed or was refused.
    Security,
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
    peers: HashMap<(String, Refusal), Window>,
    /// Refusals of addresses not remembered (the table was full).
    overflow: Option<Window>,
}

impl RefusalLog {
    /// Records a refusal of `host` at `now` and says what to log.
    pub(crate) fn record(&mut self, host: &str, why: Refusal, now: Instant) -> Logged {
        let key = (host.to_owned(), why);
        if let Some(w) = self.peers.get_mut(&key) {
            return w.count_one(now);
        }
        if self.peers.len() >= MAX_PEERS {
            // Forget addresses quiet for a whole window, then, if still
            // full, count this one with the other strangers.
            self.peers
                .retain(|_, w| w.count > 0 || now.duration_since(w.since) < SUMMARY_EVERY);
            if self.peers.len() >= MAX_PEERS {
                return match &mut self.overflow {
                    Some(w) => w.count_one(now),
                    None => {
                        self.overflow = Some(Window {
                            count: 0,
                            since: now,
                        });
                        Logged::First
                    }
                };
            }
        }
        self.peers.insert(
            key,
            Window {
                count: 0,
                since: now,
            },
        );
        Logged::First
    }
}

impl Window {
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

    #[test]
    fn hosts_are_taken_from_peer_names() {
        assert_eq!(host_of("10.0.0.5:41234"), "10.0.0.5");
        assert_eq!(host_of("[::1]:5555"), "::1");
        assert_eq!(host_of("/run/zring/x.sock"), "/run/zring/x.sock");
        assert_eq!(host_of("ipc"), "ipc");
    }
}
