//! CURVE keys (X25519, 32 bytes, Z85 as text) and the randomness the CURVE
//! mechanism draws from, injectable so a handshake can be replayed exactly.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::z85::{self, Z85Error};

/// A CURVE public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key from its 40 Z85 characters (as `zmq_curve_keypair` prints it).
    pub fn from_z85(text: &str) -> Result<PublicKey, Z85Error> {
        z85::decode_key(text).map(PublicKey)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 40 Z85 characters.
    pub fn to_z85(&self) -> String {
        z85::encode_key(&self.0)
    }

    pub(crate) fn to_box_key(self) -> crypto_box::PublicKey {
        crypto_box::PublicKey::from_bytes(self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_z85())
    }
}

/// A CURVE secret key. Wiped from memory when dropped; never printed, and
/// not comparable (compare the public keys).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// The key from its 32 bytes (taken by value: the caller's copy is the
    /// caller's to wipe).
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// The key from its 40 Z85 characters.
    pub fn from_z85(text: &str) -> Result<SecretKey, Z85Error> {
        z85::decode_key(text).map(SecretKey)
    }

    /// 32 fresh random bytes, as `crypto_box_keypair` makes them.
    pub fn generate(rng: &mut dyn Randomness) -> Result<SecretKey> {
        let mut key = SecretKey([0; 32]);
        rng.fill(&mut key.0)?;
        Ok(key)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 40 Z85 characters (for writing a key file).
    pub fn to_z85(&self) -> String {
        z85::encode_key(&self.0)
    }

    /// The matching public key (X25519 base-point multiplication).
    pub fn public_key(&self) -> PublicKey {
        PublicKey(*self.to_box_key().public_key().as_bytes())
    }

    /// The crypto_box form. crypto_box 0.9 wipes its scalar when dropped but
    /// not its copy of the bytes, so these are made only for a moment.
    pub(crate) fn to_box_key(&self) -> crypto_box::SecretKey {
        crypto_box::SecretKey::from_bytes(self.0)
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A long-term key pair. Two pairs are equal when their public keys are.
#[derive(Clone)]
pub struct KeyPair {
    /// The public half, given to peers.
    pub public: PublicKey,
    /// The secret half.
    pub secret: SecretKey,
}

impl KeyPair {
    /// The pair for `secret`.
    pub fn from_secret(secret: SecretKey) -> KeyPair {
        KeyPair {
            public: secret.public_key(),
            secret,
        }
    }

    /// A fresh pair (`zmq_curve_keypair`).
    pub fn generate(rng: &mut dyn Randomness) -> Result<KeyPair> {
        SecretKey::generate(rng).map(KeyPair::from_secret)
    }

    /// A pair from the Z85 texts of both halves; fails if they do not match.
    pub fn from_z85(public: &str, secret: &str) -> Result<KeyPair, KeyPairError> {
        let public = PublicKey::from_z85(public).map_err(KeyPairError::Public)?;
        let pair = KeyPair::from_secret(SecretKey::from_z85(secret).map_err(KeyPairError::Secret)?);
        if pair.public != public {
            return Err(KeyPairError::Mismatch);
        }
        Ok(pair)
    }
}

impl PartialEq for KeyPair {
    fn eq(&self, other: &KeyPair) -> bool {
        self.public == other.public
    }
}

impl Eq for KeyPair {}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Why two Z85 texts do not make a key pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPairError {
    /// The public key text is not a key.
    #[error("public key: {0}")]
    Public(Z85Error),
    /// The secret key text is not a key.
    #[error("secret key: {0}")]
    Secret(Z85Error),
    /// Both are keys, but the public one is not the secret one's.
    #[error("the public key does not belong to the secret key")]
    Mismatch,
}

/// Where CURVE gets its random bytes: transient key pairs, the cookie key
/// and the random halves of the WELCOME, cookie and VOUCH nonces.
///
/// Production uses [`OsRandom`]. Tests inject fixed bytes to replay a
/// handshake byte for byte; the order in which the mechanism draws is
/// documented on [`crate::CurveClient`] and [`crate::CurveServer`].
pub trait Randomness: Send {
    /// Fills `dest` with unpredictable bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<()>;
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Randomness for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<()> {
        getrandom::fill(dest)
            .map_err(|e| Error::CurveExhausted(format!("the OS random generator failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    /// libzmq's test keys (zmq_curve(7)); the public halves follow from the secret.
    #[test]
    fn libzmq_test_key_pairs() {
        let client = KeyPair::from_z85(
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
            "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
        )
        .unwrap();
        assert_eq!(
            client.public.as_bytes(),
            &unhex("BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518")
        );
        let server = KeyPair::from_secret(SecretKey::from_bytes(unhex(
            "8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7",
        )));
        assert_eq!(
            server.public.to_z85(),
            "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        );
        assert_eq!(
            KeyPair::from_z85(
                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
            ),
            Err(KeyPairError::Mismatch)
        );
        assert!(matches!(
            KeyPair::from_z85("short", "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"),
            Err(KeyPairError::Public(_))
        ));
    }

    #[test]
    fn secrets_are_not_printed() {
        let secret = SecretKey::from_bytes([7; 32]);
        assert_eq!(format!("{secret:?}"), "SecretKey(..)");
        let pair = KeyPair::from_secret(secret.clone());
        assert!(!format!("{pair:?}").contains(&secret.to_z85()));
    }

    #[test]
    fn generated_keys_differ() {
        let a = KeyPair::generate(&mut OsRandom).unwrap();
        let b = KeyPair::generate(&mut OsRandom).unwrap();
        assert_ne!(a.public, b.public);
        assert_eq!(KeyPair::from_secret(a.secret.clone()), a);
    }
}
