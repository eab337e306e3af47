//! Log-batch decoding: a `Conn::LOG` batch of 1000 conn-like records (21
//! columns, as Zeek's `Log::write_buffer_size` batches them), parsed and
//! every record decoded, set elements included.
//!
//! Run: `cargo bench --bench log_batch`. Throughput is reported in records/s.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zring::logger::{Batch, Value};

#[path = "../tests/support/zeek_batch.rs"]
mod zeek_batch;

const RECORDS: u64 = 1000;

/// Parses `bytes` and decodes every record; returns a checksum of what was
/// read so nothing can be optimised away.
fn decode(bytes: &Bytes) -> u64 {
    let batch = Batch::parse(bytes.clone()).expect("valid batch");
    let mut records = batch.records();
    let mut out = Vec::with_capacity(batch.header().fields.len());
    let mut sum = 0u64;
    while records.next_into(&mut out).expect("valid record") {
        for v in &out {
            sum = sum.wrapping_add(match v {
                Value::String(s) => s.len() as u64,
                Value::Count(n) => *n,
                Value::Set(e) => e.iter().count() as u64,
                _ => 1,
            });
        }
    }
    sum
}

fn log_batch(c: &mut Criterion) {
    let bytes = Bytes::from(zeek_batch::conn_batch(RECORDS));
    let mut group = c.benchmark_group("log_batch");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("decode_conn_1000", |b| b.iter(|| decode(black_box(&bytes))));
    group.finish();
    // The header alone (names and 21 field descriptors), per batch.
    c.bench_function("log_batch/parse_header_conn", |b| {
        b.iter(|| {
            Batch::parse(black_box(bytes.clone()))
                .expect("valid batch")
                .num_records()
        })
    });
}

criterion_group!(benches, log_batch);
criterion_main!(benches);
