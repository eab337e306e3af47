//! Recycled buffers for received bytes that must be copied: messages that
//! straddle receive buffers, and fills copied out of a ring that is half
//! leased.
//!
//! The codec gathers a straddling message into one buffer of its size (one
//! copy). A Zeek log batch of 64 KiB or more straddles often, and the
//! buffer is freed on the application thread once the batch is written.
//! With plain allocations glibc hands that memory back to the kernel (it
//! trims the reactor's arena, or unmaps a chunk above its mmap threshold),
//! so the next batch page-faults its way into fresh, zeroed pages: measured
//! at 50 % of the receiving process's CPU time at 64 KiB, more than the
//! copy. Keeping the buffers here, up to a bound, keeps their pages warm.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zmtp_codec::BufferPool;

/// Buffers smaller than this are left to the allocator, which keeps small
/// chunks warm by itself.
const MIN_POOLED: usize = 16 * 1024;

/// One reactor's pool (shared with the threads that drop the messages).
#[derive(Debug)]
pub(crate) struct CopyPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    free: Mutex<FreeList>,
    /// Most bytes of capacity kept while unused.
    retain_bytes: usize,
}

#[derive(Debug, Default)]
struct FreeList {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl CopyPool {
    /// A pool keeping at most `retain_bytes` of unused buffers.
    pub(crate) fn new(retain_bytes: usize) -> CopyPool {
        CopyPool {
            inner: Arc::new(Inner {
                free: Mutex::new(FreeList::default()),
                retain_bytes,
            }),
        }
    }

    /// Bytes of unused buffers kept now.
    #[cfg(test)]
    fn retained(&self) -> usize {
        self.inner.lock().bytes
    }
}

/// Rounds a size up to one of a few steps per power of two (at most 1/8
/// more), so buffers of varying batch sizes can be reused for each other.
fn size_class(n: usize) -> usize {
    if n <= MIN_POOLED {
        return n;
    }
    // An eighth of the largest power of two not above n: at most n / 8.
    let step = (1usize << n.ilog2()) / 8;
    n.div_ceil(step) * step
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, FreeList> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity < MIN_POOLED {
            return;
        }
        buffer.clear();
        let mut free = self.lock();
        if free.bytes + capacity <= self.retain_bytes {
            free.bytes += capacity;
            free.buffers.push(buffer);
        }
    }
}

impl BufferPool for CopyPool {
    fn take(&self, capacity: usize) -> Vec<u8> {
        let wanted = size_class(capacity);
        if wanted >= MIN_POOLED {
            let mut free = self.inner.lock();
            // The smallest that fits, if it is not more than twice the need.
            let best = free
                .buffers
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= capacity && b.capacity() <= 2 * wanted)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            if let Some(i) = best {
                let buffer = free.buffers.swap_remove(i);
                free.bytes -= buffer.capacity();
                return buffer;
            }
        }
        Vec::with_capacity(wanted)
    }

    fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        if buffer.capacity() < MIN_POOLED {
            return Bytes::from(buffer);
        }
        Bytes::from_owner(Recycled {
            buffer,
            pool: self.inner.clone(),
        })
    }

    fn recycle(&self, buffer: Vec<u8>) {
        self.inner.give_back(buffer);
    }
}

/// A pooled buffer behind a `Bytes`: returns to the pool when the last
/// slice drops, on whichever thread that is.
struct Recycled {
    buffer: Vec<u8>,
    pool: Arc<Inner>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_an_eighth() {
        for n in [
            16 * 1024 + 1,
            65_545,
            100_000,
            1 << 20,
            (1 << 20) + 1,
            3_000_000,
        ] {
            let c = size_class(n);
            assert!(c >= n && c - n <= n / 8 + 1, "{n} -> {c}");
        }
        assert_eq!(size_class(65_545), 73_728);
        assert_eq!(size_class(100), 100);
    }

    #[test]
    fn a_dropped_message_gives_its_buffer_back_for_the_next() {
        let pool = CopyPool::new(1 << 20);
        let mut buffer = pool.take(65_545);
        let address = buffer.as_ptr();
        buffer.resize(65_545, 7);
        let bytes = pool.freeze(buffer);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.retained(), 0, "a slice still holds it");
        std::thread::spawn(move || drop(slice)).join().unwrap();
        assert_eq!(pool.retained(), 73_728);
        let again = pool.take(70_000);
        assert_eq!(again.as_ptr(), address, "the same memory, still warm");
        assert!(again.is_empty());
        assert_eq!(pool.retained(), 0);
    }

    #[test]
    fn keeps_no_more_than_its_bound_and_no_small_buffers() {
        let pool = CopyPool::new(200_000);
        let buffers: Vec<Bytes> = (0..4)
            .map(|_| {
                let mut b = pool.take(65_545);
                b.resize(65_545, 0);
                pool.freeze(b)
            })
            .collect();
        drop(buffers);
        assert_eq!(pool.retained(), 2 * 73_728);
        pool.recycle(Vec::with_capacity(1000));
        assert_eq!(pool.retained(), 2 * 73_728);
    }

    #[test]
    fn a_large_buffer_is_not_spent_on_a_small_need() {
        let pool = CopyPool::new(1 << 24);
        pool.recycle(Vec::with_capacity(1 << 20));
        assert!(pool.take(20_000).capacity() < 1 << 20);
        assert_eq!(pool.retained(), 1 << 20);
    }
}
