//! The 64-byte ZMTP 3.x greeting (RFC 23/37 §"Greeting").
//!
//! We always send all 64 bytes at once: libzmq sends its greeting in stages and
//! waits for our first 11 bytes before it sends the rest, so a peer that waits
//! for libzmq's full greeting before writing would deadlock.

use crate::error::{printable, Error, Result};

/// Length of a ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;

/// A security mechanism name as carried in the greeting: ASCII, NUL-padded to 20 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MechanismName([u8; 20]);

impl MechanismName {
    /// The NULL mechanism (RFC 37).
    pub const NULL: MechanismName = MechanismName::from_static("NULL");
    /// The PLAIN mechanism (RFC 24).
    pub const PLAIN: MechanismName = MechanismName::from_static("PLAIN");
    /// The CURVE mechanism (RFC 25/26).
    pub const CURVE: MechanismName = MechanismName::from_static("CURVE");

    /// Builds a name from a constant; panics at compile time if it is longer than 20 bytes.
    pub const fn from_static(name: &str) -> MechanismName {
        let bytes = name.as_bytes();
        assert!(bytes.len() <= 20, "mechanism names are at most 20 bytes");
        let mut out = [0u8; 20];
        let mut i = 0;
        while i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        MechanismName(out)
    }

    /// The raw 20 bytes, NUL padding included.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The name without its NUL padding, for messages.
    pub fn display(&self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(20);
        printable(&self.0[..end])
    }
}

impl std::fmt::Debug for MechanismName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MechanismName({})", self.display())
    }
}

/// A parsed or to-be-sent greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// ZMTP major version (3 for every peer we talk to).
    pub major: u8,
    /// ZMTP minor version: 0 for 3.0, 1 for 3.1.
    pub minor: u8,
    /// The security mechanism.
    pub mechanism: MechanismName,
    /// The as-server flag. libzmq always sends 0 and never reads it; we send it
    /// per RFC but never rely on the peer's value.
    pub as_server: bool,
}

impl Greeting {
    /// Our greeting: ZMTP 3.1 (or 3.0 when `minor` is 0, for tests).
    pub fn new(minor: u8, mechanism: MechanismName, as_server: bool) -> Greeting {
        Greeting {
            major: 3,
            minor,
            mechanism,
            as_server,
        }
    }

    /// Whether the peer expects subscriptions as SUBSCRIBE/CANCEL commands
    /// (ZMTP 3.1 and later) rather than 0x01/0x00 data frames (3.0).
    pub fn uses_subscribe_commands(&self) -> bool {
        self.major > 3 || self.minor >= 1
    }

    /// The 64 wire bytes. Padding bytes 1..9 are zero, except byte 8 = 1, which
    /// is what libzmq sends for an empty routing id and what any peer accepts.
    pub fn encode(&self) -> [u8; GREETING_LEN] {
        let mut out = [0u8; GREETING_LEN];
        out[0] = 0xFF;
        out[8] = 0x01;
        out[9] = 0x7F;
        out[10] = self.major;
        out[11] = self.minor;
        out[12..32].copy_from_slice(self.mechanism.as_bytes());
        out[32] = u8::from(self.as_server);
        out
    }

    /// Checks as much of a peer's greeting as `bytes` holds.
    ///
    /// Returns `Ok(None)` while fewer than 64 bytes are there and nothing seen so
    /// far is wrong, so non-ZMTP peers are refused after their first byte
    /// instead of after a handshake timeout.
    pub fn decode_partial(bytes: &[u8]) -> Result<Option<Greeting>> {
        if let Some(&b0) = bytes.first() {
            if b0 != 0xFF {
                return Err(Error::NotZmtp(b0));
            }
        }
        if let Some(&b9) = bytes.get(9) {
            if b9 & 0x01 == 0 {
                return Err(Error::Zmtp10(b9));
            }
        }
        if let Some(&major) = bytes.get(10) {
            // libzmq treats revision 0 as ZMTP 1.0 and 1 as 2.0, 3 as 3.x and
            // anything else as 3.1; we only refuse the old protocols.
            if major < 3 {
                return Err(Error::UnsupportedVersion(major));
            }
        }
        if bytes.len() < GREETING_LEN {
            return Ok(None);
        }
        let mut mechanism = [0u8; 20];
        mechanism.copy_from_slice(&bytes[12..32]);
        Ok(Some(Greeting {
            major: bytes[10],
            minor: bytes[11],
            mechanism: MechanismName(mechanism),
            as_server: bytes[32] != 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What libzmq 4.3 sends for a NULL socket without routing id
    /// (semantics document §1.2).
    const LIBZMQ_NULL: [u8; 64] = {
        let mut g = [0u8; 64];
        g[0] = 0xff;
        g[8] = 0x01;
        g[9] = 0x7f;
        g[10] = 0x03;
        g[11] = 0x01;
        g[12] = b'N';
        g[13] = b'U';
        g[14] = b'L';
        g[15] = b'L';
        g
    };

    #[test]
    fn our_null_greeting_is_byte_identical_to_libzmq() {
        let ours = Greeting::new(1, MechanismName::NULL, false).encode();
        assert_eq!(ours, LIBZMQ_NULL);
    }

    #[test]
    fn parses_libzmq_greeting_and_ignores_padding() {
        let mut g = LIBZMQ_NULL;
        g[8] = 0x04; // routing id "abc" shows up as padding 00..04
        let parsed = Greeting::decode_partial(&g).unwrap().unwrap();
        assert_eq!((parsed.major, parsed.minor), (3, 1));
        assert_eq!(parsed.mechanism, MechanismName::NULL);
        assert!(!parsed.as_server);
        assert!(parsed.uses_subscribe_commands());
    }

    #[test]
    fn accepts_other_minors_and_majors() {
        for (major, minor, commands) in [(3, 0, false), (3, 1, true), (3, 7, true), (4, 0, true)] {
            let mut g = LIBZMQ_NULL;
            g[10] = major;
            g[11] = minor;
            let parsed = Greeting::decode_partial(&g).unwrap().unwrap();
            assert_eq!(parsed.uses_subscribe_commands(), commands);
        }
    }

    #[test]
    fn refuses_non_zmtp_at_the_first_byte() {
        assert_eq!(
            Greeting::decode_partial(b"GET / HTTP/1.1"),
            Err(Error::NotZmtp(b'G'))
        );
        assert_eq!(Greeting::decode_partial(&[0x00]), Err(Error::NotZmtp(0)));
    }

    #[test]
    fn refuses_zmtp_1_and_2() {
        let mut g = LIBZMQ_NULL;
        g[9] = 0x7e;
        assert_eq!(Greeting::decode_partial(&g[..10]), Err(Error::Zmtp10(0x7e)));
        let mut g = LIBZMQ_NULL;
        g[10] = 0x01;
        assert_eq!(
            Greeting::decode_partial(&g[..11]),
            Err(Error::UnsupportedVersion(1))
        );
    }

    #[test]
    fn waits_for_more_bytes_without_error() {
        for n in 0..64 {
            assert_eq!(Greeting::decode_partial(&LIBZMQ_NULL[..n]), Ok(None));
        }
    }

    #[test]
    fn mechanism_names_compare_with_padding() {
        assert_ne!(MechanismName::NULL, MechanismName::from_static("NULL\0x"));
        assert_eq!(MechanismName::CURVE.display(), "CURVE");
    }
}
