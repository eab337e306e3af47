//! Numbers as Zeek's log writers print them, straight into the output
//! buffer and without allocating.
//!
//! Three renderings of a double are needed (docs/zeek-log-formats.md has
//! the details and the Zeek source lines):
//!
//! * [`write_fixed6`]: `time` and `interval` in ASCII logs. Zeek uses
//!   `std::to_chars(fixed, 6)`, which rounds the exact binary value to six
//!   decimals, ties to even, and keeps trailing zeros.
//! * [`write_ascii_double`]: `double` in ASCII logs. The same six-decimal
//!   rounding, then trailing zeros (and a bare `.`) are dropped, then `.0`
//!   is appended when the value is within 1e-9 of an integer.
//! * [`write_json_double`]: every double in JSON logs (`double`, `time`,
//!   `interval`). Zeek's JSON writer is RapidJSON, whose `dtoa` is Grisu2
//!   with its own layout rules. Grisu2 always round-trips but does not
//!   always give the shortest digits, so this module carries a faithful
//!   Grisu2 rather than using a shortest-digits algorithm (which would
//!   differ on some inputs).

use std::io::Write as _;

const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// How many decimal digits `v` has.
fn decimal_len(v: u64) -> usize {
    // floor(log10(2^bits)) is bits * 1233 >> 12 for bits <= 64; the value
    // has that many digits or one more.
    let bits = 64 - (v | 1).leading_zeros();
    let t = ((bits * 1233) >> 12) as usize;
    (t + usize::from(v >= POW10[t])).max(1)
}

/// `v` in decimal.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    // Room for the longest number is appended (one fixed-size store, no
    // call), the digits are written in place and the rest cut off again.
    // Formatting on the stack and copying would reload freshly stored
    // bytes, which stalls store forwarding.
    let n = decimal_len(v);
    let start = out.len();
    out.extend_from_slice(&[0u8; 20]);
    fill_digits(&mut out[start..start + n], v);
    out.truncate(start + n);
}

/// Writes `v` into `buf` right-aligned, zero-padded to its whole length.
fn fill_digits(buf: &mut [u8], mut v: u64) {
    let mut at = buf.len();
    while at >= 2 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if at == 1 {
        buf[0] = b'0' + (v % 10) as u8;
    }
}

/// `v` in decimal, with a `-` when negative.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// `v` as exactly `width` decimal digits (zero-padded); `v < 10^width`.
fn write_padded(out: &mut Vec<u8>, v: u32, width: usize) {
    let mut buf = [0u8; 6];
    fill_digits(&mut buf[..width], u64::from(v));
    out.extend_from_slice(&buf[..width]);
}

/// A finite, non-negative double rounded to six decimals.
enum Fixed6 {
    /// Integer part and millionths, when the value is below 2^64.
    Parts(u64, u32),
    /// The value is at least 2^64 (so it is an integer).
    Big,
}

/// Rounds `a` (finite, sign ignored) to six decimals exactly as
/// `printf("%.6f")` / `std::to_chars(fixed, 6)` do: the exact binary value,
/// ties to even.
fn fixed6(a: f64) -> Fixed6 {
    let bits = a.to_bits() & !(1u64 << 63);
    let biased = (bits >> 52) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // a = m * 2^e exactly.
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return Fixed6::Parts(0, 0);
    }
    if e >= 0 {
        // An integer; m < 2^53, so it fits a u64 up to e = 11.
        return if e <= 11 {
            Fixed6::Parts(m << e, 0)
        } else {
            Fixed6::Big
        };
    }
    let shift = (-e) as u32;
    if shift >= 128 {
        // a < 2^53 * 2^-128 = 2^-75, far below half a millionth.
        return Fixed6::Parts(0, 0);
    }
    let m = u128::from(m);
    let int = (m >> shift) as u64;
    // The fraction is f / 2^shift; in millionths that is p / 2^shift with
    // p <= m * 10^6 < 2^73: exact in u128.
    let f = m & ((1u128 << shift) - 1);
    let p = f * 1_000_000;
    let mut q = (p >> shift) as u32;
    let r = p & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    // Ties to even: the parity of the last digit is the parity of q.
    if r > half || (r == half && q & 1 == 1) {
        q += 1;
    }
    if q == 1_000_000 {
        Fixed6::Parts(int + 1, 0)
    } else {
        Fixed6::Parts(int, q)
    }
}

/// A `time` or `interval` in an ASCII log: `std::to_chars(d, fixed, 6)`
/// (Zeek `src/threading/Formatter.cc:94-98`). Keeps trailing zeros and the
/// sign of negative zero; infinities are `inf`/`-inf`, NaN is `nan` or
/// `-nan` by its sign bit (libstdc++'s spelling).
pub fn write_fixed6(out: &mut Vec<u8>, d: f64) {
    if d.is_sign_negative() {
        out.push(b'-');
    }
    if d.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if d.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    match fixed6(d) {
        Fixed6::Parts(int, frac) => {
            // Integer digits, point and six decimals, in place as in
            // write_u64.
            let n = decimal_len(int);
            let start = out.len();
            out.extend_from_slice(&[0u8; 27]);
            let buf = &mut out[start..start + n + 7];
            fill_digits(&mut buf[..n], int);
            buf[n] = b'.';
            fill_digits(&mut buf[n + 1..], u64::from(frac));
            out.truncate(start + n + 7);
        }
        Fixed6::Big => {
            // An integer of up to 309 digits; Rust's precision formatting
            // is exact, and there is no fraction to round.
            let _ = write!(out, "{:.6}", d.abs());
        }
    }
}

/// A `double` in an ASCII log: Zeek's `ODesc::Add(double, no_exp=true)`
/// over `util::double_to_str(d, precision 6, no_exp)` (`src/Desc.cc:145-160`,
/// `src/util.cc:2090-2139`).
///
/// Six-decimal rounding as for `time`, then trailing zeros are dropped and
/// a bare `.` with them; `.0` is appended when `|d - nearbyint(d)| < 1e-9`.
/// So 2.0 is `2.0`, 0.1 is `0.1`, 1e-300 is `0.0`, -1e-300 is `-0.0`,
/// -0.0 is `0.0`, 2.0000001 is `2` (rounds to an integer but is not within
/// 1e-9 of one), NaN is `nan` whatever its sign, infinities `inf`/`-inf`.
pub fn write_ascii_double(out: &mut Vec<u8>, d: f64) {
    if d.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if d < 0.0 {
        out.push(b'-');
    }
    if d.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    let near_integer = (d - d.round_ties_even()).abs() < 1e-9;
    match fixed6(d) {
        Fixed6::Parts(int, frac) => {
            write_u64(out, int);
            if frac != 0 {
                let mut frac = frac;
                let mut width = 6;
                while frac % 10 == 0 {
                    frac /= 10;
                    width -= 1;
                }
                out.push(b'.');
                write_padded(out, frac, width);
            } else if near_integer {
                out.extend_from_slice(b".0");
            }
        }
        Fixed6::Big => {
            let _ = write!(out, "{:.0}", d.abs());
            out.extend_from_slice(b".0");
        }
    }
}

/// A double in a JSON log as RapidJSON's `Writer::Double` writes it
/// (`internal::dtoa` with the default 324 maximum decimal places): Grisu2
/// digits, then `Prettify`. Zero is `0.0` or `-0.0`; integers keep a `.0`
/// up to 21 digits; 0.001234 stays positional down to 1e-6 (kk > -6);
/// beyond that exponents look like `1e300`, `1.5e-7` (no `+`, no padding).
///
/// The caller handles NaN and infinities (Zeek writes `null` for them).
pub fn write_json_double(out: &mut Vec<u8>, d: f64) {
    debug_assert!(d.is_finite());
    if d == 0.0 {
        if d.is_sign_negative() {
            out.push(b'-');
        }
        out.extend_from_slice(b"0.0");
        return;
    }
    if d < 0.0 {
        out.push(b'-');
    }
    // Grisu2 writes at most 32 digits (in practice 17); the rest of the
    // buffer is zeros, so that layout can copy 32 bytes from any digit.
    let mut digits = [0u8; 2 * DIGITS_MAX];
    let (len, k) = grisu2(d.abs(), &mut digits);
    let start = out.len();
    out.extend_from_slice(&[0u8; WINDOW]);
    let n = layout(&mut out[start..start + WINDOW], &digits, len, k);
    out.truncate(start + n);
}

/// The most digits `grisu2` can write.
const DIGITS_MAX: usize = 32;

/// The room `layout` writes in: its copies of 32 digits may start as far
/// as 22 bytes in (after 21 integer digits and the point).
const WINDOW: usize = 64;

/// RapidJSON's `Prettify` (with its default of 324 decimal places, under
/// which its truncation branches can never be taken for a double), laid
/// out in `w` with copies of fixed size: the digits are copied 32 bytes at
/// a time wherever they go (the bytes past `len` are overwritten or cut
/// off), so no copy depends on the number's length. `digits[..len]` are
/// the digits, v = digits × 10^k. Returns the length written.
fn layout(w: &mut [u8], digits: &[u8; 2 * DIGITS_MAX], len: usize, k: i32) -> usize {
    const ZEROS: [u8; 32] = [b'0'; 32];
    let digits_from = |i: usize| -> &[u8; DIGITS_MAX] {
        digits[i..i + DIGITS_MAX].try_into().expect("in the buffer")
    };
    let length = len as i32;
    let kk = length + k; // 10^(kk-1) <= v < 10^kk
    if (0..).contains(&k) && kk <= 21 {
        // 1234e7 -> 12340000000.0
        let kk = kk as usize;
        w[..32].copy_from_slice(digits_from(0));
        w[len..len + 32].copy_from_slice(&ZEROS);
        w[kk..kk + 2].copy_from_slice(b".0");
        kk + 2
    } else if 0 < kk && kk <= 21 {
        // 1234e-2 -> 12.34
        let kk = kk as usize;
        w[..32].copy_from_slice(digits_from(0));
        w[kk + 1..kk + 33].copy_from_slice(digits_from(kk));
        w[kk] = b'.';
        len + 1
    } else if -6 < kk && kk <= 0 {
        // 1234e-6 -> 0.001234
        let zeros = (-kk) as usize;
        w[..8].copy_from_slice(b"0.000000");
        w[2 + zeros..34 + zeros].copy_from_slice(digits_from(0));
        2 + zeros + len
    } else {
        // 1e30, 1234e30 -> 1.234e33
        w[0] = digits[0];
        let mut at = 1;
        if len > 1 {
            w[1] = b'.';
            w[2..34].copy_from_slice(digits_from(1));
            at = len + 1;
        }
        w[at] = b'e';
        at + 1 + exponent_into(&mut w[at + 1..at + 5], kk - 1)
    }
}

/// A decimal exponent (|k| <= 324) as `-`, if negative, and its digits
/// without padding, into `w`; returns the length.
fn exponent_into(w: &mut [u8], k: i32) -> usize {
    let mut at = 0;
    if k < 0 {
        w[0] = b'-';
        at = 1;
    }
    let e = k.unsigned_abs();
    let n = if e >= 100 {
        3
    } else if e >= 10 {
        2
    } else {
        1
    };
    fill_digits(&mut w[at..at + n], u64::from(e));
    at + n
}

/// A floating-point number with a 64-bit significand: `f * 2^e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DiyFp {
    f: u64,
    e: i32,
}

const HIDDEN_BIT: u64 = 1 << 52;

impl DiyFp {
    fn from_f64(d: f64) -> DiyFp {
        let bits = d.to_bits();
        let biased = ((bits >> 52) & 0x7FF) as i32;
        let significand = bits & (HIDDEN_BIT - 1);
        if biased != 0 {
            DiyFp {
                f: significand + HIDDEN_BIT,
                e: biased - 1075,
            }
        } else {
            DiyFp {
                f: significand,
                e: -1074,
            }
        }
    }

    /// The product, its 128-bit result rounded (half up) to the high 64 bits.
    fn mul(self, rhs: DiyFp) -> DiyFp {
        let p = u128::from(self.f) * u128::from(rhs.f);
        let mut h = (p >> 64) as u64;
        if (p as u64) & (1 << 63) != 0 {
            h += 1;
        }
        DiyFp {
            f: h,
            e: self.e + rhs.e + 64,
        }
    }

    fn normalize(self) -> DiyFp {
        let s = self.f.leading_zeros();
        DiyFp {
            f: self.f << s,
            e: self.e - s as i32,
        }
    }

    fn normalize_boundary(self) -> DiyFp {
        let mut res = self;
        while res.f & (HIDDEN_BIT << 1) == 0 {
            res.f <<= 1;
            res.e -= 1;
        }
        // 64 - 52 - 2
        DiyFp {
            f: res.f << 10,
            e: res.e - 10,
        }
    }

    /// The lower and upper boundaries of the rounding interval, with the
    /// upper one normalized and the lower one at the same exponent.
    fn normalized_boundaries(self) -> (DiyFp, DiyFp) {
        let plus = DiyFp {
            f: (self.f << 1) + 1,
            e: self.e - 1,
        }
        .normalize_boundary();
        let mut minus = if self.f == HIDDEN_BIT {
            DiyFp {
                f: (self.f << 2) - 1,
                e: self.e - 2,
            }
        } else {
            DiyFp {
                f: (self.f << 1) - 1,
                e: self.e - 1,
            }
        };
        minus.f <<= minus.e - plus.e;
        minus.e = plus.e;
        (minus, plus)
    }
}

/// 10^-348, 10^-340, ..., 10^340 with a normalized 64-bit significand
/// rounded to nearest, and its binary exponent. Generated, and checked by
/// `tests::cached_powers_are_powers_of_ten`.
const CACHED_POWERS: [(u64, i16); 87] = [
    (0xfa8fd5a0081c0288, -1220),
    (0xbaaee17fa23ebf76, -1193),
    (0x8b16fb203055ac76, -1166),
    (0xcf42894a5dce35ea, -1140),
    (0x9a6bb0aa55653b2d, -1113),
    (0xe61acf033d1a45df, -1087),
    (0xab70fe17c79ac6ca, -1060),
    (0xff77b1fcbebcdc4f, -1034),
    (0xbe5691ef416bd60c, -1007),
    (0x8dd01fad907ffc3c, -980),
    (0xd3515c2831559a83, -954),
    (0x9d71ac8fada6c9b5, -927),
    (0xea9c227723ee8bcb, -901),
    (0xaecc49914078536d, -874),
    (0x823c12795db6ce57, -847),
    (0xc21094364dfb5637, -821),
    (0x9096ea6f3848984f, -794),
    (0xd77485cb25823ac7, -768),
    (0xa086cfcd97bf97f4, -741),
    (0xef340a98172aace5, -715),
    (0xb23867fb2a35b28e, -688),
    (0x84c8d4dfd2c63f3b, -661),
    (0xc5dd44271ad3cdba, -635),
    (0x936b9fcebb25c996, -608),
    (0xdbac6c247d62a584, -582),
    (0xa3ab66580d5fdaf6, -555),
    (0xf3e2f893dec3f126, -529),
    (0xb5b5ada8aaff80b8, -502),
    (0x87625f056c7c4a8b, -475),
    (0xc9bcff6034c13053, -449),
    (0x964e858c91ba2655, -422),
    (0xdff9772470297ebd, -396),
    (0xa6dfbd9fb8e5b88f, -369),
    (0xf8a95fcf88747d94, -343),
    (0xb94470938fa89bcf, -316),
    (0x8a08f0f8bf0f156b, -289),
    (0xcdb02555653131b6, -263),
    (0x993fe2c6d07b7fac, -236),
    (0xe45c10c42a2b3b06, -210),
    (0xaa242499697392d3, -183),
    (0xfd87b5f28300ca0e, -157),
    (0xbce5086492111aeb, -130),
    (0x8cbccc096f5088cc, -103),
    (0xd1b71758e219652c, -77),
    (0x9c40000000000000, -50),
    (0xe8d4a51000000000, -24),
    (0xad78ebc5ac620000, 3),
    (0x813f3978f8940984, 30),
    (0xc097ce7bc90715b3, 56),
    (0x8f7e32ce7bea5c70, 83),
    (0xd5d238a4abe98068, 109),
    (0x9f4f2726179a2245, 136),
    (0xed63a231d4c4fb27, 162),
    (0xb0de65388cc8ada8, 189),
    (0x83c7088e1aab65db, 216),
    (0xc45d1df942711d9a, 242),
    (0x924d692ca61be758, 269),
    (0xda01ee641a708dea, 295),
    (0xa26da3999aef774a, 322),
    (0xf209787bb47d6b85, 348),
    (0xb454e4a179dd1877, 375),
    (0x865b86925b9bc5c2, 402),
    (0xc83553c5c8965d3d, 428),
    (0x952ab45cfa97a0b3, 455),
    (0xde469fbd99a05fe3, 481),
    (0xa59bc234db398c25, 508),
    (0xf6c69a72a3989f5c, 534),
    (0xb7dcbf5354e9bece, 561),
    (0x88fcf317f22241e2, 588),
    (0xcc20ce9bd35c78a5, 614),
    (0x98165af37b2153df, 641),
    (0xe2a0b5dc971f303a, 667),
    (0xa8d9d1535ce3b396, 694),
    (0xfb9b7cd9a4a7443c, 720),
    (0xbb764c4ca7a44410, 747),
    (0x8bab8eefb6409c1a, 774),
    (0xd01fef10a657842c, 800),
    (0x9b10a4e5e9913129, 827),
    (0xe7109bfba19c0c9d, 853),
    (0xac2820d9623bf429, 880),
    (0x80444b5e7aa7cf85, 907),
    (0xbf21e44003acdd2d, 933),
    (0x8e679c2f5e44ff8f, 960),
    (0xd433179d9c8cb841, 986),
    (0x9e19db92b4e31ba9, 1013),
    (0xeb96bf6ebadf77d9, 1039),
    (0xaf87023b9bf0ee6b, 1066),
];

/// The cached power c = 10^-K that brings a number with binary exponent
/// `e` into Grisu's working range, and K.
fn cached_power(e: i32) -> (DiyFp, i32) {
    // ceil((-61 - e) * log10(2)) + 347, computed in doubles as RapidJSON does.
    let dk = f64::from(-61 - e) * 0.301_029_995_663_981_14 + 347.0;
    let mut k = dk as i32;
    if dk - f64::from(k) > 0.0 {
        k += 1;
    }
    let index = ((k >> 3) + 1) as usize;
    let big_k = -(-348 + (index as i32) * 8);
    let (f, e) = CACHED_POWERS[index];
    (DiyFp { f, e: i32::from(e) }, big_k)
}

const POW10: [u64; 20] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
    10_000_000_000_000_000_000,
];

/// Grisu2's digit generation: the digits of `v` (positive, finite) in
/// `buf` and the decimal exponent K such that v ≈ digits × 10^K. Follows
/// RapidJSON's `internal::Grisu2` step by step, including its unsigned
/// wrap-arounds, so that the digits are the same.
fn grisu2(value: f64, buf: &mut [u8; 2 * DIGITS_MAX]) -> (usize, i32) {
    let v = DiyFp::from_f64(value);
    let (w_m, w_p) = v.normalized_boundaries();
    let (c_mk, mut big_k) = cached_power(w_p.e);
    let w = v.normalize().mul(c_mk);
    let mut wp = w_p.mul(c_mk);
    let mut wm = w_m.mul(c_mk);
    wm.f = wm.f.wrapping_add(1);
    wp.f = wp.f.wrapping_sub(1);
    let len = digit_gen(w, wp, wp.f.wrapping_sub(wm.f), buf, &mut big_k);
    (len, big_k)
}

fn count_decimal_digit32(n: u32) -> i32 {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1_000..=9_999 => 4,
        10_000..=99_999 => 5,
        100_000..=999_999 => 6,
        1_000_000..=9_999_999 => 7,
        10_000_000..=99_999_999 => 8,
        // RapidJSON never sees 10 digits here and answers 9 beyond.
        _ => 9,
    }
}

fn digit_gen(
    w: DiyFp,
    mp: DiyFp,
    mut delta: u64,
    buf: &mut [u8; 2 * DIGITS_MAX],
    big_k: &mut i32,
) -> usize {
    let shift = (-mp.e) as u32;
    let one_f = 1u64 << shift;
    let wp_w = mp.f.wrapping_sub(w.f);
    let p1 = (mp.f >> shift) as u32;
    let mut p2 = mp.f & (one_f - 1);
    // The digits of the integral part p1, then those of the fraction p2.
    let (mut kappa, mut len) = if 0 < p1 && p1 < 1_000_000_000 && delta < one_f {
        // The integral part's loop below stops early only where the
        // remainder (p1's digits not yet written, then p2) is within
        // delta. With delta below one unit of p1 that needs those digits
        // to be zeros and p2 <= delta; so its digits can be written at
        // once. (p1 below 10^9 has its exact digit count, so none is a
        // leading zero.)
        let n = count_decimal_digit32(p1) as usize;
        if p2 <= delta {
            // It stops after the last non-zero digit.
            let mut kept = p1;
            let mut zeros = 0;
            while kept.is_multiple_of(10) {
                kept /= 10;
                zeros += 1;
            }
            let len = n - zeros;
            fill_digits(&mut buf[..len], u64::from(kept));
            *big_k += zeros as i32;
            grisu_round(buf, len, delta, p2, POW10[zeros] << shift, wp_w);
            return len;
        }
        fill_digits(&mut buf[..n], u64::from(p1));
        (0, n)
    } else {
        match integral_digits(p1, p2, shift, delta, wp_w, buf, big_k) {
            Ok(len) => return len,
            Err(len) => (0, len),
        }
    };

    loop {
        p2 = p2.wrapping_mul(10);
        delta = delta.wrapping_mul(10);
        let d = (p2 >> shift) as u8;
        if d != 0 || len != 0 {
            buf[len] = b'0'.wrapping_add(d);
            len += 1;
        }
        p2 &= one_f - 1;
        kappa -= 1;
        if p2 < delta {
            *big_k += kappa;
            let index = (-kappa) as usize;
            let scale = if index < 20 { POW10[index] } else { 0 };
            grisu_round(buf, len, delta, p2, one_f, wp_w.wrapping_mul(scale));
            return len;
        }
    }
}

/// Grisu2's loop over the digits of the integral part p1, step by step as
/// RapidJSON has it: `Ok(len)` if the digits end there, `Err(len)` if the
/// fraction's digits follow.
fn integral_digits(
    mut p1: u32,
    p2: u64,
    shift: u32,
    delta: u64,
    wp_w: u64,
    buf: &mut [u8; 2 * DIGITS_MAX],
    big_k: &mut i32,
) -> Result<usize, usize> {
    let mut kappa = count_decimal_digit32(p1);
    let mut len = 0usize;

    while kappa > 0 {
        let d = match kappa {
            9 => {
                let d = p1 / 100_000_000;
                p1 %= 100_000_000;
                d
            }
            8 => {
                let d = p1 / 10_000_000;
                p1 %= 10_000_000;
                d
            }
            7 => {
                let d = p1 / 1_000_000;
                p1 %= 1_000_000;
                d
            }
            6 => {
                let d = p1 / 100_000;
                p1 %= 100_000;
                d
            }
            5 => {
                let d = p1 / 10_000;
                p1 %= 10_000;
                d
            }
            4 => {
                let d = p1 / 1_000;
                p1 %= 1_000;
                d
            }
            3 => {
                let d = p1 / 100;
                p1 %= 100;
                d
            }
            2 => {
                let d = p1 / 10;
                p1 %= 10;
                d
            }
            _ => {
                let d = p1;
                p1 = 0;
                d
            }
        };
        if d != 0 || len != 0 {
            buf[len] = b'0'.wrapping_add(d as u8);
            len += 1;
        }
        kappa -= 1;
        let tmp = (u64::from(p1) << shift).wrapping_add(p2);
        if tmp <= delta {
            *big_k += kappa;
            grisu_round(buf, len, delta, tmp, POW10[kappa as usize] << shift, wp_w);
            return Ok(len);
        }
    }

    Err(len)
}

fn grisu_round(
    buf: &mut [u8; 2 * DIGITS_MAX],
    len: usize,
    delta: u64,
    mut rest: u64,
    ten_kappa: u64,
    wp_w: u64,
) {
    while rest < wp_w
        && delta.wrapping_sub(rest) >= ten_kappa
        && (rest.wrapping_add(ten_kappa) < wp_w
            || wp_w.wrapping_sub(rest) > rest.wrapping_add(ten_kappa).wrapping_sub(wp_w))
    {
        buf[len - 1] = buf[len - 1].wrapping_sub(1);
        rest = rest.wrapping_add(ten_kappa);
    }
}

#[cfg(test)]
mod tests;
