//! An encoder for `zeek-bin-serializer` log batches, written from the
//! format description (contract §4) independently of zring's decoder, for
//! tests and benchmarks. Include it with
//! `#[path = "support/zeek_batch.rs"] mod zeek_batch;`.
//!
//! ```ignore
//! let bytes = BatchBuilder::new("Conn::LOG", "Log::WRITER_ASCII", "default", "conn")
//!     .field("uid", TypeTag::String, TypeTag::Void, false)
//!     .record(vec![TestValue::str("CAbc12")])
//!     .finish();
//! ```
#![allow(dead_code)] // each test binary uses a different part

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use zring::logger::value::{Proto, TypeTag, Value};

/// A value to encode, owning its bytes. Compares floats by their bits, so
/// a NaN equals the same NaN and `-0.0` differs from `0.0`.
#[derive(Debug, Clone)]
pub enum TestValue {
    /// `present` = false, with this type tag.
    Unset(TypeTag),
    Bool(bool),
    /// A bool sent as an arbitrary i64 (Zeek has sent 255); any non-zero
    /// value decodes as true.
    BoolRaw(i64),
    Int(i64),
    Count(u64),
    Double(f64),
    Time(f64),
    Interval(f64),
    String(Vec<u8>),
    Enum(Vec<u8>),
    Port(u64, Proto),
    Addr(IpAddr),
    /// The real prefix length (the encoder adds 96 for IPv4).
    Subnet(IpAddr, u8),
    Func(Vec<u8>),
    File(Vec<u8>),
    Set(Vec<TestValue>),
    Vector(Vec<TestValue>),
    /// Bytes put on the wire as they are, in place of a value.
    Raw(Vec<u8>),
}

impl TestValue {
    /// A string value.
    pub fn str(s: impl AsRef<[u8]>) -> TestValue {
        TestValue::String(s.as_ref().to_vec())
    }

    /// An enum value by name.
    pub fn enum_(s: impl AsRef<[u8]>) -> TestValue {
        TestValue::Enum(s.as_ref().to_vec())
    }

    /// An address value; panics on a malformed literal (test input).
    pub fn addr(s: &str) -> TestValue {
        TestValue::Addr(s.parse().expect("address literal"))
    }

    /// What the decoder gives back for this value: `BoolRaw` becomes
    /// `Bool`, inside containers too.
    pub fn decoded(&self) -> TestValue {
        match self {
            TestValue::BoolRaw(n) => TestValue::Bool(*n != 0),
            TestValue::Set(e) => TestValue::Set(e.iter().map(TestValue::decoded).collect()),
            TestValue::Vector(e) => TestValue::Vector(e.iter().map(TestValue::decoded).collect()),
            v => v.clone(),
        }
    }

    /// A decoded value as a `TestValue`, with containers iterated.
    pub fn from_decoded(v: &Value<'_>) -> TestValue {
        match *v {
            Value::Unset(tag) => TestValue::Unset(tag),
            Value::Bool(b) => TestValue::Bool(b),
            Value::Int(n) => TestValue::Int(n),
            Value::Count(n) => TestValue::Count(n),
            Value::Double(x) => TestValue::Double(x),
            Value::Time(x) => TestValue::Time(x),
            Value::Interval(x) => TestValue::Interval(x),
            Value::String(s) => TestValue::String(s.to_vec()),
            Value::Enum(s) => TestValue::Enum(s.to_vec()),
            Value::Port { number, proto } => TestValue::Port(number, proto),
            Value::Addr(a) => TestValue::Addr(a),
            Value::Subnet { addr, prefix } => TestValue::Subnet(addr, prefix),
            Value::Func(s) => TestValue::Func(s.to_vec()),
            Value::File(s) => TestValue::File(s.to_vec()),
            Value::Set(e) => {
                TestValue::Set(e.iter().map(|v| TestValue::from_decoded(&v)).collect())
            }
            Value::Vector(e) => {
                TestValue::Vector(e.iter().map(|v| TestValue::from_decoded(&v)).collect())
            }
        }
    }

    /// The type tag this value is sent with.
    pub fn tag(&self) -> i32 {
        let tag = match self {
            TestValue::Unset(tag) => *tag,
            TestValue::Bool(_) | TestValue::BoolRaw(_) => TypeTag::Bool,
            TestValue::Int(_) => TypeTag::Int,
            TestValue::Count(_) => TypeTag::Count,
            TestValue::Double(_) => TypeTag::Double,
            TestValue::Time(_) => TypeTag::Time,
            TestValue::Interval(_) => TypeTag::Interval,
            TestValue::String(_) => TypeTag::String,
            TestValue::Enum(_) => TypeTag::Enum,
            TestValue::Port(..) => TypeTag::Port,
            TestValue::Addr(_) => TypeTag::Addr,
            TestValue::Subnet(..) => TypeTag::Subnet,
            TestValue::Func(_) => TypeTag::Func,
            TestValue::File(_) => TypeTag::File,
            TestValue::Set(_) => TypeTag::Table,
            TestValue::Vector(_) => TypeTag::Vector,
            TestValue::Raw(_) => return -1,
        };
        tag as i32
    }
}

impl PartialEq for TestValue {
    fn eq(&self, other: &TestValue) -> bool {
        use TestValue::*;
        match (self, other) {
            (Unset(a), Unset(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (BoolRaw(a), BoolRaw(b)) | (Int(a), Int(b)) => a == b,
            (Count(a), Count(b)) => a == b,
            (Double(a), Double(b)) | (Time(a), Time(b)) | (Interval(a), Interval(b)) => {
                a.to_bits() == b.to_bits()
            }
            (String(a), String(b))
            | (Enum(a), Enum(b))
            | (Func(a), Func(b))
            | (File(a), File(b))
            | (Raw(a), Raw(b)) => a == b,
            (Port(a, p), Port(b, q)) => a == b && p == q,
            (Addr(a), Addr(b)) => a == b,
            (Subnet(a, p), Subnet(b, q)) => a == b && p == q,
            (Set(a), Set(b)) | (Vector(a), Vector(b)) => a == b,
            _ => false,
        }
    }
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, n: i32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_be_bytes());
}

/// `str`: u32 length, then the bytes.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(
        out,
        u32::try_from(s.len()).expect("string too long for the format"),
    );
    out.extend_from_slice(s);
}

/// `char` family, then the address bytes.
fn put_addr(out: &mut Vec<u8>, a: &IpAddr) {
    match a {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// Appends one `value` (contract §4.4) whose header carries `subtype`.
pub fn encode_value(out: &mut Vec<u8>, v: &TestValue, subtype: i32) {
    if let TestValue::Raw(bytes) = v {
        out.extend_from_slice(bytes);
        return;
    }
    put_i32(out, v.tag());
    put_i32(out, subtype);
    if let TestValue::Unset(_) = v {
        out.push(0);
        return;
    }
    out.push(1);
    match v {
        TestValue::Unset(_) | TestValue::Raw(_) => unreachable!("handled above"),
        TestValue::Bool(b) => put_u64(out, u64::from(*b)),
        TestValue::BoolRaw(n) | TestValue::Int(n) => put_u64(out, *n as u64),
        TestValue::Count(n) => put_u64(out, *n),
        TestValue::Double(x) | TestValue::Time(x) | TestValue::Interval(x) => {
            put_u64(out, x.to_bits())
        }
        TestValue::String(s) | TestValue::Enum(s) | TestValue::Func(s) | TestValue::File(s) => {
            put_str(out, s)
        }
        TestValue::Port(number, proto) => {
            put_u64(out, *number);
            put_i32(
                out,
                match proto {
                    Proto::Unknown => 0,
                    Proto::Tcp => 1,
                    Proto::Udp => 2,
                    Proto::Icmp => 3,
                },
            );
        }
        TestValue::Addr(a) => put_addr(out, a),
        TestValue::Subnet(a, prefix) => {
            // IPv4 prefixes are sent relative to IPv6: /8 is 104.
            out.push(if a.is_ipv4() {
                prefix.wrapping_add(96)
            } else {
                *prefix
            });
            put_addr(out, a);
        }
        TestValue::Set(elements) | TestValue::Vector(elements) => {
            put_u64(out, elements.len() as u64);
            for e in elements {
                encode_value(out, e, subtype);
            }
        }
    }
}

/// Builds a batch: header names, then fields, then records.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    names: Vec<u8>,
    fields: Vec<u8>,
    num_fields: u32,
    records: Vec<u8>,
    num_records: u32,
    value_subtype: i32,
}

impl BatchBuilder {
    /// A batch for `stream` (e.g. `Conn::LOG`), `writer`
    /// (`Log::WRITER_ASCII`), `filter` (`default`) and `path` (`conn`).
    pub fn new(
        stream: impl AsRef<[u8]>,
        writer: impl AsRef<[u8]>,
        filter: impl AsRef<[u8]>,
        path: impl AsRef<[u8]>,
    ) -> BatchBuilder {
        let mut names = Vec::new();
        for s in [
            stream.as_ref(),
            writer.as_ref(),
            filter.as_ref(),
            path.as_ref(),
        ] {
            put_str(&mut names, s);
        }
        BatchBuilder {
            names,
            fields: Vec::new(),
            num_fields: 0,
            records: Vec::new(),
            num_records: 0,
            value_subtype: 0,
        }
    }

    /// Adds a column. `subtype` is the element type of a set or vector
    /// column, `TypeTag::Void` otherwise.
    pub fn field(mut self, name: &str, ty: TypeTag, subtype: TypeTag, optional: bool) -> Self {
        self.fields.push(0); // no secondary name
        put_str(&mut self.fields, name.as_bytes());
        put_i32(&mut self.fields, ty as i32);
        put_i32(&mut self.fields, subtype as i32);
        self.fields.push(u8::from(optional));
        self.num_fields += 1;
        self
    }

    /// The subtype written in every value header: 0 as Zeek's logging
    /// sends, 22 as in Zeek's unit tests.
    pub fn value_subtype(mut self, subtype: i32) -> Self {
        self.value_subtype = subtype;
        self
    }

    /// Adds a record: one value per field (not checked, so a test can
    /// send a mismatched record).
    pub fn record(mut self, values: Vec<TestValue>) -> Self {
        self.push_record(&values);
        self
    }

    /// Adds a record in place.
    pub fn push_record(&mut self, values: &[TestValue]) {
        for v in values {
            encode_value(&mut self.records, v, self.value_subtype);
        }
        self.num_records += 1;
    }

    /// The encoded batch.
    pub fn finish(self) -> Vec<u8> {
        let mut out = self.names;
        put_u32(&mut out, self.num_fields);
        out.extend_from_slice(&self.fields);
        put_u32(&mut out, self.num_records);
        out.extend_from_slice(&self.records);
        out
    }
}

/// The columns of a `conn.log`-like batch: (name, type, subtype, optional).
pub const CONN_FIELDS: [(&str, TypeTag, TypeTag, bool); 21] = [
    ("ts", TypeTag::Time, TypeTag::Void, false),
    ("uid", TypeTag::String, TypeTag::Void, false),
    ("id.orig_h", TypeTag::Addr, TypeTag::Void, false),
    ("id.orig_p", TypeTag::Port, TypeTag::Void, false),
    ("id.resp_h", TypeTag::Addr, TypeTag::Void, false),
    ("id.resp_p", TypeTag::Port, TypeTag::Void, false),
    ("proto", TypeTag::Enum, TypeTag::Void, false),
    ("service", TypeTag::String, TypeTag::Void, true),
    ("duration", TypeTag::Interval, TypeTag::Void, true),
    ("orig_bytes", TypeTag::Count, TypeTag::Void, true),
    ("resp_bytes", TypeTag::Count, TypeTag::Void, true),
    ("conn_state", TypeTag::String, TypeTag::Void, true),
    ("local_orig", TypeTag::Bool, TypeTag::Void, true),
    ("local_resp", TypeTag::Bool, TypeTag::Void, true),
    ("missed_bytes", TypeTag::Count, TypeTag::Void, false),
    ("history", TypeTag::String, TypeTag::Void, true),
    ("orig_pkts", TypeTag::Count, TypeTag::Void, true),
    ("orig_ip_bytes", TypeTag::Count, TypeTag::Void, true),
    ("resp_pkts", TypeTag::Count, TypeTag::Void, true),
    ("resp_ip_bytes", TypeTag::Count, TypeTag::Void, true),
    ("tunnel_parents", TypeTag::Table, TypeTag::String, true),
];

/// A deterministic pseudo-random number for record `i`, stream `k`.
fn mix(i: u64, k: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

/// A Zeek-like connection uid: `C` and 17 base62 characters.
fn uid(i: u64, k: u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = mix(i, k);
    let mut s = vec![b'C'];
    for n in 0..17 {
        if n == 10 {
            x = mix(i, k + 1);
        }
        s.push(ALPHABET[(x % 62) as usize]);
        x /= 62;
    }
    s
}

/// Record `i` of the conn-like batch: mostly IPv4 TCP with a service,
/// every 8th IPv6, every 3rd UDP with no service, every 10th with a
/// tunnel parent.
pub fn conn_record(i: u64) -> Vec<TestValue> {
    use TestValue::*;
    let r = mix(i, 0);
    let udp = i % 3 == 1;
    let (orig_h, resp_h) = if i % 8 == 7 {
        (
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                (r & 0xffff) as u16,
            )),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x35)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, (r >> 8) as u8, r as u8)),
            IpAddr::V4(Ipv4Addr::new(192, 168, (r >> 16) as u8, (r >> 24) as u8)),
        )
    };
    let proto = if udp { Proto::Udp } else { Proto::Tcp };
    let orig_bytes = mix(i, 1) % 100_000;
    let resp_bytes = mix(i, 2) % 1_000_000;
    let orig_pkts = orig_bytes / 1000 + 1;
    let resp_pkts = resp_bytes / 1400 + 1;
    vec![
        Time(1_700_000_000.0 + i as f64 * 0.001_237),
        String(uid(i, 3)),
        Addr(orig_h),
        Port(1024 + mix(i, 4) % 64_000, proto),
        Addr(resp_h),
        Port(
            if udp {
                53
            } else {
                [80, 443, 22][(i % 3) as usize]
            },
            proto,
        ),
        TestValue::enum_(if udp { "udp" } else { "tcp" }),
        if udp {
            Unset(TypeTag::String)
        } else {
            TestValue::str(["http", "ssl", "ssh"][(i % 3) as usize])
        },
        Interval((mix(i, 5) % 10_000_000) as f64 / 1e6),
        Count(orig_bytes),
        Count(resp_bytes),
        TestValue::str(["SF", "S0", "REJ", "RSTO"][(mix(i, 6) % 4) as usize]),
        Bool(true),
        Bool(i.is_multiple_of(5)),
        Count(0),
        TestValue::str(if udp { &b"Dd"[..] } else { b"ShADadFf" }),
        Count(orig_pkts),
        Count(orig_bytes + orig_pkts * 52),
        Count(resp_pkts),
        Count(resp_bytes + resp_pkts * 52),
        if i % 10 == 9 {
            Set(vec![String(uid(i, 7))])
        } else {
            Unset(TypeTag::Table)
        },
    ]
}

/// A `Conn::LOG` batch of `records` conn-like records (`conn_record`).
pub fn conn_batch(records: u64) -> Vec<u8> {
    conn_batch_at("conn", 0, records)
}

/// A conn-like batch for log `path` of records `first..first + records`;
/// batches that do not overlap have different uids.
pub fn conn_batch_at(path: &str, first: u64, records: u64) -> Vec<u8> {
    let mut b = BatchBuilder::new("Conn::LOG", "Log::WRITER_ASCII", "default", path);
    for (name, ty, subtype, optional) in CONN_FIELDS {
        b = b.field(name, ty, subtype, optional);
    }
    for i in first..first + records {
        b.push_record(&conn_record(i));
    }
    b.finish()
}

/// The uid of conn-like record `i`, as the logs show it.
pub fn conn_uid(i: u64) -> String {
    String::from_utf8(uid(i, 3)).expect("base62")
}
