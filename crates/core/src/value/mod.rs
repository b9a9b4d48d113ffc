//! Typed values: what one key holds. A key holds exactly one [`Value`], of
//! one [`ValueType`], with one TTL kept beside it by whoever stores it.
//!
//! # Contract
//!
//! - **Memory.** Every value knows its [`Value::heap_bytes`] in O(1): the
//!   payload bytes of its elements plus a fixed overhead per element
//!   ([`ELEMENT_OVERHEAD_BYTES`]), kept up to date by every mutation, so a
//!   store can count a value against a byte limit after each operation
//!   without walking it. The figure is an accounting rule, not the
//!   allocator's exact usage: the same elements always count the same,
//!   whatever order the operations came in.
//! - **Containers are never empty.** A hash, list, set or sorted set with no
//!   element is no value at all: the key layer deletes it (as Redis does),
//!   so `EXISTS` and `TYPE` never see an empty container.
//! - **Encoding.** [`encode`] and [`decode`] give a compact, versioned,
//!   checksummed byte form of one value for snapshots and handoff; see
//!   [`encoding`]. [`Value::encoded_len`] gives its length in O(1), from
//!   figures every mutation keeps (`Footprint`), so that a store can
//!   hold a value to a size limit without encoding it.

pub mod encoding;
mod hash;
mod list;
mod ranked;
mod set;
pub mod stored;
pub mod stream;
mod zset;

pub use encoding::{DecodeError, decode, encode};
pub use hash::{HashValue, LISTPACK_MAX_FIELDS as HASH_LISTPACK_MAX_FIELDS};
pub use list::ListValue;
pub use set::SetValue;
pub use stream::{StreamId, StreamValue};
pub use zset::{Score, ScoreError, ZSetValue};

/// Bytes counted for each element of a container (and each field/value pair
/// of a hash) on top of its payload: roughly what a `Bytes` handle and its
/// slot in the container cost. One constant, so that accounting is
/// predictable and the same on every node.
pub const ELEMENT_OVERHEAD_BYTES: usize = 48;

/// What a container's elements add up to, kept by every mutation so that
/// both figures are O(1): the accounting rule ([`Value::heap_bytes`]) and
/// the bytes the elements take in [`encoding`] (length prefixes included),
/// from which a container's encoded length follows without encoding it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// Payload plus [`ELEMENT_OVERHEAD_BYTES`] per element.
    pub(crate) heap: usize,
    /// The elements' encoding.
    pub(crate) encoded: usize,
}

impl Footprint {
    /// The footprint of one element made of `parts` (a hash's field and
    /// value, a member...), each encoded with a length prefix, plus
    /// `fixed` bytes encoded as they are (a sorted set's score).
    pub(crate) fn of(parts: &[&[u8]], fixed: usize) -> Footprint {
        let payload: usize = parts.iter().map(|p| p.len()).sum::<usize>() + fixed;
        let prefixes: usize = parts
            .iter()
            .map(|p| encoding::varint_len(p.len() as u64))
            .sum();
        Footprint {
            heap: payload + ELEMENT_OVERHEAD_BYTES,
            encoded: payload + prefixes,
        }
    }

    /// The length of a container's encoding with `count` elements of this
    /// total footprint: version and tag, the count, the elements, the CRC.
    pub(crate) fn encoded_len(self, count: usize) -> usize {
        2 + encoding::varint_len(count as u64) + self.encoded + 4
    }
}

impl std::ops::Add for Footprint {
    type Output = Footprint;
    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            heap: self.heap + other.heap,
            encoded: self.encoded + other.encoded,
        }
    }
}

impl std::ops::Sub for Footprint {
    type Output = Footprint;
    fn sub(self, other: Footprint) -> Footprint {
        Footprint {
            heap: self.heap - other.heap,
            encoded: self.encoded - other.encoded,
        }
    }
}

impl std::ops::AddAssign for Footprint {
    fn add_assign(&mut self, other: Footprint) {
        *self = *self + other;
    }
}

impl std::ops::SubAssign for Footprint {
    fn sub_assign(&mut self, other: Footprint) {
        *self = *self - other;
    }
}

/// The type of a value, as Redis's `TYPE` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Bytes (including counters and JSON stored through `/data`).
    String,
    /// Field → value.
    Hash,
    /// Ordered sequence.
    List,
    /// Unordered distinct members.
    Set,
    /// Members ordered by score, then by member bytes.
    ZSet,
    /// Entries ordered by ID, with consumer groups.
    Stream,
}

impl ValueType {
    /// The name `TYPE` answers and `SCAN ... TYPE` matches.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Hash => "hash",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Stream => "stream",
        }
    }

    /// The type named `name` (ASCII case-insensitive), as `SCAN ... TYPE` takes it.
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        [
            ValueType::String,
            ValueType::Hash,
            ValueType::List,
            ValueType::Set,
            ValueType::ZSet,
            ValueType::Stream,
        ]
        .into_iter()
        .find(|t| t.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A string value: bytes, and whether they are JSON text stored through
/// `/data` (so that `/data` gives back the same JSON value rather than a
/// JSON string of the text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrValue {
    /// The bytes. A `Vec` rather than `Bytes` because APPEND and SETRANGE
    /// grow it in place.
    pub bytes: Vec<u8>,
    /// Stored through `/data` as a JSON value. Any command that changes the
    /// bytes clears it: what a command writes is a plain string.
    pub json: bool,
}

impl StrValue {
    /// A plain (non-JSON) string.
    pub fn plain(bytes: impl Into<Vec<u8>>) -> StrValue {
        StrValue {
            bytes: bytes.into(),
            json: false,
        }
    }
}

/// What one key holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(StrValue),
    /// A hash.
    Hash(HashValue),
    /// A list.
    List(ListValue),
    /// A set.
    Set(SetValue),
    /// A sorted set.
    ZSet(ZSetValue),
    /// A stream (boxed: its maps and counters would double every value's size).
    Stream(Box<StreamValue>),
}

impl Value {
    /// A plain string value.
    pub fn string(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Str(StrValue::plain(bytes))
    }

    /// Its type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
            Value::Hash(_) => ValueType::Hash,
            Value::List(_) => ValueType::List,
            Value::Set(_) => ValueType::Set,
            Value::ZSet(_) => ValueType::ZSet,
            Value::Stream(_) => ValueType::Stream,
        }
    }

    /// Bytes this value counts for (see the module's contract). O(1).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.bytes.len(),
            Value::Hash(h) => h.heap_bytes(),
            Value::List(l) => l.heap_bytes(),
            Value::Set(s) => s.heap_bytes(),
            Value::ZSet(z) => z.heap_bytes(),
            Value::Stream(s) => s.heap_bytes(),
        }
    }

    /// The length of [`encode`]'s output for this value, in O(1).
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Str(s) => 2 + encoding::varint_len(s.bytes.len() as u64) + s.bytes.len() + 4,
            Value::Hash(h) => h.footprint().encoded_len(h.len()),
            Value::List(l) => l.footprint().encoded_len(l.len()),
            Value::Set(s) => s.footprint().encoded_len(s.len()),
            Value::ZSet(z) => z.footprint().encoded_len(z.len()),
            Value::Stream(s) => s.encoded_len(),
        }
    }

    /// Whether this is a container with no element left (which the key
    /// layer must delete). A string is never "empty" in this sense: an
    /// empty string is a value; nor is a stream, which stays when its last
    /// entry goes, as in Redis.
    pub fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            Value::Stream(_) => false,
        }
    }
}
