//! A byte trie of subscription topics, matched against the prefixes of a
//! message's first frame.
//!
//! Nodes live in an arena and refer to each other by index, so insertion,
//! removal and pruning are loops: no recursion, whatever the topic length
//! (libzmq's recursive removal was a stack-overflow CVE before 4.3.3).

/// A trie mapping topics to values.
#[derive(Debug, Clone)]
pub(crate) struct Trie<V> {
    nodes: Vec<Node<V>>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V> {
    value: Option<V>,
    /// Children sorted by byte.
    children: Vec<(u8, u32)>,
    parent: u32,
    byte: u8,
}

const ROOT: u32 = 0;

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie {
            nodes: vec![Node {
                value: None,
                children: Vec::new(),
                parent: ROOT,
                byte: 0,
            }],
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<V> Trie<V> {
    /// Topics stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn child(&self, node: u32, byte: u8) -> Option<u32> {
        let children = &self.nodes[node as usize].children;
        children
            .binary_search_by_key(&byte, |(b, _)| *b)
            .ok()
            .map(|i| children[i].1)
    }

    fn find(&self, topic: &[u8]) -> Option<u32> {
        topic.iter().try_fold(ROOT, |node, &b| self.child(node, b))
    }

    /// The value of `topic`, inserting `make()` if absent.
    pub(crate) fn entry(&mut self, topic: &[u8], make: impl FnOnce() -> V) -> &mut V {
        let mut node = ROOT;
        for &b in topic {
            node = match self.child(node, b) {
                Some(c) => c,
                None => {
                    let new = Node {
                        value: None,
                        children: Vec::new(),
                        parent: node,
                        byte: b,
                    };
                    let index = match self.free.pop() {
                        Some(i) => {
                            self.nodes[i as usize] = new;
                            i
                        }
                        None => {
                            self.nodes.push(new);
                            (self.nodes.len() - 1) as u32
                        }
                    };
                    let children = &mut self.nodes[node as usize].children;
                    let at = children.partition_point(|(c, _)| *c < b);
                    children.insert(at, (b, index));
                    index
                }
            };
        }
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    /// The value of `topic`, if present.
    pub(crate) fn get_mut(&mut self, topic: &[u8]) -> Option<&mut V> {
        let node = self.find(topic)?;
        self.nodes[node as usize].value.as_mut()
    }

    /// Removes `topic`, pruning nodes left without value or children.
    pub(crate) fn remove(&mut self, topic: &[u8]) -> Option<V> {
        let mut node = self.find(topic)?;
        let value = self.nodes[node as usize].value.take()?;
        self.len -= 1;
        while node != ROOT
            && self.nodes[node as usize].value.is_none()
            && self.nodes[node as usize].children.is_empty()
        {
            let Node { parent, byte, .. } = self.nodes[node as usize];
            let siblings = &mut self.nodes[parent as usize].children;
            if let Ok(i) = siblings.binary_search_by_key(&byte, |(b, _)| *b) {
                siblings.remove(i);
            }
            self.nodes[node as usize].children = Vec::new();
            self.free.push(node);
            node = parent;
        }
        Some(value)
    }

    /// Calls `f` with the value of every stored topic that is a prefix of
    /// `data` (the empty topic matches everything), shortest first.
    pub(crate) fn for_each_prefix(&self, data: &[u8], mut f: impl FnMut(&V)) {
        let mut node = ROOT;
        if let Some(v) = &self.nodes[ROOT as usize].value {
            f(v);
        }
        for &b in data {
            match self.child(node, b) {
                Some(c) => node = c,
                None => return,
            }
            if let Some(v) = &self.nodes[node as usize].value {
                f(v);
            }
        }
    }

    /// Whether any stored topic is a prefix of `data`.
    pub(crate) fn matches(&self, data: &[u8]) -> bool {
        let mut any = false;
        self.for_each_prefix(data, |_| any = true);
        any
    }

    /// Every (topic, value), in byte order.
    pub(crate) fn iter(&self) -> Vec<(Vec<u8>, &V)> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, Vec::new())];
        while let Some((node, key)) = stack.pop() {
            let n = &self.nodes[node as usize];
            if let Some(v) = &n.value {
                out.push((key.clone(), v));
            }
            for &(b, c) in n.children.iter().rev() {
                let mut k = key.clone();
                k.push(b);
                stack.push((c, k));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn matches_prefixes_of_the_first_frame() {
        let mut t = Trie::default();
        *t.entry(b"zeek/", || 0) += 1;
        *t.entry(b"zeek/cluster/", || 0) += 1;
        *t.entry(b"other", || 0) += 1;
        let mut seen = Vec::new();
        t.for_each_prefix(b"zeek/cluster/node/x", |v| seen.push(*v));
        assert_eq!(seen, [1, 1]);
        assert!(!t.matches(b"zeel"));
        assert!(t.matches(b"other thing"));
        assert_eq!(t.remove(b"zeek/"), Some(1));
        assert!(t.matches(b"zeek/cluster/"));
        assert!(!t.matches(b"zeek/x"));
    }

    #[test]
    fn empty_topic_matches_everything_and_long_topics_do_not_recurse() {
        let mut t = Trie::default();
        t.entry(b"", || ());
        assert!(t.matches(b"anything"));
        let long = vec![b'a'; 1 << 20];
        t.entry(&long, || ());
        assert_eq!(t.len(), 2);
        assert!(t.remove(&long).is_some());
        assert_eq!(t.nodes.len() - t.free.len(), 1, "pruned back to the root");
    }

    proptest! {
        #[test]
        fn behaves_like_a_map_of_prefixes(
            ops in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0u8..4, 0..6)), 0..64),
            probe in proptest::collection::vec(0u8..4, 0..8),
        ) {
            let mut t = Trie::default();
            let mut model = BTreeMap::new();
            for (insert, key) in ops {
                if insert {
                    t.entry(&key, || ());
                    model.insert(key, ());
                } else {
                    prop_assert_eq!(t.remove(&key).is_some(), model.remove(&key).is_some());
                }
            }
            prop_assert_eq!(t.len(), model.len());
            let keys: Vec<Vec<u8>> = t.iter().into_iter().map(|(k, _)| k).collect();
            prop_assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
            let expected = model.keys().filter(|k| probe.starts_with(k)).count();
            let mut got = 0;
            t.for_each_prefix(&probe, |_| got += 1);
            prop_assert_eq!(got, expected);
        }
    }
}
