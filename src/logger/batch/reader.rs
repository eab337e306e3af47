//! Reading the primitives and values of a batch, with faults that say what
//! was wrong; the place is added by the caller once something fails.

use super::*;

/// What went wrong while reading, without the place: values are decoded in
/// a tight loop, and the place (which needs the field's name) is worked out
/// only once something fails.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fault {
    /// Bytes left in the batch where the offending item starts.
    pub(super) left: usize,
    pub(super) kind: FaultKind,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum FaultKind {
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
    pub(super) fn into_error(self, at: Place, total: usize) -> BatchError {
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
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn offset(&self, total: usize) -> usize {
        total.saturating_sub(self.0.len())
    }

    #[cold]
    pub(super) fn fault(&self, kind: FaultKind) -> Fault {
        Fault {
            left: self.0.len(),
            kind,
        }
    }

    #[inline(always)]
    pub(super) fn take<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<&'a [u8; N], Fault> {
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
    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, Fault> {
        Ok(self.take::<1>(what)?[0])
    }

    #[inline(always)]
    pub(super) fn i32(&mut self, what: &'static str) -> Result<i32, Fault> {
        Ok(i32::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32, Fault> {
        Ok(u32::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, Fault> {
        Ok(u64::from_be_bytes(*self.take(what)?))
    }

    #[inline(always)]
    pub(super) fn f64(&mut self, what: &'static str) -> Result<f64, Fault> {
        Ok(f64::from_be_bytes(*self.take(what)?))
    }

    /// A `str`: u32 length, then that many bytes.
    #[inline(always)]
    pub(super) fn str(&mut self, what: &'static str) -> Result<&'a [u8], Fault> {
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
    pub(super) fn name(
        &mut self,
        total: usize,
        at: impl Fn() -> Place,
    ) -> Result<String, BatchError> {
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
    pub(super) fn path(&mut self, total: usize) -> Result<String, BatchError> {
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
    pub(super) fn field_tag(
        &mut self,
        total: usize,
        at: impl Fn() -> Place,
    ) -> Result<TypeTag, BatchError> {
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

    pub(super) fn field(&mut self, total: usize, index: u32) -> Result<Field, BatchError> {
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
    pub(super) fn wire_tag(&self) -> i32 {
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
    pub(super) fn misfit(&self, n: i32, declared: TypeTag, element: Option<TypeTag>) -> Fault {
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
    pub(super) fn value<const CHECK: bool>(
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
    pub(super) fn addr(&mut self) -> Result<IpAddr, Fault> {
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
    pub(super) fn elements(
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
pub(super) fn loggable(tag: TypeTag) -> bool {
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
