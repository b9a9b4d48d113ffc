//! The stored form of a value: the bytes an auxiliary's store, its
//! snapshots, its mutation log, handoff and backups carry for a key.
//!
//! One byte string says what it holds by its first byte, so that every
//! path that moved `/data`'s JSON before moves typed values unchanged:
//!
//! | first byte | holds |
//! |---|---|
//! | `0x00` | a plain string (written by a command): the bytes after it |
//! | `0x01` | any value in [`super::encoding`] (its version byte, type tag, body, checksum) |
//! | anything else | JSON text stored through `/data` |
//!
//! JSON text never starts with `0x00` or `0x01` (it starts with a value or
//! with JSON whitespace), and `/data` stores only JSON it has parsed, so
//! the three never collide. A plain string costs one byte over its
//! content; collections carry the encoding's checksum.
//!
//! What commands see of JSON (see docs/commands.md, "`/data` and commands"):
//! a JSON string is its text (`"héllo"` reads as `héllo`, the same as
//! `SET k héllo`); any other JSON value is a string of its JSON text,
//! flagged [`StrValue::json`] so that it is stored back unchanged until a
//! command changes its bytes.

use super::encoding::{self, DecodeError};
use super::{StrValue, Value, ValueType};

/// First byte of a plain string.
pub const PLAIN_STRING: u8 = 0x00;

/// First byte of an encoded value: [`encoding::VERSION`].
pub const ENCODED: u8 = encoding::VERSION;

/// The kind of a stored byte string, from its first byte alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredKind {
    /// JSON text stored through `/data`.
    Json,
    /// A plain string.
    Plain,
    /// A value in the encoding: a collection (or, from a peer, a string).
    Encoded,
}

/// What `stored` holds, without decoding it.
pub fn kind(stored: &[u8]) -> StoredKind {
    match stored.first() {
        Some(&PLAIN_STRING) => StoredKind::Plain,
        Some(&ENCODED) => StoredKind::Encoded,
        _ => StoredKind::Json,
    }
}

/// The type of the stored value; an encoded one is told by its tag byte.
pub fn value_type(stored: &[u8]) -> Option<ValueType> {
    match kind(stored) {
        StoredKind::Json | StoredKind::Plain => Some(ValueType::String),
        StoredKind::Encoded => encoding::type_of(stored),
    }
}

/// The stored form of `value`.
pub fn to_stored(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(value));
    encode_into(value, &mut out);
    out
}

/// Appends the stored form of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Str(s) if s.json => out.extend_from_slice(&s.bytes),
        Value::Str(s) => {
            out.push(PLAIN_STRING);
            out.extend_from_slice(&s.bytes);
        }
        other => encoding::encode(other, out),
    }
}

/// The length of `to_stored(value)`, in O(1).
pub fn stored_len(value: &Value) -> usize {
    match value {
        Value::Str(s) if s.json => s.bytes.len(),
        Value::Str(s) => 1 + s.bytes.len(),
        other => other.encoded_len(),
    }
}

/// The length `MAX_VALUE_BYTES` bounds: [`stored_len`], less a stream's
/// pending entries. XREADGROUP adds those as it reads, which Redis never
/// refuses for memory; a stream at the limit must still be read,
/// acknowledged and trimmed. The node's `CACHE_MAX_BYTES` still counts all
/// of it.
pub fn limited_len(value: &Value) -> usize {
    match value {
        Value::Stream(s) => s.limited_len(),
        other => stored_len(other),
    }
}

/// Whether `value` is kept decoded by a store rather than as its stored
/// bytes: the collections, whose commands change a few elements of many.
/// Strings are small and replaced whole.
pub fn is_collection(value: &Value) -> bool {
    !matches!(value, Value::Str(_))
}

/// The plain string stored as `bytes`.
pub fn plain_string(bytes: &[u8]) -> Vec<u8> {
    to_stored(&Value::string(bytes))
}

/// The value `stored` holds.
pub fn from_stored(stored: &[u8]) -> Result<Value, DecodeError> {
    match kind(stored) {
        StoredKind::Plain => Ok(Value::string(&stored[1..])),
        StoredKind::Encoded => encoding::decode(stored),
        StoredKind::Json => Ok(Value::Str(json_string(stored))),
    }
}

/// What commands see of JSON text: a JSON string's text as a plain
/// string, anything else as its JSON text, flagged.
fn json_string(text: &[u8]) -> StrValue {
    if text.first() == Some(&b'"')
        && let Ok(s) = serde_json::from_slice::<String>(text)
    {
        return StrValue::plain(s.into_bytes());
    }
    StrValue {
        bytes: text.to_vec(),
        json: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ListValue;

    #[test]
    fn every_kind_round_trips_through_its_stored_form() {
        let mut list = ListValue::new();
        list.push(false, bytes::Bytes::from_static(b"a"));
        let values = [
            Value::string(b"plain".to_vec()),
            Value::string(Vec::new()),
            Value::string(vec![0u8, 1, 255]),
            Value::Str(StrValue {
                bytes: b"{\"a\":1}".to_vec(),
                json: true,
            }),
            Value::List(list),
        ];
        for value in values {
            let stored = to_stored(&value);
            assert_eq!(stored_len(&value), stored.len());
            assert_eq!(from_stored(&stored).unwrap(), value, "{stored:?}");
        }
    }

    #[test]
    fn json_from_data_is_told_from_commands_strings_by_its_first_byte() {
        assert_eq!(kind(b"{\"a\":1}"), StoredKind::Json);
        assert_eq!(kind(b" 5"), StoredKind::Json);
        assert_eq!(kind(&plain_string(b"{")), StoredKind::Plain);
        assert_eq!(value_type(b"12"), Some(ValueType::String));
    }

    #[test]
    fn a_json_string_reads_as_its_text_and_other_json_as_flagged_text() {
        assert_eq!(
            from_stored("\"h\\u00e9llo\"".as_bytes()).unwrap(),
            Value::string("héllo".as_bytes().to_vec())
        );
        assert_eq!(
            from_stored(b"42").unwrap(),
            Value::Str(StrValue {
                bytes: b"42".to_vec(),
                json: true
            })
        );
    }
}
