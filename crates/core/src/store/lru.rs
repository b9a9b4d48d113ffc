//! An exact LRU list over a slab, with one allocation per item.
//!
//! Items live in a `Vec<Node>` slab and are linked into a doubly linked list
//! by `u32` slot indices (least recently used at the head, most recently used
//! at the tail). The index is a `HashTable<u32>` of slots: the key is stored
//! once, in its item's buffer, and a lookup compares it. Freed slots are
//! chained through `next` into a free list and reused before the slab grows,
//! so the slab never holds more slots than the shard's item limit.
//!
//! A collection (hash, list, set, sorted set) is kept decoded beside its
//! item, in a side table keyed by slot, and its item holds an empty value:
//! commands then change a few elements in place instead of decoding and
//! re-encoding the whole value. The table lives here, with the slab, so
//! that whatever frees a slot (removal, eviction, replacement) drops the
//! slot's side entry in the same step. Plain strings pay nothing for it:
//! the node stays 32 bytes, and a slot whose value is not empty is never
//! looked up in the table.
//!
//! Beside the index by shard hash, the items can be kept in order of their
//! key's position in the ring's hash space ([`key_position`], the same on
//! every node): SCAN walks from a cursor in that order, visiting only the
//! items it answers with. It is a `BTreeSet` of (position, slot), built by
//! the first SCAN or RANDOMKEY and from then on updated where the index is
//! (insert and remove; a replacement keeps its key and slot). A cache that
//! never scans pays nothing for it; what it costs one that does, a write
//! and an item, is in docs/performance.md ("SCAN, DBSIZE, RANDOMKEY and
//! KEYS on one node"). Several keys can share a position (a hash tag), so
//! the slot is part of the element.
//!
//! This file knows nothing of versions, expiry or capacity: the shard decides
//! what to insert and what to evict. How an item is laid out is `item`'s
//! business.

use std::collections::BTreeSet;
use std::ops::Bound;

use hashbrown::{HashMap, HashTable};

use super::hash_key;
use super::item::{Item, Parts};
use crate::keyspace::key_position;
use crate::value::Value;
use crate::version::Version;

/// "No slot": the end of a list, or an empty free list.
pub(super) const NIL: u32 = u32::MAX;

/// The most items one shard can index: every slot number must differ from
/// [`NIL`].
pub(super) const MAX_SLOTS: usize = NIL as usize;

/// One slab slot: an item, or (with no item) a free slot.
///
/// 32 bytes on 64-bit targets: the item 24 (a pointer to its buffer, the
/// version's millis, origin and counter, the key's length), links 8. See
/// `node_is_compact` in the tests before adding a field.
#[derive(Debug)]
pub(super) struct Node {
    /// `None` in a free slot.
    item: Option<Item>,
    prev: u32,
    next: u32,
}

impl Node {
    fn free(next_free: u32) -> Node {
        Node {
            item: None,
            prev: NIL,
            next: next_free,
        }
    }

    /// The key; empty in a free slot.
    pub(super) fn key(&self) -> &[u8] {
        self.item.as_ref().map_or(&[], Item::key)
    }

    /// The item's fields, decoded at once; `None` in a free slot.
    pub(super) fn parts(&self) -> Option<Parts<'_>> {
        self.item.as_ref().map(Item::parts)
    }

    /// The version that wrote the value; [`Version::ZERO`] in a free slot.
    pub(super) fn version(&self) -> Version {
        self.item.as_ref().map_or(Version::ZERO, Item::version)
    }

    /// Absolute expiry in Unix ms, 0 = never. 0 is free to mean "never"
    /// because a stored entry always expires after its write's `now_ms`.
    /// Free slots give 0, which is how a stale expiry record is told apart.
    pub(super) fn expires_at(&self) -> u64 {
        self.item.as_ref().map_or(0, Item::expires_at)
    }

    /// Bytes charged against the byte limit: key plus value.
    pub(super) fn size(&self) -> u64 {
        self.item.as_ref().map_or(0, Item::size)
    }
}

/// The slab, the list and the index of one shard.
#[derive(Debug)]
pub(super) struct Lru {
    index: HashTable<u32>,
    slab: Vec<Node>,
    free: u32,
    head: u32,
    tail: u32,
    /// Key bytes plus value bytes (a decoded value's `heap_bytes`).
    bytes: u64,
    /// The decoded collections, by slot. A slot is here only if its item
    /// holds an empty value; a decoded value lent out by
    /// [`Lru::take_decoded`] is missing until [`Lru::put_decoded`].
    decoded: HashMap<u32, Value>,
    /// Every item's (key position, slot), for SCAN and RANDOMKEY: `None`
    /// until the first of them asks ([`Lru::keep_positions`]).
    by_position: Option<BTreeSet<(u64, u32)>>,
}

impl Lru {
    pub(super) fn new() -> Lru {
        Lru {
            index: HashTable::new(),
            slab: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            bytes: 0,
            decoded: HashMap::new(),
            by_position: None,
        }
    }

    /// Items held.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Key plus value bytes of the items held.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The slot holding `key`, whose hash is `hash`.
    pub(super) fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(hash, |&slot| slab[slot as usize].key() == key)
            .copied()
    }

    /// The item in `slot`, which must hold one.
    pub(super) fn node(&self, slot: u32) -> &Node {
        &self.slab[slot as usize]
    }

    /// True when `slot` holds an item expiring at `expires_at` (non-zero):
    /// the test that tells a current expiry record from a stale one.
    pub(super) fn expires_at_is(&self, slot: u32, expires_at: u64) -> bool {
        self.slab
            .get(slot as usize)
            .is_some_and(|node| node.expires_at() == expires_at)
    }

    /// The least recently used slot.
    pub(super) fn least_recent(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The decoded value of the item in `slot`, if it is kept decoded (and
    /// not lent out).
    pub(super) fn decoded(&self, slot: u32) -> Option<&Value> {
        let node = self.slab.get(slot as usize)?;
        // Only an empty value can stand for a decoded one: most reads never
        // probe the table.
        if node.item.as_ref()?.value_is_empty() {
            self.decoded.get(&slot)
        } else {
            None
        }
    }

    /// Lends out the decoded value of `slot` (a command changes it in
    /// place); it no longer counts until [`Lru::put_decoded`] brings it
    /// back. The caller, under the shard's lock, puts it back or replaces
    /// or removes the item before anyone else sees the slot.
    pub(super) fn take_decoded(&mut self, slot: u32) -> Option<Value> {
        if !self
            .slab
            .get(slot as usize)?
            .item
            .as_ref()?
            .value_is_empty()
        {
            return None;
        }
        let value = self.decoded.remove(&slot)?;
        self.bytes -= value.heap_bytes() as u64;
        Some(value)
    }

    /// Brings back a value lent by [`Lru::take_decoded`] to the same slot,
    /// which still holds the same item.
    pub(super) fn put_decoded(&mut self, slot: u32, value: Value) {
        self.bytes += value.heap_bytes() as u64;
        self.decoded.insert(slot, value);
    }

    /// Collections kept decoded.
    #[cfg(test)]
    pub(super) fn decoded_len(&self) -> usize {
        self.decoded.len()
    }

    /// Adds `item` (with `decoded`, its value kept decoded, when its own
    /// value is empty), whose key the caller guarantees is absent, as the
    /// most recently used item. The caller also guarantees `len() <
    /// MAX_SLOTS` (the shard's item limit is clamped to it).
    pub(super) fn insert(&mut self, hash: u64, item: Item, decoded: Option<Value>) -> u32 {
        self.bytes += item.size() + decoded.as_ref().map_or(0, |v| v.heap_bytes() as u64);
        let position = self.by_position.is_some().then(|| key_position(item.key()));
        let node = Node {
            item: Some(item),
            prev: NIL,
            next: NIL,
        };
        let slot = if self.free != NIL {
            let slot = self.free;
            self.free = self.slab[slot as usize].next;
            self.slab[slot as usize] = node;
            slot
        } else {
            // Below MAX_SLOTS by the caller's guarantee, so this never
            // produces NIL.
            let slot = self.slab.len() as u32;
            self.slab.push(node);
            slot
        };
        let slab = &self.slab;
        self.index
            .insert_unique(hash, slot, |&s| hash_key(slab[s as usize].key()));
        if let (Some(index), Some(position)) = (self.by_position.as_mut(), position) {
            index.insert((position, slot));
        }
        self.link_most_recent(slot);
        self.set_decoded(slot, decoded);
        slot
    }

    /// Puts `item` (and `decoded`, as for [`Lru::insert`]), which has the
    /// same key, in place of the item in `slot` and makes it the most
    /// recently used. Returns the previous item.
    pub(super) fn replace(
        &mut self,
        slot: u32,
        item: Item,
        decoded: Option<Value>,
    ) -> Option<Item> {
        self.drop_decoded(slot);
        let node = &mut self.slab[slot as usize];
        self.bytes = self.bytes - node.size() + item.size();
        let previous = node.item.replace(item);
        self.bytes += decoded.as_ref().map_or(0, |v| v.heap_bytes() as u64);
        self.set_decoded(slot, decoded);
        self.touch(slot);
        previous
    }

    /// Makes the item in `slot` the most recently used.
    pub(super) fn touch(&mut self, slot: u32) {
        if self.tail != slot {
            self.unlink(slot);
            self.link_most_recent(slot);
        }
    }

    /// Removes the item in `slot` and returns its node; the slot joins the
    /// free list.
    pub(super) fn remove(&mut self, slot: u32) -> Node {
        let key = self.slab[slot as usize].key();
        let hash = hash_key(key);
        if let Some(index) = self.by_position.as_mut() {
            index.remove(&(key_position(key), slot));
        }
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        // The side entry goes with its slot, which the next insert reuses.
        self.drop_decoded(slot);
        self.unlink(slot);
        let node = std::mem::replace(&mut self.slab[slot as usize], Node::free(self.free));
        self.free = slot;
        self.bytes -= node.size();
        node
    }

    /// The items, least recently used first.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Node> {
        self.iter_slots().map(|(_, node)| node)
    }

    /// The items with their slots, least recently used first.
    pub(super) fn iter_slots(&self) -> impl Iterator<Item = (u32, &Node)> {
        let mut cursor = self.head;
        std::iter::from_fn(move || {
            let slot = cursor;
            let node = self.slab.get(slot as usize)?;
            cursor = node.next;
            Some((slot, node))
        })
    }

    /// Builds the index by key position if it is not yet kept: O(n log n)
    /// once, then kept up to date by every insert and remove.
    pub(super) fn keep_positions(&mut self) {
        if self.by_position.is_some() {
            return;
        }
        let index = self
            .iter_slots()
            .map(|(slot, node)| (key_position(node.key()), slot))
            .collect();
        self.by_position = Some(index);
    }

    /// The items from key position `from` on, in order of position (then
    /// slot), as (position, slot). O(log n) to the first, then O(1) each.
    /// Needs [`Lru::keep_positions`] first (without it: none).
    pub(super) fn by_position_from(&self, from: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        debug_assert!(self.by_position.is_some(), "keep_positions first");
        self.by_position
            .iter()
            .flat_map(move |index| index.range((Bound::Included((from, 0)), Bound::Unbounded)))
            .copied()
    }

    /// Whether the index by key position, if kept, holds exactly the
    /// items' (position, slot).
    #[cfg(test)]
    pub(super) fn positions_are_current(&self) -> bool {
        self.by_position.as_ref().is_none_or(|index| {
            let held: BTreeSet<(u64, u32)> = self
                .iter_slots()
                .map(|(slot, node)| (key_position(node.key()), slot))
                .collect();
            *index == held
        })
    }

    /// Slab slots allocated (held items plus free slots).
    #[cfg(test)]
    pub(super) fn slab_len(&self) -> usize {
        self.slab.len()
    }

    fn set_decoded(&mut self, slot: u32, decoded: Option<Value>) {
        if let Some(value) = decoded {
            debug_assert!(
                self.slab[slot as usize]
                    .item
                    .as_ref()
                    .is_some_and(Item::value_is_empty)
            );
            self.decoded.insert(slot, value);
        }
    }

    fn drop_decoded(&mut self, slot: u32) {
        if let Some(value) = self.decoded.remove(&slot) {
            self.bytes -= value.heap_bytes() as u64;
        }
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let node = &self.slab[slot as usize];
            (node.prev, node.next)
        };
        match prev {
            NIL => self.head = next,
            prev => self.slab[prev as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.slab[next as usize].prev = prev,
        }
        let node = &mut self.slab[slot as usize];
        node.prev = NIL;
        node.next = NIL;
    }

    fn link_most_recent(&mut self, slot: u32) {
        let old_tail = self.tail;
        {
            let node = &mut self.slab[slot as usize];
            node.prev = old_tail;
            node.next = NIL;
        }
        match old_tail {
            NIL => self.head = slot,
            tail => self.slab[tail as usize].next = slot,
        }
        self.tail = slot;
    }
}
