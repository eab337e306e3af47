//! The precomputed `crypto_box` of the CURVE data path (READY, INITIATE's
//! box and every MESSAGE): X25519 and HSalsa20 once per connection, then
//! XSalsa20 from the `salsa20` crate and a Poly1305 of our own per box.
//!
//! Why not `crypto_box::SalsaBox` here: `poly1305` 0.8 picks its AVX2
//! backend at run time, and that path costs about 1.8 µs per 64-byte
//! message on this project's machines, eighteen times its portable backend,
//! which only a `--cfg` flag selects. The portable 44-bit-limb evaluation
//! below does small messages in about 0.1 µs. It is checked against the
//! RFC 8439 vector and, in tests, against the `poly1305` crate on random
//! keys and lengths; the CURVE transcript test checks whole boxes.

use curve25519_dalek::montgomery::MontgomeryPoint;
use salsa20::cipher::generic_array::GenericArray;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use salsa20::XSalsa20;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{PublicKey, SecretKey};

/// A `crypto_box_beforenm` key: seals and opens boxes between two keys.
pub(crate) struct FastBox {
    key: Zeroizing<[u8; 32]>,
}

impl FastBox {
    /// `crypto_box_beforenm(public, secret)`: HSalsa20 of the X25519 shared secret.
    pub(crate) fn new(public: &PublicKey, secret: &SecretKey) -> FastBox {
        let shared = Zeroizing::new(
            MontgomeryPoint(*public.as_bytes())
                .mul_clamped(*secret.as_bytes())
                .to_bytes(),
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&salsa20::hsalsa::<salsa20::cipher::consts::U10>(
            GenericArray::from_slice(&shared[..]),
            &GenericArray::default(),
        ));
        FastBox { key }
    }

    /// The XSalsa20 stream for `nonce`, positioned after the Poly1305 key
    /// it produced first (NaCl's secretbox layout).
    fn stream(&self, nonce: &[u8; 24]) -> (XSalsa20, Poly1305) {
        let mut cipher = XSalsa20::new(
            GenericArray::from_slice(&self.key[..]),
            GenericArray::from_slice(nonce),
        );
        let mut mac_key = Zeroizing::new([0u8; 32]);
        cipher.apply_keystream(&mut mac_key[..]);
        (cipher, Poly1305::new(&mac_key))
    }

    /// Encrypts `text` in place; returns the MAC.
    pub(crate) fn seal(&self, nonce: &[u8; 24], text: &mut [u8]) -> [u8; 16] {
        let (mut cipher, mac) = self.stream(nonce);
        cipher.apply_keystream(text);
        mac.compute(text)
    }

    /// Checks `tag` over `text` and decrypts it in place; false (and `text`
    /// untouched) if the MAC is wrong.
    pub(crate) fn open(&self, nonce: &[u8; 24], tag: &[u8], text: &mut [u8]) -> bool {
        let (mut cipher, mac) = self.stream(nonce);
        let expected = mac.compute(text);
        if !bool::from(expected[..].ct_eq(tag)) {
            return false;
        }
        cipher.apply_keystream(text);
        true
    }
}

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;

/// Poly1305 (RFC 8439 §2.5) with 44/44/42-bit limbs and 128-bit products.
struct Poly1305 {
    r: [u64; 3],
    /// 20·r1 and 20·r2: a limb product that overflows 2^130 wraps as ×5,
    /// and the limb weights leave another ×4.
    s: [u64; 2],
    pad: u128,
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
        let r0 = (r as u64) & MASK44;
        let r1 = ((r >> 44) as u64) & MASK44;
        let r2 = (r >> 88) as u64;
        Poly1305 {
            r: [r0, r1, r2],
            s: [r1 * 20, r2 * 20],
            pad,
        }
    }

    fn compute(&self, message: &[u8]) -> [u8; 16] {
        let [r0, r1, r2] = self.r;
        let [s1, s2] = self.s;
        let (mut h0, mut h1, mut h2) = (0u64, 0u64, 0u64);
        let mut blocks = message.chunks_exact(16);
        let mut absorb = |block: u128, high: u64| {
            h0 += (block as u64) & MASK44;
            h1 += ((block >> 44) as u64) & MASK44;
            h2 += ((block >> 88) as u64) | high;
            let (a0, a1, a2) = (u128::from(h0), u128::from(h1), u128::from(h2));
            let d0 = a0 * u128::from(r0) + a1 * u128::from(s2) + a2 * u128::from(s1);
            let mut d1 = a0 * u128::from(r1) + a1 * u128::from(r0) + a2 * u128::from(s2);
            let mut d2 = a0 * u128::from(r2) + a1 * u128::from(r1) + a2 * u128::from(r0);
            d1 += d0 >> 44;
            h0 = (d0 as u64) & MASK44;
            d2 += d1 >> 44;
            h1 = (d1 as u64) & MASK44;
            let carry = (d2 >> 42) as u64;
            h2 = (d2 as u64) & MASK42;
            h0 += carry * 5;
            h1 += h0 >> 44;
            h0 &= MASK44;
        };
        for block in blocks.by_ref() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(block);
            // A full block has 2^128 added: bit 40 of the top limb.
            absorb(u128::from_le_bytes(bytes), 1 << 40);
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut bytes = [0u8; 16];
            bytes[..rest.len()].copy_from_slice(rest);
            bytes[rest.len()] = 1;
            absorb(u128::from_le_bytes(bytes), 0);
        }

        // Full carry, then subtract p = 2^130 - 5 if h >= p, in constant time.
        for _ in 0..2 {
            h2 += h1 >> 44;
            h1 &= MASK44;
            h0 += (h2 >> 42) * 5;
            h2 &= MASK42;
            h1 += h0 >> 44;
            h0 &= MASK44;
        }
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
        self.r.zeroize();
        self.s.zeroize();
        self.pad.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::aead::AeadInPlace;
    use proptest::prelude::*;

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
        let tag = Poly1305::new(&key).compute(b"Cryptographic Forum Research Group");
        assert_eq!(
            tag.to_vec(),
            unhex("a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9")
        );
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
            for len in [0usize, 1, 15, 16, 17, 64, 65] {
                let msg = vec![0xffu8; len];
                let reference =
                    poly1305::Poly1305::new(GenericArray::from_slice(&key)).compute_unpadded(&msg);
                assert_eq!(
                    Poly1305::new(&key).compute(&msg)[..],
                    reference[..],
                    "{len}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn poly1305_matches_the_reference(key in any::<[u8; 32]>(), msg in proptest::collection::vec(any::<u8>(), 0..300)) {
            use poly1305::universal_hash::KeyInit as _;
            let reference = poly1305::Poly1305::new(GenericArray::from_slice(&key)).compute_unpadded(&msg);
            prop_assert_eq!(&Poly1305::new(&key).compute(&msg)[..], &reference[..]);
        }

        #[test]
        fn boxes_match_crypto_box(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), nonce in any::<[u8; 24]>(), msg in proptest::collection::vec(any::<u8>(), 0..200)) {
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
