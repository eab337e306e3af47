//! Poly1305 on eight blocks at a time in AVX2 registers (after Goll and
//! Gueron, "Vectorization of Poly1305 Message Authentication Code", 2015):
//! eight accumulators, one per 64-bit lane of two registers, each taking
//! every eighth block and multiplied by r⁸ per step; at the end each lane
//! is multiplied by the power of r its last block needs, and the lanes are
//! added.
//! Numbers are five 26-bit limbs, so every limb product is one
//! `_mm256_mul_epu32` (32 × 32 → 64 bits) and five of them add up without
//! overflow.
//!
//! The lanes hold blocks 0, 2, 1, 3 of each 64-byte group (the order
//! `unpack` leaves them in, which saves a permute per group); the final
//! powers follow that order.

use std::arch::x86_64::*;

const MASK26: u64 = (1 << 26) - 1;

/// The carry chain on five limb sums: each limb back under 2^26 (the
/// second a few bits over, which the next step absorbs), the carry out of
/// the top one folded into the bottom as ×5 (2^130 ≡ 5).
// Safety: AVX2 must be present (only `blocks` calls it).
#[inline(always)]
unsafe fn carry(d: [__m256i; 5]) -> [__m256i; 5] {
    let mask = _mm256_set1_epi64x(MASK26 as i64);
    let [d0, mut d1, mut d2, mut d3, mut d4] = d;
    d1 = _mm256_add_epi64(d1, _mm256_srli_epi64(d0, 26));
    let mut h0 = _mm256_and_si256(d0, mask);
    d2 = _mm256_add_epi64(d2, _mm256_srli_epi64(d1, 26));
    let mut h1 = _mm256_and_si256(d1, mask);
    d3 = _mm256_add_epi64(d3, _mm256_srli_epi64(d2, 26));
    let h2 = _mm256_and_si256(d2, mask);
    d4 = _mm256_add_epi64(d4, _mm256_srli_epi64(d3, 26));
    let h3 = _mm256_and_si256(d3, mask);
    let c = _mm256_srli_epi64(d4, 26);
    let h4 = _mm256_and_si256(d4, mask);
    // c · 5 = c + c · 4
    h0 = _mm256_add_epi64(h0, _mm256_add_epi64(c, _mm256_slli_epi64(c, 2)));
    h1 = _mm256_add_epi64(h1, _mm256_srli_epi64(h0, 26));
    h0 = _mm256_and_si256(h0, mask);
    [h0, h1, h2, h3, h4]
}

/// `h · r` per lane, `r` and `s = 5 · r` given limb by limb.
// Safety: AVX2 must be present (only `blocks` calls it).
#[inline(always)]
unsafe fn times(h: &[__m256i; 5], r: &[__m256i; 5], s: &[__m256i; 5]) -> [__m256i; 5] {
    let m = |a: __m256i, b: __m256i| _mm256_mul_epu32(a, b);
    let add = |a: __m256i, b: __m256i| _mm256_add_epi64(a, b);
    let [h0, h1, h2, h3, h4] = *h;
    [
        add(
            add(m(h0, r[0]), m(h1, s[4])),
            add(add(m(h2, s[3]), m(h3, s[2])), m(h4, s[1])),
        ),
        add(
            add(m(h0, r[1]), m(h1, r[0])),
            add(add(m(h2, s[4]), m(h3, s[3])), m(h4, s[2])),
        ),
        add(
            add(m(h0, r[2]), m(h1, r[1])),
            add(add(m(h2, r[0]), m(h3, s[4])), m(h4, s[3])),
        ),
        add(
            add(m(h0, r[3]), m(h1, r[2])),
            add(add(m(h2, r[1]), m(h3, r[0])), m(h4, s[4])),
        ),
        add(
            add(m(h0, r[4]), m(h1, r[3])),
            add(add(m(h2, r[2]), m(h3, r[1])), m(h4, r[0])),
        ),
    ]
}

/// The four blocks of `group` as limbs, lanes in block order 0, 2, 1, 3,
/// with 2^128 added to each.
// Safety: AVX2 must be present (only `blocks` calls it).
#[inline(always)]
unsafe fn load(group: &[u8; 64]) -> [__m256i; 5] {
    let (low, high) = group.split_at(32);
    // SAFETY (of the loads): `low` and `high` are 32 live bytes each
    // (`group` is 64 by its type); loads are unaligned.
    let a = _mm256_loadu_si256(low.as_ptr().cast());
    let b = _mm256_loadu_si256(high.as_ptr().cast());
    let lo = _mm256_unpacklo_epi64(a, b);
    let hi = _mm256_unpackhi_epi64(a, b);
    let mask = _mm256_set1_epi64x(MASK26 as i64);
    [
        _mm256_and_si256(lo, mask),
        _mm256_and_si256(_mm256_srli_epi64(lo, 26), mask),
        _mm256_and_si256(
            _mm256_or_si256(_mm256_srli_epi64(lo, 52), _mm256_slli_epi64(hi, 12)),
            mask,
        ),
        _mm256_and_si256(_mm256_srli_epi64(hi, 14), mask),
        _mm256_or_si256(_mm256_srli_epi64(hi, 40), _mm256_set1_epi64x(1 << 24)),
    ]
}

/// Limb vectors of one power of r in every lane, and of 5 times it.
// Safety: AVX2 must be present (only `blocks` calls it).
#[inline(always)]
unsafe fn same(r: &[u32; 5]) -> ([__m256i; 5], [__m256i; 5]) {
    (
        r.map(|l| _mm256_set1_epi64x(i64::from(l))),
        r.map(|l| _mm256_set1_epi64x(i64::from(l) * 5)),
    )
}

/// The Poly1305 accumulator, from zero, over `data` (whole 128-byte
/// pairs of groups, at least one), as five 26-bit limbs (the second
/// possibly a little over). `powers` are r¹ to r⁸ in 26-bit limbs, each
/// under 2^26.
///
/// Two sets of four lanes take alternate groups, each multiplied by r⁸ per
/// step: one set alone waits on its own carry chain every step, two keep
/// the multipliers busy.
///
/// # Safety
/// The processor must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn blocks(powers: &[[u32; 5]; 8], data: &[u8]) -> [u64; 5] {
    debug_assert!(!data.is_empty() && data.len().is_multiple_of(128));
    let (groups, _) = data.as_chunks::<64>();
    let mut pairs = groups.chunks_exact(2);
    // SAFETY: AVX2 is present (this function's contract).
    unsafe {
        let first = pairs.next().expect("at least one pair");
        let mut a = load(&first[0]);
        let mut b = load(&first[1]);
        let (r8, s8) = same(&powers[7]);
        for pair in pairs {
            let da = times(&a, &r8, &s8);
            let db = times(&b, &r8, &s8);
            let ma = load(&pair[0]);
            let mb = load(&pair[1]);
            let ca = carry(da);
            let cb = carry(db);
            a = std::array::from_fn(|i| _mm256_add_epi64(ca[i], ma[i]));
            b = std::array::from_fn(|i| _mm256_add_epi64(cb[i], mb[i]));
        }
        // Lanes hold blocks 0, 2, 1, 3 of their group; `a`'s group is the
        // first of the last pair (blocks 0-3 of eight: r⁸, r⁶, r⁷, r⁵),
        // `b`'s the second (blocks 4-7: r⁴, r², r³, r¹).
        let lanes = |limb: usize, five: i64, [p0, p2, p1, p3]: [usize; 4]| {
            let power = |k: usize| i64::from(powers[k - 1][limb]) * five;
            _mm256_set_epi64x(power(p3), power(p1), power(p2), power(p0))
        };
        let last = |a: &[__m256i; 5], exponents: [usize; 4]| {
            let r: [__m256i; 5] = std::array::from_fn(|i| lanes(i, 1, exponents));
            let s: [__m256i; 5] = std::array::from_fn(|i| lanes(i, 5, exponents));
            carry(times(a, &r, &s))
        };
        let a = last(&a, [8, 6, 7, 5]);
        let b = last(&b, [4, 2, 3, 1]);
        let mut out = [0u64; 5];
        for ((sum, la), lb) in out.iter_mut().zip(a).zip(b) {
            let mut lanes = [0u64; 4];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_add_epi64(la, lb));
            *sum = lanes.iter().sum();
        }
        out
    }
}
