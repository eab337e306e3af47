//! CURVE data-path micro-benchmarks: sealing and opening MESSAGE commands
//! through a `Session` (the codec's whole per-message work: box, frame
//! header, outbox; then decode, nonce check, open, message), for 64 B and
//! 4 KiB single-frame messages.
//!
//! Run: `cargo bench --bench curve`. Throughput is reported in messages/s.

use std::hint::black_box;

use bytes::{Buf, Bytes};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use zmtp_codec::{
    AllowAll, CurveClient, CurveServer, Event, KeyPair, OsRandom, Session, SessionConfig,
    SocketType,
};

/// Messages per benchmark iteration.
const BATCH: usize = 1000;
const SIZES: [usize; 2] = [64, 4096];

fn take_all(s: &mut Session) -> Bytes {
    let n = s.outbox().remaining();
    s.outbox().copy_to_bytes(n)
}

/// A CURVE PUSH client and PULL server that have finished their handshake.
fn ready_pair() -> (Session, Session) {
    let server_keys = KeyPair::generate(&mut OsRandom).expect("keys");
    let client_keys = KeyPair::generate(&mut OsRandom).expect("keys");
    let mut push = Session::with_mechanism(
        SessionConfig::new(SocketType::Push),
        Box::new(CurveClient::new(client_keys, server_keys.public)),
    );
    let mut pull = Session::with_mechanism(
        SessionConfig::new(SocketType::Pull),
        Box::new(CurveServer::new(server_keys, Box::new(AllowAll))),
    );
    for _ in 0..4 {
        pull.feed(take_all(&mut push));
        while pull.poll().expect("handshake").is_some() {}
        push.feed(take_all(&mut pull));
        while push.poll().expect("handshake").is_some() {}
    }
    assert!(push.is_ready() && pull.is_ready());
    (push, pull)
}

/// Seals `BATCH` messages of `payload` and returns their wire bytes in one
/// buffer, as one receive would hold them.
fn seal_batch(push: &mut Session, payload: &Bytes) -> Bytes {
    for _ in 0..BATCH {
        push.send_frame(payload.clone(), false).expect("ready");
    }
    take_all(push)
}

fn open_batch(pull: &mut Session, wire: Bytes) -> usize {
    pull.feed(wire);
    let mut n = 0;
    while let Some(event) = pull.poll().expect("valid MESSAGEs") {
        if let Event::Message(m) = event {
            black_box(m);
            n += 1;
        }
    }
    n
}

fn curve(c: &mut Criterion) {
    let mut group = c.benchmark_group("curve");
    group.throughput(Throughput::Elements(BATCH as u64));
    for size in SIZES {
        let payload = Bytes::from(vec![0x5a; size]);

        let (mut push, _) = ready_pair();
        group.bench_with_input(BenchmarkId::new("seal", size), &payload, |b, payload| {
            b.iter(|| black_box(seal_batch(&mut push, payload)))
        });

        group.bench_with_input(BenchmarkId::new("open", size), &payload, |b, payload| {
            // Nonces only go up, so each batch is opened by a fresh pair.
            b.iter_batched(
                || {
                    let (mut push, pull) = ready_pair();
                    let wire = seal_batch(&mut push, payload);
                    (pull, wire)
                },
                |(mut pull, wire)| assert_eq!(open_batch(&mut pull, wire), BATCH),
                BatchSize::PerIteration,
            )
        });

        let (mut push, mut pull) = ready_pair();
        group.bench_with_input(
            BenchmarkId::new("seal+open", size),
            &payload,
            |b, payload| {
                b.iter(|| {
                    let wire = seal_batch(&mut push, payload);
                    assert_eq!(open_batch(&mut pull, wire), BATCH);
                })
            },
        );
    }
    group.finish();
}

/// The primitive alone (crypto_box's precomputed SalsaBox, in place,
/// detached MAC), to tell the codec's cost from the cipher's.
fn primitive(c: &mut Criterion) {
    use crypto_box::aead::generic_array::GenericArray;
    use crypto_box::aead::AeadInPlace;
    let mut group = c.benchmark_group("salsabox");
    group.throughput(Throughput::Elements(BATCH as u64));
    let a = crypto_box::SecretKey::from_bytes([1; 32]);
    let b = crypto_box::SecretKey::from_bytes([2; 32]);
    let sealer = crypto_box::SalsaBox::new(&b.public_key(), &a);
    let nonce = GenericArray::from([7u8; 24]);
    for size in SIZES {
        let mut buf = vec![0x5a; size + 1];
        group.bench_with_input(BenchmarkId::new("seal", size), &size, |bench, _| {
            bench.iter(|| {
                for _ in 0..BATCH {
                    black_box(
                        sealer
                            .encrypt_in_place_detached(&nonce, b"", &mut buf)
                            .expect("seal"),
                    );
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, curve, primitive);
criterion_main!(benches);
