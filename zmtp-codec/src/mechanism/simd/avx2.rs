//! Salsa20 on eight blocks at once in AVX2 registers: one 32-bit lane per
//! block, so each of the sixteen state words is one `__m256i` and every
//! step of a round is one instruction for all eight blocks. The same
//! "structure of arrays" as the `wide` kernels, written in intrinsics
//! because a default build targets SSE2 and `wide` picks its AVX2 form only
//! at compile time.

use std::arch::x86_64::*;

use crate::mechanism::salsa::{input, COUNTER_AT, NONCE_AT};

/// `x ^ (a + b) <<< rotation`.
macro_rules! mix {
    ($x:expr, $a:expr, $b:expr, $r:literal) => {{
        let sum = _mm256_add_epi32($a, $b);
        _mm256_xor_si256(
            $x,
            _mm256_or_si256(_mm256_slli_epi32(sum, $r), _mm256_srli_epi32(sum, 32 - $r)),
        )
    }};
}

/// An 8×8 transpose of 32-bit words: in, vector `i` holds state word `i`
/// of the eight blocks; out, vector `j` holds those eight words of block
/// `j`, in order.
///
/// # Safety
/// The processor must have AVX2 (only `xor8`, compiled for it, calls
/// this).
#[inline(always)]
unsafe fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256(u0, u4, 0x20),
        _mm256_permute2x128_si256(u1, u5, 0x20),
        _mm256_permute2x128_si256(u2, u6, 0x20),
        _mm256_permute2x128_si256(u3, u7, 0x20),
        _mm256_permute2x128_si256(u0, u4, 0x31),
        _mm256_permute2x128_si256(u1, u5, 0x31),
        _mm256_permute2x128_si256(u2, u6, 0x31),
        _mm256_permute2x128_si256(u3, u7, 0x31),
    ]
}

/// XORs blocks `(nonce, counter)` of `key`'s stream into `out`, block `i`
/// at `out[64 * i..]`.
///
/// # Safety
/// The processor must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn xor8(key: &[u32; 8], blocks: [([u32; 2], u64); 8], out: &mut [u8; 512]) {
    let word = |f: &dyn Fn(usize) -> u32| -> __m256i {
        let lanes: [u32; 8] = std::array::from_fn(f);
        // SAFETY: reads 32 bytes from a live [u32; 8] (unaligned load).
        unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
    };
    // The input block of `salsa`: constants and key the same in every
    // lane (a loop here rather than `map`, so that the intrinsic is called
    // from this AVX2 function), nonce and counter one block's per lane.
    let mut start = [_mm256_setzero_si256(); 16];
    for (vector, value) in start.iter_mut().zip(input(key, [0; 2], [0; 2])) {
        *vector = _mm256_set1_epi32(value as i32);
    }
    start[NONCE_AT] = word(&|i| blocks[i].0[0]);
    start[NONCE_AT + 1] = word(&|i| blocks[i].0[1]);
    start[COUNTER_AT] = word(&|i| blocks[i].1 as u32);
    start[COUNTER_AT + 1] = word(&|i| (blocks[i].1 >> 32) as u32);
    let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7, mut x8, mut x9, mut x10, mut x11, mut x12, mut x13, mut x14, mut x15] =
        start;
    macro_rules! quarter {
        ($a:ident, $b:ident, $c:ident, $d:ident) => {
            $b = mix!($b, $a, $d, 7);
            $c = mix!($c, $b, $a, 9);
            $d = mix!($d, $c, $b, 13);
            $a = mix!($a, $d, $c, 18);
        };
    }
    for _ in 0..10 {
        quarter!(x0, x4, x8, x12);
        quarter!(x5, x9, x13, x1);
        quarter!(x10, x14, x2, x6);
        quarter!(x15, x3, x7, x11);
        quarter!(x0, x1, x2, x3);
        quarter!(x5, x6, x7, x4);
        quarter!(x10, x11, x8, x9);
        quarter!(x15, x12, x13, x14);
    }
    let x = [
        x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
    ];
    let sum: [__m256i; 16] = std::array::from_fn(|i| _mm256_add_epi32(x[i], start[i]));
    // Words 0-7, then 8-15, of each block: 32 bytes of it each.
    for half in 0..2 {
        // SAFETY: AVX2 is present (this function's contract).
        let rows = unsafe { transpose(std::array::from_fn(|i| sum[8 * half + i])) };
        for (block, stream) in rows.into_iter().enumerate() {
            let at = block * 64 + half * 32;
            let bytes = &mut out[at..at + 32];
            // SAFETY: `bytes` is 32 live bytes; loads and stores are
            // unaligned.
            unsafe {
                let data = _mm256_loadu_si256(bytes.as_ptr().cast());
                _mm256_storeu_si256(bytes.as_mut_ptr().cast(), _mm256_xor_si256(data, stream));
            }
        }
    }
}
