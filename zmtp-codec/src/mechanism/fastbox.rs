//! The precomputed `crypto_box` of the CURVE data path (READY, INITIATE's
//! box and every MESSAGE): X25519 and HSalsa20 once per connection, then
//! XSalsa20 ([`super::salsa`]) and Poly1305 of our own per box, laid out
//! as NaCl's secretbox: the first 32 bytes of key stream are the Poly1305
//! key, the rest encrypts the text, the MAC covers the ciphertext.
//!
//! MESSAGE nonces share a 16-byte prefix per direction, which is all that
//! XSalsa20's HSalsa20 step reads, so [`PrefixedBox`] does that step once
//! per direction instead of once per message.
//!
//! Why not `crypto_box::SalsaBox` here: `poly1305` 0.8 picks its AVX2
//! backend at run time, and that path costs about 1.8 µs per 64-byte
//! message on this project's machines, eighteen times its portable backend,
//! which only a `--cfg` flag selects. The portable 44-bit-limb evaluation
//! below does small messages in about 0.1 µs. It is checked against the
//! RFC 8439 vector and, in tests, against the `poly1305` crate on random
//! keys and lengths; whole boxes are checked against `crypto_box`, and the
//! CURVE transcript test checks them on the wire.

use curve25519_dalek::montgomery::MontgomeryPoint;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{PublicKey, SecretKey};
use super::salsa::{Salsa20, LANES};
use super::simd::Kernel;

/// A `crypto_box_beforenm` key: seals and opens boxes between two keys.
pub(crate) struct FastBox {
    key: Salsa20,
}

impl FastBox {
    /// `crypto_box_beforenm(public, secret)`: HSalsa20 of the X25519 shared secret.
    pub(crate) fn new(public: &PublicKey, secret: &SecretKey) -> FastBox {
        FastBox::on_kernel(public, secret, Kernel::chosen())
    }

    /// As [`FastBox::new`], on `kernel`: its boxes' key stream and MACs
    /// alike.
    fn on_kernel(public: &PublicKey, secret: &SecretKey, kernel: Kernel) -> FastBox {
        let shared = Zeroizing::new(
            MontgomeryPoint(*public.as_bytes())
                .mul_clamped(*secret.as_bytes())
                .to_bytes(),
        );
        FastBox {
            key: Salsa20::with_kernel(&shared, kernel).hsalsa20(&[0; 16]),
        }
    }

    /// The boxes whose nonces begin with `prefix`.
    pub(crate) fn with_prefix(&self, prefix: &[u8; 16]) -> PrefixedBox {
        PrefixedBox::new(self.key.hsalsa20(prefix))
    }

    /// Encrypts `text` in place; returns the MAC.
    pub(crate) fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> [u8; 16] {
        let (prefix, suffix) = split_nonce(nonce);
        seal_with(&self.key.hsalsa20(prefix), suffix, text)
    }

    /// Checks `tag` over `text` and decrypts it in place; false (and `text`
    /// untouched) if the MAC is wrong.
    pub(crate) fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
        let (prefix, suffix) = split_nonce(nonce);
        open_with(&self.key.hsalsa20(prefix), suffix, tag, text)
    }
}

/// Compares two MACs in constant time, as two 64-bit words (`subtle`'s
/// slice comparison takes an optimisation barrier per byte).
fn tags_match(expected: &[u8; 16], tag: &[u8]) -> bool {
    let Ok(tag) = <[u8; 16]>::try_from(tag) else {
        return false;
    };
    let word = |bytes: &[u8; 16], half: usize| {
        u64::from_le_bytes(bytes[half * 8..half * 8 + 8].try_into().unwrap())
    };
    let difference = (word(expected, 0) ^ word(&tag, 0)) | (word(expected, 1) ^ word(&tag, 1));
    bool::from(difference.ct_eq(&0))
}

fn split_nonce(nonce: &[u8; 24]) -> (&[u8; 16], &[u8; 8]) {
    let (prefix, suffix) = nonce.split_at(16);
    (prefix.try_into().unwrap(), suffix.try_into().unwrap())
}

/// The boxes of one [`FastBox`] whose nonces share a 16-byte prefix and
/// end in a counter: its XSalsa20 key for that prefix, and key stream made
/// ahead for the next few small messages.
pub(crate) struct PrefixedBox {
    stream: Salsa20,
    ahead: Ahead,
}

/// Texts up to this size (a 95-byte frame and its flags byte) need two
/// blocks of key stream, the first of which is half Poly1305 key.
const SMALL: usize = 96;

/// Messages whose key stream is made at once: four messages' two blocks
/// are one eight-block computation, which costs about what two single
/// blocks do.
const AHEAD: usize = 4;

// The batch must be whole kernel calls (or part of it would stay zero: text
// sent in clear under a forgeable tag), and block 0 onwards must cover
// what the four-block path covers.
const _: () =
    assert!(LANES.is_multiple_of(2) && AHEAD.is_multiple_of(LANES / 2) && 64 * LANES >= 256);

/// Key stream for the nonces `first .. first + AHEAD`, two blocks each.
/// MESSAGE nonces go up by one per message on both sides (libzmq's too),
/// so the next message's stream is usually here.
struct Ahead {
    first: u64,
    ready: bool,
    stream: Box<Zeroizing<[u8; 128 * AHEAD]>>,
}

impl PrefixedBox {
    fn new(stream: Salsa20) -> PrefixedBox {
        PrefixedBox {
            stream,
            ahead: Ahead {
                first: 0,
                ready: false,
                stream: Box::new(Zeroizing::new([0; 128 * AHEAD])),
            },
        }
    }

    /// Blocks 0 and 1 of the key stream for `nonce`, made ahead.
    fn small_stream(&mut self, nonce: u64) -> &[u8; 128] {
        let ahead = &mut self.ahead;
        let index = nonce.wrapping_sub(ahead.first);
        if !ahead.ready || index >= AHEAD as u64 {
            let suffixes: [[u8; 8]; AHEAD] =
                std::array::from_fn(|i| nonce.wrapping_add(i as u64).to_be_bytes());
            ahead.stream.fill(0);
            let per_call = LANES / 2;
            for (group, out) in suffixes
                .chunks_exact(per_call)
                .zip(ahead.stream.chunks_exact_mut(128 * per_call))
            {
                let blocks: [(&[u8; 8], u64); LANES] =
                    std::array::from_fn(|i| (&group[i / 2], (i % 2) as u64));
                self.stream.xor_blocks(blocks, out.try_into().unwrap());
            }
            ahead.first = nonce;
            ahead.ready = true;
        }
        let index = nonce.wrapping_sub(ahead.first) as usize;
        (&ahead.stream[index * 128..(index + 1) * 128])
            .try_into()
            .unwrap()
    }

    /// Encrypts `text` in place under the nonce that ends in `counter`
    /// (big-endian, as CurveZMQ's); returns the MAC.
    pub(crate) fn seal(&mut self, counter: u64, text: &mut [u8]) -> [u8; 16] {
        if text.len() <= SMALL {
            let kernel = self.stream.kernel();
            let stream = self.small_stream(counter);
            for (byte, key) in text.iter_mut().zip(&stream[32..]) {
                *byte ^= key;
            }
            return Poly1305::new(stream[..32].try_into().unwrap()).compute(kernel, text);
        }
        seal_with(&self.stream, &counter.to_be_bytes(), text)
    }

    /// Checks `tag` over `text` and decrypts it in place; false (and `text`
    /// untouched) if the MAC is wrong.
    pub(crate) fn open(&mut self, counter: u64, tag: &[u8], text: &mut [u8]) -> bool {
        if text.len() <= SMALL {
            let kernel = self.stream.kernel();
            let stream = self.small_stream(counter);
            let expected = Poly1305::new(stream[..32].try_into().unwrap()).compute(kernel, text);
            if !tags_match(&expected, tag) {
                return false;
            }
            for (byte, key) in text.iter_mut().zip(&stream[32..]) {
                *byte ^= key;
            }
            return true;
        }
        open_with(&self.stream, &counter.to_be_bytes(), tag, text)
    }
}

/// Seals `text` in place under `stream` (the XSalsa20 key of its nonce's
/// prefix) and `suffix`, from block 0 on; returns the MAC.
fn seal_with(stream: &Salsa20, suffix: &[u8; 8], text: &mut [u8]) -> [u8; 16] {
    let first = first_blocks(stream, suffix, text.len());
    xor_after_block_0(stream, suffix, &first, text);
    Poly1305::new(first[..32].try_into().unwrap()).compute(stream.kernel(), text)
}

/// Checks `tag` and opens `text` in place; false (and `text` untouched)
/// if the MAC is wrong.
fn open_with(stream: &Salsa20, suffix: &[u8; 8], tag: &[u8], text: &mut [u8]) -> bool {
    let first = first_blocks(stream, suffix, text.len());
    let expected = Poly1305::new(first[..32].try_into().unwrap()).compute(stream.kernel(), text);
    if !tags_match(&expected, tag) {
        return false;
    }
    xor_after_block_0(stream, suffix, &first, text);
    true
}

/// The key stream from block 0 on: four blocks when that covers the text,
/// [`LANES`] otherwise.
fn first_blocks(stream: &Salsa20, suffix: &[u8; 8], len: usize) -> Zeroizing<[u8; 64 * LANES]> {
    let mut first = Zeroizing::new([0u8; 64 * LANES]);
    if 32 + len <= 256 {
        let mut four = stream.first_four(suffix);
        first[..256].copy_from_slice(&four);
        four.zeroize();
    } else {
        let blocks = std::array::from_fn(|counter| (suffix, counter as u64));
        stream.xor_blocks(blocks, &mut first);
    }
    first
}

/// XORs the key stream after the Poly1305 key into `text`: the rest of
/// `first`, then blocks from [`LANES`] on.
fn xor_after_block_0(
    stream: &Salsa20,
    suffix: &[u8; 8],
    first: &[u8; 64 * LANES],
    text: &mut [u8],
) {
    let head = text.len().min(first.len() - 32);
    for (byte, key) in text[..head].iter_mut().zip(&first[32..]) {
        *byte ^= key;
    }
    stream.apply(suffix, LANES as u64, &mut text[head..]);
}

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;

/// Poly1305 (RFC 8439 §2.5) with 44/44/42-bit limbs and 128-bit products.
///
/// Long messages are taken four blocks a step, as
/// `h = (h + m1)·r⁴ + m2·r³ + m3·r² + m4·r`: the four products do not wait
/// for each other and are reduced once, where block by block each
/// multiplication waits for the previous reduction. (Two a step gains
/// nothing on short messages: r² must be made first.) On the AVX2 kernel,
/// messages from [`WIDE_MIN`] bytes on take the eight-lane path of
/// `simd/poly1305.rs` for their whole 128-byte pieces instead.
struct Poly1305 {
    r: Limbs,
    pad: u128,
}

/// A number mod 2^130 - 5 in three limbs, with 20·r1 and 20·r2 beside
/// them when it multiplies: a limb product that overflows 2^130 wraps as
/// ×5, and the limb weights leave another ×4.
#[derive(Clone, Copy)]
struct Limbs {
    r: [u64; 3],
    s: [u64; 2],
}

impl Limbs {
    fn new(r: [u64; 3]) -> Limbs {
        Limbs {
            r,
            s: [r[1] * 20, r[2] * 20],
        }
    }

    /// `a · self` as unreduced limb sums. With the limbs of `a` under 2^46
    /// and ours as `reduce` leaves them, each sum stays under 2^96, so four
    /// products add up without overflow.
    #[inline(always)]
    fn times(&self, a: [u64; 3]) -> [u128; 3] {
        let [r0, r1, r2] = self.r.map(u128::from);
        let [s1, s2] = self.s.map(u128::from);
        let [a0, a1, a2] = a.map(u128::from);
        [
            a0 * r0 + a1 * s2 + a2 * s1,
            a0 * r1 + a1 * r0 + a2 * s2,
            a0 * r2 + a1 * r1 + a2 * r0,
        ]
    }
}

/// Carries limb sums back into limbs of 44, 44 and 42 bits (the middle one
/// may keep a few bits more, which the next step absorbs).
#[inline(always)]
fn reduce(d: [u128; 3]) -> [u64; 3] {
    let [d0, mut d1, mut d2] = d;
    d1 += d0 >> 44;
    let mut h0 = (d0 as u64) & MASK44;
    d2 += d1 >> 44;
    let mut h1 = (d1 as u64) & MASK44;
    let carry = (d2 >> 42) as u64;
    let h2 = (d2 as u64) & MASK42;
    h0 += carry * 5;
    h1 += h0 >> 44;
    h0 &= MASK44;
    [h0, h1, h2]
}

/// A 16-byte block as limbs, with `high` (2^128 for a full block, as bit
/// 40 of the top limb) added.
#[inline(always)]
fn limbs_of(block: &[u8], high: u64) -> [u64; 3] {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(block);
    let m = u128::from_le_bytes(bytes);
    [
        (m as u64) & MASK44,
        ((m >> 44) as u64) & MASK44,
        ((m >> 88) as u64) | high,
    ]
}

#[inline(always)]
fn add(h: [u64; 3], m: [u64; 3]) -> [u64; 3] {
    [h[0] + m[0], h[1] + m[1], h[2] + m[2]]
}

/// Messages from this long on take the eight-lane AVX2 path: below it the
/// powers of r cost more than the lanes save.
const WIDE_MIN: usize = 512;

/// Full carry: limbs under 2^44, 2^44 and 2^42, the number under 2^130
/// (but not necessarily under p).
#[inline(always)]
fn normalize(h: [u64; 3]) -> [u64; 3] {
    let [mut h0, mut h1, mut h2] = h;
    for _ in 0..2 {
        h2 += h1 >> 44;
        h1 &= MASK44;
        h0 += (h2 >> 42) * 5;
        h2 &= MASK42;
        h1 += h0 >> 44;
        h0 &= MASK44;
    }
    [h0, h1, h2]
}

/// A normalized number in five 26-bit limbs.
#[inline(always)]
fn to_limbs26(h: [u64; 3]) -> [u32; 5] {
    let m = (1u64 << 26) - 1;
    [
        (h[0] & m) as u32,
        (((h[0] >> 26) | (h[1] << 18)) & m) as u32,
        ((h[1] >> 8) & m) as u32,
        (((h[1] >> 34) | (h[2] << 10)) & m) as u32,
        ((h[2] >> 16) & m) as u32,
    ]
}

/// Five limb sums of 26-bit weight (each under 2^62) as limbs of 44, 44
/// and 42 bits, for `reduce`'s successors.
#[inline(always)]
fn from_limbs26(l: [u64; 5]) -> [u64; 3] {
    let m = (1u64 << 26) - 1;
    let [mut l0, mut l1, mut l2, mut l3, mut l4] = l;
    for _ in 0..2 {
        l1 += l0 >> 26;
        l0 &= m;
        l2 += l1 >> 26;
        l1 &= m;
        l3 += l2 >> 26;
        l2 &= m;
        l4 += l3 >> 26;
        l3 &= m;
        l0 += (l4 >> 26) * 5;
        l4 &= m;
    }
    l1 += l0 >> 26;
    l0 &= m;
    // Now l0, l2, l3, l4 < 2^26 and l1 < 2^27: pack (bits 0, 26, 52, 78,
    // 104) into limbs at bits 0, 44 and 88.
    let h0 = (l0 | (l1 << 26)) & MASK44;
    let middle = (l1 >> 18) + (l2 << 8) + (l3 << 34);
    let h1 = middle & MASK44;
    let h2 = (middle >> 44) + (l4 << 16);
    normalize([h0, h1, h2])
}

impl Poly1305 {
    fn new(key: &[u8; 32]) -> Poly1305 {
        let mut r_bytes = [0u8; 16];
        r_bytes.copy_from_slice(&key[..16]);
        let r = u128::from_le_bytes(r_bytes) & 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;
        r_bytes.zeroize();
        let mut pad_bytes = [0u8; 16];
        pad_bytes.copy_from_slice(&key[16..]);
        let pad = u128::from_le_bytes(pad_bytes);
        pad_bytes.zeroize();
        let r = [
            (r as u64) & MASK44,
            ((r >> 44) as u64) & MASK44,
            (r >> 88) as u64,
        ];
        Poly1305 {
            r: Limbs::new(r),
            pad,
        }
    }

    /// The tag of `message` on `kernel`, the one of the Salsa20 key whose
    /// stream gave the Poly1305 key (so a key made on a kernel MACs on it
    /// too, and no box reads the process's choice): with AVX2, messages
    /// from [`WIDE_MIN`] bytes on eight blocks at a time in vector
    /// registers (eight 64-bit lanes over two registers, 26-bit limbs), and
    /// the rest compiled for AVX2 and BMI2 (`mulx` for the 44-bit limb
    /// products).
    fn compute(&self, kernel: Kernel, message: &[u8]) -> [u8; 16] {
        match kernel {
            Kernel::Avx2(v3) if message.len() >= WIDE_MIN => v3.run(|| {
                let bulk = message.len() / 128 * 128;
                let mut powers = [self.r; 8];
                for k in 1..8 {
                    let p = powers[k - 1];
                    powers[k] = Limbs::new(normalize(reduce(p.times(self.r.r))));
                }
                let mut limbs = powers.map(|p| to_limbs26(normalize(p.r)));
                let h = v3.poly1305_blocks(&limbs, &message[..bulk]);
                limbs.zeroize();
                for key in powers.iter_mut() {
                    key.r.zeroize();
                    key.s.zeroize();
                }
                self.finish(self.absorb(from_limbs26(h), &message[bulk..]))
            }),
            Kernel::Avx2(v3) => v3.run(|| self.tag(message)),
            Kernel::Sse2 | Kernel::Portable => self.tag(message),
        }
    }

    #[inline(always)]
    fn tag(&self, message: &[u8]) -> [u8; 16] {
        self.finish(self.absorb([0; 3], message))
    }

    /// The accumulator `h` after `message`.
    #[inline(always)]
    fn absorb(&self, h: [u64; 3], message: &[u8]) -> [u64; 3] {
        const FULL: u64 = 1 << 40;
        let r = self.r;
        let mut h = h;
        // The powers of r cost three multiplications: worth it from a few
        // steps on.
        let in_quads = if message.len() >= 128 {
            message.len() / 64 * 64
        } else {
            0
        };
        let (quads, rest) = message.split_at(in_quads);
        if !quads.is_empty() {
            let mut r2 = Limbs::new(reduce(r.times(r.r)));
            let mut r3 = Limbs::new(reduce(r2.times(r.r)));
            let mut r4 = Limbs::new(reduce(r2.times(r2.r)));
            for quad in quads.chunks_exact(64) {
                let a = r4.times(add(h, limbs_of(&quad[..16], FULL)));
                let b = r3.times(limbs_of(&quad[16..32], FULL));
                let c = r2.times(limbs_of(&quad[32..48], FULL));
                let d = r.times(limbs_of(&quad[48..], FULL));
                h = reduce([0, 1, 2].map(|i| a[i] + b[i] + c[i] + d[i]));
            }
            for key in [&mut r2, &mut r3, &mut r4] {
                key.r.zeroize();
                key.s.zeroize();
            }
        }
        let mut blocks = rest.chunks_exact(16);
        for block in blocks.by_ref() {
            h = reduce(r.times(add(h, limbs_of(block, FULL))));
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            let mut bytes = [0u8; 16];
            bytes[..tail.len()].copy_from_slice(tail);
            bytes[tail.len()] = 1;
            h = reduce(r.times(add(h, limbs_of(&bytes, 0))));
        }
        h
    }

    /// The tag for accumulator `h`.
    #[inline(always)]
    fn finish(&self, h: [u64; 3]) -> [u8; 16] {
        // Full carry, then subtract p = 2^130 - 5 if h >= p, in constant time.
        let [h0, h1, h2] = normalize(h);
        let mut g0 = h0 + 5;
        let mut g1 = h1 + (g0 >> 44);
        g0 &= MASK44;
        let g2 = (h2 + (g1 >> 44)).wrapping_sub(1 << 42);
        g1 &= MASK44;
        // g2's top bit is set when h + 5 < 2^130, i.e. h < p: keep h then.
        let keep_g = (g2 >> 63).wrapping_sub(1);
        let h0 = (h0 & !keep_g) | (g0 & keep_g);
        let h1 = (h1 & !keep_g) | (g1 & keep_g);
        let h2 = (h2 & !keep_g) | (g2 & MASK42 & keep_g);
        let h = u128::from(h0) | (u128::from(h1) << 44) | (u128::from(h2) << 88);
        h.wrapping_add(self.pad).to_le_bytes()
    }
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.r.zeroize();
        self.r.s.zeroize();
        self.pad.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::aead::AeadInPlace;
    use proptest::prelude::*;
    use salsa20::cipher::generic_array::GenericArray;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8439 §2.5.2.
    #[test]
    fn rfc8439_poly1305_vector() {
        let key: [u8; 32] = unhex(
            "85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b",
        )
        .try_into()
        .unwrap();
        for kernel in super::super::simd::runnable_kernels() {
            let tag = Poly1305::new(&key).compute(kernel, b"Cryptographic Forum Research Group");
            assert_eq!(
                tag.to_vec(),
                unhex("a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9"),
                "{kernel:?}"
            );
        }
    }

    /// Values near 2^130 - 5, where the final reduction matters.
    #[test]
    fn reduction_edge_cases_match_the_reference() {
        use poly1305::universal_hash::KeyInit as _;
        for key in [[0xffu8; 32], [0u8; 32], {
            let mut k = [0xffu8; 32];
            k[16..].fill(0);
            k
        }] {
            for len in [0usize, 1, 15, 16, 17, 64, 65, 127, 128, 129, 191, 4097] {
                let msg = vec![0xffu8; len];
                let reference =
                    poly1305::Poly1305::new(GenericArray::from_slice(&key)).compute_unpadded(&msg);
                for kernel in super::super::simd::runnable_kernels() {
                    assert_eq!(
                        Poly1305::new(&key).compute(kernel, &msg)[..],
                        reference[..],
                        "{kernel:?}, {len}"
                    );
                }
            }
        }
    }

    /// `msg` sealed by crypto_box under the nonce `prefix ‖ counter`.
    fn reference_seal(
        reference: &crypto_box::SalsaBox,
        prefix: &[u8; 16],
        counter: u64,
        msg: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(prefix);
        nonce[16..].copy_from_slice(&counter.to_be_bytes());
        let mut sealed = msg.to_vec();
        let tag = reference
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), b"", &mut sealed)
            .unwrap();
        (sealed, tag.to_vec())
    }

    /// Every length where the box changes path: the small-message batch
    /// (up to 96), four blocks from block 0 (up to 224), eight (up to 480),
    /// then the stream from block 8 and its tail kernels.
    #[test]
    fn prefixed_boxes_match_crypto_box_at_every_boundary() {
        let a = SecretKey::from_bytes([0x11; 32]);
        let b = SecretKey::from_bytes([0x22; 32]);
        let prefix = *b"CurveZMQMESSAGES";
        let mut sealer = FastBox::new(&b.public_key(), &a).with_prefix(&prefix);
        let mut opener = FastBox::new(&a.public_key(), &b).with_prefix(&prefix);
        let reference = crypto_box::SalsaBox::new(&b.public_key().to_box_key(), &a.to_box_key());
        let lengths = [
            0usize, 1, 32, 33, 95, 96, 97, 224, 225, 480, 481, 543, 544, 545, 736, 737, 991, 992,
            993, 1248, 1249, 4097, 65537,
        ];
        for (counter, len) in (u64::MAX - 40..).zip(lengths) {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let (theirs, their_tag) = reference_seal(&reference, &prefix, counter, &msg);
            let mut ours = msg.clone();
            let tag = sealer.seal(counter, &mut ours);
            assert!(ours == theirs, "length {len}: ciphertext differs");
            assert_eq!(tag[..], their_tag[..], "length {len}: tag differs");
            assert!(opener.open(counter, &tag, &mut ours), "length {len}");
            assert!(ours == msg, "length {len}: plaintext differs");
        }
    }

    /// Boxes made on each kernel (key stream and MAC alike, whatever the
    /// process's kernel) match crypto_box on both sides of every path's
    /// threshold, the AVX2 Poly1305's included, and open on every other
    /// kernel.
    #[test]
    fn every_kernel_seals_and_opens_as_crypto_box() {
        let a = SecretKey::from_bytes([0x33; 32]);
        let b = SecretKey::from_bytes([0x44; 32]);
        let prefix = *b"CurveZMQMESSAGES";
        let reference = crypto_box::SalsaBox::new(&b.public_key().to_box_key(), &a.to_box_key());
        let kernels = super::super::simd::runnable_kernels();
        let lengths = [
            0usize, 95, 96, 97, 224, 225, 480, 481, 511, 512, 639, 640, 4097, 65537,
        ];
        for &kernel in &kernels {
            let fast = FastBox::on_kernel(&b.public_key(), &a, kernel);
            let mut sealer = fast.with_prefix(&prefix);
            assert_eq!(fast.key.kernel(), kernel);
            assert_eq!(sealer.stream.kernel(), kernel);
            for (counter, len) in (7u64..).zip(lengths) {
                let msg: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
                let (theirs, their_tag) = reference_seal(&reference, &prefix, counter, &msg);
                let mut ours = msg.clone();
                let tag = sealer.seal(counter, &mut ours);
                assert!(
                    ours == theirs,
                    "{kernel:?}, length {len}: ciphertext differs"
                );
                assert_eq!(
                    tag[..],
                    their_tag[..],
                    "{kernel:?}, length {len}: tag differs"
                );
                let mut nonce = [0u8; 24];
                nonce[..16].copy_from_slice(&prefix);
                nonce[16..].copy_from_slice(&counter.to_be_bytes());
                let mut whole = msg.clone();
                assert_eq!(fast.seal(&nonce, &mut whole)[..], their_tag[..]);
                assert!(whole == theirs, "{kernel:?}, length {len}: FastBox differs");
                for &other in &kernels {
                    let opener = FastBox::on_kernel(&a.public_key(), &b, other);
                    let mut opened = ours.clone();
                    assert!(opener.with_prefix(&prefix).open(counter, &tag, &mut opened));
                    assert!(opened == msg, "{kernel:?} to {other:?}, length {len}");
                    let mut opened = ours.clone();
                    assert!(opener.open(&nonce, &tag, &mut opened));
                    assert!(opened == msg, "{kernel:?} to {other:?}, length {len}");
                }
            }
        }
    }

    #[test]
    fn tags_compare_every_bit_and_the_length() {
        let tag = [0x5au8; 16];
        assert!(tags_match(&tag, &tag));
        for bit in 0..128 {
            let mut other = tag;
            other[bit / 8] ^= 1 << (bit % 8);
            assert!(!tags_match(&tag, &other), "bit {bit}");
        }
        assert!(!tags_match(&tag, &tag[..15]));
        assert!(!tags_match(&tag, &[0x5a; 17]));
    }

    proptest! {
        #[test]
        fn poly1305_matches_the_reference(key in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..300)) {
            use poly1305::universal_hash::KeyInit as _;
            let reference = poly1305::Poly1305::new(GenericArray::from_slice(&key)).compute_unpadded(&msg);
            for kernel in super::super::simd::runnable_kernels() {
                prop_assert_eq!(&Poly1305::new(&key).compute(kernel, &msg)[..], &reference[..], "{:?}", kernel);
            }
        }

        #[test]
        fn poly1305_of_long_messages_matches_the_reference(key in any::<[u8; 32]>(), len in 0usize..70_000, byte in any::<u8>()) {
            use poly1305::universal_hash::KeyInit as _;
            let msg: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ byte).collect();
            let reference = poly1305::Poly1305::new(GenericArray::from_slice(&key)).compute_unpadded(&msg);
            for kernel in super::super::simd::runnable_kernels() {
                prop_assert_eq!(&Poly1305::new(&key).compute(kernel, &msg)[..], &reference[..], "{:?}, {}", kernel, len);
            }
        }

        /// MESSAGE boxes in a stream of counters that mostly go up by one
        /// (the key stream made ahead is used) and sometimes jump or go
        /// back (it is made again), of sizes on both sides of `SMALL`.
        #[test]
        fn prefixed_boxes_match_crypto_box(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), start in any::<u64>(), steps in proptest::collection::vec((0u64..7, 0usize..700), 1..40)) {
            let a = SecretKey::from_bytes(a);
            let b = SecretKey::from_bytes(b);
            let prefix = *b"CurveZMQMESSAGEC";
            let mut sealer = FastBox::new(&b.public_key(), &a).with_prefix(&prefix);
            let mut opener = FastBox::new(&a.public_key(), &b).with_prefix(&prefix);
            let reference = crypto_box::SalsaBox::new(&b.public_key().to_box_key(), &a.to_box_key());
            let mut counter = start;
            for (step, len) in steps {
                // 6 goes back by two.
                counter = if step == 6 { counter.wrapping_sub(2) } else { counter.wrapping_add(step) };
                let msg: Vec<u8> = (0..len).map(|i| (i as u64 ^ counter) as u8).collect();
                let (theirs, their_tag) = reference_seal(&reference, &prefix, counter, &msg);
                let mut ours = msg.clone();
                let tag = sealer.seal(counter, &mut ours);
                prop_assert_eq!(&ours, &theirs, "counter {} length {}", counter, len);
                prop_assert_eq!(&tag[..], &their_tag[..]);
                if len > 0 {
                    let mut flipped = ours.clone();
                    flipped[len - 1] ^= 0x80;
                    prop_assert!(!opener.open(counter, &tag, &mut flipped));
                }
                prop_assert!(opener.open(counter, &tag, &mut ours));
                prop_assert_eq!(ours, msg);
            }
        }

        #[test]
        fn boxes_match_crypto_box(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(), msg in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let a = SecretKey::from_bytes(a);
            let b = SecretKey::from_bytes(b);
            let fast = FastBox::new(&b.public_key(), &a);
            let reference = crypto_box::SalsaBox::new(&b.public_key().to_box_key(), &a.to_box_key());
            let mut ours = msg.clone();
            let tag = fast.seal(&nonce, &mut ours);
            let mut theirs = msg.clone();
            let their_tag = reference
                .encrypt_in_place_detached(GenericArray::from_slice(&nonce), b"", &mut theirs)
                .unwrap();
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(&tag[..], &their_tag[..]);
            // The other side opens it; a flipped bit does not.
            let other = FastBox::new(&a.public_key(), &b);
            let mut opened = ours.clone();
            prop_assert!(other.open(&nonce, &tag, &mut opened));
            prop_assert_eq!(&opened, &msg);
            if !ours.is_empty() {
                ours[0] ^= 1;
                let before = ours.clone();
                prop_assert!(!other.open(&nonce, &tag, &mut ours));
                prop_assert_eq!(ours, before);
            }
        }
    }
}
