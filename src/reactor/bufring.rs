//! A provided-buffer ring: buffers the kernel picks from when a multishot
//! receive completes, and that come back when the last [`Bytes`] slice of
//! their data drops, on whichever thread that happens.
//!
//! The ring itself (the array of `io_uring_buf` entries and its tail) is
//! written only by the owning reactor. Other threads hand buffer ids back
//! through a lock-free queue the reactor drains each turn, and wake it if it
//! ran dry, so no receive waits on a buffer that is already free.
//!
//! The epoll driver receives itself, into the same buffers: it takes them
//! from the same ring in the kernel's stead ([`BufRing::space`]), and
//! appends receives to one buffer as an incremental ring does, so both
//! drivers hand the services the same slices.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use io_uring::types::BufRingEntry;
use io_uring::IoUring;
use zmtp_codec::BufferPool;

use crate::sys::waker::Waker;

const PAGE: usize = 4096;

/// `IOU_PBUF_RING_INC` from `<linux/io_uring.h>` (the io-uring crate does not
/// export its constants).
const IOU_PBUF_RING_INC: u16 = 2;

/// A buffer the epoll driver appends to is finished once less than this is
/// left in it: a receive into a sliver would only split messages.
const MIN_APPEND: usize = 4096;

/// Memory of all buffers of one ring, shared with the slices handed out.
pub(crate) struct BufPool {
    memory: *mut u8,
    layout: Layout,
    buffer_size: usize,
    /// Ids of buffers whose last slice dropped, waiting to go back on the ring.
    returned: ArrayQueue<u16>,
    /// Per buffer: the slices alive, plus one while the kernel may still
    /// append to it (an incremental ring's buffer that the last completion
    /// marked `BUF_MORE`). The buffer goes back when this reaches zero.
    refs: Box<[AtomicU32]>,
    /// Half the buffers wait for their leases to drop. Fills are copied
    /// then (see [`BufRing::take`]), and sessions stop holding partial
    /// messages for a join ([`SessionBuffers`]): a peer that sends half a
    /// message and stops must not pin buffers the ring cannot spare.
    pressure: AtomicBool,
    /// Set by the reactor when a receive found no buffer; a returning buffer
    /// then wakes it.
    starved: AtomicBool,
    waker: Arc<Waker>,
}

// SAFETY: the memory is only read through leases, each covering bytes the
// kernel finished writing before the completion that made the lease; the
// kernel writes a buffer only while it is on the ring, and, in an
// incremental ring, only the bytes after those it already reported. A
// buffer goes back on the ring only once no lease of it exists.
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
    /// Drops one reference to buffer `bid`; the last one gives it back.
    fn release(&self, bid: u16) {
        if self.refs[bid as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
            self.give_back(bid);
        }
    }

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

/// A share of one filled buffer (bytes `start..start + len` of it): the
/// owner of the `Bytes` made from it.
struct Lease {
    pool: Arc<BufPool>,
    bid: u16,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the kernel wrote these bytes of buffer `bid` before the
        // completion (or completions, for a joined lease) this lease was
        // made for, and writes neither them nor, until every lease is
        // gone, any byte of the buffer before them.
        unsafe {
            std::slice::from_raw_parts(
                self.pool
                    .memory
                    .add(self.bid as usize * self.pool.buffer_size + self.start),
                self.len,
            )
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(self.bid);
    }
}

/// `head` and then `next` as one `Bytes`, when both are leases of the same
/// buffer of `pool` and `next` begins where `head` ends: two receives that
/// an incremental ring put one after the other.
pub(crate) fn join(pool: &Arc<BufPool>, head: &Bytes, next: &Bytes) -> Option<Bytes> {
    let base = pool.memory as usize;
    let size = pool.buffer_size;
    let total = pool.refs.len() * size;
    let (h, n) = (head.as_ptr() as usize, next.as_ptr() as usize);
    if head.is_empty() || next.is_empty() || h < base || h + head.len() != n {
        return None;
    }
    let end = n + next.len();
    if end > base + total {
        return None;
    }
    let bid = (h - base) / size;
    if (end - 1 - base) / size != bid {
        return None;
    }
    // Both slices are alive, so the buffer cannot go back meanwhile.
    pool.refs[bid].fetch_add(1, Ordering::Relaxed);
    Some(Bytes::from_owner(Lease {
        pool: pool.clone(),
        bid: bid as u16,
        start: h - base - bid * size,
        len: head.len() + next.len(),
    }))
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
    /// Registered with `IOU_PBUF_RING_INC` (Linux 6.12): a receive takes
    /// only the bytes it fills, and the next receive, of any connection,
    /// continues in the same buffer.
    incremental: bool,
    /// Per buffer, where the next completion's bytes begin.
    offsets: Vec<usize>,
    /// Per buffer: the kernel reported part of it and may append more.
    kernel_holds: Vec<bool>,
    /// Without a kernel ring (epoll): the next entry to take, and the
    /// buffer receives go into now.
    head: u16,
    current: Option<u16>,
}

impl BufRing {
    /// Allocates `count` buffers of `buffer_size` bytes and registers them
    /// with `ring` as buffer group `group`; without a ring, the caller
    /// takes buffers itself ([`BufRing::space`]).
    pub(crate) fn new(
        ring: Option<&IoUring>,
        group: u16,
        count: u16,
        buffer_size: usize,
        copy_below: usize,
        incremental: bool,
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
            refs: (0..count).map(|_| AtomicU32::new(0)).collect(),
            pressure: AtomicBool::new(false),
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
            incremental,
            offsets: vec![0; count as usize],
            kernel_holds: vec![false; count as usize],
            head: 0,
            current: None,
        };
        if let Some(ring) = ring {
            // SAFETY: `entries` is page-aligned, zeroed, `count` entries long,
            // and outlives the registration (Drop unregisters before freeing
            // it).
            let register = |flags| unsafe {
                ring.submitter()
                    .register_buf_ring_with_flags(entries as u64, count, group, flags)
            };
            if incremental {
                if let Err(e) = register(IOU_PBUF_RING_INC) {
                    // Before Linux 6.12: whole buffers per receive, as without.
                    tracing::debug!("incremental buffer ring refused ({e}); using whole buffers");
                    this.incremental = false;
                    register(0)?;
                }
            } else {
                register(0)?;
            }
            this.registered = true;
        }
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
        self.offsets[bid as usize] = 0;
        self.kernel_holds[bid as usize] = false;
    }

    /// Whether receives continue in a buffer (`IOU_PBUF_RING_INC`).
    pub(crate) fn is_incremental(&self) -> bool {
        self.incremental
    }

    /// The memory shared with the slices, for [`join`].
    pub(crate) fn pool(&self) -> &Arc<BufPool> {
        &self.pool
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
            self.note_pressure();
        }
        n
    }

    /// Whether buffers were pushed on the ring that no completion reaped so
    /// far has used. A receive that failed for want of buffers may have
    /// looked before they were pushed: it is worth trying again.
    pub(crate) fn may_have_free(&self) -> bool {
        if self.registered {
            self.on_ring > 0
        } else {
            self.current.is_some() || self.head != self.tail
        }
    }

    /// Without a kernel ring: where the next receive may write, in the
    /// buffer receives append to now or, once that is full, the next one
    /// on the ring. `None`: every buffer is out (as `ENOBUFS` from the
    /// kernel). Report what was written with [`BufRing::received`].
    pub(crate) fn space(&mut self) -> Option<(u16, &mut [u8])> {
        debug_assert!(!self.registered);
        let bid = match self.current {
            Some(bid) => bid,
            None => {
                if self.head == self.tail {
                    return None;
                }
                let index = (self.head & (self.count - 1)) as usize;
                // SAFETY: `index` < count, and the entry lies between head
                // and tail, written by `push`.
                let bid = unsafe { (*self.entries.add(index)).bid() };
                self.head = self.head.wrapping_add(1);
                self.current = Some(bid);
                bid
            }
        };
        let index = bid as usize;
        let size = self.pool.buffer_size;
        let start = self.offsets[index];
        // SAFETY: bytes `start..` of buffer `bid` are in no lease (leases
        // cover only bytes before `offsets`), and the buffer is off the
        // ring's free part: nothing else reads or writes them until
        // `received` hands out what was written.
        let space = unsafe {
            std::slice::from_raw_parts_mut(self.pool.memory.add(index * size + start), size - start)
        };
        Some((bid, space))
    }

    /// Without a kernel ring: `len` bytes were received into the space
    /// [`BufRing::space`] gave for `bid`. As [`BufRing::take`]; the buffer
    /// stays the one receives append to while `incremental` and at least
    /// [`MIN_APPEND`] bytes of it are left.
    pub(crate) fn received(
        &mut self,
        bid: u16,
        len: usize,
        copies: &dyn BufferPool,
    ) -> (Bytes, bool) {
        debug_assert_eq!(self.current, Some(bid));
        let left = self.pool.buffer_size - self.offsets[bid as usize] - len;
        let more = self.incremental && left >= MIN_APPEND;
        if !more {
            self.current = None;
        }
        self.take(bid, len, more, copies)
    }

    /// Marks the ring as exhausted: the next returned buffer wakes the reactor.
    pub(crate) fn set_starved(&self, starved: bool) {
        self.pool.starved.store(starved, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// The `len` bytes a completion put in buffer `bid`, as `Bytes`, and
    /// whether they were copied. `more`: the completion said `BUF_MORE`
    /// (an incremental ring will append to the buffer).
    ///
    /// Small fills are copied and the buffer's share goes straight back.
    /// So is every fill while half the buffers are leased: whoever holds
    /// those (a slow consumer, a queue for a slow peer) may hold them long,
    /// and the ring must never run dry because of it, or every connection
    /// of the reactor would stop receiving.
    ///
    /// Copies of large fills go into buffers from `copies`, which keeps them
    /// warm: a fresh allocation of a few hundred KiB is mapped and
    /// page-faulted in anew each time.
    pub(crate) fn take(
        &mut self,
        bid: u16,
        len: usize,
        more: bool,
        copies: &dyn BufferPool,
    ) -> (Bytes, bool) {
        let index = bid as usize;
        let start = self.fill(bid, len, more);
        let copy = len < self.copy_below || self.leased >= usize::from(self.count) / 2;
        let bytes = if copy {
            // SAFETY: the kernel filled these bytes of buffer `bid`, which
            // stays ours (off the ring, or only appended to) until released.
            let data = unsafe {
                std::slice::from_raw_parts(
                    self.pool.memory.add(index * self.pool.buffer_size + start),
                    len,
                )
            };
            let mut copy = copies.take(len);
            copy.extend_from_slice(data);
            copies.freeze(copy)
        } else {
            self.pool.refs[index].fetch_add(1, Ordering::Relaxed);
            Bytes::from_owner(Lease {
                pool: self.pool.clone(),
                bid,
                start,
                len,
            })
        };
        if !more {
            self.kernel_done(bid);
        }
        (bytes, copy)
    }

    /// The kernel will not write buffer `bid` again: it goes back on the
    /// ring now if nothing else holds it, or when its last lease drops.
    fn kernel_done(&mut self, bid: u16) {
        let index = bid as usize;
        self.on_ring -= 1;
        if std::mem::take(&mut self.kernel_holds[index]) {
            // Drop the kernel's reference. If it was the last, no lease
            // exists, and none can be made from another thread: push now.
            if self.pool.refs[index].fetch_sub(1, Ordering::AcqRel) == 1 {
                self.push(bid);
                self.publish();
                return;
            }
        } else if self.pool.refs[index].load(Ordering::Acquire) == 0 {
            // Copied out, never shared.
            self.push(bid);
            self.publish();
            return;
        }
        // Leases hold it; the last one to drop gives it back.
        self.leased += 1;
        self.note_pressure();
    }

    fn note_pressure(&self) {
        let pressure = self.leased >= usize::from(self.count) / 2;
        self.pool.pressure.store(pressure, Ordering::Relaxed);
    }

    /// Accounts for the `len` bytes a completion put in buffer `bid` that
    /// nobody wants.
    #[cfg(test)]
    pub(crate) fn discard(&mut self, bid: u16, len: usize, more: bool) {
        self.fill(bid, len, more);
        if !more {
            self.kernel_done(bid);
        }
    }

    /// Accounts for a completion's `len` bytes in buffer `bid`; returns
    /// where they begin. With `more`, the kernel holds the buffer (one
    /// reference) until a completion without it.
    fn fill(&mut self, bid: u16, len: usize, more: bool) -> usize {
        let index = bid as usize;
        let start = self.offsets[index];
        self.offsets[index] += len;
        if more && !self.kernel_holds[index] {
            self.kernel_holds[index] = true;
            self.pool.refs[index].fetch_add(1, Ordering::Relaxed);
        }
        start
    }

    /// A completion named buffer `bid` but carried no data. A whole-buffer
    /// ring consumed the buffer, so it goes back; an incremental ring
    /// consumes only what it fills, so the buffer is still on the ring.
    pub(crate) fn put_back(&mut self, bid: u16) {
        if self.incremental {
            return;
        }
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

/// The buffer pool of a reactor's sessions: gathering buffers from
/// `copies`, and, on an incremental ring, joins of adjacent leases, so that
/// a message two receives brought into one buffer is not copied.
pub(crate) struct SessionBuffers<P> {
    copies: P,
    ring: Option<Arc<BufPool>>,
}

impl<P: BufferPool> SessionBuffers<P> {
    pub(crate) fn new(copies: P, ring: &BufRing) -> SessionBuffers<P> {
        SessionBuffers {
            copies,
            ring: ring.is_incremental().then(|| ring.pool().clone()),
        }
    }
}

impl<P: BufferPool> std::fmt::Debug for SessionBuffers<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBuffers")
            .field("copies", &self.copies)
            .field("joins", &self.ring.is_some())
            .finish()
    }
}

impl<P: BufferPool> BufferPool for SessionBuffers<P> {
    fn take(&self, capacity: usize) -> Vec<u8> {
        self.copies.take(capacity)
    }

    fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        self.copies.freeze(buffer)
    }

    fn recycle(&self, buffer: Vec<u8>) {
        self.copies.recycle(buffer);
    }

    fn joins(&self) -> bool {
        self.ring
            .as_ref()
            .is_some_and(|ring| !ring.pressure.load(Ordering::Relaxed))
    }

    fn join(&self, head: &Bytes, next: &Bytes) -> Option<Bytes> {
        join(self.ring.as_ref()?, head, next)
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
        let mut bufs = BufRing::new(Some(&ring), 0, 4, 4096, 16, false, waker).unwrap();
        // As if the kernel had filled buffers 0..3 in turn.
        let (small, copied) = bufs.take(0, 10, false, &HeapPool);
        assert!(copied, "a fill below copy_below is copied");
        drop(small);
        let (a, copied_a) = bufs.take(1, 100, false, &HeapPool);
        let (b, copied_b) = bufs.take(2, 100, false, &HeapPool);
        assert!(
            !copied_a && !copied_b,
            "leased while the ring is not half leased"
        );
        let (c, copied_c) = bufs.take(3, 100, false, &HeapPool);
        assert!(
            copied_c,
            "half the ring leased: copied, its buffer back at once"
        );
        assert!(bufs.may_have_free());
        assert_eq!(bufs.recycle(), 0, "the leases are still held");
        std::thread::spawn(move || drop((a, b, c))).join().unwrap();
        assert_eq!(bufs.recycle(), 2);
        let (d, copied_d) = bufs.take(0, 100, false, &HeapPool);
        assert!(!copied_d, "leased again once the buffers are back");
        drop(d);
        bufs.unregister(&ring);
    }

    /// An incremental ring: completions continue in one buffer, the buffer
    /// comes back only when the kernel is done with it and every lease
    /// dropped, and adjacent leases join into one slice.
    #[test]
    fn incremental_buffers_are_shared_by_completions_and_joined() {
        let ring = IoUring::new(8).expect("io_uring");
        let waker = Arc::new(Waker::new().unwrap());
        let mut bufs = BufRing::new(Some(&ring), 0, 4, 4096, 16, true, waker).unwrap();
        if !bufs.is_incremental() {
            eprintln!("this kernel has no IOU_PBUF_RING_INC (Linux 6.12): nothing to test");
            bufs.unregister(&ring);
            return;
        }
        let pool = bufs.pool().clone();
        // As if the kernel had put three receives into buffer 0 (two
        // connections' worth), the last one filling it.
        let (a, _) = bufs.take(0, 100, true, &HeapPool);
        let (b, _) = bufs.take(0, 200, true, &HeapPool);
        let (c, _) = bufs.take(0, 3796, false, &HeapPool);
        assert_eq!(a.as_ptr() as usize + 100, b.as_ptr() as usize);
        assert_eq!(b.as_ptr() as usize + 200, c.as_ptr() as usize);
        assert_eq!(bufs.on_ring, 3, "buffer 0 left the ring with its last fill");
        let ab = join(&pool, &a, &b).expect("adjacent leases of one buffer join");
        assert_eq!((ab.as_ptr(), ab.len()), (a.as_ptr(), 300));
        assert!(join(&pool, &b, &a).is_none(), "not in this order");
        assert!(join(&pool, &a, &c).is_none(), "not with a gap");
        assert!(
            join(&pool, &a, &Bytes::from_static(b"x")).is_none(),
            "not with a copy"
        );
        // Buffer 1 follows buffer 0 in memory, but a message that crosses
        // from one to the other is not one buffer's: no join.
        let (d, _) = bufs.take(1, 100, true, &HeapPool);
        assert_eq!(c.as_ptr() as usize + c.len(), d.as_ptr() as usize);
        assert!(join(&pool, &c, &d).is_none());
        drop((a, b));
        assert_eq!(
            bufs.recycle(),
            0,
            "the joined slice and c still hold buffer 0"
        );
        std::thread::spawn(move || drop((ab, c))).join().unwrap();
        assert_eq!(
            bufs.recycle(),
            1,
            "buffer 0 is back once its last slice dropped"
        );
        // Buffer 1: the kernel still appends to it, so dropping its only
        // lease does not bring it back; the kernel finishing it does.
        drop(d);
        assert_eq!(bufs.recycle(), 0);
        let on_ring = bufs.on_ring;
        bufs.discard(1, 50, false);
        assert_eq!(
            bufs.on_ring, on_ring,
            "pushed straight back: nothing held it"
        );
        // A completion that names a buffer but carries no data consumed
        // nothing of an incremental ring: it stays as it is.
        bufs.put_back(2);
        assert_eq!(bufs.on_ring, on_ring);

        // Half the ring held by leases: sessions stop holding partial
        // messages for a join, and start again once the leases drop.
        let sessions = SessionBuffers::new(HeapPool, &bufs);
        assert!(sessions.joins());
        let (e, _) = bufs.take(2, 4096, false, &HeapPool);
        assert!(sessions.joins(), "one of four buffers held");
        let (f, _) = bufs.take(3, 4096, false, &HeapPool);
        assert!(!sessions.joins(), "two of four held");
        drop((e, f));
        assert_eq!(bufs.recycle(), 2);
        assert!(sessions.joins());
        bufs.unregister(&ring);
    }

    /// Without a kernel ring (the epoll driver): receives go into buffers
    /// taken from the same ring, appended to one buffer when incremental,
    /// and every buffer comes back as with the kernel.
    #[test]
    fn without_a_kernel_ring_the_receiver_takes_buffers_itself() {
        let waker = Arc::new(Waker::new().unwrap());
        let size = 4 * MIN_APPEND;
        let mut bufs = BufRing::new(None, 0, 2, size, 16, true, waker).unwrap();
        let fill = |bufs: &mut BufRing, len: usize, byte: u8| {
            let (bid, space) = bufs.space().expect("a buffer is free");
            assert!(space.len() >= len);
            space[..len].fill(byte);
            (bid, bufs.received(bid, len, &HeapPool))
        };
        let (first, (a, _)) = fill(&mut bufs, 100, 1);
        let (second, (b, _)) = fill(&mut bufs, 200, 2);
        assert_eq!(first, second, "appended to the same buffer");
        assert_eq!(a.as_ptr() as usize + 100, b.as_ptr() as usize);
        assert!(a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2));
        // Fill it up to less than MIN_APPEND left: the next receive takes
        // the other buffer.
        let (_, (c, _)) = fill(&mut bufs, size - 300 - 100, 3);
        let (other, (d, copied)) = fill(&mut bufs, 100, 4);
        assert_ne!(other, first);
        assert!(
            copied,
            "half the buffers are leased: copied, as with the kernel"
        );
        assert_eq!(&d[..], &[4; 100]);
        assert_eq!(bufs.recycle(), 0, "a, b and c hold the first buffer");
        drop((a, b, c));
        assert_eq!(bufs.recycle(), 1);
        // The other buffer is still the one receives append to; the first
        // is back on the ring behind it.
        let (again, _) = bufs.space().expect("a buffer is free");
        assert_eq!(again, other);
        drop(d);
        assert_eq!(bufs.recycle(), 0, "a copy holds no buffer");
    }
}
