//! A provided-buffer ring: buffers the kernel picks from when a multishot
//! receive completes, and that come back when the last [`Bytes`] slice of
//! their data drops, on whichever thread that happens.
//!
//! The ring itself (the array of `io_uring_buf` entries and its tail) is
//! written only by the owning reactor. Other threads hand buffer ids back
//! through a lock-free queue the reactor drains each turn, and wake it if it
//! ran dry, so no receive waits on a buffer that is already free.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use zmtp_codec::BufferPool;

use super::waker::Waker;

const PAGE: usize = 4096;

/// Memory of all buffers of one ring, shared with the slices handed out.
pub(crate) struct BufPool {
    memory: *mut u8,
    layout: Layout,
    buffer_size: usize,
    /// Ids of buffers whose last slice dropped, waiting to go back on the ring.
    returned: ArrayQueue<u16>,
    /// Set by the reactor when a receive found no buffer; a returning buffer
    /// then wakes it.
    starved: AtomicBool,
    waker: Arc<Waker>,
}

// SAFETY: the memory is only read through leases (each buffer by at most the
// lease that owns it, after the kernel finished writing it) and written by
// the kernel only while the buffer is on the ring, i.e. while no lease exists.
unsafe impl Send for BufPool {}
// SAFETY: as above; the shared parts are atomics and a lock-free queue.
unsafe impl Sync for BufPool {}

impl Drop for BufPool {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with this layout; the last
        // lease and the ring (which unregistered itself) are gone.
        unsafe { alloc::dealloc(self.memory, self.layout) };
    }
}

impl BufPool {
    fn give_back(&self, bid: u16) {
        // Cannot fail: the queue holds every buffer id and each is returned once.
        let _ = self.returned.push(bid);
        // Pairs with the fence in `set_starved`: either the reactor sees
        // this buffer when it looks after starving, or this sees the flag.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.starved.load(Ordering::Relaxed) {
            self.waker.wake();
        }
    }
}

/// Ownership of one filled buffer: the owner of the `Bytes` made from it.
struct Lease {
    pool: Arc<BufPool>,
    bid: u16,
    len: usize,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the kernel wrote `len` bytes of buffer `bid` before the
        // completion that created this lease, and will not touch the buffer
        // again until the lease returns it.
        unsafe {
            std::slice::from_raw_parts(
                self.pool
                    .memory
                    .add(self.bid as usize * self.pool.buffer_size),
                self.len,
            )
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.give_back(self.bid);
    }
}

/// One registered buffer ring, owned by its reactor thread.
pub(crate) struct BufRing {
    entries: *mut BufRingEntry,
    entries_layout: Layout,
    count: u16,
    tail: u16,
    group: u16,
    pool: Arc<BufPool>,
    /// Below this many received bytes the data is copied and the buffer
    /// returned at once, so trickling traffic cannot pin the whole pool.
    copy_below: usize,
    /// Buffers handed out as leases and not recycled yet.
    leased: usize,
    /// Buffers pushed on the ring that no completion has handed back yet:
    /// free for the kernel, unless it took them for completions still to
    /// be reaped.
    on_ring: usize,
    registered: bool,
}

impl BufRing {
    /// Allocates `count` buffers of `buffer_size` bytes and registers them
    /// with `ring` as buffer group `group`.
    pub(crate) fn new(
        ring: &IoUring,
        group: u16,
        count: u16,
        buffer_size: usize,
        copy_below: usize,
        waker: Arc<Waker>,
    ) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer count must be a power of two up to 32768, is {count}"),
            ));
        }
        if buffer_size == 0 || buffer_size > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer size must be 1 byte to 4 GiB, is {buffer_size}"),
            ));
        }
        let entries_layout =
            Layout::from_size_align(count as usize * std::mem::size_of::<BufRingEntry>(), PAGE)
                .map_err(io::Error::other)?;
        let memory_size = count as usize * buffer_size;
        let memory_layout = Layout::from_size_align(memory_size, PAGE).map_err(io::Error::other)?;
        // SAFETY: both layouts have non-zero size.
        let entries = unsafe { alloc::alloc_zeroed(entries_layout) } as *mut BufRingEntry;
        // SAFETY: as above.
        let memory = unsafe { alloc::alloc(memory_layout) };
        if entries.is_null() || memory.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "cannot allocate receive buffers",
            ));
        }
        let pool = Arc::new(BufPool {
            memory,
            layout: memory_layout,
            buffer_size,
            returned: ArrayQueue::new(count as usize),
            starved: AtomicBool::new(false),
            waker,
        });
        let mut this = BufRing {
            entries,
            entries_layout,
            count,
            tail: 0,
            group,
            pool,
            copy_below,
            leased: 0,
            on_ring: 0,
            registered: false,
        };
        // SAFETY: `entries` is page-aligned, zeroed, `count` entries long, and
        // outlives the registration (Drop unregisters before freeing it).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)?;
        }
        this.registered = true;
        for bid in 0..count {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The buffer group id to name in receive operations.
    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    fn push(&mut self, bid: u16) {
        let index = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `index` < count; the kernel reads entries only up to the
        // published tail, and this one is beyond it until `publish`.
        let entry = unsafe { &mut *self.entries.add(index) };
        // SAFETY: the buffer lies inside the pool's allocation.
        let addr = unsafe { self.pool.memory.add(bid as usize * self.pool.buffer_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.pool.buffer_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.on_ring += 1;
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of our ring, and the
        // kernel reads it with acquire semantics, so a release store suffices.
        unsafe {
            let tail = BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Puts every buffer whose last slice dropped back on the ring. Returns
    /// how many came back.
    pub(crate) fn recycle(&mut self) -> usize {
        let mut n = 0;
        while let Some(bid) = self.pool.returned.pop() {
            self.push(bid);
            n += 1;
        }
        self.leased -= n;
        if n > 0 {
            self.publish();
        }
        n
    }

    /// Whether buffers were pushed on the ring that no completion reaped so
    /// far has used. A receive that failed for want of buffers may have
    /// looked before they were pushed: it is worth trying again.
    pub(crate) fn may_have_free(&self) -> bool {
        self.on_ring > 0
    }

    /// Marks the ring as exhausted: the next returned buffer wakes the reactor.
    pub(crate) fn set_starved(&self, starved: bool) {
        self.pool.starved.store(starved, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// The data of buffer `bid`, filled with `len` bytes by a completion, as
    /// `Bytes`, and whether it was copied. Small fills are copied and the
    /// buffer goes straight back. So is every fill while half the buffers
    /// are leased: whoever holds those (a slow consumer, a queue for a slow
    /// peer) may hold them long, and the ring must never run dry because of
    /// it, or every connection of the reactor would stop receiving.
    ///
    /// Copies of large fills go into buffers from `copies`, which keeps them
    /// warm: a fresh allocation of a few hundred KiB is mapped and
    /// page-faulted in anew each time.
    pub(crate) fn take(&mut self, bid: u16, len: usize, copies: &dyn BufferPool) -> (Bytes, bool) {
        self.on_ring -= 1;
        if len < self.copy_below || self.leased >= usize::from(self.count) / 2 {
            // SAFETY: the kernel filled `len` bytes of buffer `bid`, and it is
            // ours until pushed back on the ring below.
            let data = unsafe {
                std::slice::from_raw_parts(
                    self.pool.memory.add(bid as usize * self.pool.buffer_size),
                    len,
                )
            };
            let mut copy = copies.take(len);
            copy.extend_from_slice(data);
            let copy = copies.freeze(copy);
            self.push(bid);
            self.publish();
            (copy, true)
        } else {
            self.leased += 1;
            let lease = Lease {
                pool: self.pool.clone(),
                bid,
                len,
            };
            (Bytes::from_owner(lease), false)
        }
    }

    /// Returns buffer `bid`, selected by a completion that carried no data.
    pub(crate) fn put_back(&mut self, bid: u16) {
        self.on_ring -= 1;
        self.push(bid);
        self.publish();
    }

    /// Unregisters the ring from `ring`, before the io_uring is dropped.
    pub(crate) fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            let _ = ring.submitter().unregister_buf_ring(self.group);
            self.registered = false;
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still read the entries: leaking them is the
            // safe choice (the reactor unregisters before dropping, so this
            // happens only if it unwinds).
            return;
        }
        // SAFETY: allocated in `new` with this layout, and unregistered.
        unsafe { alloc::dealloc(self.entries as *mut u8, self.entries_layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zmtp_codec::HeapPool;

    #[test]
    fn leases_come_back_from_other_threads_and_half_leased_fills_are_copied() {
        let ring = IoUring::new(8).expect("io_uring");
        let waker = Arc::new(Waker::new().unwrap());
        let mut bufs = BufRing::new(&ring, 0, 4, 4096, 16, waker).unwrap();
        // As if the kernel had filled buffers 0..3 in turn.
        let (small, copied) = bufs.take(0, 10, &HeapPool);
        assert!(copied, "a fill below copy_below is copied");
        drop(small);
        let (a, copied_a) = bufs.take(1, 100, &HeapPool);
        let (b, copied_b) = bufs.take(2, 100, &HeapPool);
        assert!(
            !copied_a && !copied_b,
            "leased while the ring is not half leased"
        );
        let (c, copied_c) = bufs.take(3, 100, &HeapPool);
        assert!(
            copied_c,
            "half the ring leased: copied, its buffer back at once"
        );
        assert!(bufs.may_have_free());
        assert_eq!(bufs.recycle(), 0, "the leases are still held");
        std::thread::spawn(move || drop((a, b, c))).join().unwrap();
        assert_eq!(bufs.recycle(), 2);
        let (d, copied_d) = bufs.take(0, 100, &HeapPool);
        assert!(!copied_d, "leased again once the buffers are back");
        drop(d);
        bufs.unregister(&ring);
    }
}
