//! The values a `zeek-bin-serializer` batch carries (contract §4.3–4.4).
//!
//! Everything that points into the received batch borrows it (`'a`):
//! strings, enum names and container bodies are never copied out. A
//! container is kept as its still-encoded body, already validated by the
//! decoder, and decoded again element by element when it is written.

use std::net::IpAddr;

use super::batch::ElementsIter;

/// Zeek's `TypeTag` numbers (`src/Type.h`), as they appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TypeTag {
    /// `void` (also the element type of a column that is no container).
    Void = 0,
    /// `bool`.
    Bool = 1,
    /// `int`.
    Int = 2,
    /// `count`.
    Count = 3,
    /// `double`.
    Double = 4,
    /// `time`.
    Time = 5,
    /// `interval`.
    Interval = 6,
    /// `string`.
    String = 7,
    /// `pattern`.
    Pattern = 8,
    /// `enum`.
    Enum = 9,
    /// `port`.
    Port = 10,
    /// `addr`.
    Addr = 11,
    /// `subnet`.
    Subnet = 12,
    /// `any`.
    Any = 13,
    /// `table` (a `set` when logged).
    Table = 14,
    /// `record`.
    Record = 15,
    /// `list`.
    List = 16,
    /// `func`.
    Func = 17,
    /// `file`.
    File = 18,
    /// `vector`.
    Vector = 19,
    /// `opaque`.
    Opaque = 20,
    /// `type`.
    Type = 21,
    /// `error`.
    Error = 22,
}

impl TypeTag {
    /// The tag with wire number `n`, if Zeek has one.
    pub fn from_wire(n: i32) -> Option<TypeTag> {
        use TypeTag::*;
        const ALL: [TypeTag; 23] = [
            Void, Bool, Int, Count, Double, Time, Interval, String, Pattern, Enum, Port, Addr,
            Subnet, Any, Table, Record, List, Func, File, Vector, Opaque, Type, Error,
        ];
        usize::try_from(n).ok().and_then(|i| ALL.get(i).copied())
    }

    /// The name Zeek's `#types` header and its `type_name()` use for a
    /// column of this type, without the element type of containers.
    pub fn zeek_name(self) -> &'static str {
        use TypeTag::*;
        match self {
            Void => "void",
            Bool => "bool",
            Int => "int",
            Count => "count",
            Double => "double",
            Time => "time",
            Interval => "interval",
            String => "string",
            Pattern => "pattern",
            Enum => "enum",
            Port => "port",
            Addr => "addr",
            Subnet => "subnet",
            Any => "any",
            Table => "table",
            Record => "record",
            List => "list",
            Func => "func",
            File => "file",
            Vector => "vector",
            Opaque => "opaque",
            Type => "type",
            Error => "error",
        }
    }
}

/// A transport protocol of a `port` value (`TransportProto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Unknown (0).
    Unknown,
    /// TCP (1).
    Tcp,
    /// UDP (2).
    Udp,
    /// ICMP (3).
    Icmp,
}

impl Proto {
    /// The name Zeek writes after a port number in JSON-less contexts.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Unknown => "unknown",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// One column of a batch's schema (contract §4.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The flattened column name, e.g. `id.orig_h`.
    pub name: String,
    /// The column's type.
    pub ty: TypeTag,
    /// The element type of a set or vector column, else `Void`.
    pub subtype: TypeTag,
    /// Declared `&optional`.
    pub optional: bool,
}

/// A batch's schema and the names it travels under (contract §4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// e.g. `Conn::LOG`.
    pub stream: String,
    /// e.g. `Log::WRITER_ASCII`.
    pub writer: String,
    /// e.g. `default`.
    pub filter: String,
    /// e.g. `conn`; the file the records go to. Validated by the decoder
    /// to be usable as a file name (see `batch`).
    pub path: String,
    /// The columns, in order.
    pub fields: Vec<Field>,
}

/// One decoded value. Borrowed parts point into the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Not present (`&optional` not set, a parent record unset, a vector
    /// hole). Carries the tag the sender gave it.
    Unset(TypeTag),
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `count`.
    Count(u64),
    /// `double`.
    Double(f64),
    /// Seconds since the epoch.
    Time(f64),
    /// Seconds.
    Interval(f64),
    /// Raw bytes: Zeek strings need not be UTF-8.
    String(&'a [u8]),
    /// An enum's name, e.g. `tcp`.
    Enum(&'a [u8]),
    /// `port`.
    Port {
        /// The port number.
        number: u64,
        /// Its transport protocol.
        proto: Proto,
    },
    /// `addr`.
    Addr(IpAddr),
    /// `subnet`.
    Subnet {
        /// The network address.
        addr: IpAddr,
        /// The real prefix length (the wire's IPv4 +96 removed).
        prefix: u8,
    },
    /// `func`: the function's name.
    Func(&'a [u8]),
    /// `file`: the file's name.
    File(&'a [u8]),
    /// A set (`TYPE_TABLE`), elements in wire order.
    Set(Elements<'a>),
    /// A vector, elements in order.
    Vector(Elements<'a>),
}

impl Value<'_> {
    /// The type tag the value travelled under: a set is `Table`; an unset
    /// value keeps the tag its sender gave it.
    pub fn tag(&self) -> TypeTag {
        match self {
            Value::Unset(tag) => *tag,
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
}

/// The still-encoded elements of a set or vector, validated when the
/// record was decoded. Iterate them with `Elements::iter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elements<'a> {
    /// The encoded `value`s, back to back.
    pub(crate) body: &'a [u8],
    pub(crate) len: u64,
}

impl<'a> Elements<'a> {
    /// How many elements.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in wire order (a set's order is the sender's table
    /// order: keep it). Cannot fail: the decoder validated them.
    pub fn iter(&self) -> ElementsIter<'a> {
        ElementsIter::new(self)
    }
}

impl<'a> IntoIterator for Elements<'a> {
    type Item = Value<'a>;
    type IntoIter = ElementsIter<'a>;

    fn into_iter(self) -> ElementsIter<'a> {
        ElementsIter::new(&self)
    }
}

impl<'a> IntoIterator for &Elements<'a> {
    type Item = Value<'a>;
    type IntoIter = ElementsIter<'a>;

    fn into_iter(self) -> ElementsIter<'a> {
        ElementsIter::new(self)
    }
}
