//! Data messages that straddle fed chunks, gathered into one buffer.
//!
//! A message lying within one chunk is a slice of it (no copy). One that
//! runs past the end of its chunk is copied, once: its wire bytes, headers
//! included and not re-encoded, go into a buffer sized from the headers as
//! they arrive. The buffer comes from a [`BufferPool`], so a transport that
//! receives many large messages (Zeek log batches of 64 KiB and more) can
//! recycle them: the allocator would otherwise hand memory back to the
//! kernel on each free, and every new message would page-fault its way into
//! fresh pages, which cost more than the copy itself.

use std::fmt;

use bytes::{Buf, Bytes};

use crate::error::Result;
use crate::frame::{parse_header, FrameFlags, MAX_HEADER_LEN};
use crate::limits::{Limits, MessageSize};
use crate::message::Message;

/// Where a session gets the buffers it gathers straddling messages into.
pub trait BufferPool: Send + Sync + fmt::Debug {
    /// An empty buffer with room for at least `capacity` bytes.
    fn take(&self, capacity: usize) -> Vec<u8>;

    /// The filled buffer as `Bytes`. A pool may take it back once the last
    /// slice of it drops.
    fn freeze(&self, buffer: Vec<u8>) -> Bytes;

    /// A buffer that was outgrown or abandoned, for the pool to keep or free.
    fn recycle(&self, buffer: Vec<u8>) {
        drop(buffer);
    }

    /// Whether [`BufferPool::join`] can succeed. A session then holds a
    /// message that runs past its chunk until the next chunk arrives, which
    /// may continue it in the same memory, before it gathers a copy.
    fn joins(&self) -> bool {
        false
    }

    /// `head` and then `next` as one `Bytes`, without copying, when the
    /// pool knows they lie one after the other in one buffer (two receives
    /// into one buffer); `None` otherwise.
    fn join(&self, head: &Bytes, next: &Bytes) -> Option<Bytes> {
        let _ = (head, next);
        None
    }
}

/// Plain heap allocations, nothing kept: the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeapPool;

impl BufferPool for HeapPool {
    fn take(&self, capacity: usize) -> Vec<u8> {
        Vec::with_capacity(capacity)
    }

    fn freeze(&self, buffer: Vec<u8>) -> Bytes {
        Bytes::from(buffer)
    }
}

/// The most reserved ahead of the bytes that fill it: a peer announcing a
/// huge frame gets memory only as fast as it sends, beyond this.
const MAX_UPFRONT: usize = 1024 * 1024;

/// What [`Reassembly::feed`] got to.
#[derive(Debug)]
pub(crate) enum Progress {
    /// The input is used up; the message is not complete yet.
    NeedInput,
    /// A command frame comes next, between two frames of the message (libzmq
    /// may send a PING there). The caller decodes it, then feeds again.
    Command,
    /// The message is complete.
    Done(Message),
}

/// One data message being gathered.
#[derive(Debug)]
pub(crate) struct Reassembly {
    /// The message's wire bytes so far.
    wire: Vec<u8>,
    frames: u32,
    /// The frames admitted so far; `size.wire` is where the frame being
    /// gathered starts in `wire`.
    size: MessageSize,
    /// Where it ends and whether MORE is set, once its header is complete.
    frame: Option<(usize, bool)>,
}

impl Reassembly {
    /// Starts a message expected to need at least `size_hint` bytes.
    pub(crate) fn new(pool: &dyn BufferPool, size_hint: usize) -> Reassembly {
        Reassembly {
            wire: pool.take(size_hint.min(MAX_UPFRONT)),
            frames: 0,
            size: MessageSize::default(),
            frame: None,
        }
    }

    /// Bytes gathered so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.wire.len()
    }

    /// Takes what belongs to the message from the front of `input`. Returns
    /// the bytes copied with the progress made.
    pub(crate) fn feed(
        &mut self,
        input: &mut Bytes,
        limits: Limits,
        pool: &dyn BufferPool,
    ) -> Result<(Progress, usize)> {
        let mut copied = 0;
        loop {
            let Some((end, more)) = self.frame else {
                match self.read_header(input, limits, pool, &mut copied)? {
                    Some(progress) => return Ok((progress, copied)),
                    None => continue,
                }
            };
            let take = (end - self.wire.len()).min(input.len());
            self.append(&input[..take], Some(end), pool);
            input.advance(take);
            copied += take;
            if self.wire.len() < end {
                return Ok((Progress::NeedInput, copied));
            }
            self.frames += 1;
            if !more {
                let wire = pool.freeze(std::mem::take(&mut self.wire));
                let message = Message::from_validated_wire(wire, self.frames, self.size.body);
                return Ok((Progress::Done(message), copied));
            }
            self.frame = None;
        }
    }

    /// Reads the next frame's header. `Some` when the caller must return
    /// (input used up, or a command is next); `None` once the header is in.
    fn read_header(
        &mut self,
        input: &mut Bytes,
        limits: Limits,
        pool: &dyn BufferPool,
        copied: &mut usize,
    ) -> Result<Option<Progress>> {
        let frame_start = self.size.wire;
        let gathered = self.wire.len() - frame_start;
        let header = if gathered == 0 {
            let Some(&flags) = input.first() else {
                return Ok(Some(Progress::NeedInput));
            };
            if FrameFlags::from_bits(flags).is_command() {
                return Ok(Some(Progress::Command));
            }
            match parse_header(input, false) {
                Some(header) => {
                    self.append(&input[..header.header_len], None, pool);
                    input.advance(header.header_len);
                    *copied += header.header_len;
                    header
                }
                None => {
                    // The chunk ends inside the header: keep its start.
                    debug_assert!(input.len() < MAX_HEADER_LEN);
                    *copied += input.len();
                    self.append(&input[..], None, pool);
                    input.clear();
                    return Ok(Some(Progress::NeedInput));
                }
            }
        } else {
            // Complete a header cut by a chunk end one byte at a time, so
            // nothing past it is taken for it.
            loop {
                if let Some(header) = parse_header(&self.wire[frame_start..], false) {
                    break header;
                }
                let Some(&byte) = input.first() else {
                    return Ok(Some(Progress::NeedInput));
                };
                self.append(&[byte], None, pool);
                input.advance(1);
                *copied += 1;
            }
        };
        let end = self.size.admit(&header, limits)?;
        self.frame = Some((end, header.flags.more()));
        Ok(None)
    }

    /// Appends `bytes`, growing the buffer first if needed: to the end of
    /// the frame when that is near, else by doubling (at least
    /// [`MAX_UPFRONT`] at a time), so what is reserved stays within the
    /// bytes received plus a bounded amount.
    fn append(&mut self, bytes: &[u8], frame_end: Option<usize>, pool: &dyn BufferPool) {
        let len = self.wire.len();
        let needed = len + bytes.len();
        if needed > self.wire.capacity() {
            let doubled = self.wire.capacity().saturating_mul(2);
            let target = match frame_end {
                Some(end) if end - len <= MAX_UPFRONT => end,
                Some(end) => end.min(doubled.max(len + MAX_UPFRONT)),
                None => doubled,
            };
            let mut grown = pool.take(target.max(needed));
            grown.extend_from_slice(&self.wire);
            pool.recycle(std::mem::replace(&mut self.wire, grown));
        }
        self.wire.extend_from_slice(bytes);
    }

    /// Gives the buffer back, for a message that will never complete.
    pub(crate) fn abandon(self, pool: &dyn BufferPool) {
        pool.recycle(self.wire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::frame::{encode_frame, FrameFlags};
    use bytes::BytesMut;

    const LIMITS: Limits = Limits {
        max_frame_size: 1 << 30,
        max_message_size: 1 << 30,
    };

    fn wire(frames: &[&[u8]]) -> Bytes {
        let mut out = BytesMut::new();
        for (i, f) in frames.iter().enumerate() {
            encode_frame(FrameFlags::data(i + 1 < frames.len()), f, &mut out);
        }
        out.freeze()
    }

    /// Feeds `wire` cut at every `step` bytes; returns the message and the
    /// bytes copied.
    fn gather(wire: &Bytes, step: usize) -> (Message, usize) {
        let mut r = Reassembly::new(&HeapPool, 16);
        let mut copied = 0;
        for chunk in wire.chunks(step) {
            let mut input = Bytes::copy_from_slice(chunk);
            let (progress, n) = r.feed(&mut input, LIMITS, &HeapPool).unwrap();
            copied += n;
            if let Progress::Done(m) = progress {
                assert!(input.is_empty());
                return (m, copied);
            }
            assert!(matches!(progress, Progress::NeedInput));
        }
        panic!("message not complete after {} bytes", wire.len());
    }

    #[test]
    fn any_cut_gives_the_same_message_copied_once() {
        let big = vec![7u8; 70_000];
        let frames: [&[u8]; 4] = [b"log-write", b"node", b"", &big];
        let encoded = wire(&frames);
        for step in [1, 2, 3, 8, 9, 10, 1000, 65536, 69_999] {
            let (m, copied) = gather(&encoded, step);
            assert_eq!(
                m.to_frames(),
                frames.map(Bytes::copy_from_slice),
                "step {step}"
            );
            assert_eq!(copied, encoded.len(), "step {step}: each byte copied once");
        }
    }

    #[test]
    fn stops_at_the_message_end_and_leaves_the_rest() {
        let mut both = BytesMut::from(&wire(&[b"a", b"bc"])[..]);
        both.extend_from_slice(&wire(&[b"next"]));
        let mut input = both.freeze();
        let mut r = Reassembly::new(&HeapPool, 4);
        let (progress, _) = r.feed(&mut input, LIMITS, &HeapPool).unwrap();
        let Progress::Done(m) = progress else {
            panic!("{progress:?}")
        };
        assert_eq!(m.frame_count(), 2);
        assert_eq!(&input[..], &wire(&[b"next"])[..]);
    }

    #[test]
    fn a_command_between_frames_is_left_to_the_caller() {
        let first = wire(&[b"a", b"b"]);
        // The first frame (with MORE), then a PING's command flag.
        let mut input = Bytes::from([&first[..3], &[0x04, 0x00][..]].concat());
        let mut r = Reassembly::new(&HeapPool, 4);
        let (progress, _) = r.feed(&mut input, LIMITS, &HeapPool).unwrap();
        assert!(matches!(progress, Progress::Command), "{progress:?}");
        assert_eq!(&input[..], &[0x04, 0x00]);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn limits_are_checked_on_each_header() {
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 150,
        };
        let mut input = wire(&[&[0u8; 101]]);
        let mut r = Reassembly::new(&HeapPool, 4);
        let err = r.feed(&mut input, limits, &HeapPool).unwrap_err();
        assert!(
            matches!(err, Error::FrameTooLarge { size: 101, .. }),
            "{err}"
        );

        let mut input = wire(&[&[0u8; 100], &[0u8; 60]]);
        let mut r = Reassembly::new(&HeapPool, 4);
        let err = r.feed(&mut input, limits, &HeapPool).unwrap_err();
        assert!(
            matches!(err, Error::MessageTooLarge { size: 160, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_huge_announced_frame_reserves_only_a_bounded_amount() {
        // LONG data frame announcing 2^40 bytes, then 10 of them.
        let mut input = BytesMut::from(&[0x02u8][..]);
        input.extend_from_slice(&(1u64 << 40).to_be_bytes());
        input.extend_from_slice(&[1; 10]);
        let mut input = input.freeze();
        let limits = Limits {
            max_frame_size: u64::MAX,
            max_message_size: u64::MAX,
        };
        let mut r = Reassembly::new(&HeapPool, 19);
        let (progress, _) = r.feed(&mut input, limits, &HeapPool).unwrap();
        assert!(matches!(progress, Progress::NeedInput));
        assert!(
            r.wire.capacity() <= MAX_UPFRONT + 19,
            "{}",
            r.wire.capacity()
        );
    }
}
