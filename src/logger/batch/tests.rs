//! The batch decoder's tests: the contract's vectors, every rejection, and
//! properties over generated batches.

use super::*;

/// Bytes from hex digits; whitespace is ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Contract §4.6: `Conn::LOG`, 4 columns, 1 record, 219 bytes.
const WORKED: &str = "
    00 00 00 09 43 6f 6e 6e 3a 3a 4c 4f 47 00 00 00
    11 4c 6f 67 3a 3a 57 52 49 54 45 52 5f 41 53 43
    49 49 00 00 00 07 64 65 66 61 75 6c 74 00 00 00
    04 63 6f 6e 6e 00 00 00 04 00 00 00 00 03 75 69
    64 00 00 00 07 00 00 00 00 00 00 00 00 00 09 69
    64 2e 6f 72 69 67 5f 68 00 00 00 0b 00 00 00 00
    00 00 00 00 00 09 69 64 2e 6f 72 69 67 5f 70 00
    00 00 0a 00 00 00 00 00 00 00 00 00 0a 6f 72 69
    67 5f 62 79 74 65 73 00 00 00 03 00 00 00 00 01
    00 00 00 01 00 00 00 07 00 00 00 00 01 00 00 00
    06 43 41 62 63 31 32 00 00 00 0b 00 00 00 00 01
    04 c0 a8 01 0a 00 00 00 0a 00 00 00 00 01 00 00
    00 00 00 00 c0 00 00 00 00 01 00 00 00 03 00 00
    00 00 01 00 00 00 00 00 00 04 d2";

/// In WORKED: where the record (after num_records) and its second
/// value (the addr) start and end.
const RECORD_AT: usize = 0x94;
const ADDR_AT: usize = 0xa7;
const ADDR_END: usize = 0xb5;

/// Contract §4.8: Zeek's own "roundtrip" vector, 116 bytes.
const ZEEK_ROUNDTRIP: &str = "
    00 00 00 0c 4c 6f 67 3a 3a 55 4e 4b 4e 4f 57 4e
    00 00 00 10 4c 6f 67 3a 3a 57 52 49 54 45 52 5f
    4e 4f 4e 45 00 00 00 07 64 65 66 61 75 6c 74 00
    00 00 07 6d 79 2d 70 61 74 68 00 00 00 01 00 00
    00 00 02 74 73 00 00 00 05 00 00 00 16 00 00 00
    00 02 00 00 00 05 00 00 00 16 01 3f f0 00 00 00
    00 00 00 00 00 00 05 00 00 00 16 01 40 00 00 00
    00 00 00 00";

fn put_str(b: &mut Vec<u8>, s: &[u8]) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s);
}

/// A header with the given path and one field `x` of type `ty`, then
/// `num_records` (without the records).
fn header(path: &[u8], ty: i32, subtype: i32, num_records: u32) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, b"Test::LOG");
    put_str(&mut b, b"Log::WRITER_ASCII");
    put_str(&mut b, b"default");
    put_str(&mut b, path);
    b.extend_from_slice(&1u32.to_be_bytes());
    b.push(0);
    put_str(&mut b, b"x");
    b.extend_from_slice(&ty.to_be_bytes());
    b.extend_from_slice(&subtype.to_be_bytes());
    b.push(1);
    b.extend_from_slice(&num_records.to_be_bytes());
    b
}

/// A one-field, one-record batch around a value fragment.
fn one_field(fragment: &str) -> Vec<u8> {
    let value = hex(fragment);
    let ty = i32::from_be_bytes(value[..4].try_into().unwrap());
    let ty = if TypeTag::from_wire(ty).is_some() {
        ty
    } else {
        7
    };
    let mut b = header(b"test", ty, 0, 1);
    b.extend_from_slice(&value);
    b
}

/// Decodes a one-field batch around `fragment` and hands its value to
/// `check`; the batch must hold exactly that one record.
fn one_value(fragment: &str, check: impl FnOnce(&Value<'_>)) {
    let batch = Batch::parse(Bytes::from(one_field(fragment))).expect("header");
    let mut records = batch.records();
    let mut out = Vec::new();
    assert!(records.next_into(&mut out).expect("record"));
    assert_eq!(out.len(), 1);
    check(&out[0]);
    assert!(!records.next_into(&mut out).expect("end"));
    assert!(out.is_empty());
}

/// Reads a whole batch, iterating every container; the first error.
fn read_all(bytes: Vec<u8>) -> Result<usize, BatchError> {
    fn walk(v: &Value<'_>) -> usize {
        match v {
            Value::Set(e) | Value::Vector(e) => 1 + e.iter().map(|v| walk(&v)).sum::<usize>(),
            _ => 1,
        }
    }
    let batch = Batch::parse(Bytes::from(bytes))?;
    let mut records = batch.records();
    let mut out = Vec::new();
    let mut n = 0;
    while records.next_into(&mut out)? {
        n += out.iter().map(walk).sum::<usize>();
    }
    Ok(n)
}

fn value_err(fragment: &str) -> BatchError {
    read_all(one_field(fragment)).expect_err("must be rejected")
}

fn field(name: &str, ty: TypeTag, optional: bool) -> Field {
    Field {
        name: name.into(),
        ty,
        subtype: TypeTag::Void,
        optional,
    }
}

#[test]
fn worked_example_decodes_exactly() {
    let bytes = hex(WORKED);
    assert_eq!(bytes.len(), 219);
    let batch = Batch::parse(Bytes::from(bytes)).unwrap();
    let h = batch.header();
    assert_eq!(h.stream, "Conn::LOG");
    assert_eq!(h.writer, "Log::WRITER_ASCII");
    assert_eq!(h.filter, "default");
    assert_eq!(h.path, "conn");
    assert_eq!(
        h.fields,
        vec![
            field("uid", TypeTag::String, false),
            field("id.orig_h", TypeTag::Addr, false),
            field("id.orig_p", TypeTag::Port, false),
            field("orig_bytes", TypeTag::Count, true),
        ]
    );
    assert_eq!(batch.num_records(), 1);

    let mut records = batch.records();
    let mut out = Vec::new();
    assert!(records.next_into(&mut out).unwrap());
    assert_eq!(
        out,
        vec![
            Value::String(b"CAbc12"),
            Value::Addr("192.168.1.10".parse().unwrap()),
            Value::Port {
                number: 49152,
                proto: Proto::Tcp
            },
            Value::Count(1234),
        ]
    );
    assert!(!records.next_into(&mut out).unwrap());
    assert!(out.is_empty());
    // Fused after the end.
    assert!(!records.next_into(&mut out).unwrap());
}

#[test]
fn strings_borrow_the_batch() {
    let bytes = Bytes::from(hex(WORKED));
    let range = bytes.as_ptr_range();
    let batch = Batch::parse(bytes).unwrap();
    let mut records = batch.records();
    let mut out = Vec::new();
    records.next_into(&mut out).unwrap();
    let Value::String(s) = out[0] else {
        panic!("not a string: {:?}", out[0])
    };
    assert!(range.contains(&s.as_ptr()));
}

#[test]
fn zeek_roundtrip_vector_decodes() {
    let bytes = hex(ZEEK_ROUNDTRIP);
    assert_eq!(bytes.len(), 116);
    let batch = Batch::parse(Bytes::from(bytes)).unwrap();
    let h = batch.header();
    assert_eq!(
        (&*h.stream, &*h.writer, &*h.filter, &*h.path),
        ("Log::UNKNOWN", "Log::WRITER_NONE", "default", "my-path")
    );
    assert_eq!(
        h.fields,
        vec![Field {
            name: "ts".into(),
            ty: TypeTag::Time,
            subtype: TypeTag::Error,
            optional: false,
        }]
    );
    assert_eq!(batch.num_records(), 2);
    let mut records = batch.records();
    let mut out = Vec::new();
    assert!(records.next_into(&mut out).unwrap());
    assert_eq!(out, vec![Value::Time(1.0)]);
    assert!(records.next_into(&mut out).unwrap());
    assert_eq!(out, vec![Value::Time(2.0)]);
    assert!(!records.next_into(&mut out).unwrap());
}

#[test]
fn fragments_decode() {
    one_value("00 00 00 03 00 00 00 00 00", |v| {
        assert_eq!(*v, Value::Unset(TypeTag::Count))
    });
    one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 01", |v| {
        assert_eq!(*v, Value::Bool(true))
    });
    one_value("00 00 00 02 00 00 00 00 01 ff ff ff ff ff ff ff fe", |v| {
        assert_eq!(*v, Value::Int(-2))
    });
    one_value("00 00 00 06 00 00 00 00 01 3f f8 00 00 00 00 00 00", |v| {
        assert_eq!(*v, Value::Interval(1.5))
    });
    one_value("00 00 00 09 00 00 00 00 01 00 00 00 03 74 63 70", |v| {
        assert_eq!(*v, Value::Enum(b"tcp"))
    });
    one_value(
        "00 00 00 0b 00 00 00 00 01 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01",
        |v| assert_eq!(*v, Value::Addr("2001:db8::1".parse().unwrap())),
    );
    one_value("00 00 00 0c 00 00 00 00 01 68 04 0a 00 00 00", |v| {
        assert_eq!(
            *v,
            Value::Subnet {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        )
    });
    one_value(
        "00 00 00 0c 00 00 00 00 01 20 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00",
        |v| {
            assert_eq!(
                *v,
                Value::Subnet {
                    addr: "2001:db8::".parse().unwrap(),
                    prefix: 32
                }
            )
        },
    );
    one_value(
        "00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 00 00 00 02",
        |v| {
            assert_eq!(
                *v,
                Value::Port {
                    number: 53,
                    proto: Proto::Udp
                }
            )
        },
    );
    one_value(
        "00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 02
         00 00 00 07 00 00 00 00 01 00 00 00 01 61
         00 00 00 07 00 00 00 00 01 00 00 00 01 62",
        |v| {
            let Value::Set(e) = v else {
                panic!("not a set: {v:?}")
            };
            assert_eq!(e.len(), 2);
            assert_eq!(e.iter().len(), 2);
            let got: Vec<_> = e.iter().collect();
            assert_eq!(got, vec![Value::String(b"a"), Value::String(b"b")]);
        },
    );
    one_value(
        "00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
         00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01
         00 00 00 03 00 00 00 00 00",
        |v| {
            let Value::Vector(e) = v else {
                panic!("not a vector: {v:?}")
            };
            let got: Vec<_> = e.into_iter().collect();
            assert_eq!(got, vec![Value::Count(1), Value::Unset(TypeTag::Count)]);
        },
    );
    one_value("00 00 00 07 00 00 00 00 01 00 00 00 00", |v| {
        assert_eq!(*v, Value::String(b""))
    });
}

#[test]
fn more_values_decode() {
    // Zeek's subnet test: 0x70 = /16 for IPv4.
    one_value("00 00 00 0c 00 00 00 00 01 70 04 c0 a8 00 00", |v| {
        assert_eq!(
            *v,
            Value::Subnet {
                addr: "192.168.0.0".parse().unwrap(),
                prefix: 16
            }
        )
    });
    // IPv4 /0 and /32 on the wire: 96 and 128.
    one_value("00 00 00 0c 00 00 00 00 01 60 04 00 00 00 00", |v| {
        assert!(matches!(v, Value::Subnet { prefix: 0, .. }))
    });
    one_value("00 00 00 0c 00 00 00 00 01 80 04 01 02 03 04", |v| {
        assert!(matches!(v, Value::Subnet { prefix: 32, .. }))
    });
    one_value("00 00 00 03 00 00 00 00 01 ff ff ff ff ff ff ff ff", |v| {
        assert_eq!(*v, Value::Count(u64::MAX))
    });
    one_value("00 00 00 04 00 00 00 00 01 7f f0 00 00 00 00 00 00", |v| {
        assert_eq!(*v, Value::Double(f64::INFINITY))
    });
    one_value("00 00 00 05 00 00 00 00 01 7f f8 00 00 00 00 00 01", |v| {
        let Value::Time(t) = v else { panic!("{v:?}") };
        assert_eq!(t.to_bits(), 0x7ff8_0000_0000_0001);
    });
    one_value("00 00 00 11 00 00 00 00 01 00 00 00 02 66 6e", |v| {
        assert_eq!(*v, Value::Func(b"fn"))
    });
    one_value("00 00 00 12 00 00 00 00 01 00 00 00 01 66", |v| {
        assert_eq!(*v, Value::File(b"f"))
    });
    // Strings are raw bytes: NUL and invalid UTF-8 pass.
    one_value("00 00 00 07 00 00 00 00 01 00 00 00 03 00 ff fe", |v| {
        assert_eq!(*v, Value::String(b"\0\xff\xfe"))
    });
    // An empty vector.
    one_value("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 00", |v| {
        let Value::Vector(e) = v else { panic!("{v:?}") };
        assert!(e.is_empty());
        assert_eq!(e.iter().next(), None);
    });
    // Any value subtype is ignored, even on containers (Zeek's
    // "set with invalid subtype" doctest).
    one_value(
        "00 00 00 0e 00 00 00 ff 01 00 00 00 00 00 00 00 01
         00 00 00 01 00 00 00 16 01 00 00 00 00 00 00 00 00",
        |v| {
            let Value::Set(e) = v else { panic!("{v:?}") };
            assert_eq!(e.iter().collect::<Vec<_>>(), vec![Value::Bool(false)]);
        },
    );
}

#[test]
fn bool_is_true_when_non_zero() {
    one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 ff", |v| {
        assert_eq!(*v, Value::Bool(true))
    });
    one_value("00 00 00 01 00 00 00 00 01 80 00 00 00 00 00 00 00", |v| {
        assert_eq!(*v, Value::Bool(true))
    });
    one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 00", |v| {
        assert_eq!(*v, Value::Bool(false))
    });
}

#[test]
fn only_0x01_is_present() {
    // Zeek reads a bool byte as true only when it is 1.
    one_value("00 00 00 07 00 00 00 00 02", |v| {
        assert_eq!(*v, Value::Unset(TypeTag::String))
    });
    one_value("00 00 00 07 00 00 00 00 ff", |v| {
        assert_eq!(*v, Value::Unset(TypeTag::String))
    });
}

#[test]
fn cached_headers_are_the_parsed_ones_and_shared() {
    let mut cache = HeaderCache::default();
    let worked = Bytes::from(hex(WORKED));
    let first = Batch::parse_cached(worked.clone(), &mut cache).unwrap();
    let again = Batch::parse_cached(worked.clone(), &mut cache).unwrap();
    let plain = Batch::parse(worked.clone()).unwrap();
    assert!(Arc::ptr_eq(first.shared_header(), again.shared_header()));
    assert_eq!(again.header(), plain.header());
    assert_eq!(again.num_records(), plain.num_records());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert!(again.records().next_into(&mut a).unwrap());
    assert!(plain.records().next_into(&mut b).unwrap());
    assert_eq!(a, b);
    // Same path, another schema: parsed, not taken from the cache.
    let other = Bytes::from(one_field("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
    let mut renamed = header(b"conn", 7, 0, 1);
    renamed.extend_from_slice(&hex("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
    let renamed = Batch::parse_cached(Bytes::from(renamed), &mut cache).unwrap();
    assert_eq!(renamed.header().fields.len(), 1);
    assert!(!Arc::ptr_eq(renamed.shared_header(), first.shared_header()));
    assert_eq!(
        Batch::parse_cached(other, &mut cache)
            .unwrap()
            .header()
            .path,
        "test"
    );
    // The count after a cached header is still checked.
    let mut short = worked.to_vec();
    short.truncate(RECORD_AT - 2);
    let err = Batch::parse_cached(Bytes::from(short), &mut cache).unwrap_err();
    assert_eq!(err.reason(), "truncated");
    // A batch that ends right after its schema: the same error either way.
    let mut bare = header(b"bare", 3, 0, 0);
    bare.truncate(bare.len() - 4);
    let uncached = Batch::parse(Bytes::from(bare.clone())).unwrap_err();
    let mut warm = HeaderCache::default();
    let mut whole = bare.clone();
    whole.extend_from_slice(&0u32.to_be_bytes());
    Batch::parse_cached(Bytes::from(whole), &mut warm).unwrap();
    let cached = Batch::parse_cached(Bytes::from(bare), &mut warm).unwrap_err();
    assert_eq!(uncached, cached);
    // Bounded: one schema too many empties it.
    for i in 0..HeaderCache::MAX as u32 + 1 {
        let b = header(format!("p{i}").as_bytes(), 3, 0, 0);
        Batch::parse_cached(Bytes::from(b), &mut cache).unwrap();
    }
    assert!(cache.schemas <= HeaderCache::MAX);
}

/// A header of `fields` count fields with names of about 4,000 bytes,
/// and no records.
fn wide_header(path: &[u8], fields: u32) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, b"Test::LOG");
    put_str(&mut b, b"Log::WRITER_ASCII");
    put_str(&mut b, b"default");
    put_str(&mut b, path);
    b.extend_from_slice(&fields.to_be_bytes());
    for f in 0..fields {
        b.push(0);
        let mut name = vec![b'a'; 4000];
        name.extend_from_slice(f.to_string().as_bytes());
        put_str(&mut b, &name);
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(1);
    }
    b.extend_from_slice(&0u32.to_be_bytes());
    b
}

#[test]
fn the_header_cache_is_bounded_per_path_and_in_bytes() {
    let mut cache = HeaderCache::default();
    // Schemas of one path: the newest few are kept.
    for i in 0..HeaderCache::MAX_PER_PATH as i32 + 3 {
        let b = header(b"one", 3 + i % 2, i, 0);
        Batch::parse_cached(Bytes::from(b), &mut cache).unwrap();
    }
    assert_eq!(cache.by_path[&b"one"[..]].len(), HeaderCache::MAX_PER_PATH);
    assert_eq!(cache.schemas, HeaderCache::MAX_PER_PATH);
    let held: usize = cache.by_path.values().flatten().map(|c| c.raw.len()).sum();
    assert_eq!(cache.bytes, held);
    // A header over the per-header bound is parsed, not kept.
    let big = Bytes::from(wide_header(b"big", 20));
    assert!(big.len() > HeaderCache::MAX_HEADER_BYTES);
    let a = Batch::parse_cached(big.clone(), &mut cache).unwrap();
    let b = Batch::parse_cached(big, &mut cache).unwrap();
    assert!(!Arc::ptr_eq(a.shared_header(), b.shared_header()));
    assert!(!cache.by_path.contains_key(&b"big"[..]));
    // Many paths of headers just under it: the bytes stay within bounds.
    let mut cache = HeaderCache::default();
    for i in 0..200 {
        let b = wide_header(format!("q{i}").as_bytes(), 15);
        assert!(b.len() <= HeaderCache::MAX_HEADER_BYTES);
        Batch::parse_cached(Bytes::from(b), &mut cache).unwrap();
        assert!(cache.bytes <= HeaderCache::MAX_BYTES, "{}", cache.bytes);
    }
}

#[test]
fn a_value_must_have_its_columns_type() {
    // Field `x` says count; the value says string: refused, saying so.
    let mut b = header(b"test", 3, 0, 1);
    b.extend_from_slice(&hex("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    let mut out = Vec::new();
    let err = batch.records().next_into(&mut out).unwrap_err();
    assert_eq!(err.reason(), "type_mismatch");
    assert_eq!(
        err.to_string(),
        "record 0, field `x`, byte 76: a string value in a column of type count"
    );
    // Unset, it must still carry the column's tag.
    let mut b = header(b"test", 5, 0, 1);
    b.extend_from_slice(&hex("00 00 00 03 00 00 00 00 00"));
    let err = Batch::parse(Bytes::from(b))
        .unwrap()
        .records()
        .next_into(&mut out)
        .unwrap_err();
    assert_eq!(err.reason(), "type_mismatch", "{err}");
}

#[test]
fn elements_must_have_their_columns_element_type() {
    // set[string] column; the second element is a count.
    let mut b = header(b"test", 14, 7, 1);
    b.extend_from_slice(&hex("00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 02
         00 00 00 07 00 00 00 00 01 00 00 00 01 61
         00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01"));
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    let mut out = Vec::new();
    let err = batch.records().next_into(&mut out).unwrap_err();
    assert_eq!(err.reason(), "type_mismatch");
    assert!(
        err.to_string()
            .ends_with("a count element in a column of type set[string]"),
        "{err}"
    );
    // vector[count] with a hole of the right type decodes.
    let mut b = header(b"test", 19, 3, 1);
    b.extend_from_slice(&hex("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
         00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01
         00 00 00 03 00 00 00 00 00"));
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    assert!(batch.records().next_into(&mut out).unwrap());
    let Value::Vector(e) = out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        e.iter().collect::<Vec<_>>(),
        [Value::Count(1), Value::Unset(TypeTag::Count)]
    );
}

#[test]
fn non_optional_column_may_be_unset() {
    // contract §12: id.* of weird.log when the parent record is unset.
    let worked = hex(WORKED);
    let mut b = worked[..ADDR_AT].to_vec();
    b.extend_from_slice(&hex("00 00 00 0b 00 00 00 00 00"));
    b.extend_from_slice(&worked[ADDR_END..]);
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    assert!(!batch.header().fields[1].optional);
    let mut out = Vec::new();
    assert!(batch.records().next_into(&mut out).unwrap());
    assert_eq!(out[1], Value::Unset(TypeTag::Addr));
    assert_eq!(out[3], Value::Count(1234));
}

#[test]
fn field_flags_and_secondary_name() {
    // have_secondary_name = 1 with a name to skip; optional byte 2 is
    // false (only 0x01 is true).
    let mut b = Vec::new();
    for s in [&b"S"[..], b"W", b"f", b"p"] {
        put_str(&mut b, s);
    }
    b.extend_from_slice(&2u32.to_be_bytes());
    b.push(1);
    put_str(&mut b, b"secondary");
    put_str(&mut b, b"tags");
    b.extend_from_slice(&hex("00 00 00 0e 00 00 00 07 02"));
    // §4.7's descriptor of "tags": set[string], &optional.
    b.extend_from_slice(&hex(
        "00 00 00 00 04 74 61 67 73 00 00 00 0e 00 00 00 07 01",
    ));
    b.extend_from_slice(&0u32.to_be_bytes());
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    let set_of_strings = |optional| Field {
        name: "tags".into(),
        ty: TypeTag::Table,
        subtype: TypeTag::String,
        optional,
    };
    assert_eq!(
        batch.header().fields,
        vec![set_of_strings(false), set_of_strings(true)]
    );
    assert_eq!(batch.num_records(), 0);
    assert!(!batch.records().next_into(&mut Vec::new()).unwrap());
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let worked = hex(WORKED);
    for n in 0..worked.len() {
        let err = read_all(worked[..n].to_vec()).expect_err("truncated batch accepted");
        assert_eq!(err.reason(), "truncated", "cut at {n}: {err}");
    }
    assert_eq!(read_all(worked).unwrap(), 4);
}

#[test]
fn truncation_messages_say_where() {
    let worked = hex(WORKED);
    // Inside the last value of record 0.
    let err = read_all(worked[..214].to_vec()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record 0, field `orig_bytes`, byte 211: truncated: a count needs 8 bytes, 3 left"
    );
    // Too short for any record of 4 values.
    let err = read_all(worked[..RECORD_AT + 15].to_vec()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "header num_records, byte 144: 1 records of at least 36 bytes each cannot fit in the 15 bytes left"
    );
    // Inside the name of field descriptor 3.
    let err = Batch::parse(Bytes::from(worked[..0x80].to_vec())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field descriptor 3, byte 125: truncated: a name needs 10 bytes, 3 left"
    );
    // Too short for 4 descriptors.
    let err = Batch::parse(Bytes::from(worked[..0x52].to_vec())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "header num_fields, byte 53: 4 field descriptors of at least 14 bytes each cannot fit in the 25 bytes left"
    );
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut b = hex(WORKED);
    b.extend_from_slice(&[0, 0, 0]);
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    let mut records = batch.records();
    let mut out = Vec::new();
    assert!(records.next_into(&mut out).unwrap());
    let err = records.next_into(&mut out).unwrap_err();
    assert!(
        matches!(err, BatchError::TrailingBytes { count: 3 }),
        "{err}"
    );
    assert_eq!(err.reason(), "trailing_bytes");
    assert!(!records.next_into(&mut out).unwrap());
}

#[test]
fn unknown_and_unloggable_types_are_rejected() {
    let err = value_err("00 00 00 ff 00 00 00 00 01 00");
    assert!(
        matches!(err, BatchError::UnknownType { tag: 255, .. }),
        "{err}"
    );
    assert_eq!(err.reason(), "unknown_type");
    assert_eq!(
        err.to_string(),
        "record 0, field `x`, byte 76: unknown type tag 255"
    );
    // Unknown even when unset.
    let err = value_err("ff ff ff ff 00 00 00 00 00");
    assert!(
        matches!(err, BatchError::UnknownType { tag: -1, .. }),
        "{err}"
    );

    for tag in [0u8, 8, 13, 15, 16, 20, 21, 22] {
        for present in [0u8, 1] {
            let err = value_err(&format!("00 00 00 {tag:02x} 00 00 00 00 {present:02x} 00"));
            assert_eq!(err.reason(), "not_loggable", "tag {tag}: {err}");
        }
    }
    let err = value_err("00 00 00 08 00 00 00 00 01 00 00 00 00");
    assert_eq!(
        err.to_string(),
        "record 0, field `x`, byte 76: a value of type pattern (8) cannot be logged"
    );

    // Field descriptors: any known tag (Zeek's test uses subtype 22),
    // but not an unknown one.
    assert!(Batch::parse(Bytes::from(header(b"p", 15, 22, 0))).is_ok());
    let err = Batch::parse(Bytes::from(header(b"p", 23, 0, 0))).unwrap_err();
    assert!(
        matches!(err, BatchError::UnknownType { tag: 23, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "field descriptor 0 (`x`), byte 60: unknown type tag 23"
    );
    let err = Batch::parse(Bytes::from(header(b"p", 7, -3, 0))).unwrap_err();
    assert!(
        matches!(err, BatchError::UnknownType { tag: -3, .. }),
        "{err}"
    );
}

#[test]
fn bad_addresses_ports_and_subnets_are_rejected() {
    let err = value_err("00 00 00 0b 00 00 00 00 01 05 c0 a8 01 0a");
    assert!(
        matches!(err, BatchError::BadAddrFamily { family: 5, .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "record 0, field `x`, byte 85: address family 5 is not 4 or 6"
    );
    let err = value_err("00 00 00 0c 00 00 00 00 01 68 00 0a 00 00 00");
    assert!(
        matches!(err, BatchError::BadAddrFamily { family: 0, .. }),
        "{err}"
    );

    let err = value_err("00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 00 00 00 07");
    assert_eq!(
        err.to_string(),
        "record 0, field `x`, byte 93: port protocol 7 is not 0-3"
    );
    assert_eq!(err.reason(), "bad_port_proto");
    let err = value_err("00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 ff ff ff ff");
    assert!(
        matches!(err, BatchError::BadPortProto { proto: -1, .. }),
        "{err}"
    );

    for (prefix, family) in [(0x5f, 4), (0x08, 4), (0x81, 4), (0x81, 6), (0xff, 6)] {
        let addr = if family == 4 {
            "04 0a 00 00 00"
        } else {
            "06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00"
        };
        let err = value_err(&format!("00 00 00 0c 00 00 00 00 01 {prefix:02x} {addr}"));
        assert!(
            matches!(err, BatchError::BadPrefix { prefix: p, family: f, .. } if p == prefix && f == family),
            "{err}"
        );
        assert_eq!(err.reason(), "bad_prefix");
    }
    one_value(
        "00 00 00 0c 00 00 00 00 01 80 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00",
        |v| assert!(matches!(v, Value::Subnet { prefix: 128, .. })),
    );
}

#[test]
fn bad_lengths_and_counts_are_rejected() {
    let err = value_err("00 00 00 07 00 00 00 00 01 ff ff ff ff 61");
    assert!(
        matches!(err, BatchError::NegativeLength { len: -1, .. }),
        "{err}"
    );
    assert_eq!(err.reason(), "negative_length");
    let err = value_err("00 00 00 07 00 00 00 00 01 80 00 00 00 61");
    assert!(matches!(err, BatchError::NegativeLength { .. }), "{err}");
    // Longer than what is left (Zeek's "string beyond input").
    let err = value_err("00 00 00 07 00 00 00 00 01 00 00 00 05 61");
    assert_eq!(err.reason(), "truncated", "{err}");

    let err = value_err("00 00 00 13 00 00 00 00 01 ff ff ff ff ff ff ff ff");
    assert!(
        matches!(err, BatchError::NegativeCount { count: -1, .. }),
        "{err}"
    );
    assert_eq!(err.reason(), "negative_count");
    // A huge count is refused before anything is read or allocated.
    let err = value_err("00 00 00 0e 00 00 00 00 01 7f ff ff ff ff ff ff ff");
    assert!(
        matches!(err, BatchError::CountTooLarge { left: 0, .. }),
        "{err}"
    );
    // Two elements announced, one present (Zeek's truncated container).
    let err = value_err(
        "00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
         00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 01",
    );
    assert_eq!(err.reason(), "truncated", "{err}");
    // An element that is itself bad is found at decode time.
    let err = value_err(
        "00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 01
         00 00 00 0b 00 00 00 00 01 07 00 00 00 00",
    );
    assert!(
        matches!(err, BatchError::BadAddrFamily { family: 7, .. }),
        "{err}"
    );
}

/// A vector nested `levels` deep around one count.
fn nested(levels: usize) -> String {
    let mut s = String::new();
    for _ in 0..levels {
        s.push_str("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 01 ");
    }
    s + "00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 2a"
}

#[test]
fn nesting_is_bounded() {
    one_value(&nested(MAX_DEPTH as usize), |v| {
        let mut v = *v;
        let mut levels = 0;
        while let Value::Vector(e) = v {
            assert_eq!(e.len(), 1);
            v = e.iter().next().unwrap();
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH);
        assert_eq!(v, Value::Count(42));
    });
    let err = value_err(&nested(MAX_DEPTH as usize + 1));
    assert_eq!(err.reason(), "too_deep", "{err}");
}

#[test]
fn bad_paths_are_rejected() {
    let long = vec![b'a'; MAX_PATH_LEN + 1];
    for (path, why) in [
        (&b""[..], "empty"),
        (b"../conn", "'.'"),
        (b".hidden", "'.'"),
        (b"a/b", "'/'"),
        (b"/etc/passwd", "'/'"),
        (b"co\0nn", "NUL"),
        (b"conn\xff", "UTF-8"),
        (&long, "200"),
    ] {
        let err = Batch::parse(Bytes::from(header(path, 7, 0, 0))).unwrap_err();
        assert_eq!(err.reason(), "bad_path", "{path:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(why), "{path:?}: {msg}");
    }
    let max = vec![b'a'; MAX_PATH_LEN];
    for path in [&b"conn"[..], b"my-path", b"dns.2024", b"x", &max] {
        let batch = Batch::parse(Bytes::from(header(path, 7, 0, 0))).unwrap();
        assert_eq!(batch.header().path.as_bytes(), path);
    }
}

#[test]
fn header_limits() {
    // Non-UTF-8 stream name.
    let mut b = Vec::new();
    put_str(&mut b, b"Conn\xc3");
    let err = Batch::parse(Bytes::from(b)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "header stream name, byte 4: name is not UTF-8"
    );
    assert_eq!(err.reason(), "not_utf8");

    // A name over MAX_NAME_LEN, even though the bytes are there.
    let mut b = Vec::new();
    put_str(&mut b, &vec![b'a'; MAX_NAME_LEN + 1]);
    let err = Batch::parse(Bytes::from(b)).unwrap_err();
    assert_eq!(err.reason(), "too_large", "{err}");

    // num_fields over the limit, and num_fields beyond the input.
    let mut b = header(b"p", 7, 0, 0);
    let at = b.len() - 4 - 15 - 4;
    b[at..at + 4].copy_from_slice(&(MAX_FIELDS + 1).to_be_bytes());
    let err = Batch::parse(Bytes::from(b.clone())).unwrap_err();
    assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
    b[at..at + 4].copy_from_slice(&2u32.to_be_bytes());
    let err = Batch::parse(Bytes::from(b)).unwrap_err();
    assert!(
        matches!(err, BatchError::CountTooLarge { count: 2, .. }),
        "{err}"
    );

    // num_records beyond the input is refused by the header.
    let err = Batch::parse(Bytes::from(header(b"p", 7, 0, u32::MAX))).unwrap_err();
    assert!(
        matches!(
            err,
            BatchError::CountTooLarge {
                count: 0xffff_ffff,
                min: 9,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.reason(), "truncated");

    // No fields: zero records is fine, any record is not.
    let mut b = Vec::new();
    for s in [&b"S"[..], b"W", b"f", b"p"] {
        put_str(&mut b, s);
    }
    b.extend_from_slice(&0u32.to_be_bytes());
    let mut none = b.clone();
    none.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(read_all(none).unwrap(), 0);
    b.extend_from_slice(&1u32.to_be_bytes());
    let err = Batch::parse(Bytes::from(b)).unwrap_err();
    assert!(
        matches!(err, BatchError::NoFields { num_records: 1 }),
        "{err}"
    );
}

#[test]
fn after_an_error_the_batch_is_done() {
    let mut b = header(b"p", 3, 0, 2);
    b.extend_from_slice(&hex("00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01"));
    b.extend_from_slice(&hex(
        "00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 09",
    ));
    let batch = Batch::parse(Bytes::from(b)).unwrap();
    let mut records = batch.records();
    let mut out = Vec::new();
    assert!(records.next_into(&mut out).unwrap());
    assert_eq!(out, vec![Value::Count(1)]);
    let err = records.next_into(&mut out).unwrap_err();
    assert!(err.to_string().starts_with("record 1, field `x`"), "{err}");
    assert!(out.is_empty());
    assert!(!records.next_into(&mut out).unwrap());
}
