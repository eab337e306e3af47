//! The send queue of a session: frame headers inline, bodies as shared
//! [`Bytes`] handles, never copied. It implements [`bytes::Buf`], so a
//! blocking caller can `write_vectored` from `chunks_vectored` and a reactor
//! can build the iovecs of one `sendmsg` from the same call.
//!
//! It also counts whole messages handed to the transport, which is what an
//! exact high-water mark needs: a slot frees the moment the last byte of a
//! message's last frame is taken.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

use crate::frame::{FrameFlags, FrameHeader};

#[derive(Debug)]
enum Chunk {
    Header(FrameHeader),
    Body(Bytes),
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Header(h) => h.as_bytes(),
            Chunk::Body(b) => b,
        }
    }
}

#[derive(Debug)]
struct Segment {
    chunk: Chunk,
    /// Taking the last byte of this segment completes a data message.
    ends_message: bool,
}

/// Bytes waiting to be written to the peer.
#[derive(Debug, Default)]
pub struct Outbox {
    segments: VecDeque<Segment>,
    /// Bytes of the front segment already taken.
    front_offset: usize,
    remaining: usize,
    completed_messages: u64,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues pre-encoded bytes (greeting, handshake commands).
    pub(crate) fn push_raw(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.remaining += bytes.len();
        self.segments.push_back(Segment {
            chunk: Chunk::Body(bytes),
            ends_message: false,
        });
    }

    /// Queues a whole message already in wire form.
    pub(crate) fn push_message_wire(&mut self, wire: Bytes) {
        self.remaining += wire.len();
        self.segments.push_back(Segment {
            chunk: Chunk::Body(wire),
            ends_message: true,
        });
    }

    /// Queues one frame; `ends_message` marks the last frame of a data message.
    pub(crate) fn push_frame(&mut self, flags: FrameFlags, body: Bytes, ends_message: bool) {
        let header = FrameHeader::new(flags, body.len());
        self.remaining += header.as_bytes().len() + body.len();
        let empty_body = body.is_empty();
        self.segments.push_back(Segment {
            chunk: Chunk::Header(header),
            ends_message: ends_message && empty_body,
        });
        if !empty_body {
            self.segments.push_back(Segment {
                chunk: Chunk::Body(body),
                ends_message,
            });
        }
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// How many chunks (iovecs) the queued bytes span.
    pub fn chunk_count(&self) -> usize {
        self.segments.len()
    }

    /// The pending bytes, chunk by chunk, in order: what
    /// [`Buf::chunks_vectored`] gives, without an `IoSlice` array to fill.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.segments.iter().enumerate().map(|(i, segment)| {
            let slice = segment.chunk.as_slice();
            if i == 0 {
                &slice[self.front_offset..]
            } else {
                slice
            }
        })
    }

    /// Whole data messages fully taken since the last call (the count is reset).
    pub fn take_completed_messages(&mut self) -> u64 {
        std::mem::take(&mut self.completed_messages)
    }

    /// How many data messages the next `bytes` bytes would complete, without
    /// taking them. A zero-copy transport uses this to count what the
    /// kernel accepted while the buffers must stay alive.
    pub fn messages_completed_by(&self, mut bytes: usize) -> u64 {
        let mut offset = self.front_offset;
        let mut completed = 0;
        for segment in &self.segments {
            let left = segment.chunk.as_slice().len() - offset;
            // As `advance` does: it stops once no byte is left to take.
            if bytes == 0 || bytes < left {
                break;
            }
            bytes -= left;
            offset = 0;
            completed += u64::from(segment.ends_message);
        }
        completed
    }
}

impl Buf for Outbox {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        match self.segments.front() {
            Some(s) => &s.chunk.as_slice()[self.front_offset..],
            None => &[],
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, slice) in dst.iter_mut().zip(self.chunks()) {
            *slot = IoSlice::new(slice);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the outbox");
        self.remaining -= cnt;
        while cnt > 0 {
            let front = self
                .segments
                .front()
                .expect("remaining counted these bytes");
            let left = front.chunk.as_slice().len() - self.front_offset;
            if cnt < left {
                self.front_offset += cnt;
                return;
            }
            cnt -= left;
            self.front_offset = 0;
            let done = self.segments.pop_front().expect("front exists");
            if done.ends_message {
                self.completed_messages += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_completed_by_predicts_advance() {
        let build = || {
            let mut o = Outbox::new();
            o.push_raw(Bytes::from_static(b"greeting"));
            o.push_frame(FrameFlags::data(true), Bytes::from_static(b"ab"), false);
            o.push_frame(FrameFlags::data(false), Bytes::new(), true);
            o.push_message_wire(Bytes::from_static(b"\x00\x01z"));
            o.push_frame(FrameFlags::data(false), Bytes::from_static(b"xyz"), true);
            o
        };
        let total = build().remaining();
        for first in 0..=total {
            for n in 0..=total - first {
                let mut o = build();
                o.advance(first); // mid-segment starts too
                o.take_completed_messages();
                let predicted = o.messages_completed_by(n);
                o.advance(n);
                assert_eq!(predicted, o.take_completed_messages(), "{n} after {first}");
            }
        }
        assert_eq!(build().messages_completed_by(total), 3);
    }

    #[test]
    fn drains_in_order_and_counts_messages_at_their_last_byte() {
        let mut o = Outbox::new();
        let body = Bytes::from_static(b"hello");
        o.push_frame(FrameFlags::data(true), body.clone(), false);
        o.push_frame(FrameFlags::data(false), Bytes::new(), true);
        o.push_frame(FrameFlags::data(false), body.clone(), true);
        assert_eq!(o.remaining(), 7 + 2 + 7);
        let mut iov = [IoSlice::new(&[]); 8];
        assert_eq!(o.chunks_vectored(&mut iov), 5);
        assert_eq!(
            iov[1].as_ptr(),
            body.as_ptr(),
            "body is the caller's buffer, not a copy"
        );

        o.advance(8); // into the second message's header
        assert_eq!(o.take_completed_messages(), 0);
        o.advance(1);
        assert_eq!(o.take_completed_messages(), 1);
        o.advance(6);
        assert_eq!(
            o.take_completed_messages(),
            0,
            "one byte of the body is still queued"
        );
        assert_eq!(o.chunk(), b"o");
        // chunks() starts where advance left off, as chunks_vectored does.
        o.push_frame(FrameFlags::data(false), body.clone(), true);
        let chunks: Vec<&[u8]> = o.chunks().collect();
        assert_eq!(chunks, [&b"o"[..], &[0, 5], b"hello"]);
        let mut iov = [IoSlice::new(&[]); 2];
        assert_eq!(o.chunks_vectored(&mut iov), 2, "no more than dst holds");
        assert_eq!(&*iov[1], &[0, 5]);
        o.advance(1 + 2 + 5);
        assert_eq!(o.take_completed_messages(), 2);
        assert!(o.is_empty() && o.chunk().is_empty());
    }

    #[test]
    fn copy_to_bytes_gives_the_wire_form() {
        let mut o = Outbox::new();
        o.push_raw(Bytes::from_static(b"\xff"));
        o.push_frame(
            FrameFlags::command(),
            Bytes::from_static(b"\x04PONG"),
            false,
        );
        let n = o.remaining();
        assert_eq!(&o.copy_to_bytes(n)[..], b"\xff\x04\x05\x04PONG");
    }
}
