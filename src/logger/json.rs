//! Zeek's JSON logs: the ASCII writer with `LogAscii::use_json=T` and the
//! other defaults (`json_timestamps = JSON::TS_EPOCH`,
//! `json_include_unset_fields = F`, `json_string_escape_policy =
//! JSON::STRING_ESCAPE_POLICY_HEX`). One object per line, no header lines,
//! files still named `.log`. docs/zeek-log-formats.md lists the rules and
//! where in Zeek's source they come from.
//!
//! ```text
//! {"uid":"CAbc12","id.orig_h":"192.168.1.10","id.orig_p":49152,"orig_bytes":1234}
//! ```

use std::time::SystemTime;

use super::format::{
    all_plain, copy_if_plain, needs_hex_escaping, write_addr, write_subnet, LogFormat, RecordWriter,
};
use super::numbers::{write_i64, write_json_double, write_u64};
use super::value::{Elements, Header, Value};

/// Zeek's JSON log format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl LogFormat for Json {
    fn extension(&self) -> &'static str {
        "log"
    }

    /// JSON turns Zeek's meta lines off (`Ascii::InitFormatter`,
    /// `src/logging/writers/ascii/Ascii.cc:399-400`).
    fn open(&self, _header: &Header, _opened: SystemTime, _out: &mut Vec<u8>) {}

    /// `formatter::JSON::Describe` (`src/threading/formatters/JSON.cc:73-88`):
    /// the fields in schema order, unset ones left out.
    fn record(&self, header: &Header, values: &[Value<'_>], out: &mut Vec<u8>) {
        JsonRecords::new(header).write(values, out);
    }

    /// The keys rendered once for the whole batch.
    fn record_writer(&self, header: &Header) -> Box<dyn RecordWriter> {
        Box::new(JsonRecords::new(header))
    }

    fn close(&self, _closed: SystemTime, _out: &mut Vec<u8>) {}
}

/// The records of one schema, with every field's key rendered once.
struct JsonRecords {
    keys: Vec<Key>,
}

impl JsonRecords {
    fn new(header: &Header) -> JsonRecords {
        JsonRecords {
            keys: header.fields.iter().map(|f| Key::new(&f.name)).collect(),
        }
    }
}

impl RecordWriter for JsonRecords {
    fn write(&mut self, values: &[Value<'_>], out: &mut Vec<u8>) {
        debug_assert_eq!(self.keys.len(), values.len());
        // The line's `{` is the separator of the first key written.
        let mut separator = b'{';
        for (key, value) in self.keys.iter().zip(values) {
            if let Value::Unset(_) = value {
                continue;
            }
            key.write(out, separator);
            separator = b',';
            write_value(out, value);
        }
        if separator == b'{' {
            out.push(b'{');
        }
        out.extend_from_slice(b"}\n");
    }
}

/// How many bytes of a key are copied as one block.
const KEY_SLOT: usize = 32;

/// A field's key as every line has it: a separator byte (`{` or `,`,
/// set per line), the name quoted and escaped as RapidJSON's `Writer::Key`
/// escapes it, and `:`.
enum Key {
    /// Copied as one fixed-size block, which needs no call to `memcpy`,
    /// and the bytes past `len` cut off again.
    Short {
        bytes: [u8; KEY_SLOT],
        len: usize,
    },
    Long(Vec<u8>),
}

impl Key {
    fn new(name: &str) -> Key {
        let mut rendered = vec![b','];
        write_key(&mut rendered, name.as_bytes());
        rendered.push(b':');
        if rendered.len() <= KEY_SLOT {
            let mut bytes = [0u8; KEY_SLOT];
            bytes[..rendered.len()].copy_from_slice(&rendered);
            Key::Short {
                bytes,
                len: rendered.len(),
            }
        } else {
            Key::Long(rendered)
        }
    }

    fn write(&self, out: &mut Vec<u8>, separator: u8) {
        let start = out.len();
        match self {
            Key::Short { bytes, len } => {
                out.extend_from_slice(bytes);
                out.truncate(start + len);
            }
            Key::Long(bytes) => out.extend_from_slice(bytes),
        }
        out[start] = separator;
    }
}

/// `formatter::JSON::BuildJSON` (`src/threading/formatters/JSON.cc:116-246`).
fn write_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match *value {
        // Only reached for vector holes: top-level unset fields are skipped.
        Value::Unset(_) => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Int(v) => write_i64(out, v),
        Value::Count(v) => write_u64(out, v),
        Value::Port { number, .. } => write_u64(out, number),
        Value::Addr(ref a) => {
            out.push(b'"');
            write_addr(out, a);
            out.push(b'"');
        }
        Value::Subnet { ref addr, prefix } => {
            out.push(b'"');
            write_subnet(out, addr, prefix);
            out.push(b'"');
        }
        // TS_EPOCH: a time is a plain number of seconds. NaN and the
        // infinities are null (`zeek::json::detail::NullDoubleWriter`).
        Value::Double(d) | Value::Time(d) | Value::Interval(d) => {
            if d.is_finite() {
                write_json_double(out, d);
            } else {
                out.extend_from_slice(b"null");
            }
        }
        Value::String(s) | Value::Enum(s) | Value::File(s) | Value::Func(s) => write_string(out, s),
        Value::Set(ref elements) | Value::Vector(ref elements) => write_array(out, elements),
    }
}

fn write_array(out: &mut Vec<u8>, elements: &Elements<'_>) {
    out.push(b'[');
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, &element);
    }
    out.push(b']');
}

/// Bytes `escape_utf8(.., ESCAPE_UNPRINTABLE_CONTROLS)` always keeps:
/// printable ASCII and `\b \f \n \r \t`.
fn is_kept(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || matches!(b, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
}

/// A string value: Zeek's `util::escape_utf8` with unprintable controls
/// escaped (`src/util.cc:1953-2025`), then RapidJSON's string escaping.
///
/// If the whole string is good UTF-8 without control characters other
/// than `\b \f \n \r \t`, it is written as UTF-8, JSON-escaped. Otherwise
/// every byte that is not printable ASCII or one of those five is written
/// as the four characters `\xNN`, whose backslash JSON doubles: `\\xNN`.
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    if !copy_if_plain(out, s, b'"', b'\\') {
        write_escaped_string(out, s);
    }
    out.push(b'"');
}

/// A string that is not plain printable ASCII, JSON-escaped as UTF-8 or
/// hex-escaped as a whole (see [`write_string`]).
fn write_escaped_string(out: &mut Vec<u8>, s: &[u8]) {
    if !needs_hex_escaping(s, is_kept) {
        for &b in s {
            write_json_byte(out, b);
        }
        return;
    }
    for &b in s {
        if is_kept(b) {
            write_json_byte(out, b);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
}

/// A key: RapidJSON's escaping alone (`Writer::Key`).
fn write_key(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'"');
    if is_plain(name) {
        out.extend_from_slice(name);
    } else {
        for &b in name {
            write_json_byte(out, b);
        }
    }
    out.push(b'"');
}

/// Whether every byte is printable ASCII that neither escaping touches.
fn is_plain(s: &[u8]) -> bool {
    all_plain(s, b'"', b'\\')
}
/// One byte as RapidJSON's `Writer::WriteString` writes it: `"` and `\`
/// escaped, the short escapes for `\b \t \n \f \r`, `\u00XX` (upper-case
/// hex) for other bytes below 0x20, everything else (DEL and bytes above
/// 0x7f included) as it is.
fn write_json_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        0x00..=0x1f => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
        _ => out.push(b),
    }
}

// Test inputs are the literals of Zeek's test scripts (3.14, 1.123456789, ...).
#[allow(clippy::approx_constant, clippy::excessive_precision)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::test_support::{conn_header, elements, header};
    use crate::logger::value::{Proto, TypeTag};

    fn line(names: &[&str], values: &[Value<'_>]) -> String {
        let types: Vec<TypeTag> = values.iter().map(|_| TypeTag::String).collect();
        let mut h = header("test", &types);
        for (f, n) in h.fields.iter_mut().zip(names) {
            f.name = (*n).into();
        }
        let mut out = Vec::new();
        Json.record(&h, values, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn s(value: &[u8]) -> String {
        let l = line(&["s"], &[Value::String(value)]);
        l.strip_prefix("{\"s\":")
            .and_then(|l| l.strip_suffix("}\n"))
            .unwrap()
            .to_owned()
    }

    #[test]
    fn contract_example() {
        let h = conn_header();
        let values = [
            Value::String(b"CAbc12"),
            Value::Addr("192.168.1.10".parse().unwrap()),
            Value::Port {
                number: 49152,
                proto: Proto::Tcp,
            },
            Value::Count(1234),
        ];
        let mut out = Vec::new();
        Json.open(&h, SystemTime::now(), &mut out);
        assert!(out.is_empty());
        Json.record(&h, &values, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"uid\":\"CAbc12\",\"id.orig_h\":\"192.168.1.10\",\"id.orig_p\":49152,\"orig_bytes\":1234}\n"
        );
        let mut out = Vec::new();
        Json.close(SystemTime::now(), &mut out);
        assert!(out.is_empty());
        assert_eq!(Json.extension(), "log");

        // orig_bytes unset: the key is left out.
        let values = [
            Value::String(b"CAbc12"),
            Value::Addr("192.168.1.10".parse().unwrap()),
            Value::Port {
                number: 49152,
                proto: Proto::Tcp,
            },
            Value::Unset(TypeTag::Count),
        ];
        let mut out = Vec::new();
        Json.record(&h, &values, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"uid\":\"CAbc12\",\"id.orig_h\":\"192.168.1.10\",\"id.orig_p\":49152}\n"
        );
    }

    #[test]
    fn all_types_like_zeek() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-json/ssh.log
        // (its time is canonified there; 1215620010.54321 is the script's value).
        let func_text = b"SSH::foo: function(i:count) : string\n{ \nif (0 < SSH::i) \n\treturn (Foo);\nelse\n\treturn (Bar);\n\n}";
        let sc = elements(&[
            Value::Count(4),
            Value::Count(2),
            Value::Count(3),
            Value::Count(1),
        ]);
        let ss = elements(&[
            Value::String(b"CC"),
            Value::String(b"BB"),
            Value::String(b"AA"),
        ]);
        let vc = elements(&[Value::Count(10), Value::Count(20), Value::Count(30)]);
        let vn = elements(&[
            Value::Count(0),
            Value::Unset(TypeTag::Count),
            Value::Count(2),
        ]);
        let empty = elements(&[]);
        let names = [
            "b", "i", "e", "c", "p", "sn", "a", "d", "t", "iv", "s", "sc", "ss", "se", "vc", "ve",
            "vn", "f",
        ];
        let values = [
            Value::Bool(true),
            Value::Int(-42),
            Value::Enum(b"SSH::LOG"),
            Value::Count(21),
            Value::Port {
                number: 123,
                proto: Proto::Tcp,
            },
            Value::Subnet {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 24,
            },
            Value::Addr("1.2.3.4".parse().unwrap()),
            Value::Double(3.14),
            Value::Time(1_215_620_010.543_21),
            Value::Interval(100.0),
            Value::String(b"hurz"),
            Value::Set(sc.get()),
            Value::Set(ss.get()),
            Value::Set(empty.get()),
            Value::Vector(vc.get()),
            Value::Vector(empty.get()),
            Value::Vector(vn.get()),
            Value::Func(func_text),
        ];
        assert_eq!(
            line(&names, &values),
            "{\"b\":true,\"i\":-42,\"e\":\"SSH::LOG\",\"c\":21,\"p\":123,\"sn\":\"10.0.0.0/24\",\
             \"a\":\"1.2.3.4\",\"d\":3.14,\"t\":1215620010.54321,\"iv\":100.0,\"s\":\"hurz\",\
             \"sc\":[4,2,3,1],\"ss\":[\"CC\",\"BB\",\"AA\"],\"se\":[],\"vc\":[10,20,30],\"ve\":[],\
             \"vn\":[0,null,2],\"f\":\"SSH::foo: function(i:count) : string\\n{ \\nif (0 < SSH::i) \
             \\n\\treturn (Foo);\\nelse\\n\\treturn (Bar);\\n\\n}\"}\n"
        );
    }

    /// The keys are rendered once per schema; every record written by one
    /// writer still gets its own separators, and keys of every length and
    /// ones that need escaping come out as `record` writes them.
    #[test]
    fn one_writer_for_many_records() {
        let long = "a_name_longer_than_the_thirty_two_bytes_of_a_slot";
        let names = ["ts", long, "q\"uote\\", "\u{e9}t\u{e9}", "x"];
        let mut h = header("test", &[TypeTag::String; 5]);
        for (f, n) in h.fields.iter_mut().zip(names) {
            f.name = n.into();
        }
        let unset = Value::Unset(TypeTag::String);
        let records = [
            [
                Value::Count(1),
                Value::Count(2),
                Value::Count(3),
                Value::Count(4),
                Value::Count(5),
            ],
            [unset, Value::Count(2), unset, Value::Count(4), unset],
            [unset, unset, unset, unset, unset],
            [unset, unset, unset, unset, Value::Bool(true)],
        ];
        let mut writer = Json.record_writer(&h);
        let mut out = Vec::new();
        for r in &records {
            writer.write(r, &mut out);
        }
        let want = format!(
            "{{\"ts\":1,\"{long}\":2,\"q\\\"uote\\\\\":3,\"\u{e9}t\u{e9}\":4,\"x\":5}}\n\
             {{\"{long}\":2,\"\u{e9}t\u{e9}\":4}}\n\
             {{}}\n\
             {{\"x\":true}}\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut one_by_one = Vec::new();
        for r in &records {
            Json.record(&h, r, &mut one_by_one);
        }
        assert_eq!(String::from_utf8(one_by_one).unwrap(), want);
    }

    #[test]
    fn unset_fields_are_left_out() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-json-optional/testing.log
        assert_eq!(
            line(
                &["ts", "msg"],
                &[
                    Value::Unset(TypeTag::Time),
                    Value::String(b"Testing 1 2 3 ")
                ]
            ),
            "{\"msg\":\"Testing 1 2 3 \"}\n"
        );
        assert_eq!(line(&["a"], &[Value::Unset(TypeTag::String)]), "{}\n");
        assert_eq!(line(&[], &[]), "{}\n");
    }

    #[test]
    fn doubles() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-double/json.log
        let d = |v: f64| line(&["d"], &[Value::Double(v)]);
        assert_eq!(d(2153226000.123456789), "{\"d\":2153226000.123457}\n");
        assert_eq!(d(1.123456789), "{\"d\":1.123456789}\n");
        assert_eq!(d(1.23456789e-5), "{\"d\":0.0000123456789}\n");
        assert_eq!(d(1.79e308), "{\"d\":1.79e308}\n");
        assert_eq!(d(f64::INFINITY), "{\"d\":null}\n");
        assert_eq!(d(f64::NEG_INFINITY), "{\"d\":null}\n");
        assert_eq!(d(f64::NAN), "{\"d\":null}\n");
        assert_eq!(d(-0.0), "{\"d\":-0.0}\n");
        assert_eq!(d(1e300), "{\"d\":1e300}\n");
        assert_eq!(d(1e-300), "{\"d\":1e-300}\n");
        assert_eq!(d(0.1), "{\"d\":0.1}\n");
        assert_eq!(d(1234.5678), "{\"d\":1234.5678}\n");
        // Times and intervals are doubles too (TS_EPOCH), not six decimals.
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-negative-ts/test.log.ts_epoch
        assert_eq!(
            line(&["ts"], &[Value::Time(-315619200.0)]),
            "{\"ts\":-315619200.0}\n"
        );
        assert_eq!(
            line(&["ts"], &[Value::Time(1_700_000_000.5)]),
            "{\"ts\":1700000000.5}\n"
        );
        assert_eq!(
            line(&["ts"], &[Value::Time(1_300_475_167.096535)]),
            "{\"ts\":1300475167.096535}\n"
        );
        assert_eq!(
            line(&["i"], &[Value::Interval(0.000123)]),
            "{\"i\":0.000123}\n"
        );
        assert_eq!(line(&["i"], &[Value::Interval(f64::NAN)]), "{\"i\":null}\n");
        let v = elements(&[Value::Double(f64::NAN), Value::Double(1.0)]);
        assert_eq!(
            line(&["v"], &[Value::Vector(v.get())]),
            "{\"v\":[null,1.0]}\n"
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(line(&["b"], &[Value::Bool(false)]), "{\"b\":false}\n");
        assert_eq!(
            line(&["i"], &[Value::Int(i64::MIN)]),
            "{\"i\":-9223372036854775808}\n"
        );
        assert_eq!(
            line(&["c"], &[Value::Count(u64::MAX)]),
            "{\"c\":18446744073709551615}\n"
        );
        assert_eq!(
            line(
                &["p"],
                &[Value::Port {
                    number: 3,
                    proto: Proto::Icmp
                }]
            ),
            "{\"p\":3}\n"
        );
        assert_eq!(
            line(&["a"], &[Value::Addr("::ffff:1.2.3.4".parse().unwrap())]),
            "{\"a\":\"::ffff:1.2.3.4\"}\n"
        );
        assert_eq!(
            line(
                &["n"],
                &[Value::Subnet {
                    addr: "2001:db8::".parse().unwrap(),
                    prefix: 32
                }]
            ),
            "{\"n\":\"2001:db8::/32\"}\n"
        );
        assert_eq!(line(&["e"], &[Value::Enum(b"tcp")]), "{\"e\":\"tcp\"}\n");
        assert_eq!(
            line(&["f"], &[Value::File(b"a\"b")]),
            "{\"f\":\"a\\\"b\"}\n"
        );
        // Empty strings and the ASCII markers are plain strings in JSON.
        assert_eq!(s(b""), "\"\"");
        assert_eq!(s(b"-"), "\"-\"");
        assert_eq!(s(b"(empty)"), "\"(empty)\"");
        assert_eq!(s(b"#x"), "\"#x\"");
        let set = elements(&[Value::String(b"a,b"), Value::Enum(b"x")]);
        assert_eq!(
            line(&["s"], &[Value::Set(set.get())]),
            "{\"s\":[\"a,b\",\"x\"]}\n"
        );
    }

    #[test]
    fn keys_are_escaped_by_json_rules_only() {
        assert_eq!(
            line(&["a\"b\\c"], &[Value::Count(1)]),
            "{\"a\\\"b\\\\c\":1}\n"
        );
        assert_eq!(
            line(&["x\x01\t"], &[Value::Count(1)]),
            "{\"x\\u0001\\t\":1}\n"
        );
        assert_eq!(line(&["\u{e9}"], &[Value::Count(1)]), "{\"\u{e9}\":1}\n");
    }

    #[test]
    fn string_escaping_hex_policy() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-json-utf8/ssh.log.hex,
        // with the inputs of testing/btest/scripts/base/frameworks/logging/ascii-json-utf8.zeek.
        let cases: &[(&[u8], &str)] = &[
            (b"a", r#""a""#),
            (b"\x08\x0c\n\r\t\x00\x15", r#""\b\f\n\r\t\\x00\\x15""#),
            (b"\xc3\xb1", "\"\u{f1}\""),
            (b"\xc3\x28", r#""\\xc3(""#),
            (b"\xc0\x81", r#""\\xc0\\x81""#),
            (b"\xc1\x81", r#""\\xc1\\x81""#),
            (b"\xc2\xcf", r#""\\xc2\\xcf""#),
            (b"\xa0\xa1", r#""\\xa0\\xa1""#),
            (b"\xe2\x82\xa1", "\"\u{20a1}\""),
            (b"\xe0\xa3\xa1", "\"\u{8e1}\""),
            (b"\xe0\x80\xa1", r#""\\xe0\\x80\\xa1""#),
            (b"\xe2\x28\xa1", r#""\\xe2(\\xa1""#),
            (b"\xed\xa0\xa1", r#""\\xed\\xa0\\xa1""#),
            (b"\xe2\x82\x28", r#""\\xe2\\x82(""#),
            (b"\xf0\x90\x8c\xbc", "\"\u{1033c}\""),
            (b"\xf1\x80\x8c\xbc", "\"\u{4033c}\""),
            (b"\xf4\x80\x8c\xbc", "\"\u{10033c}\""),
            (b"\xf0\x80\x8c\xbc", r#""\\xf0\\x80\\x8c\\xbc""#),
            (b"\xf2\x28\x8c\xbc", r#""\\xf2(\\x8c\\xbc""#),
            (b"\xf4\x90\x8c\xbc", r#""\\xf4\\x90\\x8c\\xbc""#),
            (b"\xf0\x90\x28\xbc", r#""\\xf0\\x90(\\xbc""#),
            (b"\xf0\x28\x8c\x28", r#""\\xf0(\\x8c(""#),
            (b"\xf4\x80\x8c", r#""\\xf4\\x80\\x8c""#),
            (b"\xf0", r#""\\xf0""#),
            (b"\\\\", r#""\\\\""#),
            (b"\t\\t\t", r#""\t\\t\t""#),
            (b"\x0b\\v\x0b", r#""\\x0b\\v\\x0b""#),
            (b"\n\\n\n", r#""\n\\n\n""#),
            (b"\\x", r#""\\x""#),
            (b"\x00", r#""\\x00""#),
            (b"\x01", r#""\\x01""#),
            (b"\x09", r#""\t""#),
            (b"\x0d", r#""\r""#),
            (b"\x80", r#""\\x80""#),
            (b"\xf9", r#""\\xf9""#),
            (b"\xff", r#""\\xff""#),
            (b"\\\\x\\abc\\x.exe", r#""\\\\x\\abc\\x.exe""#),
            (b"\xf9\xf9", r#""\\xf9\\xf9""#),
            (
                b"byte 9f vs literal backslash x9f: \xf9 vs \\xf9",
                r#""byte 9f vs literal backslash x9f: \\xf9 vs \\xf9""#,
            ),
            (b"a rocket \xf0\x9f\x9a\x80!", "\"a rocket \u{1f680}!\""),
            (
                b"a rocket \xf0\x9f\x9a\x80!\x00 NUL\x00",
                r#""a rocket \\xf0\\x9f\\x9a\\x80!\\x00 NUL\\x00""#,
            ),
            (
                b"half-a-rocket rocket \xf0\x9f!",
                r#""half-a-rocket rocket \\xf0\\x9f!""#,
            ),
            (
                b"half-a-rocket rocket \xf0\x9f and a rocket\xf0\x9f\x9a\x80!",
                r#""half-a-rocket rocket \\xf0\\x9f and a rocket\\xf0\\x9f\\x9a\\x80!""#,
            ),
            (b"\x07\x08", r#""\\x07\b""#),
            (
                b"\\a=\x07 \\b=\x08 \\t=\t \\n=\n",
                r#""\\a=\\x07 \\b=\b \\t=\t \\n=\n""#,
            ),
        ];
        for &(input, want) in cases {
            assert_eq!(s(input), want, "{:?}", String::from_utf8_lossy(input));
        }
        // DEL is a control character to Zeek.
        assert_eq!(s(b"a\x7f"), r#""a\\x7f""#);
        // testing/btest/Baseline/scripts.base.frameworks.logging.json-non-printable-escaping/http.log.json
        assert_eq!(s(b"/non_printable_\x07"), r#""/non_printable_\\x07""#);
        assert_eq!(
            s(b"/non_printable_literal_\\x07"),
            r#""/non_printable_literal_\\x07""#
        );
    }
}
