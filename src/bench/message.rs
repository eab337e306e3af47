//! Benchmark messages, encoded once: a block of them is built at start,
//! and each send only writes the header fields (numbers and times) into
//! it before handing the whole block to the kernel.

use super::sequence::Header;
use super::wire::encode_frame;

/// The shape of every message: Zeek's events are four frames (topic,
/// sender, format, payload).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Frames per message, at least 2.
    pub(crate) frames: usize,
    /// Bytes in the last frame (the payload), at least the header's 24
    /// when there are only two frames.
    pub(crate) size: usize,
}

/// Messages per block: about 64 KiB of them (one write's worth), at least
/// one cycle of `topics`.
pub(crate) fn block_len(shape: &Shape, topics: usize) -> usize {
    let one = shape.size + 64 + 16 * shape.frames;
    let n = (64 * 1024 / one).clamp(1, 4096);
    n.div_ceil(topics) * topics
}

/// A block of encoded messages and where each one's header lies.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) bytes: Vec<u8>,
    /// Where each message's header lies (none for replayed messages).
    headers: Vec<usize>,
    /// Where each message starts, and the end.
    starts: Vec<usize>,
}

/// The payload of the middle frames, as Zeek's sender and format frames.
const MIDDLE: &[u8] = b"zeek-bin";

impl Block {
    /// `count` messages whose topics cycle through `topics`.
    pub(crate) fn new(shape: &Shape, topics: &[Vec<u8>], count: usize) -> Block {
        let mut bytes = Vec::new();
        let mut headers = Vec::with_capacity(count);
        let mut starts = Vec::with_capacity(count + 1);
        let payload = vec![0x5a; shape.size];
        for i in 0..count {
            let topic = &topics[i % topics.len()];
            starts.push(bytes.len());
            encode_frame(&mut bytes, topic, true);
            let header_body = if shape.frames == 2 {
                shape.size.max(super::wire::PROBE)
            } else {
                super::wire::PROBE
            };
            // Filled in at each send; zeros until then.
            let header = vec![0u8; header_body];
            // The header frame's body starts after its flags and size.
            let prefix = if header_body > 255 { 9 } else { 2 };
            headers.push(bytes.len() + prefix);
            encode_frame(&mut bytes, &header, shape.frames > 2);
            for f in 2..shape.frames {
                let last = f + 1 == shape.frames;
                let body: &[u8] = if last { &payload } else { MIDDLE };
                encode_frame(&mut bytes, body, !last);
            }
        }
        starts.push(bytes.len());
        Block {
            bytes,
            headers,
            starts,
        }
    }

    /// Recorded messages as they are (no header is stamped into them).
    pub(crate) fn from_messages(messages: &[Vec<Vec<u8>>]) -> Block {
        let mut bytes = Vec::new();
        let mut starts = Vec::with_capacity(messages.len() + 1);
        for frames in messages {
            starts.push(bytes.len());
            for (i, frame) in frames.iter().enumerate() {
                encode_frame(&mut bytes, frame, i + 1 < frames.len());
            }
        }
        starts.push(bytes.len());
        Block {
            bytes,
            headers: Vec::new(),
            starts,
        }
    }

    /// Messages in the block.
    pub(crate) fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Writes message `i`'s header.
    pub(crate) fn stamp(&mut self, i: usize, header: &Header) {
        let at = self.headers[i];
        header.encode(&mut self.bytes[at..at + super::wire::PROBE]);
    }

    /// The bytes of messages `first..first + n`.
    pub(crate) fn range(&self, first: usize, n: usize) -> &[u8] {
        &self.bytes[self.starts[first]..self.starts[first + n]]
    }
}

#[cfg(test)]
mod tests {
    use super::super::sequence::SequenceCheck;
    use super::super::wire::FrameWalker;
    use super::*;

    #[test]
    fn a_block_walks_back_into_its_headers_in_any_prefix() {
        for (frames, size) in [(4, 64), (2, 10), (2, 400), (3, 4096), (4, 0)] {
            let topics: Vec<Vec<u8>> = vec![b"zeek/a/".to_vec(), b"zeek/bb/".to_vec()];
            let mut block = Block::new(&Shape { frames, size }, &topics, 10);
            for i in 0..10 {
                block.stamp(
                    i,
                    &Header {
                        publisher: 0,
                        topic: (i % 2) as u32,
                        seq: (i / 2) as u64,
                        sent_ns: 7,
                    },
                );
            }
            for n in [0, 1, 5, 10] {
                // Any window: from an odd start too.
                let mut walker = FrameWalker::new(1);
                let mut seen = 0;
                walker.walk(block.range(10 - n, n), |_| seen += 1);
                assert_eq!(seen, n);
                let mut walker = FrameWalker::new(1);
                let mut check = SequenceCheck::new(1, 2);
                walker.walk(block.range(0, n), |p| {
                    check.record(p);
                });
                assert_eq!(
                    check.counts.delivered, n as u64,
                    "{frames} frames, {size} B"
                );
                assert_eq!(check.counts.gaps + check.counts.foreign, 0);
            }
        }
    }
}
