//! Protobuf wire primitives: varints, fields, and the codecs the hand-written messages use.
//!
//! Only what the ESPHome messages need: varint (`uint32`, `int32`, `bool`, enums), `fixed32`
//! (`key`), `float`, length-delimited (`string`, packed repeated enums). Unknown fields of any
//! wire type are skipped; a truncated or malformed buffer is an error, never a panic.

/// Why a protobuf payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload ends inside a field.
    #[error("the payload ends inside field {field}")]
    Truncated {
        /// The field number being read (0 for a tag).
        field: u32,
    },
    /// A varint runs over 10 bytes.
    #[error("a varint is longer than 10 bytes")]
    VarintTooLong,
    /// A tag names field number 0 or one too large.
    #[error("invalid field number {0}")]
    BadFieldNumber(u64),
    /// A wire type protobuf does not have (groups included, which proto3 never sends).
    #[error("field {field} has unsupported wire type {wire_type}")]
    BadWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A known field arrives with another wire type than its declared type.
    #[error("field {field} has wire type {found}, expected {expected}")]
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        found: u8,
        /// The wire type of the declared type.
        expected: u8,
    },
    /// A string field is not UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field number.
        field: u32,
    },
}

/// Wire type of varints.
pub(crate) const VARINT: u8 = 0;
/// Wire type of 64-bit fixed values.
pub(crate) const FIXED64: u8 = 1;
/// Wire type of length-delimited values.
pub(crate) const LEN: u8 = 2;
/// Wire type of 32-bit fixed values.
pub(crate) const FIXED32: u8 = 5;

/// Appends `v` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at the start of `buf`: its value and its length, `Ok(None)` when `buf` ends
/// first (more bytes may come), an error when it runs over 10 bytes.
pub(crate) fn get_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, DecodeError> {
    let mut v: u64 = 0;
    for (i, b) in buf.iter().enumerate() {
        if i >= 10 {
            return Err(DecodeError::VarintTooLong);
        }
        v |= u64::from(b & 0x7f) << (7 * i as u32);
        if b & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if buf.len() >= 10 { Err(DecodeError::VarintTooLong) } else { Ok(None) }
}

/// One field's value as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

impl Wire<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Wire::Varint(_) => VARINT,
            Wire::Fixed64(_) => FIXED64,
            Wire::Len(_) => LEN,
            Wire::Fixed32(_) => FIXED32,
        }
    }
}

/// Reads the fields of a message one by one.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn varint(&mut self, field: u32) -> Result<u64, DecodeError> {
        match get_varint(self.buf)? {
            Some((v, n)) => {
                self.buf = self.buf.get(n..).unwrap_or_default();
                Ok(v)
            }
            None => Err(DecodeError::Truncated { field }),
        }
    }

    fn take(&mut self, n: usize, field: u32) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next field, or `None` at the end.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, DecodeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let tag = self.varint(0)?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::BadFieldNumber(number));
        }
        let field = number as u32;
        let value = match (tag & 7) as u8 {
            VARINT => Wire::Varint(self.varint(field)?),
            FIXED64 => {
                let b = self.take(8, field)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Wire::Fixed64(u64::from_le_bytes(a))
            }
            LEN => {
                let len = self.varint(field)?;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated { field })?;
                Wire::Len(self.take(len, field)?)
            }
            FIXED32 => {
                let b = self.take(4, field)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Wire::Fixed32(u32::from_le_bytes(a))
            }
            wire_type => return Err(DecodeError::BadWireType { field, wire_type }),
        };
        Ok(Some((field, value)))
    }
}

fn wrong(field: u32, found: &Wire<'_>, expected: u8) -> DecodeError {
    DecodeError::WrongWireType { field, found: found.wire_type(), expected }
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// How one field type is read and written. Encoding leaves out default values, as proto3 does,
/// except for `fixed32` keys, which ESPHome always sends.
pub(crate) trait Codec<T> {
    fn merge(value: &mut T, field: u32, wire: Wire<'_>) -> Result<(), DecodeError>;
    fn encode(value: &T, field: u32, out: &mut Vec<u8>);
}

/// `uint32` and enums.
pub(crate) struct Uint32;
impl Codec<u32> for Uint32 {
    fn merge(value: &mut u32, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Varint(v) => {
                *value = v as u32;
                Ok(())
            }
            w => Err(wrong(field, &w, VARINT)),
        }
    }
    fn encode(value: &u32, field: u32, out: &mut Vec<u8>) {
        if *value != 0 {
            tag(out, field, VARINT);
            put_varint(out, u64::from(*value));
        }
    }
}

/// `int32` (negative values as 10-byte varints).
pub(crate) struct Int32;
impl Codec<i32> for Int32 {
    fn merge(value: &mut i32, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Varint(v) => {
                *value = v as i32;
                Ok(())
            }
            w => Err(wrong(field, &w, VARINT)),
        }
    }
    fn encode(value: &i32, field: u32, out: &mut Vec<u8>) {
        if *value != 0 {
            tag(out, field, VARINT);
            put_varint(out, i64::from(*value) as u64);
        }
    }
}

/// `bool`.
pub(crate) struct Bool;
impl Codec<bool> for Bool {
    fn merge(value: &mut bool, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Varint(v) => {
                *value = v != 0;
                Ok(())
            }
            w => Err(wrong(field, &w, VARINT)),
        }
    }
    fn encode(value: &bool, field: u32, out: &mut Vec<u8>) {
        if *value {
            tag(out, field, VARINT);
            out.push(1);
        }
    }
}

/// `fixed32` (entity keys): always written.
pub(crate) struct Fixed32;
impl Codec<u32> for Fixed32 {
    fn merge(value: &mut u32, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Fixed32(v) => {
                *value = v;
                Ok(())
            }
            w => Err(wrong(field, &w, FIXED32)),
        }
    }
    fn encode(value: &u32, field: u32, out: &mut Vec<u8>) {
        tag(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// `float`.
pub(crate) struct Float;
impl Codec<f32> for Float {
    fn merge(value: &mut f32, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Fixed32(v) => {
                *value = f32::from_bits(v);
                Ok(())
            }
            w => Err(wrong(field, &w, FIXED32)),
        }
    }
    fn encode(value: &f32, field: u32, out: &mut Vec<u8>) {
        if value.to_bits() != 0 {
            tag(out, field, FIXED32);
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
}

/// `string`.
pub(crate) struct Str;
impl Codec<String> for Str {
    fn merge(value: &mut String, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Len(b) => {
                *value = std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { field })?.to_owned();
                Ok(())
            }
            w => Err(wrong(field, &w, LEN)),
        }
    }
    fn encode(value: &String, field: u32, out: &mut Vec<u8>) {
        if !value.is_empty() {
            tag(out, field, LEN);
            put_varint(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// `repeated string`: one field per element.
pub(crate) struct Strings;
impl Codec<Vec<String>> for Strings {
    fn merge(value: &mut Vec<String>, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        let mut s = String::new();
        Str::merge(&mut s, field, wire)?;
        value.push(s);
        Ok(())
    }
    fn encode(value: &Vec<String>, field: u32, out: &mut Vec<u8>) {
        for s in value {
            tag(out, field, LEN);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// `repeated` enums: read packed or one per field, written packed.
pub(crate) struct Enums;
impl Codec<Vec<u32>> for Enums {
    fn merge(value: &mut Vec<u32>, field: u32, wire: Wire<'_>) -> Result<(), DecodeError> {
        match wire {
            Wire::Varint(v) => {
                value.push(v as u32);
                Ok(())
            }
            Wire::Len(mut b) => {
                while !b.is_empty() {
                    let (v, n) = get_varint(b)?.ok_or(DecodeError::Truncated { field })?;
                    value.push(v as u32);
                    b = b.get(n..).unwrap_or_default();
                }
                Ok(())
            }
            w => Err(wrong(field, &w, LEN)),
        }
    }
    fn encode(value: &Vec<u32>, field: u32, out: &mut Vec<u8>) {
        if value.is_empty() {
            return;
        }
        let mut packed = Vec::new();
        for v in value {
            put_varint(&mut packed, u64::from(*v));
        }
        tag(out, field, LEN);
        put_varint(out, packed.len() as u64);
        out.extend_from_slice(&packed);
    }
}
