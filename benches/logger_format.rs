//! Log-format micro-benchmarks: conn.log-like records (22 columns, the
//! shape of Zeek's conn.log) written as Zeek's ASCII and JSON lines.
//!
//! Run: `cargo bench --bench logger_format`. Throughput is in records/s.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zring::logger::ascii::Ascii;
use zring::logger::format::LogFormat;
use zring::logger::json::Json;
use zring::logger::value::{Field, Header, Proto, TypeTag, Value};

/// Records per iteration, about one batch as Zeek sends them.
const BATCH: usize = 1000;

fn conn_header() -> Header {
    use TypeTag::*;
    let columns: [(&str, TypeTag, TypeTag); 22] = [
        ("ts", Time, Void),
        ("uid", String, Void),
        ("id.orig_h", Addr, Void),
        ("id.orig_p", Port, Void),
        ("id.resp_h", Addr, Void),
        ("id.resp_p", Port, Void),
        ("proto", Enum, Void),
        ("service", String, Void),
        ("duration", Interval, Void),
        ("orig_bytes", Count, Void),
        ("resp_bytes", Count, Void),
        ("conn_state", String, Void),
        ("local_orig", Bool, Void),
        ("local_resp", Bool, Void),
        ("missed_bytes", Count, Void),
        ("history", String, Void),
        ("orig_pkts", Count, Void),
        ("orig_ip_bytes", Count, Void),
        ("resp_pkts", Count, Void),
        ("resp_ip_bytes", Count, Void),
        ("tunnel_parents", Table, String),
        ("ip_proto", Count, Void),
    ];
    Header {
        stream: "Conn::LOG".into(),
        writer: "Log::WRITER_ASCII".into(),
        filter: "default".into(),
        path: "conn".into(),
        fields: columns
            .iter()
            .map(|&(name, ty, subtype)| Field {
                name: name.into(),
                ty,
                subtype,
                optional: false,
            })
            .collect(),
    }
}

fn conn_record(i: usize) -> Vec<Value<'static>> {
    let orig = if i.is_multiple_of(4) {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 168, (i >> 8) as u8, i as u8))
    };
    vec![
        Value::Time(1_795_341_600.0 + i as f64 * 0.000_731),
        Value::String(b"CHhAvVGS1DHFjwGM9"),
        Value::Addr(orig),
        Value::Port {
            number: 49152 + (i as u64 % 16000),
            proto: Proto::Tcp,
        },
        Value::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53))),
        Value::Port {
            number: 443,
            proto: Proto::Tcp,
        },
        Value::Enum(b"tcp"),
        if i.is_multiple_of(3) {
            Value::Unset(TypeTag::String)
        } else {
            Value::String(b"ssl")
        },
        Value::Interval(0.123_456 + i as f64 * 1e-5),
        Value::Count(517 + i as u64),
        Value::Count(4_296 + 3 * i as u64),
        Value::String(b"SF"),
        Value::Bool(true),
        Value::Bool(false),
        Value::Count(0),
        Value::String(b"ShADadFf"),
        Value::Count(9),
        Value::Count(889),
        Value::Count(8),
        Value::Count(4_620),
        Value::Unset(TypeTag::Table),
        Value::Count(6),
    ]
}

fn bench(c: &mut Criterion) {
    let header = conn_header();
    let records: Vec<Vec<Value<'static>>> = (0..BATCH).map(conn_record).collect();
    let mut group = c.benchmark_group("logger_format");
    group.throughput(Throughput::Elements(BATCH as u64));
    let formats: [(&str, &dyn LogFormat); 2] = [("ascii", &Ascii), ("json", &Json)];
    for (name, format) in formats {
        let mut out = Vec::with_capacity(BATCH * 512);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                // One writer per batch, as the logger's files do.
                let mut writer = format.record_writer(&header);
                for r in &records {
                    writer.write(r, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
