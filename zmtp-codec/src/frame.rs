//! ZMTP frames: `flags(1) | size(1 or 8, big-endian) | body` (RFC 37 §"Framing").
//!
//! [`FrameDecoder`] takes the stream as a sequence of [`Bytes`] chunks (what a
//! reactor receives into its buffers) and hands out each frame body as a slice
//! of the chunk it arrived in: no copy, only a reference count. Only a frame
//! that straddles two chunks is copied into a buffer of its own, and those
//! bytes are counted so the I/O layer can report them.

use bytes::{Bytes, BytesMut};

use crate::limits::{Limits, MessageSize};

use crate::error::Result;

/// Frame flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(u8);

impl FrameFlags {
    /// More frames of this message follow.
    pub const MORE: u8 = 0x01;
    /// The size field is 8 bytes.
    pub const LONG: u8 = 0x02;
    /// This is a command frame.
    pub const COMMAND: u8 = 0x04;

    /// Flags from the wire byte. Reserved bits are kept but ignored, as libzmq does.
    pub const fn from_bits(bits: u8) -> FrameFlags {
        FrameFlags(bits)
    }
    /// The wire byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Flags of a data frame.
    pub const fn data(more: bool) -> FrameFlags {
        FrameFlags(if more { Self::MORE } else { 0 })
    }
    /// Flags of a command frame.
    pub const fn command() -> FrameFlags {
        FrameFlags(Self::COMMAND)
    }
    /// MORE is set.
    pub const fn more(self) -> bool {
        self.0 & Self::MORE != 0
    }
    /// COMMAND is set.
    pub const fn is_command(self) -> bool {
        self.0 & Self::COMMAND != 0
    }
    /// LONG is set.
    pub const fn long(self) -> bool {
        self.0 & Self::LONG != 0
    }
}

/// One decoded frame: its flags and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Flags as received (LONG says only how the size was encoded).
    pub flags: FrameFlags,
    /// The body, a slice of the received buffer where possible.
    pub body: Bytes,
}

impl Frame {
    /// A data frame.
    pub fn data(body: Bytes, more: bool) -> Frame {
        Frame {
            flags: FrameFlags::data(more),
            body,
        }
    }
    /// A command frame; `body` starts with the name length byte.
    pub fn command(body: Bytes) -> Frame {
        Frame {
            flags: FrameFlags::command(),
            body,
        }
    }
    /// More frames of this message follow.
    pub fn more(&self) -> bool {
        self.flags.more()
    }
    /// This is a command frame.
    pub fn is_command(&self) -> bool {
        self.flags.is_command()
    }
}

/// Longest frame header: flags + 8-byte size.
pub const MAX_HEADER_LEN: usize = 9;

/// An encoded frame header, kept inline so a send queue needs no allocation for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    buf: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl FrameHeader {
    /// The header for a body of `body_len` bytes. LONG is set iff the body is
    /// longer than 255 bytes, exactly as libzmq encodes (and `flags`' own LONG
    /// bit is ignored).
    pub fn new(flags: FrameFlags, body_len: usize) -> FrameHeader {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let flags = flags.bits() & !FrameFlags::LONG;
        if body_len > 255 {
            buf[0] = flags | FrameFlags::LONG;
            buf[1..9].copy_from_slice(&(body_len as u64).to_be_bytes());
            FrameHeader { buf, len: 9 }
        } else {
            buf[0] = flags;
            buf[1] = body_len as u8;
            FrameHeader { buf, len: 2 }
        }
    }

    /// The length of the header [`FrameHeader::new`] makes for a body of
    /// `body_len` bytes: 2, or 9 with LONG.
    pub fn encoded_len(body_len: usize) -> usize {
        if body_len > 255 {
            MAX_HEADER_LEN
        } else {
            2
        }
    }

    /// The header bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for FrameHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameHeader({:02x?})", self.as_bytes())
    }
}

/// Appends a whole frame (header and body) to `out`. For handshake commands
/// and tests; the data path uses [`crate::Outbox`], which does not copy bodies.
pub fn encode_frame(flags: FrameFlags, body: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(FrameHeader::new(flags, body.len()).as_bytes());
    out.extend_from_slice(body);
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedHeader {
    pub(crate) flags: FrameFlags,
    pub(crate) body_len: u64,
    pub(crate) header_len: usize,
}

/// Parses a header from the start of `bytes`. `None`: more bytes needed.
///
/// With `repair_long_commands`, a command header `04 00` followed by
/// `00 00 00 00 00 01 0x` is read as an 8-byte size of 0x10x: libzmq 4.3.4
/// writes SUBSCRIBE/CANCEL commands of 256–265 bytes that way, without the
/// LONG bit (semantics document §4.2). No libzmq peer sends an empty command
/// followed by those bytes otherwise.
pub(crate) fn parse_header(bytes: &[u8], repair_long_commands: bool) -> Option<ParsedHeader> {
    let &flags_byte = bytes.first()?;
    let flags = FrameFlags::from_bits(flags_byte);
    if flags.long() {
        let size: [u8; 8] = bytes.get(1..9)?.try_into().ok()?;
        return Some(ParsedHeader {
            flags,
            body_len: u64::from_be_bytes(size),
            header_len: 9,
        });
    }
    let &size = bytes.get(1)?;
    if size == 0 && repair_long_commands && flags.is_command() {
        let rest = bytes.get(2..9)?;
        if rest[..5] == [0, 0, 0, 0, 0] && rest[5] == 1 && rest[6] <= 9 {
            return Some(ParsedHeader {
                flags,
                body_len: 0x100 + u64::from(rest[6]),
                header_len: 9,
            });
        }
    }
    Some(ParsedHeader {
        flags,
        body_len: u64::from(size),
        header_len: 2,
    })
}

/// A frame together with its header bytes, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The flags byte.
    pub flags: FrameFlags,
    /// Header followed by body, contiguous.
    pub wire: Bytes,
    /// Length of the header within `wire` (2 or 9).
    pub header_len: usize,
}

impl RawFrame {
    /// The body, sharing the buffer (moving the handle, no reference count).
    pub fn into_frame(mut self) -> Frame {
        bytes::Buf::advance(&mut self.wire, self.header_len);
        Frame {
            flags: self.flags,
            body: self.wire,
        }
    }
}

/// Incremental, zero-copy frame decoder.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    /// The data message whose frames are being decoded: admitted (and
    /// held to the limits) frame by frame as each header is complete, as
    /// the session's other paths admit them.
    message: MessageSize,
    /// Whether data frames add up to messages; off, each is admitted alone
    /// (a CURVE session's outer frames, whose plaintext the session counts).
    count_messages: bool,
    repair_long_commands: bool,
    /// Bytes of a header that straddles two chunks.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// A frame that straddles chunks, being gathered (header included).
    partial: Option<PartialFrame>,
    /// Bytes copied because frames straddled chunks.
    copied_bytes: u64,
}

#[derive(Debug)]
struct PartialFrame {
    flags: FrameFlags,
    header_len: usize,
    wire: BytesMut,
    remaining: usize,
}

/// The largest buffer reserved up front for a straddling frame: a peer that
/// announces a huge frame gets memory only as fast as it sends bytes.
const MAX_UPFRONT_RESERVE: usize = 64 * 1024;

impl FrameDecoder {
    /// A decoder refusing frames with bodies over `max_frame_size` bytes.
    pub fn new(max_frame_size: u64) -> FrameDecoder {
        FrameDecoder {
            limits: Limits {
                max_frame_size,
                ..Limits::NONE
            },
            message: MessageSize::default(),
            count_messages: true,
            repair_long_commands: false,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            partial: None,
            copied_bytes: 0,
        }
    }

    /// Turns on the repair of libzmq 4.3.4's unflagged long SUBSCRIBE/CANCEL
    /// commands. Sessions that receive subscriptions enable it.
    pub fn set_repair_long_commands(&mut self, on: bool) {
        self.repair_long_commands = on;
    }

    /// Whether the libzmq 4.3.4 repair is on.
    pub fn repairs_long_commands(&self) -> bool {
        self.repair_long_commands
    }

    /// The configured frame size limit.
    pub fn max_frame_size(&self) -> u64 {
        self.limits.max_frame_size
    }

    /// Refuses a data frame as soon as its header shows the message's
    /// frames together over `max` bytes (default: no limit).
    pub fn set_max_message_size(&mut self, max: u64) {
        self.limits.max_message_size = max;
    }

    /// Admits each data frame alone instead of adding frames up to
    /// messages: for frames that carry a message's frames sealed (CURVE),
    /// which the caller counts once opened.
    pub fn set_count_messages(&mut self, on: bool) {
        self.count_messages = on;
    }

    /// The next data frame starts a message. A session says so at every
    /// message boundary it sees, so that nothing counted before (a
    /// handshake's frames, a message it took whole by another path) is
    /// carried into the message.
    pub fn start_message(&mut self) {
        self.message = MessageSize::default();
    }

    /// Bytes copied so far because a frame straddled two chunks.
    pub fn copied_bytes(&self) -> u64 {
        self.copied_bytes
    }

    /// Whether a frame is partly decoded (bytes are held inside the decoder).
    pub fn has_partial(&self) -> bool {
        self.header_len > 0 || self.partial.is_some()
    }

    /// Decodes the next frame, consuming its bytes from the front of `input`.
    ///
    /// Returns `Ok(None)` once `input` is used up; bytes of an incomplete
    /// frame are then held inside the decoder until the next chunk arrives.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Frame>> {
        Ok(self.decode_raw(input)?.map(RawFrame::into_frame))
    }

    /// Like [`FrameDecoder::decode`], but keeps the header with the body.
    pub fn decode_raw(&mut self, input: &mut Bytes) -> Result<Option<RawFrame>> {
        let frame = self.decode_frame(input)?;
        if let Some(f) = &frame {
            if !f.flags.is_command() && !f.flags.more() {
                // The message's last frame: the next data frame starts one.
                self.message = MessageSize::default();
            }
        }
        Ok(frame)
    }

    fn decode_frame(&mut self, input: &mut Bytes) -> Result<Option<RawFrame>> {
        if let Some(partial) = self.partial.as_mut() {
            let take = partial.remaining.min(input.len());
            partial.wire.extend_from_slice(&input[..take]);
            bytes::Buf::advance(input, take);
            self.copied_bytes += take as u64;
            partial.remaining -= take;
            if partial.remaining > 0 {
                return Ok(None);
            }
            let partial = self.partial.take().expect("partial frame checked above");
            return Ok(Some(RawFrame {
                flags: partial.flags,
                wire: partial.wire.freeze(),
                header_len: partial.header_len,
            }));
        }

        let (header, header_in_input) = if self.header_len == 0 {
            // Fast path: the header lies in this chunk.
            match parse_header(input, self.repair_long_commands) {
                Some(h) => (h, true),
                None => {
                    self.gather_header(input);
                    return Ok(None);
                }
            }
        } else {
            match self.complete_header(input) {
                Some(h) => {
                    // The repair's look-ahead may have stashed bytes past
                    // this header (the start of the next frame, after an
                    // empty command): they go back in front of the input.
                    if self.header_len > h.header_len {
                        let extra = &self.header[h.header_len..self.header_len];
                        let mut joined = BytesMut::with_capacity(extra.len() + input.len());
                        joined.extend_from_slice(extra);
                        joined.extend_from_slice(input);
                        self.copied_bytes += joined.len() as u64;
                        *input = joined.freeze();
                        self.header_len = h.header_len;
                    }
                    (h, false)
                }
                None => return Ok(None),
            }
        };

        // A data frame is admitted into its message (the limits, and
        // whether the message fits in the address space); a command, or a
        // sealed frame, alone.
        let total = if header.flags.is_command() || !self.count_messages {
            // A frame alone: its size, not a message's.
            let alone = Limits {
                max_message_size: u64::MAX,
                ..self.limits
            };
            MessageSize::default().admit(&header, alone)?
        } else {
            let start = self.message.wire;
            self.message.admit(&header, self.limits)? - start
        };
        let body_len = total - header.header_len;
        if header_in_input && input.len() >= total {
            return Ok(Some(RawFrame {
                flags: header.flags,
                wire: input.split_to(total),
                header_len: header.header_len,
            }));
        }
        // The frame straddles chunks: gather header and body into one buffer.
        let header_bytes: &[u8] = if header_in_input {
            &input[..header.header_len]
        } else {
            &self.header[..header.header_len]
        };
        let mut wire = BytesMut::with_capacity(
            total.min(MAX_UPFRONT_RESERVE.max(input.len() + header.header_len)),
        );
        wire.extend_from_slice(header_bytes);
        if header_in_input {
            bytes::Buf::advance(input, header.header_len);
        }
        self.header_len = 0;
        let take = body_len.min(input.len());
        wire.extend_from_slice(&input[..take]);
        bytes::Buf::advance(input, take);
        self.copied_bytes += (header.header_len + take) as u64;
        if take == body_len {
            return Ok(Some(RawFrame {
                flags: header.flags,
                wire: wire.freeze(),
                header_len: header.header_len,
            }));
        }
        self.partial = Some(PartialFrame {
            flags: header.flags,
            header_len: header.header_len,
            wire,
            remaining: body_len - take,
        });
        Ok(None)
    }

    /// Stashes the start of a header that the chunk cuts off.
    fn gather_header(&mut self, input: &mut Bytes) {
        let n = input.len();
        debug_assert!(n < MAX_HEADER_LEN);
        self.header[..n].copy_from_slice(input);
        self.header_len = n;
        input.clear();
    }

    /// Adds bytes to a stashed header one at a time until it parses, so no
    /// body byte is taken into the header buffer. Leaves `header_len` set:
    /// the caller copies the header out and then resets it.
    fn complete_header(&mut self, input: &mut Bytes) -> Option<ParsedHeader> {
        loop {
            if let Some(h) =
                parse_header(&self.header[..self.header_len], self.repair_long_commands)
            {
                return Some(h);
            }
            let (&b, _) = input.split_first()?;
            self.header[self.header_len] = b;
            self.header_len += 1;
            bytes::Buf::advance(input, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn decode_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Result<Vec<Frame>> {
        let mut frames = Vec::new();
        for chunk in chunks {
            let mut input = Bytes::copy_from_slice(chunk);
            while let Some(f) = decoder.decode(&mut input)? {
                frames.push(f);
            }
            assert!(input.is_empty());
        }
        Ok(frames)
    }

    #[test]
    fn header_is_long_iff_body_over_255() {
        assert_eq!(
            FrameHeader::new(FrameFlags::data(false), 0).as_bytes(),
            [0, 0]
        );
        assert_eq!(
            FrameHeader::new(FrameFlags::data(true), 255).as_bytes(),
            [1, 255]
        );
        assert_eq!(
            FrameHeader::new(FrameFlags::data(false), 256).as_bytes(),
            [2, 0, 0, 0, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            FrameHeader::new(FrameFlags::command(), 300).as_bytes(),
            [6, 0, 0, 0, 0, 0, 0, 1, 44]
        );
    }

    #[test]
    fn decodes_libzmq_test_vector_frames() {
        // Data "ALOL" and a legacy subscription from libzmq's test_mock_pub_sub.
        let mut d = FrameDecoder::new(u64::MAX);
        let frames = decode_all(&mut d, &[b"\x00\x04ALOL\x00\x02\x01A"]).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::data(Bytes::from_static(b"ALOL"), false),
                Frame::data(Bytes::from_static(b"\x01A"), false),
            ]
        );
        assert_eq!(d.copied_bytes(), 0);
    }

    #[test]
    fn frames_inside_one_chunk_are_slices_of_it() {
        let mut wire = BytesMut::new();
        encode_frame(FrameFlags::data(true), b"hello", &mut wire);
        encode_frame(FrameFlags::data(false), &[7u8; 300], &mut wire);
        let mut input = wire.freeze();
        let base = input.as_ptr() as usize;
        let mut d = FrameDecoder::new(1 << 20);
        let a = d.decode(&mut input).unwrap().unwrap();
        let b = d.decode(&mut input).unwrap().unwrap();
        assert_eq!(a.body.as_ptr() as usize, base + 2);
        assert_eq!(b.body.as_ptr() as usize, base + 2 + 5 + 9);
        assert!(a.more() && !b.more());
        assert_eq!(d.copied_bytes(), 0);
    }

    #[test]
    fn straddling_frames_are_reassembled_and_counted() {
        let mut wire = BytesMut::new();
        encode_frame(FrameFlags::data(false), &[1u8; 1000], &mut wire);
        let wire = wire.freeze();
        let mut d = FrameDecoder::new(1 << 20);
        // Split inside the 9-byte header and inside the body.
        let frames = decode_all(&mut d, &[&wire[..4], &wire[4..500], &wire[500..]]).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0].body[..], &[1u8; 1000][..]);
        assert_eq!(d.copied_bytes(), 1009, "body and header");
        assert!(!d.has_partial());
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let mut d = FrameDecoder::new(100);
        let err = decode_all(
            &mut d,
            &[&[0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::FrameTooLarge {
                size: 0x7fff_ffff_ffff_ffff,
                limit: 100
            }
        );
        let mut d = FrameDecoder::new(100);
        assert_eq!(
            decode_all(&mut d, &[&[0x00, 101]]).unwrap_err(),
            Error::FrameTooLarge {
                size: 101,
                limit: 100
            }
        );
    }

    #[test]
    fn sizes_near_the_address_space_limit_are_refused_without_overflow() {
        let mut d = FrameDecoder::new(u64::MAX);
        let err = decode_all(
            &mut d,
            &[&[0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::FrameTooLarge { size: u64::MAX, .. }),
            "{err}"
        );
    }

    #[test]
    fn tolerates_what_libzmq_tolerates() {
        // Reserved bits, non-minimal LONG size, COMMAND+MORE.
        let mut d = FrameDecoder::new(u64::MAX);
        let frames = decode_all(
            &mut d,
            &[
                &[0x08, 1, b'x'],
                &[0x02, 0, 0, 0, 0, 0, 0, 0, 1, b'y'],
                &[0x05, 1, b'z'],
            ],
        )
        .unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[1].body[..], b"y");
        assert!(frames[2].is_command() && frames[2].more());
    }

    #[test]
    fn repairs_libzmq_434_unflagged_long_subscribe() {
        let topic = [b't'; 250];
        let mut wire = vec![0x04, 0, 0, 0, 0, 0, 0, 1, 4, 9];
        wire.extend_from_slice(b"SUBSCRIBE");
        wire.extend_from_slice(&topic);
        let mut d = FrameDecoder::new(u64::MAX);
        d.set_repair_long_commands(true);
        // Byte by byte, to exercise the straddling path too.
        let chunks: Vec<&[u8]> = wire.chunks(1).collect();
        let frames = decode_all(&mut d, &chunks).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].body.len(), 260);
        assert_eq!(&frames[0].body[..10], b"\x09SUBSCRIBE");
        // Without the repair the same bytes are an empty command and junk.
        let mut d = FrameDecoder::new(u64::MAX);
        let first = d.decode(&mut Bytes::from(wire)).unwrap().unwrap();
        assert!(first.body.is_empty());
    }

    #[test]
    fn empty_command_without_the_434_pattern_stays_empty() {
        let mut d = FrameDecoder::new(u64::MAX);
        d.set_repair_long_commands(true);
        let frames = decode_all(&mut d, &[&[0x04, 0x00, 0x00, 0x01, b'a', 0, 0, 0, 0]]).unwrap();
        assert_eq!(frames[0], Frame::command(Bytes::new()));
        assert_eq!(frames[1], Frame::data(Bytes::from_static(b"a"), false));
    }
}
