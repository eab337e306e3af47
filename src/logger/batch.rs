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

use self::reader::{Fault, Reader};
use super::value::{Elements, Field, Header, Proto, TypeTag, Value};

mod reader;

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
    Field {
        /// Its index, from 0.
        index: u32,
        /// Its name, once read.
        name: Option<String>,
    },
    /// The value of column `field` in record `record` (from 0).
    Value {
        /// The record, from 0.
        record: u32,
        /// The column's name.
        field: String,
    },
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
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Bytes left.
        left: usize,
    },
    /// A count announces more items than the remaining bytes could hold.
    #[error(
        "{at}, byte {offset}: {count} {what} of at least {min} bytes each cannot fit in the {left} bytes left"
    )]
    CountTooLarge {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// What is counted.
        what: &'static str,
        /// The count as sent.
        count: u64,
        /// The fewest bytes one item takes.
        min: u64,
        /// Bytes left.
        left: usize,
    },
    /// A string length that is negative as an `i32` (Zeek rejects those).
    #[error("{at}, byte {offset}: string length {len} is negative")]
    NegativeLength {
        /// Where in the batch.
        at: Place,

        /// The offending item's byte offset.
        offset: usize,

        /// The length as sent.
        len: i32,
    },
    /// A negative set or vector element count.
    #[error("{at}, byte {offset}: element count {count} is negative")]
    NegativeCount {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The count as sent.
        count: i64,
    },
    /// A name or count above this decoder's limits.
    #[error("{at}, byte {offset}: {what} {value} is over the limit of {max}")]
    TooLarge {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// What is too large.
        what: &'static str,
        /// The value as sent.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// Records announced in a batch that has no fields to hold them.
    #[error("header num_records: {num_records} records announced but the batch has no fields")]
    NoFields {
        /// Records announced.
        num_records: u32,
    },
    /// A type number Zeek does not have.
    #[error("{at}, byte {offset}: unknown type tag {tag}")]
    UnknownType {
        /// Where in the batch.
        at: Place,

        /// The offending item's byte offset.
        offset: usize,

        /// The tag as sent.
        tag: i32,
    },
    /// A value of a type Zeek cannot log (pattern, any, record, ...).
    #[error("{at}, byte {offset}: a value of type {} ({}) cannot be logged", .tag.zeek_name(), *.tag as i32)]
    NotLoggable {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The type.
        tag: TypeTag,
    },
    /// An address family byte other than 4 or 6.
    #[error("{at}, byte {offset}: address family {family} is not 4 or 6")]
    BadAddrFamily {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The family byte as sent.
        family: u8,
    },
    /// A subnet prefix length out of range (IPv4's is sent as 96 + length).
    #[error("{at}, byte {offset}: subnet prefix {prefix} is out of range for IPv{family} ({})",
        if *.family == 4 { "96-128 on the wire" } else { "0-128" })]
    BadPrefix {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The prefix length as sent.
        prefix: u8,
        /// The address family (4 or 6).
        family: u8,
    },
    /// A port's transport protocol other than 0 (unknown), tcp, udp, icmp.
    #[error("{at}, byte {offset}: port protocol {proto} is not 0-3")]
    BadPortProto {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The protocol number as sent.
        proto: i32,
    },
    /// Sets and vectors nested deeper than [`MAX_DEPTH`].
    #[error("{at}, byte {offset}: containers nested more than {MAX_DEPTH} deep")]
    TooDeep {
        /// Where in the batch.
        at: Place,

        /// The offending item's byte offset.
        offset: usize,
    },
    /// A stream, writer, filter or field name that is not UTF-8.
    #[error("{at}, byte {offset}: name is not UTF-8")]
    NotUtf8 {
        /// Where in the batch.
        at: Place,

        /// The offending item's byte offset.
        offset: usize,
    },
    /// A `path` that cannot safely be a file name.
    #[error("header path `{path}` cannot be a file name: {why}")]
    BadPath {
        /// The path, escaped and shortened for printing.
        path: String,
        /// Why not.
        why: &'static str,
    },
    /// Bytes after the last record.
    #[error("{count} bytes left over after the last record")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A value (or a set's or vector's element) whose type tag is not the
    /// one its column declares.
    #[error("{at}, byte {offset}: a {} {} in a column of type {column}",
        .found.zeek_name(), if *.element { "element" } else { "value" })]
    TypeMismatch {
        /// Where in the batch.
        at: Place,
        /// The offending item's byte offset.
        offset: usize,
        /// The column's type as `#types` names it, e.g. `set[string]`.
        column: String,
        /// The type tag found.
        found: TypeTag,
        /// Whether it was an element of a set or vector.
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
/// [`Batch::parse_cached`]. Kept per path, a few schemas each, and
/// bounded in count and bytes: a sender inventing schemas, or sending
/// huge ones, costs parsing, never memory.
#[derive(Debug, Default)]
pub struct HeaderCache {
    by_path: HashMap<Box<[u8]>, Vec<CachedHeader>>,
    schemas: usize,
    /// Header bytes held, summed over `by_path`.
    bytes: usize,
}

/// A header and the bytes it was parsed from.
#[derive(Debug)]
struct CachedHeader {
    raw: Box<[u8]>,
    header: Arc<Header>,
}

impl HeaderCache {
    /// Most headers kept; one more empties the cache.
    pub const MAX: usize = 1024;
    /// Most header bytes kept (the parsed names take about as much again);
    /// one more empties the cache. Real headers are 1 to 2 KiB.
    pub const MAX_BYTES: usize = 8 << 20;
    /// Headers larger than this are parsed each time, not kept.
    pub const MAX_HEADER_BYTES: usize = 64 << 10;
    /// Schemas kept per path (a node sends one per path; a rolling
    /// upgrade two); a new one replaces the oldest, so that finding a
    /// header stays a short scan.
    pub const MAX_PER_PATH: usize = 4;

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
        if raw.len() > Self::MAX_HEADER_BYTES {
            return;
        }
        if self.schemas >= Self::MAX || self.bytes + raw.len() > Self::MAX_BYTES {
            self.by_path.clear();
            self.schemas = 0;
            self.bytes = 0;
        }
        let Some(path) = peek_path(raw) else {
            return;
        };
        let kept = self.by_path.entry(path.into()).or_default();
        if kept.len() >= Self::MAX_PER_PATH {
            let oldest = kept.remove(0);
            self.schemas -= 1;
            self.bytes -= oldest.raw.len();
        }
        kept.push(CachedHeader {
            raw: raw.into(),
            header,
        });
        self.schemas += 1;
        self.bytes += raw.len();
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

#[cfg(test)]
mod tests;
