//! Salsa20/20 and HSalsa20 for the CURVE data path, on vector registers
//! without `unsafe`.
//!
//! Why not the `salsa20` crate here: it computes one 64-byte block at a
//! time in scalar code, about 7 µs per 4 KiB on this project's machines,
//! which made a 4 KiB CURVE message cost more CPU than libzmq's (libsodium
//! computes several blocks at once in SSE2 or AVX2). Here four or eight
//! blocks are computed together, one vector lane per block ("structure of
//! arrays"): every step is the same operation on all lanes. The lanes are
//! the `wide` crate's `u32x4` and `u32x8`, which are SSE2 registers on any
//! x86-64. Where the processor has AVX2 (and BMI2), eight blocks go
//! through the intrinsics kernel of [`super::simd`] instead, chosen at run
//! time once per process ([`Kernel`]). LLVM does not vectorize the same
//! code written on plain arrays: it turns each shift pair into a scalar
//! rotate first. The crate stays the reference the tests compare against.
//!
//! CurveZMQ's MESSAGE nonces are a fixed 16-byte prefix and an 8-byte
//! counter, and XSalsa20 feeds exactly the first 16 nonce bytes to
//! HSalsa20: so the per-message HSalsa20 of `crypto_box_afternm` is the
//! same for every message of a connection's direction, and the
//! [`Salsa20`] key for it is made once per direction
//! ([`super::fastbox::PrefixedBox`]).

use wide::{u32x4, u32x8};
use zeroize::Zeroize;

use super::simd::Kernel;

/// "expand 32-byte k", the constants of the diagonal.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A Salsa20 key, and the kernel it runs on; zeroized on drop.
pub(crate) struct Salsa20 {
    key: [u32; 8],
    kernel: Kernel,
}

impl Drop for Salsa20 {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

fn words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut out = [0u32; N];
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    out
}

/// `data ^= stream`, over `data`'s length.
fn xor_into(data: &mut [u8], stream: &[u8]) {
    for (byte, key) in data.iter_mut().zip(stream) {
        *byte ^= key;
    }
}

/// Where [`input`] puts the nonce and the block counter, two words each:
/// the only words that differ between blocks of one key (the AVX2 kernel
/// broadcasts the others).
pub(crate) const NONCE_AT: usize = 6;
pub(crate) const COUNTER_AT: usize = 8;

/// The input block: constants on the diagonal, key, nonce (words 6-7) and
/// counter (words 8-9).
pub(crate) fn input(key: &[u32; 8], nonce: [u32; 2], counter: [u32; 2]) -> [u32; 16] {
    [
        SIGMA[0], key[0], key[1], key[2], //
        key[3], SIGMA[1], nonce[0], nonce[1], //
        counter[0], counter[1], SIGMA[2], key[4], //
        key[5], key[6], key[7], SIGMA[3],
    ]
}

/// The twenty rounds (ten double rounds) on one block, without the final
/// addition of the input.
fn rounds(x: &mut [u32; 16]) {
    #[inline(always)]
    fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    }
    for _ in 0..10 {
        // Columns, then rows.
        quarter(x, 0, 4, 8, 12);
        quarter(x, 5, 9, 13, 1);
        quarter(x, 10, 14, 2, 6);
        quarter(x, 15, 3, 7, 11);
        quarter(x, 0, 1, 2, 3);
        quarter(x, 5, 6, 7, 4);
        quarter(x, 10, 11, 8, 9);
        quarter(x, 15, 12, 13, 14);
    }
}

/// A kernel that computes `$lanes` blocks at once, one vector lane per
/// block: `$vector` holds one state word of each.
macro_rules! wide_kernel {
    ($name:ident, $vector:ty, $lanes:expr) => {
        mod $name {
            use super::{input, $vector as Lanes};
            use zeroize::Zeroize;

            pub(crate) const LANES: usize = $lanes;

            /// `x ^ (a + b) <<< rotation`: one step of a quarter round.
            #[inline(always)]
            fn mix(x: Lanes, a: Lanes, b: Lanes, rotation: u32) -> Lanes {
                let sum = a + b;
                x ^ (sum << rotation) ^ (sum >> (32 - rotation))
            }

            /// The rounds of `super::rounds`, on sixteen locals so that they
            /// can live in vector registers.
            fn rounds(x: &mut [Lanes; 16]) {
                let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7, mut x8, mut x9, mut x10, mut x11, mut x12, mut x13, mut x14, mut x15] =
                    *x;
                macro_rules! quarter {
                    ($a:ident, $b:ident, $c:ident, $d:ident) => {
                        $b = mix($b, $a, $d, 7);
                        $c = mix($c, $b, $a, 9);
                        $d = mix($d, $c, $b, 13);
                        $a = mix($a, $d, $c, 18);
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
                *x = [
                    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15,
                ];
            }

            /// XORs one block per lane into `out`, one after the other, each
            /// of its own nonce and counter.
            pub(crate) fn xor(key: &[u32; 8], blocks: [([u32; 2], u64); LANES], out: &mut [u8; 64 * LANES]) {
                let mut rows = [[0u32; LANES]; 16];
                for (lane, (nonce, counter)) in blocks.into_iter().enumerate() {
                    let one = input(key, nonce, [counter as u32, (counter >> 32) as u32]);
                    for (row, value) in rows.iter_mut().zip(one) {
                        row[lane] = value;
                    }
                }
                let start = rows.map(Lanes::new);
                let mut x = start;
                rounds(&mut x);
                for (word, start) in x.iter_mut().zip(start) {
                    *word += start;
                }
                // LANES words of every block at a time, transposed from one
                // vector per word into one vector per block.
                for group in 0..16 / LANES {
                    let column: [Lanes; LANES] = std::array::from_fn(|i| x[LANES * group + i]);
                    for (lane, key) in Lanes::transpose(column).into_iter().enumerate() {
                        let at = lane * 64 + group * 4 * LANES;
                        let bytes: &mut [u8; 4 * LANES] =
                            (&mut out[at..at + 4 * LANES]).try_into().unwrap();
                        let data: [u32; LANES] = super::words(bytes);
                        let mixed = (Lanes::new(data) ^ key).to_array();
                        for (chunk, word) in bytes.chunks_exact_mut(4).zip(mixed) {
                            chunk.copy_from_slice(&word.to_le_bytes());
                        }
                    }
                }
                rows.zeroize();
            }
        }
    };
}

// Four blocks fill SSE2 registers; eight are two SSE2 registers each, at
// the speed of two four-block calls, and fill AVX2's in `simd`.
wide_kernel!(wide4, u32x4, 4);
wide_kernel!(wide8, u32x8, 8);

/// Blocks computed together for long streams.
pub(crate) const LANES: usize = wide8::LANES;

impl Salsa20 {
    /// The key of these 32 bytes, on `kernel`.
    pub(crate) fn with_kernel(key: &[u8; 32], kernel: Kernel) -> Salsa20 {
        Salsa20 {
            key: words(key),
            kernel,
        }
    }

    /// The kernel this key runs on, which its boxes' Poly1305 follows too.
    pub(crate) fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// HSalsa20 (the XSalsa20 paper, §2): the key that XSalsa20 uses for a
    /// nonce that begins with `nonce16`.
    pub(crate) fn hsalsa20(&self, nonce16: &[u8; 16]) -> Salsa20 {
        let n: [u32; 4] = words(nonce16);
        let mut x = input(&self.key, [n[0], n[1]], [n[2], n[3]]);
        rounds(&mut x);
        let key = [x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9]];
        x.zeroize();
        Salsa20 {
            key,
            kernel: self.kernel,
        }
    }

    /// Eight blocks, each of its own nonce and counter, XORed into `out`.
    fn xor8(&self, blocks: [([u32; 2], u64); LANES], out: &mut [u8; 64 * LANES]) {
        match self.kernel {
            Kernel::Avx2(avx2) => avx2.xor8(&self.key, blocks, out),
            Kernel::Sse2 => wide8::xor(&self.key, blocks, out),
            Kernel::Portable => self.xor_each(blocks, out),
        }
    }

    /// Four blocks, as [`Salsa20::xor8`].
    fn xor4(&self, blocks: [([u32; 2], u64); 4], out: &mut [u8; 256]) {
        match self.kernel {
            Kernel::Avx2(_) | Kernel::Sse2 => wide4::xor(&self.key, blocks, out),
            Kernel::Portable => self.xor_each(blocks, out),
        }
    }

    /// The portable form of [`Salsa20::xor8`] and [`Salsa20::xor4`]: one
    /// block at a time, block `i` into `out[64 * i..]`.
    fn xor_each<const N: usize>(&self, blocks: [([u32; 2], u64); N], out: &mut [u8]) {
        debug_assert_eq!(out.len(), 64 * N);
        for ((nonce, counter), chunk) in blocks.into_iter().zip(out.chunks_exact_mut(64)) {
            let mut block = self.block_of(nonce, counter);
            xor_into(chunk, &block);
            block.zeroize();
        }
    }

    /// XORs the key stream for `nonce8`, from block `counter` on, into
    /// `data`.
    pub(crate) fn apply(&self, nonce8: &[u8; 8], counter: u64, data: &mut [u8]) {
        let nonce = words(nonce8);
        let mut counter = counter;
        let mut wide_chunks = data.chunks_exact_mut(64 * LANES);
        for chunk in wide_chunks.by_ref() {
            let blocks = std::array::from_fn(|lane| (nonce, counter.wrapping_add(lane as u64)));
            self.xor8(blocks, chunk.try_into().unwrap());
            counter = counter.wrapping_add(LANES as u64);
        }
        let rest = wide_chunks.into_remainder();
        // The last blocks: one alone, up to four together, or more as many
        // as the wide kernel takes (less would not be cheaper).
        if rest.len() > 256 {
            let mut stream = [0u8; 64 * LANES];
            let blocks = std::array::from_fn(|lane| (nonce, counter.wrapping_add(lane as u64)));
            self.xor8(blocks, &mut stream);
            xor_into(rest, &stream);
            stream.zeroize();
        } else if rest.len() > 64 {
            let mut stream = [0u8; 256];
            let blocks = std::array::from_fn(|lane| (nonce, counter.wrapping_add(lane as u64)));
            self.xor4(blocks, &mut stream);
            xor_into(rest, &stream);
            stream.zeroize();
        } else if !rest.is_empty() {
            let mut block = self.block_of(nonce, counter);
            xor_into(rest, &block);
            block.zeroize();
        }
    }

    /// Block `counter` of the key stream for `nonce8`.
    #[cfg(test)]
    fn block(&self, nonce8: &[u8; 8], counter: u64) -> [u8; 64] {
        self.block_of(words(nonce8), counter)
    }

    fn block_of(&self, nonce: [u32; 2], counter: u64) -> [u8; 64] {
        let start = input(&self.key, nonce, [counter as u32, (counter >> 32) as u32]);
        let mut x = start;
        rounds(&mut x);
        let mut out = [0u8; 64];
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&x[i].wrapping_add(start[i]).to_le_bytes());
        }
        x.zeroize();
        out
    }

    /// XORs [`LANES`] blocks of key stream into `out`, one after the
    /// other: each of its own nonce and counter, so they may belong to one
    /// stream or to several messages' streams.
    pub(crate) fn xor_blocks(&self, blocks: [(&[u8; 8], u64); LANES], out: &mut [u8; 64 * LANES]) {
        self.xor8(
            blocks.map(|(nonce8, counter)| (words(nonce8), counter)),
            out,
        );
    }

    /// The first four blocks of the key stream for `nonce8`, for texts
    /// too short to need [`LANES`].
    pub(crate) fn first_four(&self, nonce8: &[u8; 8]) -> [u8; 256] {
        let nonce = words(nonce8);
        let mut out = [0u8; 256];
        self.xor4(std::array::from_fn(|i| (nonce, i as u64)), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use salsa20::cipher::generic_array::GenericArray;
    use salsa20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

    /// The XSalsa20 of the `salsa20` crate, as the reference.
    fn reference(key: &[u8; 32], nonce: &[u8; 24], offset: u64, data: &mut [u8]) {
        let mut cipher = salsa20::XSalsa20::new(
            GenericArray::from_slice(key),
            GenericArray::from_slice(nonce),
        );
        cipher.seek(offset);
        cipher.apply_keystream(data);
    }

    use super::super::simd::runnable_kernels as kernels;

    fn ours(kernel: Kernel, key: &[u8; 32], nonce: &[u8; 24], counter: u64, data: &mut [u8]) {
        let sub = Salsa20::with_kernel(key, kernel).hsalsa20(nonce[..16].try_into().unwrap());
        sub.apply(nonce[16..].try_into().unwrap(), counter, data);
    }

    /// The nonce and counter words are where the AVX2 kernel puts them.
    #[test]
    fn nonce_and_counter_sit_where_the_constants_say() {
        let x = input(&[0; 8], [1, 2], [3, 4]);
        assert_eq!(x[NONCE_AT..NONCE_AT + 2], [1, 2]);
        assert_eq!(x[COUNTER_AT..COUNTER_AT + 2], [3, 4]);
        let mut others = (0..16).filter(|i| !(NONCE_AT..COUNTER_AT + 2).contains(i));
        assert!(others.all(|i| ![1, 2, 3, 4].contains(&x[i])));
    }

    /// The HSalsa20 example of the XSalsa20 paper (§8; NaCl's
    /// `tests/core3`): the first key of the paper's crypto_box example.
    #[test]
    fn hsalsa20_matches_the_paper() {
        let shared: [u8; 32] = [
            0x4a, 0x5d, 0x9d, 0x5b, 0xa4, 0xce, 0x2d, 0xe1, 0x72, 0x8e, 0x3b, 0xf4, 0x80, 0x35,
            0x0f, 0x25, 0xe0, 0x7e, 0x21, 0xc9, 0x47, 0xd1, 0x9e, 0x33, 0x76, 0xf0, 0x9b, 0x3c,
            0x1e, 0x16, 0x17, 0x42,
        ];
        let expected: [u8; 32] = [
            0x1b, 0x27, 0x55, 0x64, 0x73, 0xe9, 0x85, 0xd4, 0x62, 0xcd, 0x51, 0x19, 0x7a, 0x9a,
            0x46, 0xc7, 0x60, 0x09, 0x54, 0x9e, 0xac, 0x64, 0x74, 0xf2, 0x06, 0xc4, 0xee, 0x08,
            0x44, 0xf6, 0x83, 0x89,
        ];
        let k = Salsa20::with_kernel(&shared, Kernel::chosen()).hsalsa20(&[0; 16]);
        let bytes: Vec<u8> = k.key.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(bytes, expected);
    }

    /// Lengths around the block and the four-block boundaries, from
    /// counter 0 and from counters that carry into the high word.
    #[test]
    fn key_stream_matches_the_reference_at_every_boundary() {
        let key = [7u8; 32];
        let nonce = [9u8; 24];
        for len in [
            0usize, 1, 31, 32, 63, 64, 65, 255, 256, 257, 511, 512, 513, 1000, 4097,
        ] {
            for counter in [0u64, 1, 3, u32::MAX as u64 - 1] {
                let mut b: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let plain = b.clone();
                reference(&key, &nonce, counter * 64, &mut b);
                for kernel in kernels() {
                    let mut a = plain.clone();
                    ours(kernel, &key, &nonce, counter, &mut a);
                    assert_eq!(a, b, "{kernel:?}, length {len}, counter {counter}");
                }
            }
        }
    }

    /// Four blocks of four different streams in one call: each equals the
    /// block computed alone.
    #[test]
    fn blocks_of_several_streams_at_once() {
        for kernel in kernels() {
            let key = Salsa20::with_kernel(&[3; 32], kernel);
            let nonces: [[u8; 8]; LANES] = std::array::from_fn(|i| [(i % 3) as u8; 8]);
            let counters: [u64; LANES] = std::array::from_fn(|i| [0, 1, 5, u32::MAX as u64][i % 4]);
            let mut out = [0u8; 64 * LANES];
            key.xor_blocks(std::array::from_fn(|i| (&nonces[i], counters[i])), &mut out);
            for i in 0..LANES {
                assert_eq!(
                    out[i * 64..(i + 1) * 64],
                    key.block(&nonces[i], counters[i]),
                    "{kernel:?}, block {i}"
                );
            }
            let four = key.first_four(&nonces[0]);
            for i in 0..4 {
                assert_eq!(four[i * 64..(i + 1) * 64], key.block(&nonces[0], i as u64));
            }
        }
    }

    /// A known answer (the XSalsa20 vector of Go's x/crypto/salsa20
    /// tests: "Hello world!" under key "this is 32-byte key for xsalsa20"
    /// and nonce "24-byte nonce for xsalsa"), then a stream long enough to
    /// pass through every path of every kernel, against the reference.
    #[test]
    fn every_kernel_gives_the_known_answer_and_the_same_long_stream() {
        let key = *b"this is 32-byte key for xsalsa20";
        let nonce = *b"24-byte nonce for xsalsa";
        let sealed = [
            0x00, 0x2d, 0x45, 0x13, 0x84, 0x3f, 0xc2, 0x40, 0xc4, 0x01, 0xe5, 0x41,
        ];
        let mut expected = vec![0u8; 70_000];
        reference(&key, &nonce, 0, &mut expected);
        for kernel in kernels() {
            let mut hello = *b"Hello world!";
            ours(kernel, &key, &nonce, 0, &mut hello);
            assert_eq!(hello, sealed, "{kernel:?}");
            let mut stream = vec![0u8; 70_000];
            ours(kernel, &key, &nonce, 0, &mut stream);
            assert!(stream == expected, "{kernel:?}");
        }
    }

    proptest! {
        #[test]
        fn key_stream_matches_the_reference(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(), counter in 0u64..1 << 40, data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let mut b = data.clone();
            reference(&key, &nonce, counter * 64, &mut b);
            for kernel in kernels() {
                let mut a = data.clone();
                ours(kernel, &key, &nonce, counter, &mut a);
                prop_assert_eq!(&a, &b, "{:?}", kernel);
            }
        }

        #[test]
        fn long_streams_match_the_reference(key in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(), counter in 0u64..1 << 40, len in 0usize..70_000) {
            let mut b = vec![0x5a; len];
            reference(&key, &nonce, counter * 64, &mut b);
            for kernel in kernels() {
                let mut a = vec![0x5a; len];
                ours(kernel, &key, &nonce, counter, &mut a);
                prop_assert!(a == b, "{:?}, length {}", kernel, len);
            }
        }
    }
}
