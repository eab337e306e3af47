//! A bounded single-producer, single-consumer ring whose consumer frees
//! slots after it takes items.
//!
//! A pipe's data messages live here. The reactor takes a message when it
//! puts it in a send batch, but the message keeps its slot until the kernel
//! has its last byte (`release`), so the ring never holds more than its
//! capacity of unsent messages: the exact high-water mark, with nothing to
//! count besides the two indices.
//!
//! Neither side performs a read-modify-write: each index has one writer, and
//! each side caches the other's index and reloads it only when the cache
//! says full (producer) or empty (consumer). The ends are separate owned
//! values (`&mut self` methods, not `Clone`), so one producer and one
//! consumer is a property of the types, not a convention.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

struct Shared<T> {
    /// A power of two at least `capacity` long, so a position maps to its
    /// slot with a mask.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    capacity: usize,
    /// Positions below this hold items; written by the producer only.
    tail: CachePadded<AtomicUsize>,
    /// Positions below this are free; written by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Where the consumer stopped taking, stored when it is dropped, so the
    /// last owner knows which slots still hold items.
    taken_at_drop: AtomicUsize,
    /// The consumer is gone (`taken_at_drop` is final).
    consumer_gone: AtomicBool,
}

// SAFETY: items move from the producer's thread to the consumer's, so `T`
// must be `Send`; a slot is accessed by one side at a time, handed over by
// the Release store and Acquire load of `tail` (to the consumer) and of
// `head` (back to the producer).
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above; the shared methods touch only atomics or slots the
// index protocol gives to the caller.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Both ends are gone; items in [taken, tail) were never taken.
        let taken = *self.taken_at_drop.get_mut();
        let tail = *self.tail.get_mut();
        let mut at = taken;
        while at != tail {
            // SAFETY: exclusive access (`&mut self`); positions in
            // [taken, tail) were written by the producer and not taken.
            unsafe { self.slots[at & self.mask].get_mut().assume_init_drop() };
            at = at.wrapping_add(1);
        }
    }
}

/// The writing end.
pub(crate) struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    /// A copy of `head` no newer than the real one: room it shows is real.
    head_cache: usize,
}

/// The reading end.
pub(crate) struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// The next position to take.
    taken: usize,
    /// Positions below this are released (mirrors `shared.head`).
    head: usize,
    /// A copy of `tail` no newer than the real one: items it shows are real.
    tail_cache: usize,
}

/// A ring of `capacity` (at least 1) slots.
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(capacity > 0, "a ring needs at least one slot");
    let len = capacity.next_power_of_two();
    let shared = Arc::new(Shared {
        slots: (0..len)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect(),
        mask: len - 1,
        capacity,
        tail: CachePadded::new(AtomicUsize::new(0)),
        head: CachePadded::new(AtomicUsize::new(0)),
        taken_at_drop: AtomicUsize::new(0),
        consumer_gone: AtomicBool::new(false),
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            head_cache: 0,
        },
        Consumer {
            shared,
            taken: 0,
            head: 0,
            tail_cache: 0,
        },
    )
}

impl<T> Producer<T> {
    /// Whether `push` would refuse now.
    pub(crate) fn is_full(&mut self) -> bool {
        if self.tail.wrapping_sub(self.head_cache) < self.shared.capacity {
            return false;
        }
        // Acquire: the consumer is done with the slots it released.
        self.head_cache = self.shared.head.load(Ordering::Acquire);
        self.tail.wrapping_sub(self.head_cache) >= self.shared.capacity
    }

    /// Appends `item`, or gives it back when `capacity` items are held.
    pub(crate) fn push(&mut self, item: T) -> Result<(), T> {
        if self.is_full() {
            return Err(item);
        }
        let slot = &self.shared.slots[self.tail & self.shared.mask];
        // SAFETY: the position is below head + capacity, so the consumer has
        // released the slot (or never used it) and will not read it until
        // the Release store below publishes it.
        unsafe { (*slot.get()).write(item) };
        self.tail = self.tail.wrapping_add(1);
        // SeqCst (not just Release): a pipe's wake-up protocol loads its
        // `scheduled` flag next and must not see it from before this store.
        self.shared.tail.store(self.tail, Ordering::SeqCst);
        Ok(())
    }

    /// Once the consumer is gone: how many pushed items it never took
    /// (they are dropped with the ring, unsent). `None` while it lives.
    pub(crate) fn abandoned(&self) -> Option<usize> {
        if !self.shared.consumer_gone.load(Ordering::Acquire) {
            return None;
        }
        let taken = self.shared.taken_at_drop.load(Ordering::Relaxed);
        Some(self.tail.wrapping_sub(taken))
    }
}

impl<T> Consumer<T> {
    /// Takes the oldest item not taken yet. Its slot stays held until
    /// `release`.
    pub(crate) fn take(&mut self) -> Option<T> {
        if self.taken == self.tail_cache {
            // Acquire: the producer's writes to the slots are visible.
            self.tail_cache = self.shared.tail.load(Ordering::Acquire);
            if self.taken == self.tail_cache {
                return None;
            }
        }
        let slot = &self.shared.slots[self.taken & self.shared.mask];
        // SAFETY: the position is below the published tail, so the producer
        // wrote it, and it is at or above `taken`, so it was not read yet.
        let item = unsafe { (*slot.get()).assume_init_read() };
        self.taken = self.taken.wrapping_add(1);
        Some(item)
    }

    /// Frees the slots of the oldest `n` taken items.
    pub(crate) fn release(&mut self, n: usize) {
        assert!(
            n <= self.taken.wrapping_sub(self.head),
            "released more than was taken"
        );
        if n > 0 {
            self.head = self.head.wrapping_add(n);
            self.shared.head.store(self.head, Ordering::Release);
        }
    }

    /// Items taken and not released yet.
    #[cfg(test)]
    fn held_taken(&self) -> usize {
        self.taken.wrapping_sub(self.head)
    }

    /// Whether an item waits to be taken. SeqCst, for the same reason as
    /// the producer's store.
    pub(crate) fn is_empty(&self) -> bool {
        self.taken == self.shared.tail.load(Ordering::SeqCst)
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.shared
            .taken_at_drop
            .store(self.taken, Ordering::Relaxed);
        // Release: whoever sees the flag sees the final `taken_at_drop`.
        self.shared.consumer_gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_capacity_items_until_released() {
        let (mut p, mut c) = ring::<u32>(3);
        for i in 0..3 {
            assert!(p.push(i).is_ok());
        }
        assert_eq!(
            p.push(3),
            Err(3),
            "full at capacity 3, not at the slot count 4"
        );
        assert_eq!(c.take(), Some(0));
        assert_eq!(c.take(), Some(1));
        assert!(p.is_full(), "taken items keep their slots");
        c.release(1);
        assert!(p.push(3).is_ok());
        assert_eq!(p.push(4), Err(4));
        assert_eq!(c.held_taken(), 1);
        assert_eq!(c.take(), Some(2));
        assert_eq!(c.take(), Some(3));
        assert_eq!(c.take(), None);
        assert!(c.is_empty());
    }

    #[test]
    #[should_panic(expected = "released more than was taken")]
    fn releasing_untaken_slots_panics() {
        let (mut p, mut c) = ring::<u32>(2);
        p.push(1).unwrap();
        c.release(1);
    }

    #[test]
    fn untaken_items_are_dropped_with_the_ring() {
        let item = Arc::new(());
        let (mut p, mut c) = ring::<Arc<()>>(4);
        for _ in 0..4 {
            p.push(item.clone()).unwrap();
        }
        drop(c.take());
        assert_eq!(Arc::strong_count(&item), 4);
        drop(c);
        assert_eq!(
            Arc::strong_count(&item),
            4,
            "the producer still owns the ring"
        );
        assert_eq!(p.abandoned(), Some(3), "three pushed, never taken");
        drop(p);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn two_threads_see_every_item_in_order_within_capacity() {
        const N: u64 = 200_000;
        const CAP: usize = 7;
        let (mut p, mut c) = ring::<u64>(CAP);
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                let mut item = i;
                loop {
                    match p.push(item) {
                        Ok(()) => break,
                        Err(back) => {
                            item = back;
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        });
        let mut next = 0;
        while next < N {
            // Take a few, then release them as a send completion would.
            let mut batch = 0;
            while let Some(v) = c.take() {
                assert_eq!(v, next);
                next += 1;
                batch += 1;
                assert!(c.held_taken() <= CAP);
            }
            c.release(batch);
        }
        producer.join().unwrap();
    }
}
