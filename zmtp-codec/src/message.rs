//! A whole multipart message, kept in its ZMTP wire encoding.
//!
//! A message that arrives inside one receive buffer is one [`Bytes`] slice of
//! that buffer: headers and bodies together. Reading a frame re-parses its
//! (already validated) header; forwarding the message re-sends the same bytes
//! as one segment; fanning it out to N peers clones one handle N times. Per
//! message that is one reference count, where per-frame handles would cost one
//! per frame.

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{FrameFlags, FrameHeader};

/// A multipart data message in wire form.
///
/// Two messages are equal when their frames are: the same frames may be
/// encoded differently (a peer may use a long size for a short frame).
#[derive(Clone)]
pub struct Message {
    /// Frames as `flags | size | body`, each with MORE except the last.
    wire: Bytes,
    frame_count: u32,
    body_len: u64,
}

impl Message {
    /// Wraps wire bytes the session has validated: `frame_count` data frames,
    /// the last without MORE, nothing after it.
    pub(crate) fn from_validated_wire(wire: Bytes, frame_count: u32, body_len: u64) -> Message {
        debug_assert!(frame_count > 0);
        Message {
            wire,
            frame_count,
            body_len,
        }
    }

    /// Builds a message by encoding `frames` (copies them; for applications
    /// and tests; the data path uses [`crate::Session::send_frames`] to send
    /// application buffers without copying).
    pub fn from_frames<B: AsRef<[u8]>>(frames: &[B]) -> Message {
        let mut builder = MessageBuilder::new();
        for f in frames {
            builder.push(f.as_ref());
        }
        builder
            .finish()
            .unwrap_or_else(|| MessageBuilder::new().push_last(b""))
    }

    /// Encodes `frames` into `arena` and returns them as a message that is
    /// a slice of it (an empty list is one empty frame).
    ///
    /// Messages encoded one after another into the same arena share its
    /// allocation and lie back to back, so making a small message costs no
    /// allocation of its own, and a transport can send a run of them with
    /// one iovec. The arena is re-used once every message cut from it is
    /// dropped.
    pub fn encode_in<B: AsRef<[u8]>>(frames: &[B], arena: &mut BytesMut) -> Message {
        const ARENA_CHUNK: usize = 64 * 1024;
        if frames.is_empty() {
            return Message::encode_in(&[b""], arena);
        }
        // Two passes over `frames` instead of collecting them: this runs per
        // message on the send path, where an allocation would cost more
        // than the encoding.
        let wire_len: usize = frames
            .iter()
            .map(|b| FrameHeader::encoded_len(b.as_ref().len()) + b.as_ref().len())
            .sum();
        arena.clear();
        if arena.capacity() < wire_len {
            arena.reserve(wire_len.max(ARENA_CHUNK));
        }
        let mut body_len = 0u64;
        for (i, body) in frames.iter().enumerate() {
            let body = body.as_ref();
            let more = i + 1 < frames.len();
            arena.put_slice(FrameHeader::new(FrameFlags::data(more), body.len()).as_bytes());
            arena.put_slice(body);
            body_len += body.len() as u64;
        }
        let wire = arena.split().freeze();
        Message::from_validated_wire(wire, frames.len() as u32, body_len)
    }

    /// Number of frames (at least 1).
    pub fn frame_count(&self) -> usize {
        self.frame_count as usize
    }

    /// Sum of the frame bodies, without headers.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// The frame bodies, in order, as byte slices.
    pub fn frames(&self) -> Frames<'_> {
        Frames { rest: &self.wire }
    }

    /// The first frame's body: what subscriptions are matched against.
    pub fn first_frame(&self) -> &[u8] {
        self.frames()
            .next()
            .expect("a message has at least one frame")
    }

    /// Frame `index` as a zero-copy slice of the message.
    pub fn frame(&self, index: usize) -> Option<Bytes> {
        self.frames()
            .nth(index)
            .map(|body| self.wire.slice_ref(body))
    }

    /// All frames as zero-copy slices.
    pub fn to_frames(&self) -> Vec<Bytes> {
        self.frames()
            .map(|body| self.wire.slice_ref(body))
            .collect()
    }

    /// The wire encoding: what a NULL or PLAIN connection sends.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// The wire bytes, taking them out of the message.
    pub fn into_wire(self) -> Bytes {
        self.wire
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.frame_count == other.frame_count && self.frames().eq(other.frames())
    }
}

impl Eq for Message {}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.frames().map(crate::error::printable))
            .finish()
    }
}

/// Iterator over a message's frame bodies.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&flags, after) = self.rest.split_first()?;
        // The wire was validated when the message was made; headers are
        // minimal or not, but always complete.
        let (len, after) = if FrameFlags::from_bits(flags).long() {
            let (size, after) = after.split_at(8);
            let size: [u8; 8] = size.try_into().expect("8 bytes");
            (u64::from_be_bytes(size) as usize, after)
        } else {
            (usize::from(after[0]), &after[1..])
        };
        let (body, rest) = after.split_at(len);
        self.rest = rest;
        Some(body)
    }
}

/// Assembles a message by copying frames into one buffer. Used for messages
/// that straddle receive buffers, decrypted frames, and [`Message::from_frames`].
#[derive(Debug, Default)]
pub struct MessageBuilder {
    wire: BytesMut,
    frame_count: u32,
    body_len: u64,
    /// Offset of the last pushed frame's flags byte, to set MORE on it when
    /// another frame follows.
    last_flags_at: Option<usize>,
}

impl MessageBuilder {
    /// An empty builder.
    pub fn new() -> MessageBuilder {
        MessageBuilder::default()
    }

    /// Whether no frame has been pushed.
    pub fn is_empty(&self) -> bool {
        self.frame_count == 0
    }

    /// Appends a frame; MORE is set on the previous one.
    pub fn push(&mut self, body: &[u8]) {
        if let Some(at) = self.last_flags_at {
            self.wire[at] |= FrameFlags::MORE;
        }
        self.last_flags_at = Some(self.wire.len());
        self.wire
            .put_slice(FrameHeader::new(FrameFlags::data(false), body.len()).as_bytes());
        self.wire.put_slice(body);
        self.frame_count += 1;
        self.body_len += body.len() as u64;
    }

    /// Appends the last frame and returns the message.
    pub fn push_last(mut self, body: &[u8]) -> Message {
        self.push(body);
        self.finish().expect("a frame was just pushed")
    }

    /// The message, or `None` if no frame was pushed.
    pub fn finish(self) -> Option<Message> {
        if self.frame_count == 0 {
            return None;
        }
        Some(Message::from_validated_wire(
            self.wire.freeze(),
            self.frame_count,
            self.body_len,
        ))
    }

    /// Takes the message built so far and leaves the builder empty.
    pub fn take(&mut self) -> Option<Message> {
        std::mem::take(self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_as_pushed() {
        let big = vec![7u8; 300];
        let m = Message::from_frames(&[&b"topic"[..], b"", &big]);
        assert_eq!(m.frame_count(), 3);
        assert_eq!(m.body_len(), 305);
        let frames: Vec<&[u8]> = m.frames().collect();
        assert_eq!(frames, vec![&b"topic"[..], b"", &big[..]]);
        assert_eq!(m.first_frame(), b"topic");
        assert_eq!(m.frame(2).unwrap().len(), 300);
        assert!(m.frame(3).is_none());
        // MORE on all but the last, LONG on the 300-byte frame.
        assert_eq!(&m.wire()[..2], &[0x01, 5]);
        assert_eq!(&m.wire()[7..9], &[0x01, 0]);
        assert_eq!(m.wire()[9], 0x02);
    }

    #[test]
    fn frame_slices_share_the_message_buffer() {
        let m = Message::from_frames(&[b"abc"]);
        let f = m.frame(0).unwrap();
        assert_eq!(f.as_ptr(), m.wire()[2..].as_ptr());
    }

    #[test]
    fn equality_is_by_frames_not_encoding() {
        let minimal = Message::from_frames(&[b"ab"]);
        let long =
            Message::from_validated_wire(Bytes::from_static(b"\x02\0\0\0\0\0\0\0\x02ab"), 1, 2);
        assert_eq!(minimal, long);
        assert_ne!(minimal, Message::from_frames(&[b"a", b"b"]));
    }

    #[test]
    fn messages_encoded_in_an_arena_lie_back_to_back() {
        let mut arena = BytesMut::new();
        let a = Message::encode_in(&[&b"topic"[..], b"x"], &mut arena);
        let b = Message::encode_in(&[b"y"], &mut arena);
        assert_eq!(a, Message::from_frames(&[&b"topic"[..], b"x"]));
        assert_eq!(b, Message::from_frames(&[b"y"]));
        assert_eq!(a.wire().as_ptr_range().end, b.wire().as_ptr());
        let big = vec![1u8; 100_000];
        let c = Message::encode_in(&[&big], &mut arena);
        assert_eq!(c.frames().next().unwrap(), &big[..]);
        assert_eq!(
            Message::encode_in::<&[u8]>(&[], &mut arena).frame_count(),
            1
        );
    }

    #[test]
    fn empty_frame_list_is_one_empty_frame() {
        let m = Message::from_frames::<&[u8]>(&[]);
        assert_eq!(m.frame_count(), 1);
        assert_eq!(m.first_frame(), b"");
    }
}
