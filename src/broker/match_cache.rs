//! The subscribers recent first frames matched, so that a run of messages
//! on one topic walks the prefix trie once.
//!
//! A Zeek cluster publishes on a handful of topics (`zeek.cluster.manager`,
//! a node's own topic, ...), and a walk of the trie costs a dependent load
//! or two per byte of the topic: in a profile of the broker at 64 B
//! events, the walk was a fifth of its CPU. The cache holds a few topics;
//! any change to the routes or the subscribers empties it.

use super::book::SubId;

/// Topics remembered at once.
const CAPACITY: usize = 8;

/// Longer first frames are not remembered: they are rarely topics, and
/// copying them would cost more than the walk saves.
pub(crate) const MAX_TOPIC: usize = 256;

struct Entry {
    topic: Vec<u8>,
    matched: Vec<SubId>,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct MatchCache {
    entries: Vec<Entry>,
    /// The entry the next insertion replaces once all are in use.
    victim: usize,
}

impl MatchCache {
    /// The subscribers `topic` matched, if it is remembered.
    pub(crate) fn get(&self, topic: &[u8]) -> Option<&[SubId]> {
        self.entries
            .iter()
            .find(|e| e.topic == topic)
            .map(|e| e.matched.as_slice())
    }

    /// Remembers what `topic` matched (nothing if it is over
    /// [`MAX_TOPIC`]), replacing the oldest entry when full. Buffers are
    /// reused, so a warm cache allocates nothing.
    pub(crate) fn insert(&mut self, topic: &[u8], matched: &[SubId]) {
        if topic.len() > MAX_TOPIC {
            return;
        }
        if self.entries.len() < CAPACITY {
            self.entries.push(Entry {
                topic: topic.to_vec(),
                matched: matched.to_vec(),
            });
            return;
        }
        let entry = &mut self.entries[self.victim];
        self.victim = (self.victim + 1) % CAPACITY;
        entry.topic.clear();
        entry.topic.extend_from_slice(topic);
        entry.matched.clear();
        entry.matched.extend_from_slice(matched);
    }

    /// Forgets everything: routes or subscribers changed.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.victim = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_exact_topics_only() {
        let mut c = MatchCache::default();
        assert_eq!(c.get(b"zeek.cluster.manager"), None);
        c.insert(b"zeek.cluster.manager", &[1, 2]);
        assert_eq!(c.get(b"zeek.cluster.manager"), Some(&[1, 2][..]));
        // A prefix or an extension of a remembered topic is another topic.
        assert_eq!(c.get(b"zeek.cluster."), None);
        assert_eq!(c.get(b"zeek.cluster.manager2"), None);
        // An empty match is remembered too.
        c.insert(b"unrouted", &[]);
        assert_eq!(c.get(b"unrouted"), Some(&[][..]));
        c.clear();
        assert_eq!(c.get(b"zeek.cluster.manager"), None);
    }

    #[test]
    fn replaces_the_oldest_when_full_and_skips_long_frames() {
        let mut c = MatchCache::default();
        for i in 0..CAPACITY as u64 {
            c.insert(format!("t{i}").as_bytes(), &[i]);
        }
        c.insert(b"newest", &[99]);
        assert_eq!(c.get(b"t0"), None, "the oldest went");
        assert_eq!(c.get(b"t1"), Some(&[1][..]));
        assert_eq!(c.get(b"newest"), Some(&[99][..]));
        c.insert(b"after", &[100]);
        assert_eq!(c.get(b"t1"), None, "then the next oldest");
        assert_eq!(c.get(b"t2"), Some(&[2][..]));

        let long = vec![b'x'; MAX_TOPIC + 1];
        c.insert(&long, &[7]);
        assert_eq!(c.get(&long), None);
    }
}
