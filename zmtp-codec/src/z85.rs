//! Z85 (ZeroMQ RFC 32): the text form of CURVE keys, as libzmq's
//! `zmq_z85_encode`/`zmq_z85_decode`, Zeek's options and zring's files use
//! it. Four bytes become five characters of an 85-symbol alphabet, most
//! significant first; a 32-byte key is 40 characters.

/// The 85 symbols, in value order (RFC 32).
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Value of each ASCII byte in the alphabet, 0xff for bytes that are not in it.
const DECODE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a Z85 string or byte string cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Z85Error {
    /// Z85 encodes whole 4-byte groups only.
    #[error("Z85 encodes whole 4-byte groups: {0} bytes is not a multiple of 4")]
    BinaryLength(usize),
    /// Z85 text is whole 5-character groups only.
    #[error("Z85 text is whole 5-character groups: {0} characters is not a multiple of 5")]
    TextLength(usize),
    /// A character outside the Z85 alphabet.
    #[error("character {character:?} at position {position} is not in the Z85 alphabet")]
    BadCharacter {
        /// The offending character (bytes that are not ASCII shown as U+FFFD).
        character: char,
        /// Its byte offset in the text.
        position: usize,
    },
    /// A group of five characters whose value does not fit in 32 bits.
    #[error("Z85 group at position {position} ({group:?}) encodes a value above 2^32-1")]
    Overflow {
        /// Byte offset of the group.
        position: usize,
        /// The five characters.
        group: String,
    },
    /// The text decodes, but not to as many bytes as a key has.
    #[error("a CURVE key is 40 Z85 characters (32 bytes); got {0} characters")]
    KeyLength(usize),
}

/// Encodes `data` (a multiple of 4 bytes long) as Z85 text.
pub fn encode(data: &[u8]) -> Result<String, Z85Error> {
    if !data.len().is_multiple_of(4) {
        return Err(Z85Error::BinaryLength(data.len()));
    }
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for group in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([group[0], group[1], group[2], group[3]]);
        let mut chars = [0u8; 5];
        for slot in chars.iter_mut().rev() {
            *slot = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        // Every symbol is ASCII.
        out.extend(chars.iter().map(|&c| c as char));
    }
    Ok(out)
}

/// Decodes Z85 `text` (a multiple of 5 characters long).
pub fn decode(text: &str) -> Result<Vec<u8>, Z85Error> {
    // Characters first: a stray non-ASCII character would otherwise show up
    // as a confusing length error.
    if let Some((position, character)) = text
        .char_indices()
        .find(|&(_, c)| !c.is_ascii() || DECODE[c as usize] == 0xff)
    {
        return Err(Z85Error::BadCharacter {
            character,
            position,
        });
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(5) {
        return Err(Z85Error::TextLength(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for (index, group) in bytes.chunks_exact(5).enumerate() {
        let value = group
            .iter()
            .fold(0u64, |acc, &c| acc * 85 + u64::from(DECODE[usize::from(c)]));
        let Ok(value) = u32::try_from(value) else {
            return Err(Z85Error::Overflow {
                position: index * 5,
                group: String::from_utf8_lossy(group).into_owned(),
            });
        };
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

/// Decodes a 40-character Z85 CURVE key into its 32 bytes.
pub fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    let bytes = decode(text)?;
    if bytes.len() != 32 {
        return Err(Z85Error::KeyLength(text.len()));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Encodes a 32-byte CURVE key as its 40 Z85 characters.
pub fn encode_key(key: &[u8; 32]) -> String {
    encode(key).expect("32 is a multiple of 4")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc32_test_vector() {
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&bytes).unwrap(), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), bytes);
    }

    /// The key pairs in libzmq's zmq_curve(7), as the semantics document lists them.
    #[test]
    fn libzmq_test_keys() {
        let client_public: [u8; 32] = [
            0xBB, 0x88, 0x47, 0x1D, 0x65, 0xE2, 0x65, 0x9B, 0x30, 0xC5, 0x5A, 0x53, 0x21, 0xCE,
            0xBB, 0x5A, 0xAB, 0x2B, 0x70, 0xA3, 0x98, 0x64, 0x5C, 0x26, 0xDC, 0xA2, 0xB2, 0xFC,
            0xB4, 0x3F, 0xC5, 0x18,
        ];
        assert_eq!(
            encode_key(&client_public),
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
        );
        assert_eq!(
            decode_key("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID").unwrap(),
            client_public
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(encode(&[1, 2, 3]), Err(Z85Error::BinaryLength(3)));
        assert_eq!(decode("Hello!"), Err(Z85Error::TextLength(6)));
        assert_eq!(
            decode("Hel\"o"),
            Err(Z85Error::BadCharacter {
                character: '"',
                position: 3
            })
        );
        assert!(matches!(
            decode("#####"),
            Err(Z85Error::Overflow { position: 0, .. })
        ));
        assert_eq!(decode_key("HelloWorld"), Err(Z85Error::KeyLength(10)));
        assert!(decode_key("Hello Worl")
            .unwrap_err()
            .to_string()
            .contains("' '"));
        assert!(Z85Error::BadCharacter {
            character: '~',
            position: 7
        }
        .to_string()
        .contains("position 7"));
    }

    #[test]
    fn non_ascii_text_is_a_bad_character_not_a_panic() {
        assert!(matches!(
            decode("abcdé"),
            Err(Z85Error::BadCharacter {
                character: 'é',
                position: 4
            })
        ));
    }

    proptest! {
        #[test]
        fn round_trips(groups in proptest::collection::vec(any::<[u8; 4]>(), 0..32)) {
            let data: Vec<u8> = groups.concat();
            let text = encode(&data).unwrap();
            prop_assert_eq!(text.len(), data.len() / 4 * 5);
            prop_assert!(text.bytes().all(|c| ALPHABET.contains(&c)));
            prop_assert_eq!(decode(&text).unwrap(), data);
        }
    }
}
