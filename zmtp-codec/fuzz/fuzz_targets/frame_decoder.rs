//! The frame decoder on arbitrary bytes: it must never panic, and decoding
//! the stream in one piece or cut into chunks must give the same frames.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zmtp_codec::{Frame, FrameDecoder};

fn decode(chunks: &[Bytes], repair: bool, limit: u64) -> (Vec<Frame>, bool) {
    let mut decoder = FrameDecoder::new(limit);
    decoder.set_repair_long_commands(repair);
    let mut frames = Vec::new();
    for chunk in chunks {
        let mut chunk = chunk.clone();
        loop {
            match decoder.decode(&mut chunk) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    // First byte: chunk length (1..=32), whether the 4.3.4 repair is on, and
    // whether sizes are unlimited (to reach the arithmetic near u64::MAX).
    let Some((&control, stream)) = data.split_first() else { return };
    let repair = control & 0x80 != 0;
    let limit = if control & 0x40 != 0 { u64::MAX } else { 1 << 20 };
    let step = usize::from(control & 0x1f) + 1;
    let stream = Bytes::copy_from_slice(stream);
    let whole = decode(std::slice::from_ref(&stream), repair, limit);
    let chunks: Vec<Bytes> = (0..stream.len())
        .step_by(step)
        .map(|i| stream.slice(i..(i + step).min(stream.len())))
        .collect();
    let chunked = decode(&chunks, repair, limit);
    // With the repair on too: a `04 00` at a chunk end waits for the bytes
    // that tell, and gives back those past the header once it knows.
    assert_eq!(whole, chunked, "chunking changed the decoded frames");
});
