//! What every benchmark message carries (who sent it, to which topic, its
//! number on that topic, when it was meant to leave), and the check each
//! receiver runs on it: per publisher and topic, numbers must arrive in
//! order, once, without gaps.

use std::collections::BTreeSet;

use super::wire::{Probe, PROBE};

/// The benchmark's header, the first bytes of a message's second frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) publisher: u32,
    pub(crate) topic: u32,
    pub(crate) seq: u64,
    /// When it was meant to be sent, in nanoseconds since the run's clock
    /// started (the intended time: a stalled sender's backlog keeps the
    /// times it should have left at, so waiting counts as latency).
    pub(crate) sent_ns: u64,
}

impl Header {
    pub(crate) fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.publisher.to_le_bytes());
        out[4..8].copy_from_slice(&self.topic.to_le_bytes());
        out[8..16].copy_from_slice(&self.seq.to_le_bytes());
        out[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    pub(crate) fn decode(probe: &Probe) -> Option<Header> {
        if probe.len < PROBE {
            return None;
        }
        let b = &probe.bytes;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Header {
            publisher: u32_at(0),
            topic: u32_at(4),
            seq: u64_at(8),
            sent_ns: u64_at(16),
        })
    }
}

/// Numbers missing on one stream, remembered so that a late one is told
/// apart from a duplicate; beyond this many, gaps are only counted.
const MAX_MISSING: usize = 4096;

/// One publisher's messages on one topic, as one receiver saw them.
#[derive(Debug, Default, Clone)]
struct Stream {
    next: u64,
    missing: BTreeSet<u64>,
    /// Gaps not remembered (more than `MAX_MISSING` at once).
    forgotten: u64,
}

/// The receiver's verdict so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SequenceCounts {
    /// Messages that arrived, each counted once.
    pub delivered: u64,
    /// Arrived after a later number of the same stream.
    pub reordered: u64,
    /// Arrived twice.
    pub duplicates: u64,
    /// Numbers skipped and not (yet) seen.
    pub gaps: u64,
    /// Messages without a benchmark header (another sender's).
    pub foreign: u64,
}

impl SequenceCounts {
    pub(crate) fn add(&mut self, other: &SequenceCounts) {
        self.delivered += other.delivered;
        self.reordered += other.reordered;
        self.duplicates += other.duplicates;
        self.gaps += other.gaps;
        self.foreign += other.foreign;
    }
}

/// Checks the numbers of every stream a receiver sees.
#[derive(Debug)]
pub(crate) struct SequenceCheck {
    topics: usize,
    streams: Vec<Stream>,
    pub(crate) counts: SequenceCounts,
}

impl SequenceCheck {
    pub(crate) fn new(publishers: usize, topics: usize) -> SequenceCheck {
        SequenceCheck {
            topics,
            streams: vec![Stream::default(); publishers * topics],
            counts: SequenceCounts::default(),
        }
    }

    /// Records one message; returns its header when it had one.
    pub(crate) fn record(&mut self, probe: &Probe) -> Option<Header> {
        let Some(h) = Header::decode(probe) else {
            self.counts.foreign += 1;
            return None;
        };
        let index = h.publisher as usize * self.topics + h.topic as usize;
        let Some(stream) = self.streams.get_mut(index) else {
            self.counts.foreign += 1;
            return None;
        };
        let c = &mut self.counts;
        if h.seq == stream.next {
            stream.next += 1;
            c.delivered += 1;
        } else if h.seq > stream.next {
            // A gap: remember what is missing, as far as memory allows.
            let skipped = h.seq - stream.next;
            for missing in stream.next..h.seq {
                if stream.missing.len() >= MAX_MISSING {
                    stream.forgotten = stream.forgotten.saturating_add(h.seq - missing);
                    break;
                }
                stream.missing.insert(missing);
            }
            // A hostile number (u64::MAX) must not overflow the count.
            c.gaps = c.gaps.saturating_add(skipped);
            stream.next = h.seq + 1;
            c.delivered += 1;
        } else if stream.missing.remove(&h.seq) {
            c.reordered += 1;
            c.gaps = c.gaps.saturating_sub(1);
            c.delivered += 1;
        } else {
            c.duplicates += 1;
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(publisher: u32, topic: u32, seq: u64) -> Probe {
        let mut p = Probe {
            len: PROBE,
            ..Probe::default()
        };
        Header {
            publisher,
            topic,
            seq,
            sent_ns: 0,
        }
        .encode(&mut p.bytes);
        p
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates_are_told_apart() {
        let mut check = SequenceCheck::new(2, 2);
        for seq in [0, 1, 3, 2, 4, 4, 7] {
            check.record(&probe(1, 1, seq));
        }
        // Another stream, in order.
        for seq in 0..5 {
            check.record(&probe(0, 1, seq));
        }
        let c = check.counts;
        assert_eq!(c.delivered, 6 + 5);
        assert_eq!(c.reordered, 1, "2 after 3");
        assert_eq!(c.duplicates, 1, "4 twice");
        assert_eq!(c.gaps, 2, "5 and 6 never came");
        assert_eq!(c.foreign, 0);
        check.record(&Probe::default());
        check.record(&probe(9, 0, 0));
        assert_eq!(check.counts.foreign, 2);
    }
}
