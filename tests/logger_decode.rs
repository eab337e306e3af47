//! The log-batch decoder against an encoder written from the format
//! description (`support/zeek_batch.rs`): the contract's byte examples,
//! a conn-like batch, and properties over random schemas and records,
//! truncations and corruptions.

#[path = "support/zeek_batch.rs"]
mod zeek_batch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::Index;
use zeek_batch::{conn_batch, conn_record, BatchBuilder, TestValue, CONN_FIELDS};
use zring::logger::{Batch, BatchError, Field, Header, Proto, TypeTag, Value};

/// Decodes a whole batch, iterating every container.
fn decode(bytes: Vec<u8>) -> Result<(Header, Vec<Vec<TestValue>>), BatchError> {
    let batch = Batch::parse(Bytes::from(bytes))?;
    let mut records = batch.records();
    let mut out = Vec::new();
    let mut all = Vec::new();
    while records.next_into(&mut out)? {
        assert_eq!(out.len(), batch.header().fields.len());
        all.push(out.iter().map(TestValue::from_decoded).collect());
    }
    assert_eq!(all.len(), batch.num_records() as usize);
    Ok((batch.header().clone(), all))
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn builder_reproduces_the_worked_example() {
    // Contract §4.6, 219 bytes.
    let expected = hex("
        00 00 00 09 43 6f 6e 6e 3a 3a 4c 4f 47 00 00 00 11 4c 6f 67 3a 3a 57 52 49 54 45 52 5f 41 53 43
        49 49 00 00 00 07 64 65 66 61 75 6c 74 00 00 00 04 63 6f 6e 6e 00 00 00 04 00 00 00 00 03 75 69
        64 00 00 00 07 00 00 00 00 00 00 00 00 00 09 69 64 2e 6f 72 69 67 5f 68 00 00 00 0b 00 00 00 00
        00 00 00 00 00 09 69 64 2e 6f 72 69 67 5f 70 00 00 00 0a 00 00 00 00 00 00 00 00 00 0a 6f 72 69
        67 5f 62 79 74 65 73 00 00 00 03 00 00 00 00 01 00 00 00 01 00 00 00 07 00 00 00 00 01 00 00 00
        06 43 41 62 63 31 32 00 00 00 0b 00 00 00 00 01 04 c0 a8 01 0a 00 00 00 0a 00 00 00 00 01 00 00
        00 00 00 00 c0 00 00 00 00 01 00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 04 d2");
    let built = BatchBuilder::new("Conn::LOG", "Log::WRITER_ASCII", "default", "conn")
        .field("uid", TypeTag::String, TypeTag::Void, false)
        .field("id.orig_h", TypeTag::Addr, TypeTag::Void, false)
        .field("id.orig_p", TypeTag::Port, TypeTag::Void, false)
        .field("orig_bytes", TypeTag::Count, TypeTag::Void, true)
        .record(vec![
            TestValue::str("CAbc12"),
            TestValue::addr("192.168.1.10"),
            TestValue::Port(49152, Proto::Tcp),
            TestValue::Count(1234),
        ])
        .finish();
    assert_eq!(built, expected);
}

#[test]
fn builder_reproduces_zeeks_roundtrip_vector() {
    // Contract §4.8, 116 bytes; values carry subtype 22 there.
    let expected = hex("
        00 00 00 0c 4c 6f 67 3a 3a 55 4e 4b 4e 4f 57 4e 00 00 00 10 4c 6f 67 3a 3a 57 52 49 54 45 52 5f
        4e 4f 4e 45 00 00 00 07 64 65 66 61 75 6c 74 00 00 00 07 6d 79 2d 70 61 74 68 00 00 00 01 00 00
        00 00 02 74 73 00 00 00 05 00 00 00 16 00 00 00 00 02 00 00 00 05 00 00 00 16 01 3f f0 00 00 00
        00 00 00 00 00 00 05 00 00 00 16 01 40 00 00 00 00 00 00 00");
    let built = BatchBuilder::new("Log::UNKNOWN", "Log::WRITER_NONE", "default", "my-path")
        .field("ts", TypeTag::Time, TypeTag::Error, false)
        .value_subtype(22)
        .record(vec![TestValue::Time(1.0)])
        .record(vec![TestValue::Time(2.0)])
        .finish();
    assert_eq!(built, expected);
    let (header, records) = decode(built).unwrap();
    assert_eq!(header.path, "my-path");
    assert_eq!(
        records,
        vec![vec![TestValue::Time(1.0)], vec![TestValue::Time(2.0)]]
    );
}

#[test]
fn conn_batch_decodes() {
    let (header, records) = decode(conn_batch(1000)).unwrap();
    assert_eq!(header.stream, "Conn::LOG");
    assert_eq!(header.path, "conn");
    let fields: Vec<Field> = CONN_FIELDS
        .iter()
        .map(|&(name, ty, subtype, optional)| Field {
            name: name.into(),
            ty,
            subtype,
            optional,
        })
        .collect();
    assert_eq!(header.fields, fields);
    assert_eq!(records.len(), 1000);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(*record, conn_record(i as u64), "record {i}");
    }
    // The batch has what the benchmark is meant to exercise.
    assert!(records
        .iter()
        .any(|r| r[7] == TestValue::Unset(TypeTag::String)));
    assert!(records.iter().any(|r| matches!(r[20], TestValue::Set(_))));
    assert!(records
        .iter()
        .any(|r| matches!(r[2], TestValue::Addr(IpAddr::V6(_)))));
}

#[test]
fn every_type_in_one_record() {
    use TestValue::*;
    let values = vec![
        Bool(true),
        BoolRaw(255),
        Int(i64::MIN),
        Count(u64::MAX),
        Double(f64::NAN),
        Time(f64::NEG_INFINITY),
        Interval(-0.0),
        String(b"\0\xff\ttab".to_vec()),
        TestValue::enum_("Notice::ACTION_LOG"),
        Port(8, Proto::Icmp),
        Port(0, Proto::Unknown),
        TestValue::addr("::ffff:1.2.3.4"),
        Subnet(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
        Subnet(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        Func(b"function(a: count): bool".to_vec()),
        File(b"/tmp/x".to_vec()),
        Set(vec![]),
        Vector(vec![
            Unset(TypeTag::String),
            TestValue::str("b"),
            Unset(TypeTag::String),
        ]),
        Unset(TypeTag::Vector),
    ];
    let mut b = BatchBuilder::new("S", "W", "f", "all");
    for (i, v) in values.iter().enumerate() {
        let ty = TypeTag::from_wire(v.tag()).unwrap();
        b = b.field(&format!("f{i}"), ty, TypeTag::Void, false);
    }
    let (_, records) = decode(b.record(values.clone()).finish()).unwrap();
    let expected: Vec<TestValue> = values.iter().map(TestValue::decoded).collect();
    assert_eq!(records, vec![expected]);
}

#[test]
fn bool_255_and_errors_through_the_builder() {
    let b =
        || BatchBuilder::new("S", "W", "f", "p").field("x", TypeTag::Bool, TypeTag::Void, false);
    let (_, records) = decode(b().record(vec![TestValue::BoolRaw(255)]).finish()).unwrap();
    assert_eq!(records, vec![vec![TestValue::Bool(true)]]);

    // A raw value of an unloggable type (pattern).
    let mut bytes = b()
        .record(vec![TestValue::Raw(hex("00 00 00 08 00 00 00 00 01"))])
        .finish();
    let err = decode(bytes.clone()).unwrap_err();
    assert_eq!(err.reason(), "not_loggable");
    assert!(err.to_string().starts_with("record 0, field `x`"), "{err}");

    // Trailing bytes after a valid batch.
    bytes = b().record(vec![TestValue::Bool(false)]).finish();
    bytes.push(0);
    let err = decode(bytes).unwrap_err();
    assert!(
        matches!(err, BatchError::TrailingBytes { count: 1 }),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Properties

const LOGGABLE: [TypeTag; 15] = [
    TypeTag::Bool,
    TypeTag::Int,
    TypeTag::Count,
    TypeTag::Double,
    TypeTag::Time,
    TypeTag::Interval,
    TypeTag::String,
    TypeTag::Enum,
    TypeTag::Port,
    TypeTag::Addr,
    TypeTag::Subnet,
    TypeTag::Table,
    TypeTag::Func,
    TypeTag::File,
    TypeTag::Vector,
];

fn loggable_tag() -> impl Strategy<Value = TypeTag> {
    proptest::sample::select(&LOGGABLE[..])
}

/// Any field descriptor tag: Zeek's tests use 22 as a subtype.
fn any_tag() -> impl Strategy<Value = TypeTag> {
    (0..=22i32).prop_map(|n| TypeTag::from_wire(n).unwrap())
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(), // includes infinities and NaN
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::NAN),
        Just(-0.0),
    ]
}

fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn proto() -> impl Strategy<Value = Proto> {
    prop_oneof![
        Just(Proto::Unknown),
        Just(Proto::Tcp),
        Just(Proto::Udp),
        Just(Proto::Icmp)
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(o.into())),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(o.into())),
    ]
}

fn atomic() -> impl Strategy<Value = TestValue> {
    use TestValue::*;
    prop_oneof![
        loggable_tag().prop_map(Unset),
        any::<bool>().prop_map(Bool),
        any::<i64>().prop_map(BoolRaw),
        any::<i64>().prop_map(Int),
        any::<u64>().prop_map(Count),
        float().prop_map(Double),
        float().prop_map(Time),
        float().prop_map(Interval),
        raw_bytes().prop_map(String),
        raw_bytes().prop_map(Enum),
        (any::<u64>(), proto()).prop_map(|(n, p)| Port(n, p)),
        ip().prop_map(Addr),
        (any::<[u8; 4]>(), 0..=32u8).prop_map(|(o, p)| Subnet(IpAddr::V4(o.into()), p)),
        (any::<[u8; 16]>(), 0..=128u8).prop_map(|(o, p)| Subnet(IpAddr::V6(o.into()), p)),
        raw_bytes().prop_map(Func),
        raw_bytes().prop_map(File),
    ]
}

/// Any loggable value, with sets and vectors (holes included) nested up
/// to three deep.
fn value() -> impl Strategy<Value = TestValue> {
    atomic().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(TestValue::Set),
            prop::collection::vec(inner, 0..4).prop_map(TestValue::Vector),
        ]
    })
}

#[derive(Debug, Clone)]
struct Schema {
    names: [String; 3],
    path: String,
    fields: Vec<Field>,
}

fn schema() -> impl Strategy<Value = Schema> {
    // A set's or vector's column names its elements' type; other columns
    // carry any subtype (Zeek's tests use 22), which is never checked.
    let field = (".{0,12}", loggable_tag(), any::<bool>())
        .prop_flat_map(|(name, ty, optional)| {
            let subtype = if matches!(ty, TypeTag::Table | TypeTag::Vector) {
                loggable_tag().boxed()
            } else {
                any_tag().boxed()
            };
            (Just(name), Just(ty), subtype, Just(optional))
        })
        .prop_map(|(name, ty, subtype, optional)| Field {
            name,
            ty,
            subtype,
            optional,
        });
    (
        [".{0,16}", ".{0,16}", ".{0,16}"],
        "[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,30}",
        prop::collection::vec(field, 1..6),
    )
        .prop_map(|(names, path, fields)| Schema {
            names,
            path,
            fields,
        })
}

/// A present value of the atomic type `ty`.
fn atomic_of(ty: TypeTag) -> BoxedStrategy<TestValue> {
    use TestValue::*;
    match ty {
        TypeTag::Bool => {
            prop_oneof![any::<bool>().prop_map(Bool), any::<i64>().prop_map(BoolRaw)].boxed()
        }
        TypeTag::Int => any::<i64>().prop_map(Int).boxed(),
        TypeTag::Count => any::<u64>().prop_map(Count).boxed(),
        TypeTag::Double => float().prop_map(Double).boxed(),
        TypeTag::Time => float().prop_map(Time).boxed(),
        TypeTag::Interval => float().prop_map(Interval).boxed(),
        TypeTag::String => raw_bytes().prop_map(String).boxed(),
        TypeTag::Enum => raw_bytes().prop_map(Enum).boxed(),
        TypeTag::Port => (any::<u64>(), proto())
            .prop_map(|(n, p)| Port(n, p))
            .boxed(),
        TypeTag::Addr => ip().prop_map(Addr).boxed(),
        TypeTag::Subnet => prop_oneof![
            (any::<[u8; 4]>(), 0..=32u8).prop_map(|(o, p)| Subnet(IpAddr::V4(o.into()), p)),
            (any::<[u8; 16]>(), 0..=128u8).prop_map(|(o, p)| Subnet(IpAddr::V6(o.into()), p)),
        ]
        .boxed(),
        TypeTag::Func => raw_bytes().prop_map(Func).boxed(),
        TypeTag::File => raw_bytes().prop_map(File).boxed(),
        other => panic!("{other:?} is not an atomic loggable type"),
    }
}

/// A value for a column of type `ty` with elements of `subtype`: present,
/// or unset under the column's tag. A set's or vector's elements are of
/// `subtype`; the elements of a set or vector inside one (nesting Zeek's
/// logs do not produce) are anything, as nothing declares their type.
fn value_of(ty: TypeTag, subtype: TypeTag) -> BoxedStrategy<TestValue> {
    let present = match ty {
        TypeTag::Table | TypeTag::Vector => {
            let element = match subtype {
                TypeTag::Void => value().boxed(),
                element => value_of(element, TypeTag::Void),
            };
            let elements = prop::collection::vec(element, 0..4);
            if ty == TypeTag::Table {
                elements.prop_map(TestValue::Set).boxed()
            } else {
                elements.prop_map(TestValue::Vector).boxed()
            }
        }
        atomic => atomic_of(atomic),
    };
    prop_oneof![1 => Just(TestValue::Unset(ty)), 6 => present].boxed()
}

/// A schema and records of values for it, each of its column's type.
fn batch() -> impl Strategy<Value = (Schema, Vec<Vec<TestValue>>)> {
    schema().prop_flat_map(|s| {
        let record: Vec<_> = s.fields.iter().map(|f| value_of(f.ty, f.subtype)).collect();
        let records = prop::collection::vec(record, 0..5);
        (Just(s), records)
    })
}

/// A schema and records of any values, whatever their columns' types.
fn loose_batch() -> impl Strategy<Value = (Schema, Vec<Vec<TestValue>>)> {
    schema().prop_flat_map(|s| {
        let n = s.fields.len();
        let records = prop::collection::vec(prop::collection::vec(value(), n), 0..5);
        (Just(s), records)
    })
}

/// Whether `v` may stand in column `field`: its tag is the column's, and
/// a set's or vector's elements have the column's element type.
fn fits(field: &Field, v: &TestValue) -> bool {
    if v.tag() != field.ty as i32 {
        return false;
    }
    match v {
        TestValue::Set(e) | TestValue::Vector(e) => {
            e.iter().all(|e| e.tag() == field.subtype as i32)
        }
        _ => true,
    }
}

fn encode(schema: &Schema, records: &[Vec<TestValue>]) -> Vec<u8> {
    let [stream, writer, filter] = &schema.names;
    let mut b = BatchBuilder::new(stream, writer, filter, &schema.path);
    for f in &schema.fields {
        b = b.field(&f.name, f.ty, f.subtype, f.optional);
    }
    for r in records {
        b.push_record(r);
    }
    b.finish()
}

/// A batch that decoded to the end (so its records were all read) or
/// failed somewhere; iterates every container of every record read.
fn decode_any(bytes: Vec<u8>) -> Result<(), BatchError> {
    fn walk(v: &Value<'_>, depth: usize) {
        assert!(depth <= 8, "nesting beyond the limit was accepted");
        if let Value::Set(e) | Value::Vector(e) = v {
            let mut n = 0;
            for v in e.iter() {
                walk(&v, depth + 1);
                n += 1;
            }
            assert_eq!(n, e.len());
        }
    }
    let batch = Batch::parse(Bytes::from(bytes))?;
    let mut records = batch.records();
    let mut out = Vec::new();
    while records.next_into(&mut out)? {
        out.iter().for_each(|v| walk(v, 0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn values_of_other_types_than_their_columns_are_refused((schema, records) in loose_batch()) {
        let fit = records
            .iter()
            .all(|r| r.iter().zip(&schema.fields).all(|(v, f)| fits(f, v)));
        match decode(encode(&schema, &records)) {
            Ok(_) => prop_assert!(fit, "a misfit was accepted"),
            Err(e) => {
                prop_assert!(!fit, "refused: {}", e);
                prop_assert_eq!(e.reason(), "type_mismatch");
            }
        }
    }

    #[test]
    fn encode_then_decode_gives_the_values_back((schema, records) in batch()) {
        let (header, decoded) = decode(encode(&schema, &records)).unwrap();
        let [stream, writer, filter] = &schema.names;
        prop_assert_eq!(&header.stream, stream);
        prop_assert_eq!(&header.writer, writer);
        prop_assert_eq!(&header.filter, filter);
        prop_assert_eq!(&header.path, &schema.path);
        prop_assert_eq!(&header.fields, &schema.fields);
        let expected: Vec<Vec<TestValue>> = records
            .iter()
            .map(|r| r.iter().map(TestValue::decoded).collect())
            .collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn truncated_batches_are_rejected((schema, records) in batch(), cut in any::<Index>()) {
        let bytes = encode(&schema, &records);
        let cut = cut.index(bytes.len());
        prop_assert!(decode_any(bytes[..cut].to_vec()).is_err(), "cut at {} of {}", cut, bytes.len());
    }

    #[test]
    fn corrupted_batches_never_panic(
        (schema, records) in batch(),
        edits in prop::collection::vec((any::<Index>(), 0..4u8, any::<u8>()), 1..6),
    ) {
        let mut bytes = encode(&schema, &records);
        for (at, kind, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] ^= 1 << (byte % 8),
                1 => bytes[i] = byte,
                2 => bytes.insert(i, byte),
                _ => {
                    bytes.remove(i);
                }
            }
        }
        // Ok or Err are both fine; a panic fails the test.
        let _ = decode_any(bytes);
    }
}

#[path = "support/recording.rs"]
mod recording;

#[test]
fn every_batch_a_live_zeek_cluster_sent_decodes() {
    let bytes = std::fs::read(recording::zeek_cluster_recording()).unwrap();
    let messages = recording::read_messages(&bytes);
    assert_eq!(messages.len(), 817);
    let mut records = 0;
    let mut paths = std::collections::BTreeSet::new();
    for frames in &messages {
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[2], b"zeek-bin-serializer");
        // Every value has its column's type (the decoder refuses others).
        let (header, decoded) = decode(frames[3].clone()).unwrap_or_else(|e| panic!("{e}"));
        records += decoded.len();
        paths.insert(header.path);
    }
    assert_eq!((records, paths.len()), (2142, 20));
}
