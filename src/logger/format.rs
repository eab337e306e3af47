//! The interface the logger's writer threads use to turn decoded records
//! into log-file bytes, and the pieces both of Zeek's formats share.
//!
//! Two formats implement [`LogFormat`]: [`Ascii`](super::ascii::Ascii)
//! (Zeek's default tab-separated logs) and [`Json`](super::json::Json)
//! (`LogAscii::use_json=T`). Both reproduce what a Zeek logger writes with
//! default settings byte for byte; docs/zeek-log-formats.md states the
//! rules and where in Zeek's source they come from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use super::numbers::write_u64;
use super::value::{Field, Header, TypeTag, Value};

/// A log file format. Implementations keep no per-file state, so one value
/// serves every file of a writer thread.
pub trait LogFormat: Send {
    /// File extension without dot: "log" for both (Zeek writes .log for JSON too).
    fn extension(&self) -> &'static str;
    /// Lines written when a file is opened (ASCII: the # header block; JSON: nothing).
    fn open(&self, header: &Header, opened: SystemTime, out: &mut Vec<u8>);
    /// One record (one value per header field) as one line, with its '\n'.
    fn record(&self, header: &Header, values: &[Value<'_>], out: &mut Vec<u8>);
    /// A writer for many records of `header`'s schema (a batch's). A format
    /// whose lines repeat something that depends only on the schema (JSON's
    /// keys) works it out here once instead of on every record; the
    /// default writes each record with [`LogFormat::record`].
    fn record_writer<'h>(&'h self, header: &'h Header) -> Box<dyn RecordWriter + 'h> {
        Box::new(EachRecord {
            format: self,
            header,
        })
    }
    /// Lines written when a file is closed (ASCII: `"#close\t<ts>\n"`; JSON: nothing).
    fn close(&self, closed: SystemTime, out: &mut Vec<u8>);
}

/// Writes records of one schema, made by [`LogFormat::record_writer`]. The
/// bytes are the same as [`LogFormat::record`]'s.
pub trait RecordWriter {
    /// One record (one value per field of the schema) as one line, with its '\n'.
    fn write(&mut self, values: &[Value<'_>], out: &mut Vec<u8>);
}

/// The default [`RecordWriter`]: nothing prepared.
struct EachRecord<'h, F: ?Sized> {
    format: &'h F,
    header: &'h Header,
}

impl<F: LogFormat + ?Sized> RecordWriter for EachRecord<'_, F> {
    fn write(&mut self, values: &[Value<'_>], out: &mut Vec<u8>) {
        self.format.record(self.header, values, out);
    }
}

/// A column's type as Zeek's `#types` line names it (`Field::TypeName`,
/// `src/threading/SerialTypes.cc:71-88`): a table is always a `set`, and
/// sets and vectors carry their element type, e.g. `set[string]`,
/// `vector[count]`. The other names are Zeek's `type_name()`
/// (`src/Type.cc:35-66`), e.g. `func` and `file`.
pub fn write_type_name(out: &mut Vec<u8>, field: &Field) {
    match field.ty {
        TypeTag::Table => out.extend_from_slice(b"set"),
        ty => out.extend_from_slice(type_name(ty).as_bytes()),
    }
    if matches!(field.ty, TypeTag::Table | TypeTag::Vector) {
        out.push(b'[');
        out.extend_from_slice(type_name(field.subtype).as_bytes());
        out.push(b']');
    }
}

/// Zeek's `type_name()`, which differs from [`TypeTag::zeek_name`] only for
/// `TYPE_LIST` ("types"), a type no log column has.
fn type_name(ty: TypeTag) -> &'static str {
    match ty {
        TypeTag::List => "types",
        ty => ty.zeek_name(),
    }
}

/// An address as Zeek's formatters render it (`Formatter::Render`,
/// `src/threading/Formatter.cc:18-35`, over `zeek_inet_ntop`,
/// `src/3rdparty/zeek_inet_ntop.c`). IPv4 is dotted decimal. IPv6 is the
/// BSD `inet_ntop` form: lower-case hex, the first longest run of two or
/// more zero groups as `::`, and a dotted IPv4 tail for `::a.b.c.d`
/// (six leading zero words), `::ffff:a.b.c.d` and `::ffff:0:a.b.c.d`.
pub fn write_addr(out: &mut Vec<u8>, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => write_ipv4(out, a),
        IpAddr::V6(a) => write_ipv6(out, a),
    }
}

fn write_ipv4(out: &mut Vec<u8>, a: &Ipv4Addr) {
    for (i, octet) in a.octets().iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        write_u64(out, u64::from(*octet));
    }
}

fn write_ipv6(out: &mut Vec<u8>, a: &Ipv6Addr) {
    let words = a.segments();
    // The first longest run of zero words, if at least two long.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_base = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
        best_len = 0;
    }
    let in_run = |i: usize| best_base != usize::MAX && i >= best_base && i < best_base + best_len;

    for i in 0..8 {
        if in_run(i) {
            if i == best_base {
                out.push(b':');
            }
            continue;
        }
        if i != 0 {
            out.push(b':');
        }
        if i == 6
            && best_base == 0
            && (best_len == 6
                || (best_len == 7 && words[7] != 1)
                || (best_len == 5 && words[5] == 0xffff)
                || (best_len == 4 && words[4] == 0xffff && words[5] == 0))
        {
            let o = a.octets();
            write_ipv4(out, &Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            return;
        }
        write_hex_word(out, words[i]);
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(b':');
    }
}

fn write_hex_word(out: &mut Vec<u8>, w: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u32, 8, 4, 0] {
        let nibble = (w >> shift) & 0xf;
        if nibble != 0 || started || shift == 0 {
            out.push(HEX[nibble as usize]);
            started = true;
        }
    }
}

/// A subnet as `addr/len` (`Formatter::Render(subnet_t)`,
/// `src/threading/Formatter.cc:80-92`); the prefix length is the real one
/// (the value model has already taken the wire's +96 off IPv4 lengths).
pub fn write_subnet(out: &mut Vec<u8>, addr: &IpAddr, prefix: u8) {
    write_addr(out, addr);
    out.push(b'/');
    write_u64(out, u64::from(prefix));
}

/// Whether every byte of `s` is printable ASCII (0x20–0x7e) other than
/// `a` and `b`: the test for "copy as it is" that both formats make on
/// every string. Eight bytes at a time.
pub fn all_plain(s: &[u8], a: u8, b: u8) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Exact "some byte is zero" / "some byte is below n" tests (n <= 128).
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let has_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS != 0;
    let bad = |v: u64| {
        v & HIGHS != 0
            || has_below(v, 0x20)
            || has_zero(v ^ (ONES * 0x7f))
            || has_zero(v ^ (ONES * u64::from(a)))
            || has_zero(v ^ (ONES * u64::from(b)))
    };
    let word_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let n = s.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if bad(word_at(i)) {
                return false;
            }
            i += 8;
        }
        // The tail as the last eight bytes, overlapping what was checked.
        i == n || !bad(word_at(n - 8))
    } else {
        // Fewer than eight bytes, assembled in a register over a padding
        // of a byte that is always plain.
        let mut v = ONES * u64::from(b'0');
        for (i, &c) in s.iter().enumerate() {
            v = (v & !(0xff << (8 * i))) | (u64::from(c) << (8 * i));
        }
        !bad(v)
    }
}

/// Appends `\xNN` (lower-case hex, Zeek's `util::bytetohex`).
pub fn write_hex_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ]);
}

/// Zeek's `util::escape_utf8` (`src/util.cc:1953-2025`) decides, for a run
/// of bytes, between passing it through and hex-escaping it, as a whole:
///
/// * `pass` bytes (printable ASCII, plus `\b \f \n \r \t` for JSON) are
///   always written as they are;
/// * any other byte must start a well-formed UTF-8 character (strict:
///   no overlong forms, surrogates or values past U+10FFFF) that is not a
///   control character (U+0000–001F, U+007F–009F), not in the private use
///   area U+E000–F8FF and not in U+FFF0–FFFF.
///
/// If every character passes, the run is written unchanged. If one does
/// not, every byte of the run that is not a `pass` byte is written as
/// `\xNN`, including the bytes of good UTF-8 characters before and after
/// it. This returns whether the run needs that escaped form.
pub fn needs_hex_escaping(s: &[u8], pass: impl Fn(u8) -> bool) -> bool {
    let mut i = 0;
    while i < s.len() {
        if pass(s[i]) {
            i += 1;
            continue;
        }
        match good_utf8_char_len(&s[i..]) {
            Some(n) => i += n,
            None => return true,
        }
    }
    false
}

/// The length of the character that starts `s` if it is one that
/// `escape_utf8` lets through (see [`needs_hex_escaping`]). The lead byte
/// announces the length, as in Unicode's `trailingBytesForUTF8` table
/// (`src/3rdparty/ConvertUTF.c:140-149`); a sequence cut short by the end
/// of the run is bad.
fn good_utf8_char_len(s: &[u8]) -> Option<usize> {
    let n = match s[0] {
        0x00..=0xbf => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        // Five- and six-byte forms are never well formed.
        _ => return None,
    };
    let c = std::str::from_utf8(s.get(..n)?).ok()?.chars().next()? as u32;
    let bad = c <= 0x1f
        || (0x7f..=0x9f).contains(&c)
        || (0xe000..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c);
    (!bad).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> String {
        let mut out = Vec::new();
        write_addr(&mut out, &s.parse().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn addresses() {
        assert_eq!(addr("1.2.3.4"), "1.2.3.4");
        assert_eq!(addr("0.0.0.0"), "0.0.0.0");
        assert_eq!(addr("255.255.255.255"), "255.255.255.255");
        assert_eq!(addr("::"), "::");
        assert_eq!(addr("::1"), "::1");
        assert_eq!(addr("2001:db8::1"), "2001:db8::1");
        assert_eq!(addr("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(addr("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
        assert_eq!(addr("fe80::"), "fe80::");
        assert_eq!(addr("1:0:0:2::3"), "1:0:0:2::3");
        assert_eq!(
            addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        // Embedded IPv4 forms of BSD inet_ntop.
        assert_eq!(addr("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(addr("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(addr("::ffff:0:1.2.3.4"), "::ffff:0:1.2.3.4");
        // BSD's "seven zero words" case can never fire: word 6 is in the run.
        assert_eq!(addr("::2"), "::2");
        assert_eq!(addr("::1:0"), "::0.1.0.0");
        assert_eq!(addr("1::1.2.3.4"), "1::102:304");
    }

    #[test]
    fn subnets_and_types() {
        let mut out = Vec::new();
        write_subnet(&mut out, &"10.0.0.0".parse().unwrap(), 24);
        assert_eq!(out, b"10.0.0.0/24");
        out.clear();
        write_subnet(&mut out, &"2001:db8::".parse().unwrap(), 32);
        assert_eq!(out, b"2001:db8::/32");

        let field = |ty, subtype| Field {
            name: "x".into(),
            ty,
            subtype,
            optional: false,
        };
        let name = |f: Field| {
            let mut out = Vec::new();
            write_type_name(&mut out, &f);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(name(field(TypeTag::Table, TypeTag::String)), "set[string]");
        assert_eq!(name(field(TypeTag::Table, TypeTag::Enum)), "set[enum]");
        assert_eq!(
            name(field(TypeTag::Vector, TypeTag::Count)),
            "vector[count]"
        );
        assert_eq!(name(field(TypeTag::Func, TypeTag::Void)), "func");
        assert_eq!(name(field(TypeTag::File, TypeTag::Void)), "file");
        assert_eq!(name(field(TypeTag::Interval, TypeTag::Void)), "interval");
    }

    #[test]
    fn plain_bytes() {
        let reference = |s: &[u8], a: u8, b: u8| {
            s.iter()
                .all(|&c| (0x20..0x7f).contains(&c) && c != a && c != b)
        };
        let mut s: Vec<u8> = b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec();
        assert!(all_plain(&s, b'"', b'\\'));
        for pos in 0..s.len() {
            for byte in 0..=255u8 {
                let keep = s[pos];
                s[pos] = byte;
                for (a, b) in [(b'"', b'\\'), (b'\\', b','), (b'\\', b'\\')] {
                    assert_eq!(all_plain(&s, a, b), reference(&s, a, b), "{pos} {byte:#x}");
                }
                s[pos] = keep;
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_bytes_match_a_bytewise_test(s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let reference = s.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\');
            proptest::prop_assert_eq!(all_plain(&s, b'"', b'\\'), reference);
        }
    }

    #[test]
    fn utf8_classes() {
        let ascii = |b: u8| (0x20..0x7f).contains(&b);
        assert!(!needs_hex_escaping(b"plain", ascii));
        assert!(!needs_hex_escaping(
            "caf\u{e9} \u{20ac} \u{1f680}".as_bytes(),
            ascii
        ));
        assert!(needs_hex_escaping(b"\x01", ascii));
        assert!(needs_hex_escaping(b"\x7f", ascii));
        assert!(needs_hex_escaping(b"\xc2\x80", ascii)); // U+0080, a C1 control
        assert!(!needs_hex_escaping(b"\xc2\xa0", ascii)); // U+00A0
        assert!(needs_hex_escaping(b"\xee\x8b\xa0", ascii)); // U+E2E0, private use
        assert!(needs_hex_escaping(b"\xef\xbf\xbd", ascii)); // U+FFFD is in FFF0-FFFF
        assert!(!needs_hex_escaping(b"\xf3\xb0\x80\x80", ascii)); // U+F0000 plane-15 PUA passes
        assert!(needs_hex_escaping(b"\xed\xa0\x80", ascii)); // surrogate
        assert!(needs_hex_escaping(b"\xc0\x81", ascii)); // overlong
        assert!(needs_hex_escaping(b"\xf4\x90\x80\x80", ascii)); // > U+10FFFF
        assert!(needs_hex_escaping(b"\xf8\x88\x80\x80\x80", ascii)); // 5-byte form
        assert!(needs_hex_escaping(b"\xe2\x82", ascii)); // cut short
        assert!(needs_hex_escaping(b"\xa0", ascii)); // lone continuation
        assert!(needs_hex_escaping(b"\n", ascii));
        assert!(!needs_hex_escaping(b"\n", |b| ascii(b) || b == b'\n'));
    }
}
