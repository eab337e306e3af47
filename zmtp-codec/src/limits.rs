//! The size limits a data message is held to, checked one way on every
//! path a message can take through a session.
//!
//! A message is decoded by one of three paths, depending on where the
//! chunks the transport fed happen to end: whole within one chunk (a slice
//! of it), gathered across chunks (`Reassembly`), or frame by frame (the
//! `FrameDecoder`, when a command sits between its frames). Whether a
//! stream is accepted must not depend on which one it took, so each path
//! admits a frame through [`MessageSize::admit`] as soon as the frame's
//! header is complete: the same checks, on the same sums, at the same
//! point of the stream. Fuzzing found the paths disagreeing once: a frame
//! of nearly 2^64 bytes after an empty one passed the frame-by-frame
//! path's check of its own header and body, and failed the gathering
//! path's, which also counted the bytes before it.

use crate::error::{Error, Result};
use crate::frame::{ParsedHeader, MAX_HEADER_LEN};

/// The limits of one session's received messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The most bytes in one frame's body.
    pub(crate) max_frame_size: u64,
    /// The most bytes in the bodies of one message's frames together.
    pub(crate) max_message_size: u64,
}

impl Limits {
    /// No limit but the address space.
    pub(crate) const NONE: Limits = Limits {
        max_frame_size: u64::MAX,
        max_message_size: u64::MAX,
    };
}

/// How large the data message being received is so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MessageSize {
    /// Bytes of the admitted frames' bodies.
    pub(crate) body: u64,
    /// What counts against `max_message_size`: the bodies, an empty frame
    /// counted as one byte, so that a message of endless empty frames (two
    /// bytes each on the wire) is bounded too.
    cost: u64,
    /// Bytes of the admitted frames on the wire, headers included.
    pub(crate) wire: usize,
    /// Frames admitted.
    pub(crate) frames: u32,
}

impl MessageSize {
    /// Admits the next frame of the message from its `header`: its body
    /// within `max_frame_size`, the message's wire bytes, this frame's
    /// included, within the address space (a message that could never be
    /// held in memory is refused, not truncated), and the message's bodies
    /// (an empty frame as one byte) within `max_message_size`, in that
    /// order. Returns where the frame ends, counted from the start of the
    /// message; on an error nothing is counted. All additions are checked,
    /// the frame count's too.
    pub(crate) fn admit(&mut self, header: &ParsedHeader, limits: Limits) -> Result<usize> {
        if header.body_len > limits.max_frame_size {
            return Err(Error::FrameTooLarge {
                size: header.body_len,
                limit: limits.max_frame_size,
            });
        }
        let end = usize::try_from(header.body_len)
            .ok()
            .and_then(|len| self.wire.checked_add(header.header_len)?.checked_add(len))
            .ok_or(Error::FrameTooLarge {
                size: header.body_len,
                limit: (usize::MAX - MAX_HEADER_LEN) as u64,
            })?;
        let cost = self.cost.checked_add(header.body_len.max(1));
        let (Some(cost), Some(frames)) = (
            cost.filter(|&c| c <= limits.max_message_size),
            self.frames.checked_add(1),
        ) else {
            return Err(Error::MessageTooLarge {
                size: self.cost.saturating_add(header.body_len.max(1)),
                limit: limits.max_message_size,
            });
        };
        // cost >= body, so the body's sum did not overflow either.
        self.body += header.body_len;
        self.cost = cost;
        self.wire = end;
        self.frames = frames;
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameFlags;

    fn header(body_len: u64, header_len: usize) -> ParsedHeader {
        ParsedHeader {
            flags: FrameFlags::data(true),
            body_len,
            header_len,
        }
    }

    #[test]
    fn frames_add_up_and_every_limit_is_checked() {
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 150,
        };
        let mut size = MessageSize::default();
        assert_eq!(size.admit(&header(100, 2), limits), Ok(102));
        assert!(matches!(
            size.admit(&header(101, 2), limits),
            Err(Error::FrameTooLarge {
                size: 101,
                limit: 100
            })
        ));
        assert!(matches!(
            size.admit(&header(51, 2), limits),
            Err(Error::MessageTooLarge {
                size: 151,
                limit: 150
            })
        ));
        // Refused frames count for nothing.
        assert_eq!(size.admit(&header(50, 2), limits), Ok(154));
        assert_eq!((size.body, size.wire, size.frames), (150, 154, 2));
        // Full: an empty frame more counts as a byte, and is refused.
        assert!(matches!(
            size.admit(&header(0, 2), limits),
            Err(Error::MessageTooLarge {
                size: 151,
                limit: 150
            })
        ));
    }

    #[test]
    fn endless_empty_frames_reach_the_message_limit() {
        let limits = Limits {
            max_frame_size: 100,
            max_message_size: 1000,
        };
        let mut size = MessageSize::default();
        let admitted = (0..2000)
            .take_while(|_| size.admit(&header(0, 2), limits).is_ok())
            .count();
        assert_eq!(admitted, 1000);
        assert_eq!(size.body, 0);
    }

    #[test]
    fn sums_past_the_address_space_are_refused_not_wrapped() {
        // The fuzzing finding: an empty frame, then one of 2^64 - 10 bytes.
        let mut size = MessageSize::default();
        assert_eq!(size.admit(&header(0, 2), Limits::NONE), Ok(2));
        let e = size
            .admit(&header(u64::MAX - 9, 9), Limits::NONE)
            .unwrap_err();
        assert!(matches!(e, Error::FrameTooLarge { .. }), "{e:?}");
        // Alone it would have fitted exactly.
        assert_eq!(
            MessageSize::default().admit(&header(u64::MAX - 9, 9), Limits::NONE),
            Ok(usize::MAX)
        );
        let mut size = MessageSize {
            body: u64::MAX - 1,
            cost: u64::MAX - 1,
            ..MessageSize::default()
        };
        assert!(matches!(
            size.admit(&header(2, 2), Limits::NONE),
            Err(Error::MessageTooLarge { size: u64::MAX, .. })
        ));
    }
}
