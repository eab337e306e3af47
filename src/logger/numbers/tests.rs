//! Zeek's renderings of numbers, checked against the outputs of Zeek's own
//! tests and against exhaustive and random comparisons.

// Test inputs are the literals of Zeek's test scripts (3.14, 1.123456789, ...).
#![allow(clippy::approx_constant, clippy::excessive_precision)]

use super::*;

fn fixed6_str(d: f64) -> String {
    let mut out = Vec::new();
    write_fixed6(&mut out, d);
    String::from_utf8(out).unwrap()
}

fn ascii_str(d: f64) -> String {
    let mut out = Vec::new();
    write_ascii_double(&mut out, d);
    String::from_utf8(out).unwrap()
}

fn json_str(d: f64) -> String {
    let mut out = Vec::new();
    write_json_double(&mut out, d);
    String::from_utf8(out).unwrap()
}

/// `grisu2` as it was first written, over `reference_digit_gen`.
fn reference_grisu2(value: f64, buf: &mut [u8; 2 * DIGITS_MAX]) -> (usize, i32) {
    let v = DiyFp::from_f64(value);
    let (w_m, w_p) = v.normalized_boundaries();
    let (c_mk, mut big_k) = cached_power(w_p.e);
    let w = v.normalize().mul(c_mk);
    let mut wp = w_p.mul(c_mk);
    let mut wm = w_m.mul(c_mk);
    wm.f = wm.f.wrapping_add(1);
    wp.f = wp.f.wrapping_sub(1);
    let len = reference_digit_gen(w, wp, wp.f.wrapping_sub(wm.f), buf, &mut big_k);
    (len, big_k)
}

/// RapidJSON's `DigitGen` step by step, as `digit_gen` was first written.
fn reference_digit_gen(
    w: DiyFp,
    mp: DiyFp,
    mut delta: u64,
    buf: &mut [u8; 2 * DIGITS_MAX],
    big_k: &mut i32,
) -> usize {
    let shift = (-mp.e) as u32;
    let one_f = 1u64 << shift;
    let wp_w = mp.f.wrapping_sub(w.f);
    let mut p1 = (mp.f >> shift) as u32;
    let mut p2 = mp.f & (one_f - 1);
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
            return len;
        }
    }

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

/// `write_json_double` as it was first written, step by step after
/// RapidJSON's `Writer::Double`: Grisu2's digits one at a time, laid
/// out by pushes in `reference_prettify`. The reference for the fast
/// paths.
fn reference_json_str(d: f64) -> String {
    let mut out = Vec::new();
    if d == 0.0 {
        if d.is_sign_negative() {
            out.push(b'-');
        }
        out.extend_from_slice(b"0.0");
    } else {
        if d < 0.0 {
            out.push(b'-');
        }
        let mut digits = [0u8; 2 * DIGITS_MAX];
        let (len, k) = reference_grisu2(d.abs(), &mut digits);
        reference_prettify(&mut out, &digits[..len], k);
    }
    String::from_utf8(out).unwrap()
}

/// RapidJSON's `Prettify` with its default of 324 decimal places, under
/// which its truncation branches can never be taken for a double.
fn reference_prettify(out: &mut Vec<u8>, digits: &[u8], k: i32) {
    let length = digits.len() as i32;
    let kk = length + k; // 10^(kk-1) <= v < 10^kk
    if (0..).contains(&k) && kk <= 21 {
        // 1234e7 -> 12340000000.0
        out.extend_from_slice(digits);
        out.resize(out.len() + (kk - length) as usize, b'0');
        out.extend_from_slice(b".0");
    } else if 0 < kk && kk <= 21 {
        // 1234e-2 -> 12.34
        let (int, frac) = digits.split_at(kk as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    } else if -6 < kk && kk <= 0 {
        // 1234e-6 -> 0.001234
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-kk) as usize, b'0');
        out.extend_from_slice(digits);
    } else if length == 1 {
        // 1e30
        out.push(digits[0]);
        out.push(b'e');
        reference_exponent(out, kk - 1);
    } else {
        // 1234e30 -> 1.234e33
        out.push(digits[0]);
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
        out.push(b'e');
        reference_exponent(out, kk - 1);
    }
}

fn reference_exponent(out: &mut Vec<u8>, k: i32) {
    if k < 0 {
        out.push(b'-');
    }
    write_u64(out, u64::from(k.unsigned_abs()));
}

/// glibc's `snprintf("%.6f")`: exact, ties to even, like `to_chars`.
fn printf6(d: f64) -> String {
    crate::sys::c_printf_f6(d)
}

#[test]
fn integers() {
    let mut p = 1u64;
    for _ in 0..20 {
        for v in [p - 1, p, p + 1] {
            let mut out = vec![b'x'];
            write_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").as_bytes());
        }
        p = p.wrapping_mul(10);
    }
    for v in [0u64, 1, 9, 10, 99, 100, 101, 12345, u64::MAX] {
        let mut out = Vec::new();
        write_u64(&mut out, v);
        assert_eq!(out, v.to_string().as_bytes());
    }
    for v in [0i64, -1, 42, -42, i64::MIN, i64::MAX] {
        let mut out = Vec::new();
        write_i64(&mut out, v);
        assert_eq!(out, v.to_string().as_bytes());
    }
}

#[test]
fn fixed6_examples() {
    // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-timestamps/test.log
    assert_eq!(fixed6_str(1234567890.0), "1234567890.000000");
    assert_eq!(fixed6_str(1234567890.01), "1234567890.010000");
    assert_eq!(fixed6_str(1234567890.001), "1234567890.001000");
    assert_eq!(fixed6_str(1234567890.0001), "1234567890.000100");
    assert_eq!(fixed6_str(1234567890.00001), "1234567890.000010");
    assert_eq!(fixed6_str(1234567890.000001), "1234567890.000001");
    assert_eq!(fixed6_str(1234567890.0000001), "1234567890.000000");
    assert_eq!(fixed6_str(2385642157.0), "2385642157.000000");
    // testing/btest/Baseline/scripts.base.frameworks.logging.types/ssh.log
    assert_eq!(fixed6_str(100.0), "100.000000");

    assert_eq!(fixed6_str(0.0), "0.000000");
    assert_eq!(fixed6_str(-0.0), "-0.000000");
    assert_eq!(fixed6_str(-1e-9), "-0.000000");
    assert_eq!(fixed6_str(1.5), "1.500000");
    assert_eq!(fixed6_str(-2.25), "-2.250000");
    // Exact ties (k/128 has seven decimals ending in 5) go to even.
    assert_eq!(fixed6_str(0.0078125), "0.007812");
    assert_eq!(fixed6_str(0.0234375), "0.023438");
    assert_eq!(fixed6_str(1700000000.0078125), "1700000000.007812");
    // 0.0000005 is slightly below the tie in binary.
    assert_eq!(fixed6_str(0.0000005), "0.000000");
    assert_eq!(fixed6_str(0.0000015), "0.000002");
    assert_eq!(fixed6_str(f64::INFINITY), "inf");
    assert_eq!(fixed6_str(f64::NEG_INFINITY), "-inf");
    assert_eq!(fixed6_str(f64::NAN), "nan");
    assert_eq!(fixed6_str(-f64::NAN), "-nan");
    assert_eq!(
        fixed6_str(18446744073709551616.0),
        "18446744073709551616.000000"
    );
    assert_eq!(fixed6_str(f64::MIN_POSITIVE), "0.000000");
    assert_eq!(fixed6_str(5e-324), "0.000000");
}

#[test]
fn fixed6_matches_printf_at_the_edges() {
    let mut cases = vec![
        0.0,
        -0.0,
        1e-7,
        4.9999999e-7,
        5e-7,
        5.0000001e-7,
        9.9999995e-7,
        0.9999995,
        0.99999949999,
        9007199254740991.0,
        9007199254740992.0,
        18446744073709549568.0,
        18446744073709551616.0,
        1e300,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    for k in 0..2048u32 {
        // Every k/2048 in [0, 1) and shifted up: many exact ties.
        let x = f64::from(k) / 2048.0;
        cases.push(x);
        cases.push(1_700_000_000.0 + x);
        cases.push(-(123_456.0 + x));
    }
    for d in cases {
        assert_eq!(fixed6_str(d), printf6(d), "{d:e}");
    }
}

proptest::proptest! {
    #[test]
    fn fixed6_matches_printf(bits in proptest::num::u64::ANY) {
        let d = f64::from_bits(bits);
        proptest::prop_assume!(d.is_finite());
        proptest::prop_assert_eq!(fixed6_str(d), printf6(d));
    }

    #[test]
    fn fixed6_matches_printf_for_times(secs in 0u64..4_000_000_000, micros in 0u64..1_000_000_000) {
        let d = secs as f64 + micros as f64 / 1e9;
        proptest::prop_assert_eq!(fixed6_str(d), printf6(d));
    }

    #[test]
    fn ascii_double_follows_the_rules(bits in proptest::num::u64::ANY) {
        let d = f64::from_bits(bits);
        proptest::prop_assume!(d.is_finite());
        // An independent restatement of double_to_str + ODesc::Add.
        let mut s = printf6(d.abs());
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
        if d < 0.0 {
            s.insert(0, '-');
        }
        if (d - d.round_ties_even()).abs() < 1e-9 {
            s.push_str(".0");
        }
        proptest::prop_assert_eq!(ascii_str(d), s);
    }

    #[test]
    fn json_double_matches_the_reference(bits in proptest::num::u64::ANY) {
        let d = f64::from_bits(bits);
        proptest::prop_assume!(d.is_finite());
        proptest::prop_assert_eq!(json_str(d), reference_json_str(d), "{:e}", d);
    }

    /// Times as Zeek writes them: seconds since the epoch with
    /// microseconds (and the odd nanosecond), and intervals.
    #[test]
    fn json_double_matches_the_reference_for_times(
        secs in 0u64..4_000_000_000,
        micros in 0u64..1_000_000,
        nanos in 0u64..1000,
    ) {
        let times = [
            secs as f64,
            secs as f64 + 0.5,
            secs as f64 + micros as f64 / 1e6,
            secs as f64 + (micros * 1000 + nanos) as f64 / 1e9,
            (secs % 100_000) as f64 + micros as f64 / 1e6,
            micros as f64 / 1e6,
            nanos as f64 / 1e9,
            -(secs as f64 + micros as f64 / 1e6),
        ];
        for d in times {
            proptest::prop_assert_eq!(json_str(d), reference_json_str(d), "{:e}", d);
        }
    }

    /// Every layout branch: digits of every length at every decimal
    /// exponent around the branch points.
    #[test]
    fn json_double_matches_the_reference_for_layouts(
        mantissa in 1u64..100_000_000_000_000_000,
        exp in -30i32..30,
    ) {
        let d = mantissa as f64 * 10f64.powi(exp);
        proptest::prop_assert_eq!(json_str(d), reference_json_str(d), "{:e}", d);
    }

    #[test]
    fn json_double_round_trips(bits in proptest::num::u64::ANY) {
        let d = f64::from_bits(bits);
        proptest::prop_assume!(d.is_finite());
        let s = json_str(d);
        let back: f64 = s.parse().unwrap();
        proptest::prop_assert_eq!(back.to_bits(), d.to_bits(), "{}", s);
    }
}

#[test]
fn ascii_double_examples() {
    // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-double/test.log
    let cases: &[(f64, &str)] = &[
        (2153226000.0, "2153226000.0"),
        (2153226000.1, "2153226000.1"),
        (2153226000.123456789, "2153226000.123457"),
        (1.0, "1.0"),
        (1.1, "1.1"),
        (1.123456789, "1.123457"),
        (-1.123456789, "-1.123457"),
        (1.1234, "1.1234"),
        (0.1234, "0.1234"),
        (5e4, "50000.0"),
        (-5e4, "-50000.0"),
        (3.14e15, "3140000000000000.0"),
        (-3.14e15, "-3140000000000000.0"),
        (1.23456789e-5, "0.000012"),
        (2.23e-308, "0.0"),
        (-2.23e-308, "-0.0"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (-0.0, "0.0"),
        (f64::NAN, "nan"),
        (-f64::NAN, "nan"),
        // testing/btest/Baseline/scripts.base.frameworks.logging.types/ssh.log
        (3.14, "3.14"),
        // More edges.
        (0.1, "0.1"),
        (1234.5678, "1234.5678"),
        (1e-300, "0.0"),
        (-1e-300, "-0.0"),
        (2.0000000001, "2.0"),
        (2.0000001, "2"),
        (1.9999999, "2"),
        (0.0000005, "0"),
        (-0.0000004, "-0"),
        (0.0000015, "0.000002"),
    ];
    for &(d, want) in cases {
        assert_eq!(ascii_str(d), want, "{d:e}");
    }
    // The same baseline: 1.79e308 and its negation, all digits.
    let dmax = "178999999999999996376899522972626047077637637819240219954027593177370961667659291027329061638406108931437333529420935752785895444161234074984843178962619172326295244262722141766382622299223626438470088150218987997954747866198184686628013966119769261150988554952970462018533787926725176560021258785656871583744.0";
    assert_eq!(ascii_str(1.79e308), dmax);
    assert_eq!(ascii_str(-1.79e308), format!("-{dmax}"));
    // Contract §12 (observed on Zeek 9.1): 1e300 is 301 digits and ".0".
    let s = ascii_str(1e300);
    assert_eq!(s.len(), 303);
    assert!(s.starts_with("1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160"));
    assert!(s.ends_with(".0"));
    assert_eq!(ascii_str(18446744073709551616.0), "18446744073709551616.0");
    assert_eq!(ascii_str(u64::MAX as f64 / 2.0), "9223372036854775808.0");
}

#[test]
fn json_double_examples() {
    // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-double/json.log
    let cases: &[(f64, &str)] = &[
        (2153226000.0, "2153226000.0"),
        (2153226000.1, "2153226000.1"),
        (2153226000.123456789, "2153226000.123457"),
        (1.0, "1.0"),
        (1.1, "1.1"),
        (1.123456789, "1.123456789"),
        (-1.123456789, "-1.123456789"),
        (1.1234, "1.1234"),
        (0.1234, "0.1234"),
        (5e4, "50000.0"),
        (-5e4, "-50000.0"),
        (3.14e15, "3140000000000000.0"),
        (-3.14e15, "-3140000000000000.0"),
        (1.79e308, "1.79e308"),
        (-1.79e308, "-1.79e308"),
        (1.23456789e-5, "0.0000123456789"),
        (2.23e-308, "2.23e-308"),
        (-2.23e-308, "-2.23e-308"),
        (-0.0, "-0.0"),
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-json/ssh.log
        (3.14, "3.14"),
        (100.0, "100.0"),
        // testing/btest/Baseline/scripts.base.frameworks.logging.ascii-negative-ts/test.log.ts_epoch
        (-315619200.0, "-315619200.0"),
        // Layout edges of Prettify.
        (0.0, "0.0"),
        (1e20, "100000000000000000000.0"),
        (1e21, "1e21"),
        (1.5e21, "1.5e21"),
        (123456789012345680000.0, "123456789012345680000.0"),
        (0.000001, "0.000001"),
        (0.0000012, "0.0000012"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e300, "1e300"),
        (1e-300, "1e-300"),
        (5e-324, "5e-324"),
        (f64::MAX, "1.7976931348623157e308"),
        (0.1, "0.1"),
        (1234.5678, "1234.5678"),
        (1700000000.123456, "1700000000.123456"),
        (18446744073709551615.0, "18446744073709552000.0"),
    ];
    for &(d, want) in cases {
        assert_eq!(json_str(d), want, "{d:e}");
    }
}

/// RapidJSON computes the cached-power index with a multiply and an add
/// in doubles; a C++ compiler may fuse them. Both give the same index
/// for every exponent Grisu2 can see, so the choice cannot matter.
#[test]
fn cached_power_index_is_robust_to_fma() {
    for e in -1200..=1000 {
        let x = f64::from(-61 - e);
        let plain = x * 0.301_029_995_663_981_14 + 347.0;
        let fused = x.mul_add(0.301_029_995_663_981_14, 347.0);
        assert_eq!(plain.ceil(), fused.ceil(), "e = {e}");
    }
    // And every exponent of a normalized upper boundary lands on a
    // power whose product keeps the significand in Grisu's window.
    for bits in [
        1u64,
        0x000f_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
        0x7fef_ffff_ffff_ffff,
    ] {
        let v = DiyFp::from_f64(f64::from_bits(bits));
        let (_, plus) = v.normalized_boundaries();
        let (c, _) = cached_power(plus.e);
        let e = plus.e + c.e + 64;
        assert!((-60..=-32).contains(&e), "exponent {e}");
    }
}

/// Minimal big unsigned integer (little-endian u32 limbs) for checking
/// the cached powers.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }
    fn bits(&self) -> u32 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u32 - 1) * 32 + (32 - top.leading_zeros()),
        }
    }
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let p = u64::from(*limb) * u64::from(m) + carry;
            *limb = p as u32;
            carry = p >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }
    fn pow10(n: u32) -> Big {
        let mut b = Big::from_u64(1);
        for _ in 0..n {
            b.mul_small(10);
        }
        b
    }
    fn shl(&self, n: u32) -> Big {
        let (limbs, bits) = ((n / 32) as usize, n % 32);
        let mut v = vec![0u32; limbs];
        let mut carry = 0u32;
        for &limb in &self.0 {
            if bits == 0 {
                v.push(limb);
            } else {
                v.push((limb << bits) | carry);
                carry = limb >> (32 - bits);
            }
        }
        if carry != 0 {
            v.push(carry);
        }
        let mut b = Big(v);
        b.trim();
        b
    }
    fn cmp_val(&self, other: &Big) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let o = i64::from(*other.0.get(i).unwrap_or(&0));
            let mut d = i64::from(self.0[i]) - o - borrow;
            borrow = 0;
            if d < 0 {
                d += 1 << 32;
                borrow = 1;
            }
            self.0[i] = d as u32;
        }
        self.trim();
    }
    /// floor(self / d) for a quotient below 2^65, and whether the
    /// remainder is at least half of d.
    fn div_round(&self, d: &Big) -> (u128, bool) {
        let mut q = 0u128;
        let mut rem = self.clone();
        for bit in (0..66).rev() {
            let t = d.shl(bit);
            if rem.cmp_val(&t) != std::cmp::Ordering::Less {
                rem.sub(&t);
                q |= 1 << bit;
            }
        }
        let twice = rem.shl(1);
        (q, twice.cmp_val(d) != std::cmp::Ordering::Less)
    }
}

#[test]
fn cached_powers_are_powers_of_ten() {
    for (i, &(f, e)) in CACHED_POWERS.iter().enumerate() {
        let k = -348 + 8 * i as i32;
        let (num, den) = if k >= 0 {
            (Big::pow10(k as u32), Big::from_u64(1))
        } else {
            (Big::from_u64(1), Big::pow10((-k) as u32))
        };
        // 10^k = num/den; find e with num / (den * 2^e) in [2^63, 2^64).
        let e_guess = num.bits() as i32 - den.bits() as i32 - 63;
        let mut found = None;
        for e in e_guess - 2..=e_guess + 2 {
            let (n, d) = if e >= 0 {
                (num.clone(), den.shl(e as u32))
            } else {
                (num.shl((-e) as u32), den.clone())
            };
            let (q, round_up) = n.div_round(&d);
            let q = q + u128::from(round_up);
            if (1u128 << 63..=1u128 << 64).contains(&q) && q < (1u128 << 64) {
                found = Some((q as u64, e));
                break;
            }
        }
        assert_eq!(found, Some((f, i32::from(e))), "10^{k}");
    }
}
