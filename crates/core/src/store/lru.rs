//! An exact LRU list over a slab, with no `unsafe` and no per-item allocation
//! beyond the key and the value.
//!
//! Items live in a `Vec<Node>` slab and are linked into a doubly linked list
//! by `u32` slot indices (least recently used at the head, most recently used
//! at the tail). The index is a `HashTable<u32>` of slots: the key is stored
//! once, in its node, and a lookup compares the node's key. Freed slots are
//! chained through `next` into a free list and reused before the slab grows,
//! so the slab never holds more slots than the shard's item limit.
//!
//! This file knows nothing of versions, expiry or capacity: the shard decides
//! what to insert and what to evict.

use bytes::Bytes;
use hashbrown::HashTable;

use super::hash_key;
use crate::version::Version;

/// "No slot": the end of a list, or an empty free list.
pub(super) const NIL: u32 = u32::MAX;

/// The most items one shard can index: every slot number must differ from
/// [`NIL`].
pub(super) const MAX_SLOTS: usize = NIL as usize;

/// One slab slot: an item, or (with an empty key and value) a free slot.
///
/// 80 bytes on 64-bit targets: key 16, value 32, version 16, expiry 8,
/// links 8. See `node_is_compact` in the tests before adding a field.
#[derive(Debug)]
pub(super) struct Node {
    /// The key; the only copy the shard holds.
    pub(super) key: Box<[u8]>,
    /// The value, shared with every `Entry` handed out.
    pub(super) value: Bytes,
    /// The version that wrote the value.
    pub(super) version: Version,
    /// Absolute expiry in Unix ms, 0 = never. 0 is free to mean "never"
    /// because a stored entry always expires after its write's `now_ms`.
    /// Free slots hold 0, which is how a stale expiry record is told apart.
    pub(super) expires_at: u64,
    prev: u32,
    next: u32,
}

impl Node {
    fn free(next_free: u32) -> Node {
        Node {
            key: Box::default(),
            value: Bytes::new(),
            version: Version::ZERO,
            expires_at: 0,
            prev: NIL,
            next: next_free,
        }
    }

    /// Bytes charged against the byte limit: key plus value.
    pub(super) fn size(&self) -> u64 {
        item_size(&self.key, &self.value)
    }
}

/// Bytes an item is charged: key plus value.
pub(super) fn item_size(key: &[u8], value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64
}

/// The slab, the list and the index of one shard.
#[derive(Debug)]
pub(super) struct Lru {
    index: HashTable<u32>,
    slab: Vec<Node>,
    free: u32,
    head: u32,
    tail: u32,
    bytes: u64,
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
            .find(hash, |&slot| *slab[slot as usize].key == *key)
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
            .is_some_and(|node| node.expires_at == expires_at)
    }

    /// The least recently used slot.
    pub(super) fn least_recent(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// Adds `key`, which the caller guarantees is absent, as the most
    /// recently used item. The caller also guarantees `len() < MAX_SLOTS`
    /// (the shard's item limit is clamped to it).
    pub(super) fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        value: Bytes,
        version: Version,
        expires_at: u64,
    ) -> u32 {
        self.bytes += item_size(key, &value);
        let node = Node {
            key: key.into(),
            value,
            version,
            expires_at,
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
            .insert_unique(hash, slot, |&s| hash_key(&slab[s as usize].key));
        self.link_most_recent(slot);
        slot
    }

    /// Gives the item in `slot` a new value, version and expiry and makes it
    /// the most recently used. Returns its previous expiry.
    pub(super) fn replace(
        &mut self,
        slot: u32,
        value: Bytes,
        version: Version,
        expires_at: u64,
    ) -> u64 {
        let node = &mut self.slab[slot as usize];
        self.bytes = self.bytes - node.value.len() as u64 + value.len() as u64;
        node.value = value;
        node.version = version;
        let previous = std::mem::replace(&mut node.expires_at, expires_at);
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

    /// Removes the item in `slot` and returns it; the slot joins the free list.
    pub(super) fn remove(&mut self, slot: u32) -> Node {
        let hash = hash_key(&self.slab[slot as usize].key);
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.unlink(slot);
        let node = std::mem::replace(&mut self.slab[slot as usize], Node::free(self.free));
        self.free = slot;
        self.bytes -= node.size();
        node
    }

    /// The items, least recently used first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Node> {
        let mut cursor = self.head;
        std::iter::from_fn(move || {
            let node = self.slab.get(cursor as usize)?;
            cursor = node.next;
            Some(node)
        })
    }

    /// Slab slots allocated (held items plus free slots).
    #[cfg(test)]
    pub(super) fn slab_len(&self) -> usize {
        self.slab.len()
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
