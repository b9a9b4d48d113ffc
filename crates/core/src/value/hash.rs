//! Hashes: field → value. An index map, so that HRANDFIELD picks a field in
//! O(1) by position.

use bytes::Bytes;
use indexmap::IndexMap;

use super::Footprint;

/// The most fields a Redis listpack hash holds (`hash-max-listpack-entries`):
/// up to this many, a removal keeps the other fields' order, which
/// HGETALL and HSCAN then answer as Redis does.
pub const LISTPACK_MAX_FIELDS: usize = 512;

/// A hash of byte strings, its fields in the order they were added while
/// it has at most [`LISTPACK_MAX_FIELDS`] (equality ignores the order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashValue {
    fields: IndexMap<Bytes, Bytes>,
    payload_bytes: Footprint,
}

fn cost(field: &[u8], value: &[u8]) -> Footprint {
    Footprint::of(&[field, value], 0)
}

impl HashValue {
    /// An empty hash (transient only).
    pub fn new() -> HashValue {
        HashValue::default()
    }

    /// Fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// No field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// See [`super::Value::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.payload_bytes.heap
    }

    pub(crate) fn footprint(&self) -> Footprint {
        self.payload_bytes
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.fields.get(field)
    }

    /// The field and value at position `index` (for random picks).
    pub fn get_index(&self, index: usize) -> Option<(&Bytes, &Bytes)> {
        self.fields.get_index(index)
    }

    /// Sets `field`; true if it is new.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        let added = cost(&field, &value);
        match self.fields.insert(field.clone(), value) {
            Some(old) => {
                self.payload_bytes = self.payload_bytes + added - cost(&field, &old);
                false
            }
            None => {
                self.payload_bytes += added;
                true
            }
        }
    }

    /// Removes `field`; true if it was there. A small hash keeps the
    /// order of the fields left, as Redis's listpack does (HGETALL and
    /// HSCAN answer in it); a large one moves its last field into the gap,
    /// in O(1) (Redis's hashtable has no order to keep).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = if self.fields.len() <= LISTPACK_MAX_FIELDS {
            self.fields.shift_remove_entry(field)
        } else {
            self.fields.swap_remove_entry(field)
        };
        match removed {
            Some((f, v)) => {
                self.payload_bytes -= cost(&f, &v);
                true
            }
            None => false,
        }
    }

    /// Field/value pairs: in the order they were added while the hash is
    /// small (see [`HashValue::remove`]), else in no meaningful order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Bytes, &Bytes)> {
        self.fields.iter()
    }
}
