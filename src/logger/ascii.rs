//! Zeek's default log format: the ASCII writer with `LogAscii`'s default
//! options (tab separator, `,` between set elements, `(empty)`, `-`,
//! `#` meta lines, UTF-8 passed through). docs/zeek-log-formats.md lists
//! every rule with the Zeek source it comes from. A file looks like this,
//! with a tab wherever two spaces show:
//!
//! ```text
//! #separator \x09
//! #set_separator  ,
//! #empty_field  (empty)
//! #unset_field  -
//! #path  conn
//! #open  2026-11-22-10-00-00
//! #fields  uid  id.orig_h  id.orig_p  orig_bytes
//! #types  string  addr  port  count
//! CAbc12  192.168.1.10  49152  1234
//! #close  2026-11-22-11-00-00
//! ```

use std::time::SystemTime;

use super::format::{
    copy_if_plain, needs_hex_escaping, write_addr, write_hex_escape, write_subnet, write_type_name,
    LogFormat, RecordWriter,
};
use super::naming::write_local_date;
use super::numbers::{write_ascii_double, write_fixed6, write_i64, write_u64};
use super::value::{Elements, Header, Value};

const SEPARATOR: u8 = b'\t';
const SET_SEPARATOR: u8 = b',';
const EMPTY_FIELD: &[u8] = b"(empty)";
const UNSET_FIELD: &[u8] = b"-";
const META_PREFIX: u8 = b'#';

/// Zeek's ASCII (tab-separated) log format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ascii;

impl LogFormat for Ascii {
    fn extension(&self) -> &'static str {
        "log"
    }

    /// `Ascii::WriteHeader` (`src/logging/writers/ascii/Ascii.cc:554-596`).
    fn open(&self, header: &Header, opened: SystemTime, out: &mut Vec<u8>) {
        // Only this line has a space after the key; its value is the
        // separator escaped (`get_escaped_string(sep, false)`).
        out.extend_from_slice(b"#separator \\x09\n");
        out.extend_from_slice(b"#set_separator\t,\n");
        out.extend_from_slice(b"#empty_field\t(empty)\n");
        out.extend_from_slice(b"#unset_field\t-\n");
        out.extend_from_slice(b"#path\t");
        write_meta_escaped(out, header.path.as_bytes());
        out.extend_from_slice(b"\n#open\t");
        write_local_date(out, opened);
        out.extend_from_slice(b"\n#fields");
        for field in &header.fields {
            out.push(SEPARATOR);
            out.extend_from_slice(field.name.as_bytes());
        }
        out.extend_from_slice(b"\n#types");
        for field in &header.fields {
            out.push(SEPARATOR);
            write_type_name(out, field);
        }
        out.push(b'\n');
    }

    fn record(&self, header: &Header, values: &[Value<'_>], out: &mut Vec<u8>) {
        debug_assert_eq!(header.fields.len(), values.len());
        write_record(values, out);
    }

    fn record_writer(&self, _header: &Header) -> Box<dyn RecordWriter> {
        Box::new(AsciiRecords)
    }

    /// `Ascii::CloseFile` (`src/logging/writers/ascii/Ascii.cc:432-442`).
    fn close(&self, closed: SystemTime, out: &mut Vec<u8>) {
        out.extend_from_slice(b"#close\t");
        write_local_date(out, closed);
        out.push(b'\n');
    }

    fn closing_prefix(&self) -> Option<&'static [u8]> {
        Some(b"#close\t")
    }
}

/// ASCII needs nothing prepared per schema.
struct AsciiRecords;

impl RecordWriter for AsciiRecords {
    fn write(&mut self, values: &[Value<'_>], out: &mut Vec<u8>) {
        write_record(values, out);
    }
}

/// `formatter::Ascii::Describe` (`src/threading/formatters/Ascii.cc:47-167`)
/// and `Ascii::DoWrite` (`src/logging/writers/ascii/Ascii.cc:618-655`).
fn write_record(values: &[Value<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        write_value(out, value, false);
    }
    // A line that would begin like a meta line gets its first byte
    // escaped, so readers never take data for a header.
    if out.get(start) == Some(&META_PREFIX) {
        out.splice(start..start + 1, *b"\\x23");
    }
    out.push(b'\n');
}

/// One value; `in_container` while writing the elements of a set or vector,
/// where `,` is escaped too.
fn write_value(out: &mut Vec<u8>, value: &Value<'_>, in_container: bool) {
    match *value {
        Value::Unset(_) => out.extend_from_slice(UNSET_FIELD),
        Value::Bool(b) => out.push(if b { b'T' } else { b'F' }),
        Value::Int(v) => write_i64(out, v),
        Value::Count(v) => write_u64(out, v),
        // Only the number; the protocol is not written.
        Value::Port { number, .. } => write_u64(out, number),
        Value::Addr(ref a) => write_addr(out, a),
        Value::Subnet { ref addr, prefix } => write_subnet(out, addr, prefix),
        Value::Double(d) => write_ascii_double(out, d),
        Value::Time(d) | Value::Interval(d) => write_fixed6(out, d),
        Value::String(s) | Value::Enum(s) | Value::File(s) | Value::Func(s) => {
            write_string(out, s, in_container)
        }
        Value::Set(ref elements) | Value::Vector(ref elements) => write_elements(out, elements),
    }
}

fn write_elements(out: &mut Vec<u8>, elements: &Elements<'_>) {
    if elements.is_empty() {
        out.extend_from_slice(EMPTY_FIELD);
        return;
    }
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(SET_SEPARATOR);
        }
        write_value(out, &element, true);
    }
}

/// A string, enum name, file name or function text.
fn write_string(out: &mut Vec<u8>, s: &[u8], in_container: bool) {
    if s.is_empty() {
        out.extend_from_slice(EMPTY_FIELD);
        return;
    }
    // A value that reads like the unset or empty marker gets its first
    // byte escaped (`escapeReservedContent`, formatters/Ascii.cc:19-28).
    if s == UNSET_FIELD {
        out.extend_from_slice(b"\\x2d");
        return;
    }
    if s == EMPTY_FIELD {
        out.extend_from_slice(b"\\x28empty)");
        return;
    }
    write_escaped(out, s, in_container);
}

/// Zeek's escaping `ODesc` with UTF-8 enabled (`ODesc::AddBytes`,
/// `src/Desc.cc:229-291`): the bytes are cut at every `\`, tab (the
/// separator) and, inside a set or vector, `,`. Those bytes are written as
/// `\\`, `\x09` and `\x2c`. Each run between them goes through
/// `escape_utf8` with all control characters escaped: if the run is
/// printable ASCII and good UTF-8 it is written as it is, otherwise all of
/// its non-printable-ASCII bytes are written as `\xNN`.
fn write_escaped(out: &mut Vec<u8>, s: &[u8], in_container: bool) {
    // Printable ASCII other than `\` (the tab is not printable) and, in a
    // set or vector, `,` is written as it is.
    let comma = if in_container { SET_SEPARATOR } else { b'\\' };
    if copy_if_plain(out, s, b'\\', comma) {
        return;
    }
    let is_cut = |b: u8| b == b'\\' || b == SEPARATOR || (in_container && b == SET_SEPARATOR);
    let mut rest = s;
    loop {
        let cut = rest.iter().position(|&b| is_cut(b));
        let run = &rest[..cut.unwrap_or(rest.len())];
        write_run(out, run);
        let Some(at) = cut else { break };
        if rest[at] == b'\\' {
            out.extend_from_slice(b"\\\\");
        } else {
            write_hex_escape(out, rest[at]);
        }
        rest = &rest[at + 1..];
    }
}

/// `util::escape_utf8(run, ESCAPE_PRINTABLE_CONTROLS | ESCAPE_UNPRINTABLE_CONTROLS)`.
fn write_run(out: &mut Vec<u8>, run: &[u8]) {
    let printable = |b: u8| (0x20..0x7f).contains(&b);
    if !needs_hex_escaping(run, printable) {
        out.extend_from_slice(run);
        return;
    }
    for &b in run {
        if printable(b) {
            out.push(b);
        } else {
            write_hex_escape(out, b);
        }
    }
}

/// `util::get_escaped_string(s, false)` for meta values: spaces, controls
/// and non-ASCII bytes as `\xNN` (`src/util.cc:958-980`).
fn write_meta_escaped(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if (0x21..0x7f).contains(&b) {
            out.push(b);
        } else {
            write_hex_escape(out, b);
        }
    }
}

// Test inputs are the literals of Zeek's test scripts (3.14, 1.123456789, ...).
#[allow(clippy::approx_constant, clippy::excessive_precision)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::test_support::{conn_header, elements, header};
    use crate::logger::value::{Proto, TypeTag};
    use std::time::{Duration, UNIX_EPOCH};

    fn line(values: &[Value<'_>]) -> String {
        let types: Vec<TypeTag> = values.iter().map(|_| TypeTag::String).collect();
        let h = header("test", &types);
        let mut out = Vec::new();
        Ascii.record(&h, values, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn one(value: Value<'_>) -> String {
        let s = line(&[value]);
        s.strip_suffix('\n').unwrap().to_owned()
    }

    fn string(s: &[u8]) -> String {
        one(Value::String(s))
    }

    #[test]
    fn header_block_for_the_contract_example() {
        // Contract §4.6: uid string, id.orig_h addr, id.orig_p port,
        // orig_bytes count.
        let h = conn_header();
        let opened = UNIX_EPOCH + Duration::from_secs(1_795_341_600);
        let mut out = Vec::new();
        Ascii.open(&h, opened, &mut out);
        let mut stamp = Vec::new();
        write_local_date(&mut stamp, opened);
        let stamp = String::from_utf8(stamp).unwrap();
        let want = format!(
            "#separator \\x09\n\
             #set_separator\t,\n\
             #empty_field\t(empty)\n\
             #unset_field\t-\n\
             #path\tconn\n\
             #open\t{stamp}\n\
             #fields\tuid\tid.orig_h\tid.orig_p\torig_bytes\n\
             #types\tstring\taddr\tport\tcount\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);

        let mut out = Vec::new();
        let values = [
            Value::String(b"CAbc12"),
            Value::Addr("192.168.1.10".parse().unwrap()),
            Value::Port {
                number: 49152,
                proto: Proto::Tcp,
            },
            Value::Count(1234),
        ];
        Ascii.record(&h, &values, &mut out);
        assert_eq!(out, b"CAbc12\t192.168.1.10\t49152\t1234\n");

        let mut out = Vec::new();
        Ascii.close(opened, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("#close\t{stamp}\n")
        );
        assert_eq!(Ascii.extension(), "log");
    }

    #[test]
    fn header_block_with_utc_stamp() {
        // On a machine whose local zone is UTC the stamp is the plain
        // %Y-%m-%d-%H-%M-%S of the time.
        let t = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
        let mut out = Vec::new();
        Ascii.close(t, &mut out);
        let local = crate::logger::naming::local_time(1_234_567_890);
        if local == crate::logger::naming::utc_time(1_234_567_890) {
            assert_eq!(out, b"#close\t2009-02-13-23-31-30\n");
        }
    }

    #[test]
    fn header_types_and_escaped_path() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.types/ssh.log
        use TypeTag::{
            Addr, Bool, Count, Double, Enum, Func, Int, Interval, Port, String, Subnet, Table,
            Time, Vector, Void,
        };
        let mut h = header(
            "ssh",
            &[
                Bool, Int, Enum, Count, Port, Subnet, Addr, Double, Time, Interval, String, Table,
                Table, Table, Vector, Vector, Func,
            ],
        );
        let names = [
            "b", "i", "e", "c", "p", "sn", "a", "d", "t", "iv", "s", "sc", "ss", "se", "vc", "ve",
            "f",
        ];
        let subtypes = [
            Void, Void, Void, Void, Void, Void, Void, Void, Void, Void, Void, Count, String,
            String, Count, String, Void,
        ];
        for ((f, name), sub) in h.fields.iter_mut().zip(names).zip(subtypes) {
            f.name = name.into();
            f.subtype = sub;
        }
        let mut out = Vec::new();
        Ascii.open(&h, SystemTime::now(), &mut out);
        let text = std::string::String::from_utf8(out).unwrap();
        assert!(text.contains(
            "\n#fields\tb\ti\te\tc\tp\tsn\ta\td\tt\tiv\ts\tsc\tss\tse\tvc\tve\tf\n\
             #types\tbool\tint\tenum\tcount\tport\tsubnet\taddr\tdouble\ttime\tinterval\tstring\t\
             set[count]\tset[string]\tset[string]\tvector[count]\tvector[string]\tfunc\n"
        ));
        assert!(text.contains("\n#path\tssh\n"));

        h.path = "my path\\x\u{e9}".into();
        let mut out = Vec::new();
        Ascii.open(&h, SystemTime::now(), &mut out);
        let text = std::string::String::from_utf8(out).unwrap();
        assert!(
            text.contains("\n#path\tmy\\x20path\\x\\xc3\\xa9\n"),
            "{text}"
        );
    }

    #[test]
    fn all_types_like_zeek() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.types/ssh.log,
        // with the set orders of that run and Zeek's default empty_field.
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
        let empty = elements(&[]);
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
            Value::Time(1_300_475_167.096535),
            Value::Interval(100.0),
            Value::String(b"hurz"),
            Value::Set(sc.get()),
            Value::Set(ss.get()),
            Value::Set(empty.get()),
            Value::Vector(vc.get()),
            Value::Vector(empty.get()),
            Value::Func(func_text),
        ];
        assert_eq!(
            line(&values),
            "T\t-42\tSSH::LOG\t21\t123\t10.0.0.0/24\t1.2.3.4\t3.14\t1300475167.096535\t100.000000\thurz\t\
             4,2,3,1\tCC,BB,AA\t(empty)\t10,20,30\t(empty)\t\
             SSH::foo: function(i:count) : string\\x0a{ \\x0aif (0 < SSH::i) \\x0a\\x09return (Foo);\\x0aelse\\x0a\\x09return (Bar);\\x0a\\x0a}\n"
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(one(Value::Bool(false)), "F");
        assert_eq!(one(Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(one(Value::Count(u64::MAX)), "18446744073709551615");
        assert_eq!(
            one(Value::Port {
                number: 53,
                proto: Proto::Udp
            }),
            "53"
        );
        assert_eq!(
            one(Value::Port {
                number: 8,
                proto: Proto::Icmp
            }),
            "8"
        );
        assert_eq!(
            one(Value::Addr("2001:db8::1".parse().unwrap())),
            "2001:db8::1"
        );
        assert_eq!(
            one(Value::Subnet {
                addr: "2001:db8::".parse().unwrap(),
                prefix: 32
            }),
            "2001:db8::/32"
        );
        assert_eq!(one(Value::Double(1e300)).len(), 303);
        assert_eq!(one(Value::Double(-0.0)), "0.0");
        assert_eq!(one(Value::Double(1e-300)), "0.0");
        assert_eq!(one(Value::Double(f64::INFINITY)), "inf");
        assert_eq!(one(Value::Double(f64::NAN)), "nan");
        assert_eq!(one(Value::Double(0.1)), "0.1");
        assert_eq!(one(Value::Double(1234.5678)), "1234.5678");
        assert_eq!(one(Value::Time(1_234_567_890.0)), "1234567890.000000");
        assert_eq!(one(Value::Interval(-1.5)), "-1.500000");
        assert_eq!(one(Value::Interval(0.0)), "0.000000");
        assert_eq!(one(Value::Unset(TypeTag::Count)), "-");
        assert_eq!(one(Value::Unset(TypeTag::Table)), "-");
        assert_eq!(one(Value::Enum(b"tcp")), "tcp");
        assert_eq!(one(Value::File(b"/tmp/x")), "/tmp/x");
    }

    #[test]
    fn reserved_and_empty_strings() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-escape-notset-str/test.log
        assert_eq!(
            line(&[
                Value::String(b"-"),
                Value::Unset(TypeTag::String),
                Value::String(b"")
            ]),
            "\\x2d\t-\t(empty)\n"
        );
        assert_eq!(string(b"(empty)"), "\\x28empty)");
        assert_eq!(string(b"--"), "--");
        assert_eq!(string(b"(empty"), "(empty");
        assert_eq!(one(Value::Enum(b"-")), "\\x2d");
        assert_eq!(one(Value::Enum(b"")), "(empty)");
    }

    #[test]
    fn line_that_looks_like_a_comment() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-line-like-comment/test.log
        assert_eq!(
            line(&[Value::String(b"#Kaputt"), Value::Count(42)]),
            "\\x23Kaputt\t42\n"
        );
        assert_eq!(
            line(&[Value::String(b"Test1"), Value::Count(42)]),
            "Test1\t42\n"
        );
        // Only the first byte of the line.
        assert_eq!(
            line(&[Value::String(b"a"), Value::String(b"#b")]),
            "a\t#b\n"
        );
        let set = elements(&[Value::String(b"#x"), Value::String(b"y")]);
        assert_eq!(line(&[Value::Set(set.get())]), "\\x23x,y\n");
    }

    #[test]
    fn escaping_with_utf8_enabled() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-utf8-enabled/test.log
        assert_eq!(string("foo \u{ae} bar".as_bytes()), "foo \u{ae} bar");
        let hindi = "दुनिया को नमस्ते";
        assert_eq!(string(hindi.as_bytes()), hindi);
        assert_eq!(string("hello 𠜎".as_bytes()), "hello 𠜎");
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-utf8-enabled-control-characters/test.log
        assert_eq!(string(b"foo \n\t\0 bar"), "foo \\x0a\\x09\\x00 bar");
        // testing/btest/Baseline/scripts.base.frameworks.logging.json-non-printable-escaping/http.log.tsv
        assert_eq!(string(b"/non_printable_\x07"), "/non_printable_\\x07");
        assert_eq!(
            string(b"/non_printable_literal_\\x07"),
            "/non_printable_literal_\\\\x07"
        );
        assert_eq!(
            string("/printable_\u{1f604}".as_bytes()),
            "/printable_\u{1f604}"
        );
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-escape-odd-url/http.log
        assert_eq!(
            string(b"arheoloogia_uurimisr\xfchma_seminar/Joyce"),
            "arheoloogia_uurimisr\\xfchma_seminar/Joyce"
        );
        // The same rules as ascii-escape-binary (run there with UTF-8
        // disabled; these inputs come out the same either way).
        assert_eq!(string(b"AB\0CD\0"), "AB\\x00CD\\x00");
        assert_eq!(string(b"AB\xffCD\0"), "AB\\xffCD\\x00");
        assert_eq!(string(b"AB\\xffCD\0"), "AB\\\\xffCD\\x00");
        assert_eq!(string(b" "), " ");
        assert_eq!(string(b"abc\\x00def"), "abc\\\\x00def");
        assert_eq!(string(b"foo\x00bar\\0baz"), "foo\\x00bar\\\\0baz");
        assert_eq!(string(b"foo \x0e bar ^N baz"), "foo \\x0e bar ^N baz");
    }

    #[test]
    fn one_bad_byte_escapes_its_whole_run() {
        // A bad byte makes escape_utf8 hex-escape every non-ASCII byte of
        // the run it is in, good UTF-8 included...
        assert_eq!(
            string("\u{e9}\x01\u{e9}".as_bytes()),
            "\\xc3\\xa9\\x01\\xc3\\xa9"
        );
        assert_eq!(
            string("\u{1f680}!\x00".as_bytes()),
            "\\xf0\\x9f\\x9a\\x80!\\x00"
        );
        // ...but runs end at a backslash, tab or (in containers) comma.
        assert_eq!(string("\u{e9}\\\x01".as_bytes()), "\u{e9}\\\\\\x01");
        assert_eq!(string("\u{e9}\t\x01".as_bytes()), "\u{e9}\\x09\\x01");
        assert_eq!(string("\u{e9},\x01".as_bytes()), "\\xc3\\xa9,\\x01");
        let set = elements(&[Value::String("\u{e9},\x01".as_bytes())]);
        assert_eq!(line(&[Value::Set(set.get())]), "\u{e9}\\x2c\\x01\n");
        // DEL, C1 controls and private-use characters count as bad.
        assert_eq!(string(b"a\x7fb"), "a\\x7fb");
        assert_eq!(string(b"\xc2\x85"), "\\xc2\\x85");
        assert_eq!(string("\u{e000}".as_bytes()), "\\xee\\x80\\x80");
        assert_eq!(string(b"\xe2\x82"), "\\xe2\\x82");
    }

    #[test]
    fn sets_and_vectors() {
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-escape-set-separator/test.log
        let set = elements(&[
            Value::String(b","),
            Value::String(b"CC"),
            Value::String(b",,"),
            Value::String(b"AA"),
        ]);
        assert_eq!(line(&[Value::Set(set.get())]), "\\x2c,CC,\\x2c\\x2c,AA\n");
        // A comma outside a container is plain.
        assert_eq!(string(b"a,b"), "a,b");
        // Empty strings and reserved words inside containers, vector holes.
        let v = elements(&[
            Value::String(b""),
            Value::String(b"-"),
            Value::Unset(TypeTag::String),
            Value::String(b"(empty)"),
            Value::String(b"a\tb"),
        ]);
        assert_eq!(
            line(&[Value::Vector(v.get())]),
            "(empty),\\x2d,-,\\x28empty),a\\x09b\n"
        );
        let v = elements(&[
            Value::Double(1.0),
            Value::Time(2.5),
            Value::Addr("::1".parse().unwrap()),
            Value::Port {
                number: 80,
                proto: Proto::Tcp,
            },
            Value::Bool(true),
            Value::Enum(b"Notice::ACTION_LOG"),
        ]);
        assert_eq!(
            line(&[Value::Vector(v.get())]),
            "1.0,2.500000,::1,80,T,Notice::ACTION_LOG\n"
        );
        let empty = elements(&[]);
        assert_eq!(
            line(&[Value::Set(empty.get()), Value::Vector(empty.get())]),
            "(empty)\t(empty)\n"
        );
    }
}
