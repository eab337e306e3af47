//! A slab with generation-checked keys, so a completion that arrives for a
//! slot since reused is recognised as stale.

/// A slot index and the generation it was filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// The bits of a generation that a driver's token carries (the top byte
/// of a token names the operation; see `driver::token`).
pub(crate) const TAG_BITS: u32 = 0xff_ffff;

impl Key {
    /// The generation as a completion carries it: its low 24 bits. Whatever
    /// is looked up by a completion's generation must be stored under this,
    /// not the full generation, or a slot reused 2^24 times never matches.
    pub(crate) fn tag(self) -> u32 {
        self.generation & TAG_BITS
    }

    /// Packs the key into a u64 (for atomics).
    pub(crate) fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub(crate) fn from_u64(v: u64) -> Key {
        Key {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(Key) -> T) -> Key {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.0 = slot.0.wrapping_add(1);
        let key = Key {
            index,
            generation: slot.0,
        };
        slot.1 = Some(make(key));
        self.len += 1;
        key
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some((generation, Some(value))) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// Like `get_mut` for a key known by its [`Key::tag`], as completions
    /// carry it; the full key is returned with the value.
    pub(crate) fn find_mut(&mut self, index: u32, tag: u32) -> Option<(Key, &mut T)> {
        let (generation, value) = self.slots.get_mut(index as usize)?;
        let key = Key {
            index,
            generation: *generation,
        };
        match value {
            Some(value) if key.tag() == tag => Some((key, value)),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.0 != key.generation || slot.1.is_none() {
            return None;
        }
        self.free.push(key.index);
        self.len -= 1;
        slot.1.take()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_some())
            .map(|(i, (g, _))| Key {
                index: i as u32,
                generation: *g,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot reused more than 2^24 times: its key's generation no longer
    /// fits a token, and a completion's tag still finds it (and only it).
    #[test]
    fn a_generation_above_the_tag_bits_is_found_by_its_tag() {
        let mut slab = Slab::default();
        slab.slots.push(((1 << 24) + 4, None));
        slab.free.push(0);
        let key = slab.insert_with(|_| "conn");
        assert_eq!(key.generation, (1 << 24) + 5);
        assert_eq!(key.tag(), 5);
        let (found, value) = slab.find_mut(key.index, key.tag()).expect("found by tag");
        assert_eq!((found, *value), (key, "conn"));
        assert!(slab.find_mut(key.index, key.generation).is_none());
        assert!(slab.find_mut(key.index, 4).is_none(), "an older generation");
    }
}
