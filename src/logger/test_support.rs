//! Test helpers: schemas and set/vector bodies encoded as a batch carries
//! them (contract §4.4), so formatter tests need no decoder.

use std::net::IpAddr;

use super::value::{Elements, Field, Header, Proto, TypeTag, Value};

/// A header for `path` with columns `c0`, `c1`, ... of the given types.
pub(crate) fn header(path: &str, types: &[TypeTag]) -> Header {
    Header {
        stream: "Test::LOG".into(),
        writer: "Log::WRITER_ASCII".into(),
        filter: "default".into(),
        path: path.into(),
        fields: types
            .iter()
            .enumerate()
            .map(|(i, &ty)| Field {
                name: format!("c{i}"),
                ty,
                subtype: TypeTag::Void,
                optional: false,
            })
            .collect(),
    }
}

/// The schema of the contract's worked example (§4.6).
pub(crate) fn conn_header() -> Header {
    let field = |name: &str, ty, optional| Field {
        name: name.into(),
        ty,
        subtype: TypeTag::Void,
        optional,
    };
    Header {
        stream: "Conn::LOG".into(),
        writer: "Log::WRITER_ASCII".into(),
        filter: "default".into(),
        path: "conn".into(),
        fields: vec![
            field("uid", TypeTag::String, false),
            field("id.orig_h", TypeTag::Addr, false),
            field("id.orig_p", TypeTag::Port, false),
            field("orig_bytes", TypeTag::Count, true),
        ],
    }
}

/// An encoded container body that `Elements` can borrow.
pub(crate) struct OwnedElements {
    body: Vec<u8>,
    len: u64,
}

impl OwnedElements {
    pub(crate) fn get(&self) -> Elements<'_> {
        Elements {
            body: &self.body,
            len: self.len,
        }
    }
}

/// Encodes `values` as the elements of a set or vector.
pub(crate) fn elements(values: &[Value<'_>]) -> OwnedElements {
    let mut body = Vec::new();
    for v in values {
        encode_value(&mut body, v);
    }
    OwnedElements {
        body,
        len: values.len() as u64,
    }
}

fn tag_of(v: &Value<'_>) -> TypeTag {
    match v {
        Value::Unset(t) => *t,
        Value::Bool(_) => TypeTag::Bool,
        Value::Int(_) => TypeTag::Int,
        Value::Count(_) => TypeTag::Count,
        Value::Double(_) => TypeTag::Double,
        Value::Time(_) => TypeTag::Time,
        Value::Interval(_) => TypeTag::Interval,
        Value::String(_) => TypeTag::String,
        Value::Enum(_) => TypeTag::Enum,
        Value::Port { .. } => TypeTag::Port,
        Value::Addr(_) => TypeTag::Addr,
        Value::Subnet { .. } => TypeTag::Subnet,
        Value::Func(_) => TypeTag::Func,
        Value::File(_) => TypeTag::File,
        Value::Set(_) => TypeTag::Table,
        Value::Vector(_) => TypeTag::Vector,
    }
}

fn encode_value(out: &mut Vec<u8>, v: &Value<'_>) {
    out.extend_from_slice(&(tag_of(v) as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    if let Value::Unset(_) = v {
        out.push(0);
        return;
    }
    out.push(1);
    let str_ = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    };
    let addr = |out: &mut Vec<u8>, a: &IpAddr| match a {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    };
    match v {
        Value::Unset(_) => unreachable!(),
        Value::Bool(b) => out.extend_from_slice(&i64::from(*b).to_be_bytes()),
        Value::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::Count(c) => out.extend_from_slice(&c.to_be_bytes()),
        Value::Double(d) | Value::Time(d) | Value::Interval(d) => {
            out.extend_from_slice(&d.to_bits().to_be_bytes())
        }
        Value::String(s) | Value::Enum(s) | Value::Func(s) | Value::File(s) => str_(out, s),
        Value::Port { number, proto } => {
            out.extend_from_slice(&number.to_be_bytes());
            let p: i32 = match proto {
                Proto::Unknown => 0,
                Proto::Tcp => 1,
                Proto::Udp => 2,
                Proto::Icmp => 3,
            };
            out.extend_from_slice(&p.to_be_bytes());
        }
        Value::Addr(a) => addr(out, a),
        Value::Subnet { addr: a, prefix } => {
            out.push(match a {
                IpAddr::V4(_) => prefix + 96,
                IpAddr::V6(_) => *prefix,
            });
            addr(out, a);
        }
        Value::Set(_) | Value::Vector(_) => panic!("Zeek logs no nested containers"),
    }
}
