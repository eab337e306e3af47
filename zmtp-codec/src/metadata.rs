//! Metadata properties carried by READY (and PLAIN/CURVE INITIATE):
//! `name-len(1) name value-len(u32 BE) value`, repeated (RFC 37).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{printable, Error, Result};
use crate::socket_type::SocketType;

/// Property name of the socket type.
pub const SOCKET_TYPE: &str = "Socket-Type";
/// Property name of the routing id.
pub const IDENTITY: &str = "Identity";

/// A set of metadata properties, in wire order. Values are slices of the
/// received command, not copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    properties: Vec<(Bytes, Bytes)>,
}

impl Metadata {
    /// No properties.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Adds a property. Names are 1..=255 bytes on the wire.
    pub fn push(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<()> {
        let name = name.into();
        if name.is_empty() || name.len() > 255 {
            return Err(Error::InvalidArgument(format!(
                "metadata property names are 1 to 255 bytes, {:?} has {}",
                printable(&name),
                name.len()
            )));
        }
        let value = value.into();
        if u32::try_from(value.len()).is_err() {
            return Err(Error::InvalidArgument(format!(
                "metadata property {:?} is longer than 4 GiB",
                printable(&name)
            )));
        }
        self.properties.push((name, value));
        Ok(())
    }

    /// The value of the first property called `name`. Compared exactly, as
    /// libzmq compares `Socket-Type` and `Identity`.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.properties
            .iter()
            .find(|(n, _)| n.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// All properties in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.properties.iter().map(|(n, v)| (n, v))
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        self.properties.len()
    }

    /// No properties at all.
    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }

    /// The peer's socket type. `Ok(None)` when the property is absent, which
    /// libzmq accepts; an unknown name is an error.
    pub fn socket_type(&self) -> Result<Option<SocketType>> {
        match self.get(SOCKET_TYPE) {
            None => Ok(None),
            Some(v) => SocketType::from_wire(v)
                .map(Some)
                .ok_or_else(|| Error::UnknownSocketType(printable(v))),
        }
    }

    /// The peer's routing id, if it sent one.
    pub fn identity(&self) -> Option<&Bytes> {
        self.get(IDENTITY)
    }

    /// The encoded length.
    pub fn encoded_len(&self) -> usize {
        self.properties
            .iter()
            .map(|(n, v)| 1 + n.len() + 4 + v.len())
            .sum()
    }

    /// Appends the wire form.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        for (name, value) in &self.properties {
            out.put_u8(name.len() as u8);
            out.put_slice(name);
            out.put_u32(value.len() as u32);
            out.put_slice(value);
        }
    }

    /// Parses properties until `data` is used up. Every length is checked
    /// against what is left, so hostile input cannot make us read past the end
    /// or allocate.
    pub fn decode(mut data: Bytes) -> Result<Metadata> {
        let mut properties = Vec::new();
        while !data.is_empty() {
            let name_len = usize::from(data[0]);
            if name_len == 0 {
                return Err(Error::MalformedMetadata(
                    "property with an empty name".into(),
                ));
            }
            if data.len() < 1 + name_len + 4 {
                return Err(Error::MalformedMetadata(format!(
                    "property name of {name_len} bytes and its value length overrun the {} bytes left",
                    data.len() - 1
                )));
            }
            let name = data.slice(1..1 + name_len);
            let len_at = 1 + name_len;
            let value_len = u32::from_be_bytes(
                data[len_at..len_at + 4]
                    .try_into()
                    .expect("four bytes checked above"),
            ) as usize;
            let value_at = len_at + 4;
            if data.len() - value_at < value_len {
                return Err(Error::MalformedMetadata(format!(
                    "value of property {:?} claims {value_len} bytes, {} are left",
                    printable(&name),
                    data.len() - value_at
                )));
            }
            let value = data.slice(value_at..value_at + value_len);
            properties.push((name, value));
            data = data.slice(value_at + value_len..);
        }
        Ok(Metadata { properties })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_reencodes_libzmq_dealer_metadata() {
        let wire: &[u8] = b"\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00";
        let md = Metadata::decode(Bytes::from_static(wire)).unwrap();
        assert_eq!(md.socket_type().unwrap(), Some(SocketType::Dealer));
        assert_eq!(md.identity().map(|v| v.len()), Some(0));
        let mut out = BytesMut::new();
        md.encode(&mut out);
        assert_eq!(&out[..], wire);
    }

    #[test]
    fn missing_socket_type_is_accepted_unknown_is_not() {
        let md = Metadata::decode(Bytes::from_static(b"\x05X-Foo\x00\x00\x00\x01b")).unwrap();
        assert_eq!(md.socket_type().unwrap(), None);
        assert_eq!(md.get("X-Foo").map(|v| &v[..]), Some(&b"b"[..]));
        let md =
            Metadata::decode(Bytes::from_static(b"\x0bSocket-Type\x00\x00\x00\x03sub")).unwrap();
        assert_eq!(
            md.socket_type(),
            Err(Error::UnknownSocketType("sub".into()))
        );
    }

    #[test]
    fn overruns_are_named() {
        let err = Metadata::decode(Bytes::from_static(b"\x0bSocket-Type\x00\x00\x00\x09SUB"))
            .unwrap_err();
        assert!(err.to_string().contains("Socket-Type"), "{err}");
        assert!(err.to_string().contains("claims 9 bytes"), "{err}");
        assert!(Metadata::decode(Bytes::from_static(b"\x20abc")).is_err());
        assert!(Metadata::decode(Bytes::from_static(b"\x00")).is_err());
    }
}
