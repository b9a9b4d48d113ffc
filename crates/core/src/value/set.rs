//! Sets: distinct members. An index set, so that SPOP and SRANDMEMBER pick
//! a member in O(1) by position.

use bytes::Bytes;
use indexmap::IndexSet;

use super::Footprint;

/// A set of byte strings. Order carries no meaning (equality ignores it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetValue {
    members: IndexSet<Bytes>,
    payload_bytes: Footprint,
}

fn cost(member: &[u8]) -> Footprint {
    Footprint::of(&[member], 0)
}

impl SetValue {
    /// An empty set (transient only).
    pub fn new() -> SetValue {
        SetValue::default()
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// See [`super::Value::heap_bytes`].
    pub fn heap_bytes(&self) -> usize {
        self.payload_bytes.heap
    }

    pub(crate) fn footprint(&self) -> Footprint {
        self.payload_bytes
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// The member at position `index` (for random picks).
    pub fn get_index(&self, index: usize) -> Option<&Bytes> {
        self.members.get_index(index)
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: Bytes) -> bool {
        let c = cost(&member);
        let added = self.members.insert(member);
        if added {
            self.payload_bytes += c;
        }
        added
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let removed = self.members.swap_remove(member);
        if removed {
            self.payload_bytes -= cost(member);
        }
        removed
    }

    /// Members, in no meaningful order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Bytes> {
        self.members.iter()
    }
}

impl FromIterator<Bytes> for SetValue {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> SetValue {
        let mut set = SetValue::new();
        for m in iter {
            set.insert(m);
        }
        set
    }
}
