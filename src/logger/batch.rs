//! Decoder for `zeek-bin-serializer` log batches (contract §4).
//!
//! [`Batch::parse`] reads and checks the header: the four names and the
//! schema. [`Records::next_into`] then decodes one record at a time into a
//! caller's `Vec<Value>`, reused from record to record; strings, enum names
//! and container bodies borrow the batch's `Bytes` and are never copied.
//!
//! The decoder is stricter than Zeek's own reader (contract §4.5, §10.9):
//! every length and count is checked against the bytes that are left before
//! anything is allocated, type tags that cannot be logged are rejected,
//! containers are validated whole (so [`Elements::iter`] cannot fail), and
//! bytes after the last record are an error. Records are decoded lazily:
//! a batch whose 500th record is broken has already yielded 499 when the
//! error is reported. Every error says what was wrong and where.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;

use super::value::{Elements, Field, Header, Proto, TypeTag, Value};

/// The log serializer name in frame 2 of a `log-write` message (contract §3.3).
pub const SERIALIZER_NAME: &[u8] = b"zeek-bin-serializer";

/// Longest stream, writer, filter or field name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

/// Longest `path` accepted, in bytes: it becomes a file name.
pub const MAX_PATH_LEN: usize = 200;

/// Most fields (columns) a batch may declare.
pub const MAX_FIELDS: u32 = 4096;

/// How deeply sets and vectors may nest. Zeek logs only sets of atomic
/// values and vectors, so real batches nest one or two deep.
pub const MAX_DEPTH: u32 = 8;

/// Smallest encoded `value`: type, subtype and the `present` flag.
const VALUE_MIN: u64 = 4 + 4 + 1;

/// Smallest encoded field descriptor: `have_secondary_name`, an empty
/// name, type, subtype and `optional`.
const FIELD_MIN: u64 = 1 + 4 + 4 + 4 + 1;

/// A received batch: its bytes and its parsed header.
pub struct Batch {
    bytes: Bytes,
    header: Arc<Header>,
    num_records: u32,
    /// Offset of the first record in `bytes`.
    records_at: usize,
}

impl Batch {
    /// Parses and validates the header. Records are decoded (and checked)
    /// only when read with [`Batch::records`].
    pub fn parse(bytes: Bytes) -> Result<Batch, BatchError> {
        let (header, schema_end) = parse_schema(&bytes)?;
        Batch::with_header(bytes, Arc::new(header), schema_end)
    }

    /// As [`Batch::parse`], taking the header from `cache` when one with
    /// the same bytes was parsed before. A node sends a path's batches
    /// with the same header each time; parsing it is most of the cost of
    /// a small batch (real ones hold two or three records), and it
    /// allocates every name.
    pub fn parse_cached(bytes: Bytes, cache: &mut HeaderCache) -> Result<Batch, BatchError> {
        let (header, schema_end) = match cache.find(&bytes) {
            Some(hit) => hit,
            None => {
                let (header, schema_end) = parse_schema(&bytes)?;
                let header = Arc::new(header);
                cache.insert(&bytes[..schema_end], header.clone());
                (header, schema_end)
            }
        };
        Batch::with_header(bytes, header, schema_end)
    }

    fn with_header(
        bytes: Bytes,
        header: Arc<Header>,
        schema_end: usize,
    ) -> Result<Batch, BatchError> {
        let (num_records, records_at) = read_num_records(&bytes, schema_end, header.fields.len())?;
        Ok(Batch {
            bytes,
            header,
            num_records,
            records_at,
        })
    }

    /// The names the batch travels under and its schema.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header, shared: batches whose headers came from one
    /// [`HeaderCache`] entry share it.
    pub fn shared_header(&self) -> &Arc<Header> {
        &self.header
    }

    /// How many records the header announces.
    pub fn num_records(&self) -> u32 {
        self.num_records
    }

    /// A reader over the records, from the first.
    pub fn records(&self) -> Records<'_> {
        Records {
            rest: Reader(self.bytes.get(self.records_at..).unwrap_or_default()),
            total: self.bytes.len(),
            fields: &self.header.fields,
            index: 0,
            num_records: self.num_records,
            done: false,
        }
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("header", &self.header)
            .field("num_records", &self.num_records)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Decodes a batch's records one at a time. Made by [`Batch::records`].
pub struct Records<'a> {
    rest: Reader<'a>,
    /// Length of the whole batch, to turn what is left into byte offsets.
    total: usize,
    fields: &'a [Field],
    /// The record `next_into` decodes next.
    index: u32,
    num_records: u32,
    /// Set once the end was checked or an error reported.
    done: bool,
}

impl<'a> Records<'a> {
    /// Decodes the next record's values into `out` (cleared first; one
    /// `Value` per field, in field order). `Ok(false)` when all records were
    /// read; at that point trailing bytes are an error. After an error the
    /// batch is abandoned: `out` is left empty and later calls return
    /// `Ok(false)`.
    pub fn next_into(&mut self, out: &mut Vec<Value<'a>>) -> Result<bool, BatchError> {
        out.clear();
        if self.index >= self.num_records {
            if self.done {
                return Ok(false);
            }
            self.done = true;
            return match self.rest.0.len() {
                0 => Ok(false),
                count => Err(BatchError::TrailingBytes { count }),
            };
        }
        out.reserve(self.fields.len());
        for (field, column) in self.fields.iter().enumerate() {
            match self.rest.value::<true>(0, column.ty, column.subtype) {
                Ok(v) => out.push(v),
                Err(fault) => {
                    out.clear();
                    let err = self.fail(fault, field);
                    self.index = self.num_records;
                    self.done = true;
                    return Err(err);
                }
            }
        }
        self.index += 1;
        Ok(true)
    }

    #[cold]
    fn fail(&self, fault: Fault, field: usize) -> BatchError {
        let at = Place::Value {
            record: self.index,
            field: self
                .fields
                .get(field)
                .map(|f| f.name.clone())
                .unwrap_or_default(),
        };
        fault.into_error(at, self.total)
    }
}

/// Iterates the elements of a set or vector, decoding them again from the
/// bytes validated when their record was decoded. Made by
/// [`Elements::iter`].
#[derive(Debug, Clone)]
pub struct ElementsIter<'a> {
    rest: Reader<'a>,
    left: u64,
}

impl<'a> ElementsIter<'a> {
    pub(crate) fn new(elements: &Elements<'a>) -> Self {
        ElementsIter {
            rest: Reader(elements.body),
            left: elements.len,
        }
    }
}

impl<'a> Iterator for ElementsIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The body was validated at a depth at least as deep as this one,
        // so decoding it again cannot fail.
        match self.rest.value::<false>(0, TypeTag::Void, TypeTag::Void) {
            Ok(v) => Some(v),
            Err(_) => {
                debug_assert!(false, "elements were validated when decoded");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // `left` is bounded by the body's length, so it fits a usize.
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ElementsIter<'_> {}

/// Where in a batch a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An item of the batch header, e.g. `stream name` or `num_fields`.
    Header(&'static str),
    /// Field descriptor `index` (from 0), with its name once it was read.
    Field { index: u32, name: Option<String> },
    /// The value of column `field` in record `record` (from 0).
    Value { record: u32, field: String },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header(what) => write!(f, "header {what}"),
            Place::Field { index, name: None } => write!(f, "field descriptor {index}"),
            Place::Field {
                index,
                name: Some(name),
            } => write!(f, "field descriptor {index} (`{}`)", name.escape_debug()),
            Place::Value { record, field } => {
                write!(f, "record {record}, field `{}`", field.escape_debug())
            }
        }
    }
}

/// Why a batch was rejected. Byte offsets count from the batch's start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// The batch ends inside an item.
    #[error("{at}, byte {offset}: truncated: {what} needs {need} bytes, {left} left")]
    Truncated {
        at: Place,
        offset: usize,
        what: &'static str,
        need: u64,
        left: usize,
    },
    /// A count announces more items than the remaining bytes could hold.
    #[error(
        "{at}, byte {offset}: {count} {what} of at least {min} bytes each cannot fit in the {left} bytes left"
    )]
    CountTooLarge {
        at: Place,
        offset: usize,
        what: &'static str,
        count: u64,
        min: u64,
        left: usize,
    },
    /// A string length that is negative as an `i32` (Zeek rejects those).
    #[error("{at}, byte {offset}: string length {len} is negative")]
    NegativeLength { at: Place, offset: usize, len: i32 },
    /// A negative set or vector element count.
    #[error("{at}, byte {offset}: element count {count} is negative")]
    NegativeCount {
        at: Place,
        offset: usize,
        count: i64,
    },
    /// A name or count above this decoder's limits.
    #[error("{at}, byte {offset}: {what} {value} is over the limit of {max}")]
    TooLarge {
        at: Place,
        offset: usize,
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// Records announced in a batch that has no fields to hold them.
    #[error("header num_records: {num_records} records announced but the batch has no fields")]
    NoFields { num_records: u32 },
    /// A type number Zeek does not have.
    #[error("{at}, byte {offset}: unknown type tag {tag}")]
    UnknownType { at: Place, offset: usize, tag: i32 },
    /// A value of a type Zeek cannot log (pattern, any, record, ...).
    #[error("{at}, byte {offset}: a value of type {} ({}) cannot be logged", .tag.zeek_name(), *.tag as i32)]
    NotLoggable {
        at: Place,
        offset: usize,
        tag: TypeTag,
    },
    /// An address family byte other than 4 or 6.
    #[error("{at}, byte {offset}: address family {family} is not 4 or 6")]
    BadAddrFamily {
        at: Place,
        offset: usize,
        family: u8,
    },
    /// A subnet prefix length out of range (IPv4's is sent as 96 + length).
    #[error("{at}, byte {offset}: subnet prefix {prefix} is out of range for IPv{family} ({})",
        if *.family == 4 { "96-128 on the wire" } else { "0-128" })]
    BadPrefix {
        at: Place,
        offset: usize,
        prefix: u8,
        family: u8,
    },
    /// A port's transport protocol other than 0 (unknown), tcp, udp, icmp.
    #[error("{at}, byte {offset}: port protocol {proto} is not 0-3")]
    BadPortProto {
        at: Place,
        offset: usize,
        proto: i32,
    },
    /// Sets and vectors nested deeper than [`MAX_DEPTH`].
    #[error("{at}, byte {offset}: containers nested more than {MAX_DEPTH} deep")]
    TooDeep { at: Place, offset: usize },
    /// A stream, writer, filter or field name that is not UTF-8.
    #[error("{at}, byte {offset}: name is not UTF-8")]
    NotUtf8 { at: Place, offset: usize },
    /// A `path` that cannot safely be a file name.
    #[error("header path `{path}` cannot be a file name: {why}")]
    BadPath {
        /// The path, escaped and shortened for printing.
        path: String,
        why: &'static str,
    },
    /// Bytes after the last record.
    #[error("{count} bytes left over after the last record")]
    TrailingBytes { count: usize },
    /// A value (or a set's or vector's element) whose type tag is not the
    /// one its column declares.
    #[error("{at}, byte {offset}: a {} {} in a column of type {column}",
        .found.zeek_name(), if *.element { "element" } else { "value" })]
    TypeMismatch {
        at: Place,
        offset: usize,
        /// The column's type as `#types` names it, e.g. `set[string]`.
        column: String,
        found: TypeTag,
        element: bool,
    },
}

/// A column's type as `#types` would name it.
fn column_type(ty: TypeTag, element: Option<TypeTag>) -> String {
    let field = Field {
        name: String::new(),
        ty,
        subtype: element.unwrap_or(TypeTag::Void),
        optional: false,
    };
    let mut out = Vec::new();
    super::format::write_type_name(&mut out, &field);
    String::from_utf8_lossy(&out).into_owned()
}

impl BatchError {
    /// A short, stable snake_case label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BatchError::Truncated { .. } | BatchError::CountTooLarge { .. } => "truncated",
            BatchError::NegativeLength { .. } => "negative_length",
            BatchError::NegativeCount { .. } => "negative_count",
            BatchError::TooLarge { .. } => "too_large",
            BatchError::NoFields { .. } => "no_fields",
            BatchError::UnknownType { .. } => "unknown_type",
            BatchError::NotLoggable { .. } => "not_loggable",
            BatchError::BadAddrFamily { .. } => "bad_addr_family",
            BatchError::BadPrefix { .. } => "bad_prefix",
            BatchError::BadPortProto { .. } => "bad_port_proto",
            BatchError::TooDeep { .. } => "too_deep",
            BatchError::NotUtf8 { .. } => "not_utf8",
            BatchError::BadPath { .. } => "bad_path",
            BatchError::TrailingBytes { .. } => "trailing_bytes",
            BatchError::TypeMismatch { .. } => "type_mismatch",
        }
    }
}

// ---------------------------------------------------------------------------
// Header

/// Parsed headers by the bytes they were parsed from, for
/// [`Batch::parse_cached`]. Kept per path, a few schemas each; bounded.
#[derive(Debug, Default)]
pub struct HeaderCache {
    by_path: HashMap<Box<[u8]>, Vec<CachedHeader>>,
    schemas: usize,
}

/// A header and the bytes it was parsed from.
#[derive(Debug)]
struct CachedHeader {
    raw: Box<[u8]>,
    header: Arc<Header>,
}

impl HeaderCache {
    /// Most headers kept; one more empties the cache (a sender inventing
    /// schemas costs parsing, not memory).
    pub const MAX: usize = 1024;

    /// The header `batch` starts with, if cached, and where it ends.
    fn find(&self, batch: &[u8]) -> Option<(Arc<Header>, usize)> {
        let path = peek_path(batch)?;
        self.by_path
            .get(path)?
            .iter()
            .find(|c| batch.starts_with(&c.raw))
            .map(|c| (c.header.clone(), c.raw.len()))
    }

    fn insert(&mut self, raw: &[u8], header: Arc<Header>) {
        if self.schemas >= Self::MAX {
            self.by_path.clear();
            self.schemas = 0;
        }
        let Some(path) = peek_path(raw) else {
            return;
        };
        self.by_path
            .entry(path.into())
            .or_default()
            .push(CachedHeader {
                raw: raw.into(),
                header,
            });
        self.schemas += 1;
    }
}

/// The raw `path` of a batch: the fourth length-prefixed string, found
/// without checking anything else.
fn peek_path(batch: &[u8]) -> Option<&[u8]> {
    let mut rest = batch;
    for _ in 0..3 {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        rest = tail.get(u32::from_be_bytes(*len) as usize..)?;
    }
    let (len, tail) = rest.split_first_chunk::<4>()?;
    tail.get(..u32::from_be_bytes(*len) as usize)
}

/// `num_records`, after the schema that ends at `schema_end`, checked
/// against the bytes left; and where the records start.
fn read_num_records(
    buf: &[u8],
    schema_end: usize,
    num_fields: usize,
) -> Result<(u32, usize), BatchError> {
    let total = buf.len();
    let mut r = Reader(buf.get(schema_end..).unwrap_or_default());
    let at = r;
    let num_records = r
        .u32("num_records")
        .map_err(|f| f.into_error(Place::Header("num_records"), total))?;
    let min = num_fields as u64 * VALUE_MIN;
    if num_records > 0 && min == 0 {
        return Err(BatchError::NoFields { num_records });
    }
    if u64::from(num_records) * min > r.0.len() as u64 {
        return Err(BatchError::CountTooLarge {
            at: Place::Header("num_records"),
            offset: at.offset(total),
            what: "records",
            count: num_records.into(),
            min,
            left: r.0.len(),
        });
    }
    Ok((num_records, r.offset(total)))
}

/// The names and the schema, checked; and where they end.
fn parse_schema(buf: &[u8]) -> Result<(Header, usize), BatchError> {
    let total = buf.len();
    let mut r = Reader(buf);
    let stream = r.name(total, || Place::Header("stream name"))?;
    let writer = r.name(total, || Place::Header("writer name"))?;
    let filter = r.name(total, || Place::Header("filter name"))?;
    let path = r.path(total)?;

    let at = r;
    let num_fields = r
        .u32("num_fields")
        .map_err(|f| f.into_error(Place::Header("num_fields"), total))?;
    if num_fields > MAX_FIELDS {
        return Err(BatchError::TooLarge {
            at: Place::Header("num_fields"),
            offset: at.offset(total),
            what: "num_fields",
            value: num_fields.into(),
            max: MAX_FIELDS.into(),
        });
    }
    // Each descriptor is at least FIELD_MIN bytes. (num_records, after
    // them, is read as its own item: the same error whether the header
    // came from the cache or not.)
    if u64::from(num_fields) * FIELD_MIN > r.0.len() as u64 {
        return Err(BatchError::CountTooLarge {
            at: Place::Header("num_fields"),
            offset: at.offset(total),
            what: "field descriptors",
            count: num_fields.into(),
            min: FIELD_MIN,
            left: r.0.len(),
        });
    }
    let mut fields = Vec::with_capacity(num_fields as usize);
    for index in 0..num_fields {
        fields.push(r.field(total, index)?);
    }
    let header = Header {
        stream,
        writer,
        filter,
        path,
        fields,
    };
    Ok((header, r.offset(total)))
}

/// Why `path` cannot be a file name, if it cannot.
fn path_problem(path: &[u8]) -> Option<&'static str> {
    if path.is_empty() {
        Some("it is empty")
    } else if path.len() > MAX_PATH_LEN {
        Some("it is longer than 200 bytes")
    } else if path[0] == b'.' {
        Some("it starts with '.'")
    } else if path.contains(&b'/') {
        Some("it contains '/'")
    } else if path.contains(&0) {
        Some("it contains a NUL byte")
    } else if std::str::from_utf8(path).is_err() {
        Some("it is not UTF-8")
    } else {
        None
    }
}

/// `bytes` escaped for an error message, at most about 64 characters.
fn printable(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    let mut s: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if cut.len() < bytes.len() {
        s.push_str("...");
    }
    s
}

// ---------------------------------------------------------------------------
// Primitives and values

/// What went wrong while reading, without the place: values are decoded in
/// a tight loop, and the place (which needs the field's name) is worked out
/// only once something fails.
#[derive(Debug, Clone, Copy)]
struct Fault {
    /// Bytes left in the batch where the offending item starts.
    left: usize,
    kind: FaultKind,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    Short {
        what: &'static str,
        need: u64,
    },
    Count {
        what: &'static str,
        count: u64,
        min: u64,
    },
    NegativeLength(i32),
    NegativeCount(i64),
    NameTooLong(u64),
    UnknownType(i32),
    NotLoggable(TypeTag),
    AddrFamily(u8),
    Prefix {
        prefix: u8,
        family: u8,
    },
    PortProto(i32),
    TooDeep,
    TypeMismatch {
        declared: TypeTag,
        element: Option<TypeTag>,
        found: TypeTag,
    },
}

impl Fault {
    #[cold]
    fn into_error(self, at: Place, total: usize) -> BatchError {
        let offset = total.saturating_sub(self.left);
        match self.kind {
            FaultKind::Short { what, need } => BatchError::Truncated {
                at,
                offset,
                what,
                need,
                left: self.left,
            },
            FaultKind::Count { what, count, min } => BatchError::CountTooLarge {
                at,
                offset,
                what,
                count,
                min,
                // The count itself was 8 bytes.
                left: self.left.saturating_sub(8),
            },
            FaultKind::NegativeLength(len) => BatchError::NegativeLength { at, offset, len },
            FaultKind::NegativeCount(count) => BatchError::NegativeCount { at, offset, count },
            FaultKind::NameTooLong(len) => BatchError::TooLarge {
                at,
                offset,
                what: "name length",
                value: len,
                max: MAX_NAME_LEN as u64,
            },
            FaultKind::UnknownType(tag) => BatchError::UnknownType { at, offset, tag },
            FaultKind::NotLoggable(tag) => BatchError::NotLoggable { at, offset, tag },
            FaultKind::AddrFamily(family) => BatchError::BadAddrFamily { at, offset, family },
            FaultKind::Prefix { prefix, family } => BatchError::BadPrefix {
                at,
                offset,
                prefix,
                family,
            },
            FaultKind::PortProto(proto) => BatchError::BadPortProto { at, offset, proto },
            FaultKind::TooDeep => BatchError::TooDeep { at, offset },
            FaultKind::TypeMismatch {
                declared,
                element,
                found,
            } => BatchError::TypeMismatch {
                at,
                offset,
                column: column_type(declared, element),
                found,
                element: element.is_some(),
            },
        }
    }
}

/// The unread rest of a batch (or of a container body).
#[derive(Debug, Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn offset(&self, total: usize) -> usize {
        total.saturating_sub(self.0.len())
    }

    #[cold]
    fn fault(&self, kind: FaultKind) -> Fault {
        Fault {
            left: self.0.len(),
            kind,
        }
    }

    #[inline(always)]
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<&'a [u8; N], Fault> {
        match self.0.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.0 = tail;
                Ok(head)
            }
            None => Err(self.fault(FaultKind::Short {
                what,
                need: N as u64,
            })),
        }
    }

    #[inline(always)]
    fn u8(&mut self, what: &'static str) -> Result<u8, Fault> {
        Ok(self.take::<1>(what)?[0])
    }

    #[inline(always)]
    fn i32(&mut self, what: &'static str) -> Result<i32, Fault> {
        Ok(i32::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    fn u32(&mut self, what: &'static str) -> Result<u32, Fault> {
        Ok(u32::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    fn u64(&mut self, what: &'static str) -> Result<u64, Fault> {
        Ok(u64::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    fn f64(&mut self, what: &'static str) -> Result<f64, Fault> {
        Ok(f64::from_be_bytes(*self.take(what)?))
    }

    /// A `str`: u32 length, then that many bytes.
    #[inline(always)]
    fn str(&mut self, what: &'static str) -> Result<&'a [u8], Fault> {
        let at = *self;
        let len = self.u32(what)?;
        if (len as i32) < 0 {
            return Err(at.fault(FaultKind::NegativeLength(len as i32)));
        }
        match self.0.split_at_checked(len as usize) {
            Some((s, rest)) => {
                self.0 = rest;
                Ok(s)
            }
            None => Err(self.fault(FaultKind::Short {
                what,
                need: len.into(),
            })),
        }
    }

    /// A header name: a `str` of at most MAX_NAME_LEN bytes of UTF-8.
    fn name(&mut self, total: usize, at: impl Fn() -> Place) -> Result<String, BatchError> {
        let start = *self;
        let raw = self.str("a name").map_err(|f| f.into_error(at(), total))?;
        if raw.len() > MAX_NAME_LEN {
            return Err(start
                .fault(FaultKind::NameTooLong(raw.len() as u64))
                .into_error(at(), total));
        }
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(BatchError::NotUtf8 {
                at: at(),
                offset: start.offset(total) + 4,
            }),
        }
    }

    /// The header's `path`, checked to be usable as a file name.
    fn path(&mut self, total: usize) -> Result<String, BatchError> {
        let raw = self
            .str("the path")
            .map_err(|f| f.into_error(Place::Header("path"), total))?;
        match (path_problem(raw), std::str::from_utf8(raw)) {
            (None, Ok(s)) => Ok(s.to_owned()),
            (why, _) => Err(BatchError::BadPath {
                path: printable(raw),
                why: why.unwrap_or("it is not UTF-8"),
            }),
        }
    }

    /// A type number of a field descriptor: any tag Zeek has.
    fn field_tag(&mut self, total: usize, at: impl Fn() -> Place) -> Result<TypeTag, BatchError> {
        let start = *self;
        let n = self
            .i32("a type tag")
            .map_err(|f| f.into_error(at(), total))?;
        TypeTag::from_wire(n).ok_or_else(|| {
            start
                .fault(FaultKind::UnknownType(n))
                .into_error(at(), total)
        })
    }

    fn field(&mut self, total: usize, index: u32) -> Result<Field, BatchError> {
        let unnamed = || Place::Field { index, name: None };
        let have_secondary = self
            .u8("have_secondary_name")
            .map_err(|f| f.into_error(unnamed(), total))?;
        if have_secondary == 1 {
            // Only the input framework sets a secondary name; skip it.
            let start = *self;
            let skipped = self
                .str("a secondary name")
                .map_err(|f| f.into_error(unnamed(), total))?;
            if skipped.len() > MAX_NAME_LEN {
                return Err(start
                    .fault(FaultKind::NameTooLong(skipped.len() as u64))
                    .into_error(unnamed(), total));
            }
        }
        let name = self.name(total, unnamed)?;
        let named = || Place::Field {
            index,
            name: Some(name.clone()),
        };
        let ty = self.field_tag(total, named)?;
        let subtype = self.field_tag(total, named)?;
        let optional = self
            .u8("the optional flag")
            .map_err(|f| f.into_error(named(), total))?;
        Ok(Field {
            name,
            ty,
            subtype,
            optional: optional == 1,
        })
    }

    /// The type tag of the value that starts here, as sent. Only called
    /// where a value was decoded from here, so its four bytes are there.
    #[inline(always)]
    fn wire_tag(&self) -> i32 {
        match self.0.first_chunk::<4>() {
            Some(b) => i32::from_be_bytes(*b),
            None => -1,
        }
    }

    /// Why a value with wire tag `n` cannot stand where `declared` (with
    /// elements `element`, for a container's element) is expected: a tag
    /// Zeek does not have or cannot log is that; another one is a
    /// mismatch.
    #[cold]
    fn misfit(&self, n: i32, declared: TypeTag, element: Option<TypeTag>) -> Fault {
        self.fault(match TypeTag::from_wire(n) {
            None => FaultKind::UnknownType(n),
            Some(tag) if !loggable(tag) => FaultKind::NotLoggable(tag),
            Some(found) => FaultKind::TypeMismatch {
                declared,
                element,
                found,
            },
        })
    }

    /// One `value` (contract §4.4), decoded by its own type tag. `depth`
    /// counts the containers around it. With `CHECK`, the value is a
    /// column's, and its tag must be the column's type `ty` and a set's or
    /// vector's elements' tags the column's `elements`: Zeek's writers
    /// render a value by its own tag, so a COUNT in a TIME column would be
    /// written as a count where readers expect a time. Such a batch is
    /// refused instead. Compared on the wire tag already in hand, the check
    /// costs a compare per value.
    #[inline(always)]
    fn value<const CHECK: bool>(
        &mut self,
        depth: u32,
        ty: TypeTag,
        elements: TypeTag,
    ) -> Result<Value<'a>, Fault> {
        let start = *self;
        // type, subtype (never checked, as in Zeek), present
        let head = self.take::<9>("a value header")?;
        let n = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if CHECK && n != ty as i32 {
            return Err(start.misfit(n, ty, None));
        }
        if head[8] == 1 {
            // The two commonest kinds in Zeek's logs first: a predictable
            // branch instead of the jump table below (15% faster on a
            // conn.log batch).
            match n {
                3 => return Ok(Value::Count(self.u64("a count")?)),
                7 => return Ok(Value::String(self.str("a string")?)),
                _ => {}
            }
        }
        let Some(tag) = TypeTag::from_wire(n) else {
            return Err(start.fault(FaultKind::UnknownType(n)));
        };
        if head[8] != 1 {
            return if loggable(tag) {
                Ok(Value::Unset(tag))
            } else {
                Err(start.fault(FaultKind::NotLoggable(tag)))
            };
        }
        Ok(match tag {
            TypeTag::Bool => Value::Bool(self.u64("a bool")? != 0),
            TypeTag::Int => Value::Int(self.u64("an int")? as i64),
            TypeTag::Count => Value::Count(self.u64("a count")?),
            TypeTag::Double => Value::Double(self.f64("a double")?),
            TypeTag::Time => Value::Time(self.f64("a time")?),
            TypeTag::Interval => Value::Interval(self.f64("an interval")?),
            TypeTag::String => Value::String(self.str("a string")?),
            TypeTag::Enum => Value::Enum(self.str("an enum name")?),
            TypeTag::Func => Value::Func(self.str("a function")?),
            TypeTag::File => Value::File(self.str("a file name")?),
            TypeTag::Port => {
                let number = self.u64("a port number")?;
                let at = *self;
                let proto = match self.i32("a port protocol")? {
                    0 => Proto::Unknown,
                    1 => Proto::Tcp,
                    2 => Proto::Udp,
                    3 => Proto::Icmp,
                    p => return Err(at.fault(FaultKind::PortProto(p))),
                };
                Value::Port { number, proto }
            }
            TypeTag::Addr => Value::Addr(self.addr()?),
            TypeTag::Subnet => {
                let at = *self;
                let wire = self.u8("a subnet prefix")?;
                let addr = self.addr()?;
                let prefix = match addr {
                    IpAddr::V4(_) if (96..=128).contains(&wire) => wire - 96,
                    IpAddr::V6(_) if wire <= 128 => wire,
                    _ => {
                        let family = if addr.is_ipv4() { 4 } else { 6 };
                        return Err(at.fault(FaultKind::Prefix {
                            prefix: wire,
                            family,
                        }));
                    }
                };
                Value::Subnet { addr, prefix }
            }
            TypeTag::Table | TypeTag::Vector => {
                let body = self.elements(start, depth, tag, elements)?;
                if tag == TypeTag::Table {
                    Value::Set(body)
                } else {
                    Value::Vector(body)
                }
            }
            TypeTag::Void
            | TypeTag::Pattern
            | TypeTag::Any
            | TypeTag::Record
            | TypeTag::List
            | TypeTag::Opaque
            | TypeTag::Type
            | TypeTag::Error => return Err(start.fault(FaultKind::NotLoggable(tag))),
        })
    }

    #[inline(always)]
    fn addr(&mut self) -> Result<IpAddr, Fault> {
        let at = *self;
        match self.u8("an address family")? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(
                *self.take::<4>("an IPv4 address")?,
            ))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(
                *self.take::<16>("an IPv6 address")?,
            ))),
            family => Err(at.fault(FaultKind::AddrFamily(family))),
        }
    }

    /// A set's or vector's (`container`'s) count and elements, all
    /// validated and all of type `tag` unless that is `Void`; `start` is
    /// where the container's value began.
    #[inline(never)]
    fn elements(
        &mut self,
        start: Reader<'a>,
        depth: u32,
        container: TypeTag,
        tag: TypeTag,
    ) -> Result<Elements<'a>, Fault> {
        if depth >= MAX_DEPTH {
            return Err(start.fault(FaultKind::TooDeep));
        }
        let at = *self;
        let count = self.u64("an element count")? as i64;
        if count < 0 {
            return Err(at.fault(FaultKind::NegativeCount(count)));
        }
        let count = count as u64;
        if count > self.0.len() as u64 / VALUE_MIN {
            return Err(at.fault(FaultKind::Count {
                what: "elements",
                count,
                min: VALUE_MIN,
            }));
        }
        let body = self.0;
        for _ in 0..count {
            let at = *self;
            self.value::<false>(depth + 1, TypeTag::Void, TypeTag::Void)?;
            if tag != TypeTag::Void && at.wire_tag() != tag as i32 {
                return Err(at.misfit(at.wire_tag(), container, Some(tag)));
            }
        }
        let used = body.len() - self.0.len();
        Ok(Elements {
            body: &body[..used],
            len: count,
        })
    }
}

/// Whether Zeek's logging can produce a value of this type.
fn loggable(tag: TypeTag) -> bool {
    !matches!(
        tag,
        TypeTag::Void
            | TypeTag::Pattern
            | TypeTag::Any
            | TypeTag::Record
            | TypeTag::List
            | TypeTag::Opaque
            | TypeTag::Type
            | TypeTag::Error
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes from hex digits; whitespace is ignored.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Contract §4.6: `Conn::LOG`, 4 columns, 1 record, 219 bytes.
    const WORKED: &str = "
        00 00 00 09 43 6f 6e 6e 3a 3a 4c 4f 47 00 00 00
        11 4c 6f 67 3a 3a 57 52 49 54 45 52 5f 41 53 43
        49 49 00 00 00 07 64 65 66 61 75 6c 74 00 00 00
        04 63 6f 6e 6e 00 00 00 04 00 00 00 00 03 75 69
        64 00 00 00 07 00 00 00 00 00 00 00 00 00 09 69
        64 2e 6f 72 69 67 5f 68 00 00 00 0b 00 00 00 00
        00 00 00 00 00 09 69 64 2e 6f 72 69 67 5f 70 00
        00 00 0a 00 00 00 00 00 00 00 00 00 0a 6f 72 69
        67 5f 62 79 74 65 73 00 00 00 03 00 00 00 00 01
        00 00 00 01 00 00 00 07 00 00 00 00 01 00 00 00
        06 43 41 62 63 31 32 00 00 00 0b 00 00 00 00 01
        04 c0 a8 01 0a 00 00 00 0a 00 00 00 00 01 00 00
        00 00 00 00 c0 00 00 00 00 01 00 00 00 03 00 00
        00 00 01 00 00 00 00 00 00 04 d2";

    /// In WORKED: where the record (after num_records) and its second
    /// value (the addr) start and end.
    const RECORD_AT: usize = 0x94;
    const ADDR_AT: usize = 0xa7;
    const ADDR_END: usize = 0xb5;

    /// Contract §4.8: Zeek's own "roundtrip" vector, 116 bytes.
    const ZEEK_ROUNDTRIP: &str = "
        00 00 00 0c 4c 6f 67 3a 3a 55 4e 4b 4e 4f 57 4e
        00 00 00 10 4c 6f 67 3a 3a 57 52 49 54 45 52 5f
        4e 4f 4e 45 00 00 00 07 64 65 66 61 75 6c 74 00
        00 00 07 6d 79 2d 70 61 74 68 00 00 00 01 00 00
        00 00 02 74 73 00 00 00 05 00 00 00 16 00 00 00
        00 02 00 00 00 05 00 00 00 16 01 3f f0 00 00 00
        00 00 00 00 00 00 05 00 00 00 16 01 40 00 00 00
        00 00 00 00";

    fn put_str(b: &mut Vec<u8>, s: &[u8]) {
        b.extend_from_slice(&(s.len() as u32).to_be_bytes());
        b.extend_from_slice(s);
    }

    /// A header with the given path and one field `x` of type `ty`, then
    /// `num_records` (without the records).
    fn header(path: &[u8], ty: i32, subtype: i32, num_records: u32) -> Vec<u8> {
        let mut b = Vec::new();
        put_str(&mut b, b"Test::LOG");
        put_str(&mut b, b"Log::WRITER_ASCII");
        put_str(&mut b, b"default");
        put_str(&mut b, path);
        b.extend_from_slice(&1u32.to_be_bytes());
        b.push(0);
        put_str(&mut b, b"x");
        b.extend_from_slice(&ty.to_be_bytes());
        b.extend_from_slice(&subtype.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&num_records.to_be_bytes());
        b
    }

    /// A one-field, one-record batch around a value fragment.
    fn one_field(fragment: &str) -> Vec<u8> {
        let value = hex(fragment);
        let ty = i32::from_be_bytes(value[..4].try_into().unwrap());
        let ty = if TypeTag::from_wire(ty).is_some() {
            ty
        } else {
            7
        };
        let mut b = header(b"test", ty, 0, 1);
        b.extend_from_slice(&value);
        b
    }

    /// Decodes a one-field batch around `fragment` and hands its value to
    /// `check`; the batch must hold exactly that one record.
    fn one_value(fragment: &str, check: impl FnOnce(&Value<'_>)) {
        let batch = Batch::parse(Bytes::from(one_field(fragment))).expect("header");
        let mut records = batch.records();
        let mut out = Vec::new();
        assert!(records.next_into(&mut out).expect("record"));
        assert_eq!(out.len(), 1);
        check(&out[0]);
        assert!(!records.next_into(&mut out).expect("end"));
        assert!(out.is_empty());
    }

    /// Reads a whole batch, iterating every container; the first error.
    fn read_all(bytes: Vec<u8>) -> Result<usize, BatchError> {
        fn walk(v: &Value<'_>) -> usize {
            match v {
                Value::Set(e) | Value::Vector(e) => 1 + e.iter().map(|v| walk(&v)).sum::<usize>(),
                _ => 1,
            }
        }
        let batch = Batch::parse(Bytes::from(bytes))?;
        let mut records = batch.records();
        let mut out = Vec::new();
        let mut n = 0;
        while records.next_into(&mut out)? {
            n += out.iter().map(walk).sum::<usize>();
        }
        Ok(n)
    }

    fn value_err(fragment: &str) -> BatchError {
        read_all(one_field(fragment)).expect_err("must be rejected")
    }

    fn field(name: &str, ty: TypeTag, optional: bool) -> Field {
        Field {
            name: name.into(),
            ty,
            subtype: TypeTag::Void,
            optional,
        }
    }

    #[test]
    fn worked_example_decodes_exactly() {
        let bytes = hex(WORKED);
        assert_eq!(bytes.len(), 219);
        let batch = Batch::parse(Bytes::from(bytes)).unwrap();
        let h = batch.header();
        assert_eq!(h.stream, "Conn::LOG");
        assert_eq!(h.writer, "Log::WRITER_ASCII");
        assert_eq!(h.filter, "default");
        assert_eq!(h.path, "conn");
        assert_eq!(
            h.fields,
            vec![
                field("uid", TypeTag::String, false),
                field("id.orig_h", TypeTag::Addr, false),
                field("id.orig_p", TypeTag::Port, false),
                field("orig_bytes", TypeTag::Count, true),
            ]
        );
        assert_eq!(batch.num_records(), 1);

        let mut records = batch.records();
        let mut out = Vec::new();
        assert!(records.next_into(&mut out).unwrap());
        assert_eq!(
            out,
            vec![
                Value::String(b"CAbc12"),
                Value::Addr("192.168.1.10".parse().unwrap()),
                Value::Port {
                    number: 49152,
                    proto: Proto::Tcp
                },
                Value::Count(1234),
            ]
        );
        assert!(!records.next_into(&mut out).unwrap());
        assert!(out.is_empty());
        // Fused after the end.
        assert!(!records.next_into(&mut out).unwrap());
    }

    #[test]
    fn strings_borrow_the_batch() {
        let bytes = Bytes::from(hex(WORKED));
        let range = bytes.as_ptr_range();
        let batch = Batch::parse(bytes).unwrap();
        let mut records = batch.records();
        let mut out = Vec::new();
        records.next_into(&mut out).unwrap();
        let Value::String(s) = out[0] else {
            panic!("not a string: {:?}", out[0])
        };
        assert!(range.contains(&s.as_ptr()));
    }

    #[test]
    fn zeek_roundtrip_vector_decodes() {
        let bytes = hex(ZEEK_ROUNDTRIP);
        assert_eq!(bytes.len(), 116);
        let batch = Batch::parse(Bytes::from(bytes)).unwrap();
        let h = batch.header();
        assert_eq!(
            (&*h.stream, &*h.writer, &*h.filter, &*h.path),
            ("Log::UNKNOWN", "Log::WRITER_NONE", "default", "my-path")
        );
        assert_eq!(
            h.fields,
            vec![Field {
                name: "ts".into(),
                ty: TypeTag::Time,
                subtype: TypeTag::Error,
                optional: false,
            }]
        );
        assert_eq!(batch.num_records(), 2);
        let mut records = batch.records();
        let mut out = Vec::new();
        assert!(records.next_into(&mut out).unwrap());
        assert_eq!(out, vec![Value::Time(1.0)]);
        assert!(records.next_into(&mut out).unwrap());
        assert_eq!(out, vec![Value::Time(2.0)]);
        assert!(!records.next_into(&mut out).unwrap());
    }

    #[test]
    fn fragments_decode() {
        one_value("00 00 00 03 00 00 00 00 00", |v| {
            assert_eq!(*v, Value::Unset(TypeTag::Count))
        });
        one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 01", |v| {
            assert_eq!(*v, Value::Bool(true))
        });
        one_value("00 00 00 02 00 00 00 00 01 ff ff ff ff ff ff ff fe", |v| {
            assert_eq!(*v, Value::Int(-2))
        });
        one_value("00 00 00 06 00 00 00 00 01 3f f8 00 00 00 00 00 00", |v| {
            assert_eq!(*v, Value::Interval(1.5))
        });
        one_value("00 00 00 09 00 00 00 00 01 00 00 00 03 74 63 70", |v| {
            assert_eq!(*v, Value::Enum(b"tcp"))
        });
        one_value(
            "00 00 00 0b 00 00 00 00 01 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01",
            |v| assert_eq!(*v, Value::Addr("2001:db8::1".parse().unwrap())),
        );
        one_value("00 00 00 0c 00 00 00 00 01 68 04 0a 00 00 00", |v| {
            assert_eq!(
                *v,
                Value::Subnet {
                    addr: "10.0.0.0".parse().unwrap(),
                    prefix: 8
                }
            )
        });
        one_value(
            "00 00 00 0c 00 00 00 00 01 20 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00",
            |v| {
                assert_eq!(
                    *v,
                    Value::Subnet {
                        addr: "2001:db8::".parse().unwrap(),
                        prefix: 32
                    }
                )
            },
        );
        one_value(
            "00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 00 00 00 02",
            |v| {
                assert_eq!(
                    *v,
                    Value::Port {
                        number: 53,
                        proto: Proto::Udp
                    }
                )
            },
        );
        one_value(
            "00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 02
             00 00 00 07 00 00 00 00 01 00 00 00 01 61
             00 00 00 07 00 00 00 00 01 00 00 00 01 62",
            |v| {
                let Value::Set(e) = v else {
                    panic!("not a set: {v:?}")
                };
                assert_eq!(e.len(), 2);
                assert_eq!(e.iter().len(), 2);
                let got: Vec<_> = e.iter().collect();
                assert_eq!(got, vec![Value::String(b"a"), Value::String(b"b")]);
            },
        );
        one_value(
            "00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
             00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01
             00 00 00 03 00 00 00 00 00",
            |v| {
                let Value::Vector(e) = v else {
                    panic!("not a vector: {v:?}")
                };
                let got: Vec<_> = e.into_iter().collect();
                assert_eq!(got, vec![Value::Count(1), Value::Unset(TypeTag::Count)]);
            },
        );
        one_value("00 00 00 07 00 00 00 00 01 00 00 00 00", |v| {
            assert_eq!(*v, Value::String(b""))
        });
    }

    #[test]
    fn more_values_decode() {
        // Zeek's subnet test: 0x70 = /16 for IPv4.
        one_value("00 00 00 0c 00 00 00 00 01 70 04 c0 a8 00 00", |v| {
            assert_eq!(
                *v,
                Value::Subnet {
                    addr: "192.168.0.0".parse().unwrap(),
                    prefix: 16
                }
            )
        });
        // IPv4 /0 and /32 on the wire: 96 and 128.
        one_value("00 00 00 0c 00 00 00 00 01 60 04 00 00 00 00", |v| {
            assert!(matches!(v, Value::Subnet { prefix: 0, .. }))
        });
        one_value("00 00 00 0c 00 00 00 00 01 80 04 01 02 03 04", |v| {
            assert!(matches!(v, Value::Subnet { prefix: 32, .. }))
        });
        one_value("00 00 00 03 00 00 00 00 01 ff ff ff ff ff ff ff ff", |v| {
            assert_eq!(*v, Value::Count(u64::MAX))
        });
        one_value("00 00 00 04 00 00 00 00 01 7f f0 00 00 00 00 00 00", |v| {
            assert_eq!(*v, Value::Double(f64::INFINITY))
        });
        one_value("00 00 00 05 00 00 00 00 01 7f f8 00 00 00 00 00 01", |v| {
            let Value::Time(t) = v else { panic!("{v:?}") };
            assert_eq!(t.to_bits(), 0x7ff8_0000_0000_0001);
        });
        one_value("00 00 00 11 00 00 00 00 01 00 00 00 02 66 6e", |v| {
            assert_eq!(*v, Value::Func(b"fn"))
        });
        one_value("00 00 00 12 00 00 00 00 01 00 00 00 01 66", |v| {
            assert_eq!(*v, Value::File(b"f"))
        });
        // Strings are raw bytes: NUL and invalid UTF-8 pass.
        one_value("00 00 00 07 00 00 00 00 01 00 00 00 03 00 ff fe", |v| {
            assert_eq!(*v, Value::String(b"\0\xff\xfe"))
        });
        // An empty vector.
        one_value("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 00", |v| {
            let Value::Vector(e) = v else { panic!("{v:?}") };
            assert!(e.is_empty());
            assert_eq!(e.iter().next(), None);
        });
        // Any value subtype is ignored, even on containers (Zeek's
        // "set with invalid subtype" doctest).
        one_value(
            "00 00 00 0e 00 00 00 ff 01 00 00 00 00 00 00 00 01
             00 00 00 01 00 00 00 16 01 00 00 00 00 00 00 00 00",
            |v| {
                let Value::Set(e) = v else { panic!("{v:?}") };
                assert_eq!(e.iter().collect::<Vec<_>>(), vec![Value::Bool(false)]);
            },
        );
    }

    #[test]
    fn bool_is_true_when_non_zero() {
        one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 ff", |v| {
            assert_eq!(*v, Value::Bool(true))
        });
        one_value("00 00 00 01 00 00 00 00 01 80 00 00 00 00 00 00 00", |v| {
            assert_eq!(*v, Value::Bool(true))
        });
        one_value("00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 00", |v| {
            assert_eq!(*v, Value::Bool(false))
        });
    }

    #[test]
    fn only_0x01_is_present() {
        // Zeek reads a bool byte as true only when it is 1.
        one_value("00 00 00 07 00 00 00 00 02", |v| {
            assert_eq!(*v, Value::Unset(TypeTag::String))
        });
        one_value("00 00 00 07 00 00 00 00 ff", |v| {
            assert_eq!(*v, Value::Unset(TypeTag::String))
        });
    }

    #[test]
    fn cached_headers_are_the_parsed_ones_and_shared() {
        let mut cache = HeaderCache::default();
        let worked = Bytes::from(hex(WORKED));
        let first = Batch::parse_cached(worked.clone(), &mut cache).unwrap();
        let again = Batch::parse_cached(worked.clone(), &mut cache).unwrap();
        let plain = Batch::parse(worked.clone()).unwrap();
        assert!(Arc::ptr_eq(first.shared_header(), again.shared_header()));
        assert_eq!(again.header(), plain.header());
        assert_eq!(again.num_records(), plain.num_records());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(again.records().next_into(&mut a).unwrap());
        assert!(plain.records().next_into(&mut b).unwrap());
        assert_eq!(a, b);
        // Same path, another schema: parsed, not taken from the cache.
        let other = Bytes::from(one_field("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
        let mut renamed = header(b"conn", 7, 0, 1);
        renamed.extend_from_slice(&hex("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
        let renamed = Batch::parse_cached(Bytes::from(renamed), &mut cache).unwrap();
        assert_eq!(renamed.header().fields.len(), 1);
        assert!(!Arc::ptr_eq(renamed.shared_header(), first.shared_header()));
        assert_eq!(
            Batch::parse_cached(other, &mut cache)
                .unwrap()
                .header()
                .path,
            "test"
        );
        // The count after a cached header is still checked.
        let mut short = worked.to_vec();
        short.truncate(RECORD_AT - 2);
        let err = Batch::parse_cached(Bytes::from(short), &mut cache).unwrap_err();
        assert_eq!(err.reason(), "truncated");
        // A batch that ends right after its schema: the same error either way.
        let mut bare = header(b"bare", 3, 0, 0);
        bare.truncate(bare.len() - 4);
        let uncached = Batch::parse(Bytes::from(bare.clone())).unwrap_err();
        let mut warm = HeaderCache::default();
        let mut whole = bare.clone();
        whole.extend_from_slice(&0u32.to_be_bytes());
        Batch::parse_cached(Bytes::from(whole), &mut warm).unwrap();
        let cached = Batch::parse_cached(Bytes::from(bare), &mut warm).unwrap_err();
        assert_eq!(uncached, cached);
        // Bounded: one schema too many empties it.
        for i in 0..HeaderCache::MAX as u32 + 1 {
            let b = header(format!("p{i}").as_bytes(), 3, 0, 0);
            Batch::parse_cached(Bytes::from(b), &mut cache).unwrap();
        }
        assert!(cache.schemas <= HeaderCache::MAX);
    }

    #[test]
    fn a_value_must_have_its_columns_type() {
        // Field `x` says count; the value says string: refused, saying so.
        let mut b = header(b"test", 3, 0, 1);
        b.extend_from_slice(&hex("00 00 00 07 00 00 00 00 01 00 00 00 01 7a"));
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        let mut out = Vec::new();
        let err = batch.records().next_into(&mut out).unwrap_err();
        assert_eq!(err.reason(), "type_mismatch");
        assert_eq!(
            err.to_string(),
            "record 0, field `x`, byte 76: a string value in a column of type count"
        );
        // Unset, it must still carry the column's tag.
        let mut b = header(b"test", 5, 0, 1);
        b.extend_from_slice(&hex("00 00 00 03 00 00 00 00 00"));
        let err = Batch::parse(Bytes::from(b))
            .unwrap()
            .records()
            .next_into(&mut out)
            .unwrap_err();
        assert_eq!(err.reason(), "type_mismatch", "{err}");
    }

    #[test]
    fn elements_must_have_their_columns_element_type() {
        // set[string] column; the second element is a count.
        let mut b = header(b"test", 14, 7, 1);
        b.extend_from_slice(&hex("00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 02
             00 00 00 07 00 00 00 00 01 00 00 00 01 61
             00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01"));
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        let mut out = Vec::new();
        let err = batch.records().next_into(&mut out).unwrap_err();
        assert_eq!(err.reason(), "type_mismatch");
        assert!(
            err.to_string()
                .ends_with("a count element in a column of type set[string]"),
            "{err}"
        );
        // vector[count] with a hole of the right type decodes.
        let mut b = header(b"test", 19, 3, 1);
        b.extend_from_slice(&hex("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
             00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01
             00 00 00 03 00 00 00 00 00"));
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        assert!(batch.records().next_into(&mut out).unwrap());
        let Value::Vector(e) = out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            e.iter().collect::<Vec<_>>(),
            [Value::Count(1), Value::Unset(TypeTag::Count)]
        );
    }

    #[test]
    fn non_optional_column_may_be_unset() {
        // contract §12: id.* of weird.log when the parent record is unset.
        let worked = hex(WORKED);
        let mut b = worked[..ADDR_AT].to_vec();
        b.extend_from_slice(&hex("00 00 00 0b 00 00 00 00 00"));
        b.extend_from_slice(&worked[ADDR_END..]);
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        assert!(!batch.header().fields[1].optional);
        let mut out = Vec::new();
        assert!(batch.records().next_into(&mut out).unwrap());
        assert_eq!(out[1], Value::Unset(TypeTag::Addr));
        assert_eq!(out[3], Value::Count(1234));
    }

    #[test]
    fn field_flags_and_secondary_name() {
        // have_secondary_name = 1 with a name to skip; optional byte 2 is
        // false (only 0x01 is true).
        let mut b = Vec::new();
        for s in [&b"S"[..], b"W", b"f", b"p"] {
            put_str(&mut b, s);
        }
        b.extend_from_slice(&2u32.to_be_bytes());
        b.push(1);
        put_str(&mut b, b"secondary");
        put_str(&mut b, b"tags");
        b.extend_from_slice(&hex("00 00 00 0e 00 00 00 07 02"));
        // §4.7's descriptor of "tags": set[string], &optional.
        b.extend_from_slice(&hex(
            "00 00 00 00 04 74 61 67 73 00 00 00 0e 00 00 00 07 01",
        ));
        b.extend_from_slice(&0u32.to_be_bytes());
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        let set_of_strings = |optional| Field {
            name: "tags".into(),
            ty: TypeTag::Table,
            subtype: TypeTag::String,
            optional,
        };
        assert_eq!(
            batch.header().fields,
            vec![set_of_strings(false), set_of_strings(true)]
        );
        assert_eq!(batch.num_records(), 0);
        assert!(!batch.records().next_into(&mut Vec::new()).unwrap());
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let worked = hex(WORKED);
        for n in 0..worked.len() {
            let err = read_all(worked[..n].to_vec()).expect_err("truncated batch accepted");
            assert_eq!(err.reason(), "truncated", "cut at {n}: {err}");
        }
        assert_eq!(read_all(worked).unwrap(), 4);
    }

    #[test]
    fn truncation_messages_say_where() {
        let worked = hex(WORKED);
        // Inside the last value of record 0.
        let err = read_all(worked[..214].to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 0, field `orig_bytes`, byte 211: truncated: a count needs 8 bytes, 3 left"
        );
        // Too short for any record of 4 values.
        let err = read_all(worked[..RECORD_AT + 15].to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "header num_records, byte 144: 1 records of at least 36 bytes each cannot fit in the 15 bytes left"
        );
        // Inside the name of field descriptor 3.
        let err = Batch::parse(Bytes::from(worked[..0x80].to_vec())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field descriptor 3, byte 125: truncated: a name needs 10 bytes, 3 left"
        );
        // Too short for 4 descriptors.
        let err = Batch::parse(Bytes::from(worked[..0x52].to_vec())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "header num_fields, byte 53: 4 field descriptors of at least 14 bytes each cannot fit in the 25 bytes left"
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut b = hex(WORKED);
        b.extend_from_slice(&[0, 0, 0]);
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        let mut records = batch.records();
        let mut out = Vec::new();
        assert!(records.next_into(&mut out).unwrap());
        let err = records.next_into(&mut out).unwrap_err();
        assert!(
            matches!(err, BatchError::TrailingBytes { count: 3 }),
            "{err}"
        );
        assert_eq!(err.reason(), "trailing_bytes");
        assert!(!records.next_into(&mut out).unwrap());
    }

    #[test]
    fn unknown_and_unloggable_types_are_rejected() {
        let err = value_err("00 00 00 ff 00 00 00 00 01 00");
        assert!(
            matches!(err, BatchError::UnknownType { tag: 255, .. }),
            "{err}"
        );
        assert_eq!(err.reason(), "unknown_type");
        assert_eq!(
            err.to_string(),
            "record 0, field `x`, byte 76: unknown type tag 255"
        );
        // Unknown even when unset.
        let err = value_err("ff ff ff ff 00 00 00 00 00");
        assert!(
            matches!(err, BatchError::UnknownType { tag: -1, .. }),
            "{err}"
        );

        for tag in [0u8, 8, 13, 15, 16, 20, 21, 22] {
            for present in [0u8, 1] {
                let err = value_err(&format!("00 00 00 {tag:02x} 00 00 00 00 {present:02x} 00"));
                assert_eq!(err.reason(), "not_loggable", "tag {tag}: {err}");
            }
        }
        let err = value_err("00 00 00 08 00 00 00 00 01 00 00 00 00");
        assert_eq!(
            err.to_string(),
            "record 0, field `x`, byte 76: a value of type pattern (8) cannot be logged"
        );

        // Field descriptors: any known tag (Zeek's test uses subtype 22),
        // but not an unknown one.
        assert!(Batch::parse(Bytes::from(header(b"p", 15, 22, 0))).is_ok());
        let err = Batch::parse(Bytes::from(header(b"p", 23, 0, 0))).unwrap_err();
        assert!(
            matches!(err, BatchError::UnknownType { tag: 23, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "field descriptor 0 (`x`), byte 60: unknown type tag 23"
        );
        let err = Batch::parse(Bytes::from(header(b"p", 7, -3, 0))).unwrap_err();
        assert!(
            matches!(err, BatchError::UnknownType { tag: -3, .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_addresses_ports_and_subnets_are_rejected() {
        let err = value_err("00 00 00 0b 00 00 00 00 01 05 c0 a8 01 0a");
        assert!(
            matches!(err, BatchError::BadAddrFamily { family: 5, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "record 0, field `x`, byte 85: address family 5 is not 4 or 6"
        );
        let err = value_err("00 00 00 0c 00 00 00 00 01 68 00 0a 00 00 00");
        assert!(
            matches!(err, BatchError::BadAddrFamily { family: 0, .. }),
            "{err}"
        );

        let err = value_err("00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 00 00 00 07");
        assert_eq!(
            err.to_string(),
            "record 0, field `x`, byte 93: port protocol 7 is not 0-3"
        );
        assert_eq!(err.reason(), "bad_port_proto");
        let err = value_err("00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 35 ff ff ff ff");
        assert!(
            matches!(err, BatchError::BadPortProto { proto: -1, .. }),
            "{err}"
        );

        for (prefix, family) in [(0x5f, 4), (0x08, 4), (0x81, 4), (0x81, 6), (0xff, 6)] {
            let addr = if family == 4 {
                "04 0a 00 00 00"
            } else {
                "06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00"
            };
            let err = value_err(&format!("00 00 00 0c 00 00 00 00 01 {prefix:02x} {addr}"));
            assert!(
                matches!(err, BatchError::BadPrefix { prefix: p, family: f, .. } if p == prefix && f == family),
                "{err}"
            );
            assert_eq!(err.reason(), "bad_prefix");
        }
        one_value(
            "00 00 00 0c 00 00 00 00 01 80 06 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 00",
            |v| assert!(matches!(v, Value::Subnet { prefix: 128, .. })),
        );
    }

    #[test]
    fn bad_lengths_and_counts_are_rejected() {
        let err = value_err("00 00 00 07 00 00 00 00 01 ff ff ff ff 61");
        assert!(
            matches!(err, BatchError::NegativeLength { len: -1, .. }),
            "{err}"
        );
        assert_eq!(err.reason(), "negative_length");
        let err = value_err("00 00 00 07 00 00 00 00 01 80 00 00 00 61");
        assert!(matches!(err, BatchError::NegativeLength { .. }), "{err}");
        // Longer than what is left (Zeek's "string beyond input").
        let err = value_err("00 00 00 07 00 00 00 00 01 00 00 00 05 61");
        assert_eq!(err.reason(), "truncated", "{err}");

        let err = value_err("00 00 00 13 00 00 00 00 01 ff ff ff ff ff ff ff ff");
        assert!(
            matches!(err, BatchError::NegativeCount { count: -1, .. }),
            "{err}"
        );
        assert_eq!(err.reason(), "negative_count");
        // A huge count is refused before anything is read or allocated.
        let err = value_err("00 00 00 0e 00 00 00 00 01 7f ff ff ff ff ff ff ff");
        assert!(
            matches!(err, BatchError::CountTooLarge { left: 0, .. }),
            "{err}"
        );
        // Two elements announced, one present (Zeek's truncated container).
        let err = value_err(
            "00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 02
             00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 01",
        );
        assert_eq!(err.reason(), "truncated", "{err}");
        // An element that is itself bad is found at decode time.
        let err = value_err(
            "00 00 00 0e 00 00 00 00 01 00 00 00 00 00 00 00 01
             00 00 00 0b 00 00 00 00 01 07 00 00 00 00",
        );
        assert!(
            matches!(err, BatchError::BadAddrFamily { family: 7, .. }),
            "{err}"
        );
    }

    /// A vector nested `levels` deep around one count.
    fn nested(levels: usize) -> String {
        let mut s = String::new();
        for _ in 0..levels {
            s.push_str("00 00 00 13 00 00 00 00 01 00 00 00 00 00 00 00 01 ");
        }
        s + "00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 2a"
    }

    #[test]
    fn nesting_is_bounded() {
        one_value(&nested(MAX_DEPTH as usize), |v| {
            let mut v = *v;
            let mut levels = 0;
            while let Value::Vector(e) = v {
                assert_eq!(e.len(), 1);
                v = e.iter().next().unwrap();
                levels += 1;
            }
            assert_eq!(levels, MAX_DEPTH);
            assert_eq!(v, Value::Count(42));
        });
        let err = value_err(&nested(MAX_DEPTH as usize + 1));
        assert_eq!(err.reason(), "too_deep", "{err}");
    }

    #[test]
    fn bad_paths_are_rejected() {
        let long = vec![b'a'; MAX_PATH_LEN + 1];
        for (path, why) in [
            (&b""[..], "empty"),
            (b"../conn", "'.'"),
            (b".hidden", "'.'"),
            (b"a/b", "'/'"),
            (b"/etc/passwd", "'/'"),
            (b"co\0nn", "NUL"),
            (b"conn\xff", "UTF-8"),
            (&long, "200"),
        ] {
            let err = Batch::parse(Bytes::from(header(path, 7, 0, 0))).unwrap_err();
            assert_eq!(err.reason(), "bad_path", "{path:?}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(why), "{path:?}: {msg}");
        }
        let max = vec![b'a'; MAX_PATH_LEN];
        for path in [&b"conn"[..], b"my-path", b"dns.2024", b"x", &max] {
            let batch = Batch::parse(Bytes::from(header(path, 7, 0, 0))).unwrap();
            assert_eq!(batch.header().path.as_bytes(), path);
        }
    }

    #[test]
    fn header_limits() {
        // Non-UTF-8 stream name.
        let mut b = Vec::new();
        put_str(&mut b, b"Conn\xc3");
        let err = Batch::parse(Bytes::from(b)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "header stream name, byte 4: name is not UTF-8"
        );
        assert_eq!(err.reason(), "not_utf8");

        // A name over MAX_NAME_LEN, even though the bytes are there.
        let mut b = Vec::new();
        put_str(&mut b, &vec![b'a'; MAX_NAME_LEN + 1]);
        let err = Batch::parse(Bytes::from(b)).unwrap_err();
        assert_eq!(err.reason(), "too_large", "{err}");

        // num_fields over the limit, and num_fields beyond the input.
        let mut b = header(b"p", 7, 0, 0);
        let at = b.len() - 4 - 15 - 4;
        b[at..at + 4].copy_from_slice(&(MAX_FIELDS + 1).to_be_bytes());
        let err = Batch::parse(Bytes::from(b.clone())).unwrap_err();
        assert!(matches!(err, BatchError::TooLarge { .. }), "{err}");
        b[at..at + 4].copy_from_slice(&2u32.to_be_bytes());
        let err = Batch::parse(Bytes::from(b)).unwrap_err();
        assert!(
            matches!(err, BatchError::CountTooLarge { count: 2, .. }),
            "{err}"
        );

        // num_records beyond the input is refused by the header.
        let err = Batch::parse(Bytes::from(header(b"p", 7, 0, u32::MAX))).unwrap_err();
        assert!(
            matches!(
                err,
                BatchError::CountTooLarge {
                    count: 0xffff_ffff,
                    min: 9,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.reason(), "truncated");

        // No fields: zero records is fine, any record is not.
        let mut b = Vec::new();
        for s in [&b"S"[..], b"W", b"f", b"p"] {
            put_str(&mut b, s);
        }
        b.extend_from_slice(&0u32.to_be_bytes());
        let mut none = b.clone();
        none.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(read_all(none).unwrap(), 0);
        b.extend_from_slice(&1u32.to_be_bytes());
        let err = Batch::parse(Bytes::from(b)).unwrap_err();
        assert!(
            matches!(err, BatchError::NoFields { num_records: 1 }),
            "{err}"
        );
    }

    #[test]
    fn after_an_error_the_batch_is_done() {
        let mut b = header(b"p", 3, 0, 2);
        b.extend_from_slice(&hex("00 00 00 03 00 00 00 00 01 00 00 00 00 00 00 00 01"));
        b.extend_from_slice(&hex(
            "00 00 00 0a 00 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00 09",
        ));
        let batch = Batch::parse(Bytes::from(b)).unwrap();
        let mut records = batch.records();
        let mut out = Vec::new();
        assert!(records.next_into(&mut out).unwrap());
        assert_eq!(out, vec![Value::Count(1)]);
        let err = records.next_into(&mut out).unwrap_err();
        assert!(err.to_string().starts_with("record 1, field `x`"), "{err}");
        assert!(out.is_empty());
        assert!(!records.next_into(&mut out).unwrap());
    }
}
