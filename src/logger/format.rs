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
    /// A writer for many records of `header`'s schema. A format whose
    /// lines repeat something that depends only on the schema (JSON's keys)
    /// works it out here once instead of on every record. The logger keeps
    /// one per open file, so it is made once per file, not per batch (real
    /// batches hold two or three records).
    fn record_writer(&self, header: &Header) -> Box<dyn RecordWriter>;
    /// Lines written when a file is closed (ASCII: `"#close\t<ts>\n"`; JSON: nothing).
    fn close(&self, closed: SystemTime, out: &mut Vec<u8>);
    /// How the last line of a closed file starts, for a format that marks
    /// the close in the file (ASCII: `#close\t`); None for one that does
    /// not (JSON), whose files tell a clean close only by their shadow.
    fn closing_prefix(&self) -> Option<&'static [u8]> {
        None
    }
}

/// Writes records of one schema, made by [`LogFormat::record_writer`]. The
/// bytes are the same as [`LogFormat::record`]'s.
pub trait RecordWriter: Send {
    /// One record (one value per field of the schema) as one line, with its '\n'.
    fn write(&mut self, values: &[Value<'_>], out: &mut Vec<u8>);
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

// Addresses are written into a window of zeros appended to `out` at once
// and cut to length at the end, as `write_u64` does: byte stores by index
// instead of a capacity check and length update per byte.

/// Each octet's decimal digits followed by a `.`, and how many bytes that is.
const OCTETS: [([u8; 4], u8); 256] = octet_table();

const fn octet_table() -> [([u8; 4], u8); 256] {
    let mut table = [([0u8; 4], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = (
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        );
        table[i] = if i >= 100 {
            ([h, t, o, b'.'], 4)
        } else if i >= 10 {
            ([t, o, b'.', 0], 3)
        } else {
            ([o, b'.', 0, 0], 2)
        };
        i += 1;
    }
    table
}

/// The longest address: eight groups of four hex digits and seven colons.
const IPV6_MAX: usize = 39;

fn write_ipv4(out: &mut Vec<u8>, a: &Ipv4Addr) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 16]);
    let n = ipv4_into(&mut out[start..start + 16], 0, a.octets());
    out.truncate(start + n);
}

/// Writes `a.b.c.d` into `w` at `at`; returns where it ends. `w` has room
/// for 16 bytes from `at`: each octet's table entry is stored whole and the
/// next one overwrites its excess.
fn ipv4_into(w: &mut [u8], mut at: usize, octets: [u8; 4]) -> usize {
    for octet in octets {
        let (bytes, len) = OCTETS[usize::from(octet)];
        w[at..at + 4].copy_from_slice(&bytes);
        at += usize::from(len);
    }
    // Without the last octet's `.`.
    at - 1
}

fn write_ipv6(out: &mut Vec<u8>, a: &Ipv6Addr) {
    // Room for the longest form and for ipv4_into's excess.
    const WINDOW: usize = IPV6_MAX + 9;
    let start = out.len();
    out.extend_from_slice(&[0u8; WINDOW]);
    let n = ipv6_into(&mut out[start..start + WINDOW], a);
    out.truncate(start + n);
}

/// The first longest run of zero words, as (start, length), if at least
/// two long.
fn longest_zero_run(words: &[u16; 8]) -> Option<(usize, usize)> {
    let (mut best, mut run_start, mut run_len) = (None, 0, 0);
    for (i, &w) in words.iter().enumerate() {
        if w != 0 {
            run_len = 0;
            continue;
        }
        if run_len == 0 {
            run_start = i;
        }
        run_len += 1;
        if run_len >= 2 && best.is_none_or(|(_, len)| run_len > len) {
            best = Some((run_start, run_len));
        }
    }
    best
}

/// BSD `inet_ntop`'s IPv6 form into `w`; returns its length.
fn ipv6_into(w: &mut [u8], a: &Ipv6Addr) -> usize {
    let words = a.segments();
    let run = longest_zero_run(&words);
    // ::a.b.c.d, ::ffff:a.b.c.d and ::ffff:0:a.b.c.d keep a dotted tail.
    let dotted_tail = match run {
        Some((0, 6)) => true,
        Some((0, 7)) => words[7] != 1,
        Some((0, 5)) => words[5] == 0xffff,
        Some((0, 4)) => words[4] == 0xffff && words[5] == 0,
        _ => false,
    };
    let (run_start, run_end) = run.map_or((8, 8), |(s, len)| (s, s + len));
    let mut at = 0;
    let mut i = 0;
    while i < 8 {
        if i == run_start {
            // The run is `::`: its first colon here, its second the
            // separator of the next word, or alone at the end.
            w[at] = b':';
            at += 1;
            i = run_end;
            if i == 8 {
                w[at] = b':';
                at += 1;
            }
            continue;
        }
        if i != 0 {
            w[at] = b':';
            at += 1;
        }
        if i == 6 && dotted_tail {
            let o = a.octets();
            return ipv4_into(w, at, [o[12], o[13], o[14], o[15]]);
        }
        at = hex_word_into(w, at, words[i]);
        i += 1;
    }
    at
}

/// A word in lower-case hex without leading zeros, into `w` at `at`.
fn hex_word_into(w: &mut [u8], at: usize, word: u16) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - (word | 1).leading_zeros() as usize).div_ceil(4);
    for d in 0..digits {
        let shift = 4 * (digits - 1 - d);
        w[at + d] = HEX[usize::from((word >> shift) & 0xf)];
    }
    at + digits
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
    let n = s.len();
    if n < 8 {
        return !short_words(s)
            .is_some_and(|(lo, hi)| any_bad(u64::from(lo) | (u64::from(hi) << 32), a, b));
    }
    let mut i = 0;
    while i + 8 <= n {
        if any_bad(word_at(s, i), a, b) {
            return false;
        }
        i += 8;
    }
    // The tail as the last eight bytes, overlapping what was checked.
    i == n || !any_bad(word_at(s, n - 8), a, b)
}

/// Appends `s` if [`all_plain`] holds for it, and says whether it did.
/// Strings of up to 32 bytes, most of those in logs (Zeek's uids are 18),
/// are checked and copied in the same few (overlapping) loads, without a
/// call to `memcpy`.
pub fn copy_if_plain(out: &mut Vec<u8>, s: &[u8], a: u8, b: u8) -> bool {
    let n = s.len();
    if n > 32 {
        if !all_plain(s, a, b) {
            return false;
        }
        out.extend_from_slice(s);
        return true;
    }
    let start = out.len();
    if n >= 8 {
        // Words at 0, 8 and 16, each moved back to end by the last byte,
        // and the last eight bytes: every byte in one of them.
        let at = [0, 8.min(n - 8), 16.min(n - 8), n - 8];
        let words = at.map(|i| word_at(s, i));
        let bad = words.iter().fold(0, |bad, &w| bad | bad_bytes(w, a, b));
        if bad != 0 {
            return false;
        }
        out.extend_from_slice(&[0u8; 32]);
        let w = &mut out[start..start + 32];
        for (i, word) in at.into_iter().zip(words) {
            w[i..i + 8].copy_from_slice(&word.to_le_bytes());
        }
    } else if let Some((lo, hi)) = short_words(s) {
        if any_bad(u64::from(lo) | (u64::from(hi) << 32), a, b) {
            return false;
        }
        out.extend_from_slice(&[0u8; 8]);
        let w = &mut out[start..start + 8];
        if n >= 4 {
            w[..4].copy_from_slice(&lo.to_le_bytes());
            w[n - 4..n].copy_from_slice(&hi.to_le_bytes());
        } else {
            // lo holds s[0], s[n / 2] and s[n - 1], the whole of s.
            w[0] = lo as u8;
            w[n / 2] = (lo >> 8) as u8;
            w[n - 1] = (lo >> 16) as u8;
        }
    }
    out.truncate(start + n);
    true
}

/// The eight bytes of `s` from `i`, as one little-endian word.
fn word_at(s: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[i..i + 8]);
    u64::from_le_bytes(w)
}

/// A string of 1 to 7 bytes as two 4-byte words that cover every byte
/// (padded with a byte that is always plain): the first and last four
/// bytes when there are at least four, else `s[0]`, `s[n / 2]` and
/// `s[n - 1]` in the first word. None for the empty string.
fn short_words(s: &[u8]) -> Option<(u32, u32)> {
    const PAD: u32 = 0x3030_3030; // "0000"
    let n = s.len();
    debug_assert!(n < 8);
    if n >= 4 {
        let word = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        Some((word(0), word(n - 4)))
    } else if n > 0 {
        let lo = u32::from(s[0]) | (u32::from(s[n / 2]) << 8) | (u32::from(s[n - 1]) << 16);
        Some((lo | (PAD & 0xff00_0000), PAD))
    } else {
        None
    }
}

/// Whether some byte of `v` is not printable ASCII or is `a` or `b`.
fn any_bad(v: u64, a: u8, b: u8) -> bool {
    bad_bytes(v, a, b) != 0
}

/// The high bit of every byte of `v` that is not printable ASCII (0x20 to
/// 0x7e) or is `a` or `b` (ASCII themselves), all other bits clear. No
/// branches, so that the masks of several words can be or-ed and tested
/// once.
fn bad_bytes(v: u64, a: u8, b: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    const LOWS: u64 = ONES * 0x7f;
    debug_assert!(a < 0x80 && b < 0x80);
    // Each byte's low seven bits. Adding at most 0x80 to a byte of these
    // never carries into the next, and its high bit then tells the sum.
    let low = v & LOWS;
    let at_least_space = low + ONES * (0x80 - 0x20);
    let is_del = low + ONES;
    let not_a = (low ^ (ONES * u64::from(a))) + LOWS;
    let not_b = (low ^ (ONES * u64::from(b))) + LOWS;
    // Bytes of 0x80 and more have their own high bit set in v.
    (v | is_del | !(at_least_space & not_a & not_b)) & HIGHS
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

    /// The step-by-step port of BSD `inet_ntop` that the window writers
    /// replaced, kept as the reference they are checked against.
    fn reference_addr(a: &IpAddr) -> Vec<u8> {
        let mut out = Vec::new();
        match a {
            IpAddr::V4(a) => reference_ipv4(&mut out, a),
            IpAddr::V6(a) => reference_ipv6(&mut out, a),
        }
        out
    }

    fn reference_ipv4(out: &mut Vec<u8>, a: &Ipv4Addr) {
        for (i, octet) in a.octets().iter().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            write_u64(out, u64::from(*octet));
        }
    }

    fn reference_ipv6(out: &mut Vec<u8>, a: &Ipv6Addr) {
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
        let in_run =
            |i: usize| best_base != usize::MAX && i >= best_base && i < best_base + best_len;

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
                reference_ipv4(out, &Ipv4Addr::new(o[12], o[13], o[14], o[15]));
                return;
            }
            reference_hex_word(out, words[i]);
        }
        if best_base != usize::MAX && best_base + best_len == 8 {
            out.push(b':');
        }
    }

    fn reference_hex_word(out: &mut Vec<u8>, w: u16) {
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

    proptest::proptest! {
        /// Words drawn mostly from 0, 1 and 0xffff, so that zero runs of
        /// every length and place and the dotted-tail forms come up often.
        #[test]
        fn ipv6_matches_the_reference(
            words in proptest::array::uniform8(proptest::prop_oneof![
                3 => proptest::strategy::Just(0u16),
                1 => proptest::strategy::Just(1u16),
                1 => proptest::strategy::Just(0xffffu16),
                2 => proptest::num::u16::ANY,
            ])
        ) {
            let a = IpAddr::V6(Ipv6Addr::from(words));
            let mut out = b"x".to_vec();
            write_addr(&mut out, &a);
            proptest::prop_assert_eq!(&out[1..], &reference_addr(&a)[..], "{:?}", words);
        }

        #[test]
        fn ipv4_matches_the_reference(bits in proptest::num::u32::ANY) {
            let a = IpAddr::V4(Ipv4Addr::from(bits));
            let mut out = b"x".to_vec();
            write_addr(&mut out, &a);
            proptest::prop_assert_eq!(&out[1..], &reference_addr(&a)[..]);
        }
    }

    #[test]
    fn every_octet_and_hex_word() {
        for i in 0..=255u8 {
            let a = IpAddr::V4(Ipv4Addr::new(i, 255 - i, i / 3, 7));
            assert_eq!(addr(&a.to_string()).as_bytes(), reference_addr(&a));
        }
        for w in 0..=0xffffu16 {
            let a = IpAddr::V6(Ipv6Addr::new(w, 1, 0, w, 0, 0, 2, w));
            let mut out = Vec::new();
            write_addr(&mut out, &a);
            assert_eq!(out, reference_addr(&a), "{w:#x}");
        }
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

    #[test]
    fn copy_if_plain_copies_exactly_the_plain_strings() {
        let reference = |s: &[u8]| {
            s.iter()
                .all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
        };
        let base: Vec<u8> = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ".to_vec();
        for n in 0..=base.len() {
            for pos in 0..n.max(1) {
                for byte in [b'a', b'"', b'\\', 0x1f, 0x7f, 0x80, 0xff, b' ', b'~'] {
                    let mut s = base[..n].to_vec();
                    if n > 0 {
                        s[pos] = byte;
                    }
                    let mut out = b"prefix".to_vec();
                    let copied = copy_if_plain(&mut out, &s, b'"', b'\\');
                    assert_eq!(copied, reference(&s), "{s:?}");
                    let want = if copied {
                        [&b"prefix"[..], &s].concat()
                    } else {
                        b"prefix".to_vec()
                    };
                    assert_eq!(out, want, "{s:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_bytes_match_a_bytewise_test(s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let reference = s.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\');
            proptest::prop_assert_eq!(all_plain(&s, b'"', b'\\'), reference);
        }

        #[test]
        fn copy_if_plain_matches_all_plain(s in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let mut out = Vec::new();
            let copied = copy_if_plain(&mut out, &s, b'"', b'\\');
            proptest::prop_assert_eq!(copied, all_plain(&s, b'"', b'\\'));
            proptest::prop_assert_eq!(out, if copied { s } else { Vec::new() });
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
