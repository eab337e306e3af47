//! A session of any socket type fed arbitrary bytes, optionally after a valid
//! greeting and READY so the fuzzer reaches the traffic phase quickly. It must
//! never panic, and chunking must not change the events or the verdict.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zmtp_codec::frame::encode_frame;
use zmtp_codec::{Command, Event, FrameFlags, Greeting, MechanismName, Metadata, Session, SessionConfig, SocketType};

fn run(local: SocketType, chunks: &[Bytes], unlimited: bool) -> (Vec<Event>, bool) {
    let mut config = SessionConfig::new(local);
    (config.max_frame_size, config.max_message_size) = if unlimited { (u64::MAX, u64::MAX) } else { (1 << 20, 1 << 21) };
    let mut session = Session::new(config);
    let mut events = Vec::new();
    for chunk in chunks {
        session.feed(chunk.clone());
        loop {
            match session.poll() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    // First byte: socket type, prefix choice and chunk length; the last
    // input byte, when odd, lifts the size limits.
    let Some((&control, rest)) = data.split_first() else { return };
    let unlimited = rest.last().is_some_and(|b| b & 1 == 1);
    let local = SocketType::ALL[usize::from(control & 0x0f) % SocketType::ALL.len()];
    let mut stream = BytesMut::new();
    if control & 0x10 != 0 {
        stream.extend_from_slice(&Greeting::new(1, MechanismName::NULL, false).encode());
        if control & 0x20 != 0 {
            let peer = SocketType::ALL.into_iter().find(|p| local.accepts(*p)).expect("every type has a peer");
            let mut md = Metadata::new();
            md.push("Socket-Type", peer.as_str()).expect("valid");
            encode_frame(FrameFlags::command(), &Command::Ready(md).encode(), &mut stream);
        }
    }
    stream.extend_from_slice(rest);
    let stream = stream.freeze();
    let whole = run(local, std::slice::from_ref(&stream), unlimited);
    let step = usize::from(control >> 6) * 7 + 1;
    let chunks: Vec<Bytes> = (0..stream.len())
        .step_by(step)
        .map(|i| stream.slice(i..(i + step).min(stream.len())))
        .collect();
    let chunked = run(local, &chunks, unlimited);
    assert_eq!(whole, chunked, "chunking changed the events");
});
