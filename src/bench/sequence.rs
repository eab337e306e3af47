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

/// Missing numbers a check remembers over all its streams, so that a late
/// one is told apart from a duplicate; beyond this many, gaps are only
/// counted (and a late arrival of one not remembered counts as a
/// duplicate). A bound over the whole check, so that its memory does not
/// grow with the number of streams.
const MAX_MISSING: usize = 4096;

/// One publisher's messages on one topic, as one receiver saw them.
#[derive(Debug, Default, Clone)]
struct Stream {
    next: u64,
    missing: BTreeSet<u64>,
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
    publishers: usize,
    topics: usize,
    streams: Vec<Stream>,
    /// Missing numbers remembered over all streams (at most
    /// `MAX_MISSING`).
    remembered: usize,
    pub(crate) counts: SequenceCounts,
}

impl SequenceCheck {
    pub(crate) fn new(publishers: usize, topics: usize) -> SequenceCheck {
        SequenceCheck {
            publishers,
            topics,
            streams: vec![Stream::default(); publishers * topics],
            remembered: 0,
            counts: SequenceCounts::default(),
        }
    }

    /// Where the stream of `h` is, if its publisher and topic are both in
    /// range: a topic past the last must not alias the next publisher's
    /// stream.
    fn index_of(&self, h: &Header) -> Option<usize> {
        let (publisher, topic) = (h.publisher as usize, h.topic as usize);
        (publisher < self.publishers && topic < self.topics)
            .then_some(publisher * self.topics + topic)
    }

    /// Records one message; returns its header when it had one.
    pub(crate) fn record(&mut self, probe: &Probe) -> Option<Header> {
        let Some(h) = Header::decode(probe) else {
            self.counts.foreign += 1;
            return None;
        };
        let Some(index) = self.index_of(&h) else {
            self.counts.foreign += 1;
            return None;
        };
        let stream = &mut self.streams[index];
        let c = &mut self.counts;
        if h.seq == stream.next {
            stream.next = stream.next.saturating_add(1);
            c.delivered += 1;
        } else if h.seq > stream.next {
            // A gap: remember what is missing, as far as memory allows.
            let room = MAX_MISSING - self.remembered;
            let before = stream.missing.len();
            stream.missing.extend((stream.next..h.seq).take(room));
            self.remembered += stream.missing.len() - before;
            // A hostile number (u64::MAX) must not overflow the count, nor
            // the next number expected.
            c.gaps = c.gaps.saturating_add(h.seq - stream.next);
            stream.next = h.seq.saturating_add(1);
            c.delivered += 1;
        } else if stream.missing.remove(&h.seq) {
            self.remembered -= 1;
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

    #[test]
    fn a_topic_out_of_range_is_foreign_not_the_next_publishers() {
        let mut check = SequenceCheck::new(2, 2);
        // Publisher 0, topic 2 would be publisher 1's topic 0 if only the
        // index were checked.
        check.record(&probe(0, 2, 0));
        check.record(&probe(0, u32::MAX, 0));
        check.record(&probe(u32::MAX, 0, 0));
        assert_eq!(check.counts.foreign, 3);
        assert_eq!(check.counts.delivered, 0);
        check.record(&probe(1, 0, 0));
        assert_eq!(
            check.counts.delivered, 1,
            "publisher 1's stream is untouched"
        );
        assert_eq!(check.counts.duplicates, 0);
    }

    #[test]
    fn the_last_sequence_number_neither_overflows_nor_remembers_without_bound() {
        let mut check = SequenceCheck::new(1, 1);
        check.record(&probe(0, 0, 0));
        check.record(&probe(0, 0, u64::MAX));
        let c = check.counts;
        assert_eq!(c.delivered, 2);
        assert_eq!(c.gaps, u64::MAX - 1);
        assert_eq!(check.remembered, MAX_MISSING);
        // A late one remembered, and one past what memory allowed.
        check.record(&probe(0, 0, 1));
        check.record(&probe(0, 0, MAX_MISSING as u64 + 5));
        assert_eq!(check.counts.reordered, 1);
        assert_eq!(
            check.counts.duplicates, 1,
            "not remembered: counted as a repeat"
        );
        assert_eq!(check.remembered, MAX_MISSING - 1);
    }

    #[test]
    fn missing_numbers_are_bounded_over_all_streams() {
        let streams = 8;
        let mut check = SequenceCheck::new(streams, 1);
        for publisher in 0..streams as u32 {
            check.record(&probe(publisher, 0, MAX_MISSING as u64));
        }
        assert_eq!(check.remembered, MAX_MISSING, "not {streams} × MAX_MISSING");
        let held: usize = check.streams.iter().map(|s| s.missing.len()).sum();
        assert_eq!(held, MAX_MISSING);
        assert_eq!(check.counts.gaps, streams as u64 * MAX_MISSING as u64);
    }
}
