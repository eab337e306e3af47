//! Codec micro-benchmarks: decoding and encoding 4-frame messages, the shape of
//! Zeek's cluster messages (topic, node, serializer, payload).
//!
//! Run: `cargo bench --bench codec`. Throughput is reported in messages/s.

use std::hint::black_box;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zmtp_codec::frame::encode_frame;
use zmtp_codec::{Event, FrameDecoder, FrameFlags, Outbox, Session, SessionConfig, SocketType};

/// Messages per benchmark iteration: enough to amortise the loop, small
/// enough to stay in cache like a receive buffer would.
const BATCH: usize = 1000;
const FRAMES: usize = 4;

fn message(payload: usize) -> [Bytes; FRAMES] {
    [
        Bytes::from_static(b"zeek.cluster.node.worker-1."),
        Bytes::from_static(b"worker-1"),
        Bytes::from_static(b"broker-bin-v1"),
        Bytes::from(vec![0x5a; payload]),
    ]
}

fn wire(payload: usize) -> Bytes {
    let mut out = BytesMut::new();
    let m = message(payload);
    for _ in 0..BATCH {
        for (i, f) in m.iter().enumerate() {
            encode_frame(FrameFlags::data(i + 1 < FRAMES), f, &mut out);
        }
    }
    out.freeze()
}

/// A PULL session that has finished its handshake with a PUSH peer.
fn ready_pair() -> (Session, Session) {
    let mut push = Session::new(SessionConfig::new(SocketType::Push));
    let mut pull = Session::new(SessionConfig::new(SocketType::Pull));
    for _ in 0..3 {
        let n = push.outbox().remaining();
        pull.feed(push.outbox().copy_to_bytes(n));
        while pull.poll().expect("handshake").is_some() {}
        let n = pull.outbox().remaining();
        push.feed(pull.outbox().copy_to_bytes(n));
        while push.poll().expect("handshake").is_some() {}
    }
    assert!(push.is_ready() && pull.is_ready());
    (push, pull)
}

/// Hands everything queued to a pretend vectored write, as a reactor would,
/// 256 iovecs per call (well under IOV_MAX). Returns the messages completed.
fn write_out(outbox: &mut Outbox) -> u64 {
    while outbox.has_remaining() {
        let mut iov = [IoSlice::new(&[]); 256];
        let n = outbox.chunks_vectored(&mut iov);
        let bytes: usize = iov[..n].iter().map(|s| s.len()).sum();
        black_box(&iov[..n]);
        outbox.advance(bytes);
    }
    outbox.take_completed_messages()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_4_frame_messages");
    group.throughput(Throughput::Elements(BATCH as u64));
    for payload in [64usize, 4096] {
        let input = wire(payload);
        group.bench_with_input(
            BenchmarkId::new("frame_decoder", payload),
            &input,
            |b, input| {
                let mut decoder = FrameDecoder::new(u64::MAX);
                b.iter(|| {
                    let mut chunk = input.clone();
                    let mut n = 0usize;
                    while let Some(frame) = decoder.decode(&mut chunk).expect("valid") {
                        n += frame.body.len();
                        black_box(&frame);
                    }
                    n
                });
                assert_eq!(decoder.copied_bytes(), 0, "decoding must not copy payloads");
            },
        );
        group.bench_with_input(BenchmarkId::new("session", payload), &input, |b, input| {
            let (_push, mut pull) = ready_pair();
            b.iter(|| {
                pull.feed(input.clone());
                let mut messages = 0usize;
                while let Some(event) = pull.poll().expect("valid") {
                    if let Event::Message(m) = event {
                        messages += 1;
                        black_box(m.first_frame());
                    }
                }
                assert_eq!(messages, BATCH);
            });
            assert_eq!(pull.copied_bytes(), 0, "decoding must not copy payloads");
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_4_frame_messages");
    group.throughput(Throughput::Elements(BATCH as u64));
    for payload in [64usize, 4096] {
        let m = message(payload);
        group.bench_with_input(BenchmarkId::new("session", payload), &m, |b, m| {
            let (mut push, _pull) = ready_pair();
            b.iter(|| {
                for _ in 0..BATCH {
                    push.send_frames(m).expect("ready");
                }
                assert_eq!(write_out(push.outbox()), BATCH as u64);
            });
        });
    }
    group.finish();
}

/// The broker's send path: a received message queued on another session as
/// its wire bytes, then handed to a pretend vectored write.
fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_4_frame_messages");
    group.throughput(Throughput::Elements(BATCH as u64));
    for payload in [64usize, 4096] {
        let (_push, mut pull) = ready_pair();
        pull.feed(wire(payload));
        let received: Vec<zmtp_codec::Message> = std::iter::from_fn(|| pull.poll().expect("valid"))
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        group.bench_with_input(
            BenchmarkId::new("session", payload),
            &received,
            |b, received| {
                let (mut push, _pull) = ready_pair();
                b.iter(|| {
                    for m in received {
                        push.send(m.clone()).expect("ready");
                    }
                    assert_eq!(write_out(push.outbox()), BATCH as u64);
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode, encode, forward);
criterion_main!(benches);
