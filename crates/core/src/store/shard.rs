//! One shard of the store: an exact LRU of items with their versions and
//! expiries, the shard's tombstones, its expiry index and its counters. All
//! policy lives here (last writer wins, capacity, expiry); the store only
//! picks the shard and takes its lock.

use std::fmt;

use bytes::Bytes;

use super::expiry::ExpiryIndex;
use super::hash_key;
use super::item::{Item, Parts};
use super::lru::{Lru, MAX_SLOTS, Node};
use super::tombstones::Tombstones;
use super::{DeleteOutcome, Entry, EntryRef, Lookup, SetOutcome, StoreStats};
use crate::value::{Value, ValueType, stored};
use crate::version::Version;

/// Counters of one shard; only ever changed under the shard's lock.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

/// A shard. Aligned to two cache lines so that shards laid side by side in
/// the store's slice never share a line: a writer busy in one shard does not
/// slow down the lock of its neighbour.
#[repr(align(128))]
pub(super) struct Shard {
    lru: Lru,
    expiry: ExpiryIndex,
    tombstones: Tombstones,
    max_items: usize,
    /// `u64::MAX` when the store has no byte limit.
    max_bytes: u64,
    counters: Counters,
    /// The highest version of an item removed here because it expired. A
    /// replica whose clock is behind may still hold such an item live, so
    /// a command's leader stamps above it (see `Store::execute`). Raised
    /// for the whole store by an expired item a restart or a restore
    /// found (see `Store::note_expired`).
    expired_above: Option<Version>,
    /// The highest item of this shard's own keys that expired (or was
    /// found expired): what carries the floor through a snapshot, as an
    /// expired entry (see `Store::for_each_expired_in_shard`).
    expired_item: Option<ExpiredItem>,
}

/// The fewest tombstones a shard may hold, however few items: a small
/// cache still remembers its recent deletes.
pub(super) const MIN_TOMBSTONE_CAP: usize = 1024;

/// An item that expired: its key (the buffer reused from one to the
/// next) and version.
#[derive(Debug)]
struct ExpiredItem {
    key: Vec<u8>,
    version: Version,
}

/// The expiry an expired item is lent with ([`Shard::expired_item`]): in
/// the past by every clock, so that no reader, however far behind its
/// clock, takes the item (its value is not kept) for a live one.
pub(crate) const EXPIRED_LONG_AGO_MS: u64 = 1;

/// True when an item with internal expiry `expires_at` (0 = never) is gone at
/// `now_ms`.
fn is_expired(expires_at: u64, now_ms: u64) -> bool {
    expires_at != 0 && expires_at <= now_ms
}

/// The entry of an item, borrowing its value.
fn entry_of(parts: Parts<'_>) -> EntryRef<'_> {
    EntryRef {
        value: parts.value,
        expires_at_ms: (parts.expires_at != 0).then_some(parts.expires_at),
        version: parts.version,
    }
}

/// The entry of an item, with `decoded` (its value kept decoded, if it
/// is) in its stored form, encoded into `buffer`.
fn entry_with<'a>(
    parts: Parts<'a>,
    decoded: Option<&Value>,
    buffer: &'a mut Vec<u8>,
) -> EntryRef<'a> {
    let mut entry = entry_of(parts);
    if let Some(value) = decoded {
        buffer.clear();
        stored::encode_into(value, buffer);
        entry.value = buffer;
    }
    entry
}

/// A value as a shard keeps it: the stored bytes in the item, or a
/// collection decoded beside it.
#[derive(Debug)]
pub(super) enum Held<'a> {
    /// Stored bytes, kept in the item.
    Bytes(&'a [u8]),
    /// A collection, kept decoded; its item's value is empty.
    Decoded(Value),
}

impl Held<'_> {
    /// What a stored byte string is kept as: an encoded collection is
    /// decoded (once, here), anything else is kept as it is, including a
    /// collection that does not decode (commands read it as absent).
    pub(super) fn from_stored(bytes: &[u8]) -> Held<'_> {
        // JSON text and plain strings are strings; an encoded value says
        // its type in its tag byte.
        let collection =
            stored::value_type(bytes).is_some_and(|t| t != crate::value::ValueType::String);
        match collection.then(|| stored::from_stored(bytes)) {
            Some(Ok(value)) => Held::Decoded(value),
            _ => Held::Bytes(bytes),
        }
    }

    /// A value a command left: a collection is kept decoded, a string as
    /// its stored bytes (in `buffer`).
    pub(super) fn from_value(value: Value, buffer: &mut Vec<u8>) -> Held<'_> {
        if stored::is_collection(&value) {
            Held::Decoded(value)
        } else {
            *buffer = stored::to_stored(&value);
            Held::Bytes(buffer)
        }
    }

    /// Bytes the item's own value takes.
    fn item_value(&self) -> &[u8] {
        match self {
            Held::Bytes(bytes) => bytes,
            Held::Decoded(_) => &[],
        }
    }

    /// Bytes charged against the byte limit for the value.
    fn charged(&self) -> u64 {
        match self {
            Held::Bytes(bytes) => bytes.len() as u64,
            Held::Decoded(value) => value.heap_bytes() as u64,
        }
    }

    fn into_decoded(self) -> Option<Value> {
        match self {
            Held::Bytes(_) => None,
            Held::Decoded(value) => Some(value),
        }
    }
}

impl Shard {
    /// A shard holding at most `max_items` items (at least one, at most what
    /// `u32` slot numbers can index) and `max_bytes` bytes.
    pub(super) fn new(max_items: usize, max_bytes: Option<u64>, tombstone_grace_ms: u64) -> Shard {
        Shard {
            lru: Lru::new(),
            expiry: ExpiryIndex::default(),
            tombstones: Tombstones::new(tombstone_grace_ms, max_items.max(MIN_TOMBSTONE_CAP)),
            max_items: max_items.clamp(1, MAX_SLOTS - 1),
            max_bytes: max_bytes.unwrap_or(u64::MAX),
            counters: Counters::default(),
            expired_above: None,
            expired_item: None,
        }
    }

    pub(super) fn get(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<Entry> {
        let Some(slot) = self.live_slot(hash, key, now_ms) else {
            self.counters.misses += 1;
            return None;
        };
        self.lru.touch(slot);
        self.counters.hits += 1;
        self.entry_at(slot)
    }

    pub(super) fn lookup(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Lookup {
        match self.get(hash, key, now_ms) {
            Some(entry) => Lookup::Live(entry),
            None => match self.tombstones.held(hash, key, now_ms) {
                Some(version) => Lookup::Deleted(version),
                None => Lookup::Absent,
            },
        }
    }

    pub(super) fn peek(&self, hash: u64, key: &[u8], now_ms: u64) -> Option<Entry> {
        let slot = self.lru.find(hash, key)?;
        if is_expired(self.lru.node(slot).expires_at(), now_ms) {
            return None;
        }
        self.entry_at(slot)
    }

    /// An owned copy of the entry in `slot`, a decoded value in its stored
    /// form.
    fn entry_at(&self, slot: u32) -> Option<Entry> {
        let parts = self.lru.node(slot).parts()?;
        let entry = entry_of(parts);
        let value = match self.lru.decoded(slot) {
            Some(decoded) => Bytes::from(stored::to_stored(decoded)),
            None => Bytes::copy_from_slice(entry.value),
        };
        Some(Entry {
            value,
            expires_at_ms: entry.expires_at_ms,
            version: entry.version,
        })
    }

    /// The live slot of `key` (an expired item is removed and counted)
    /// and its version; for a command, which then lends the value.
    /// Counts a hit (and a use) or a miss, as `get` does.
    pub(super) fn live(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<(u32, Version)> {
        let Some(slot) = self.live_slot(hash, key, now_ms) else {
            self.counters.misses += 1;
            return None;
        };
        self.lru.touch(slot);
        self.counters.hits += 1;
        Some((slot, self.lru.node(slot).version()))
    }

    /// The highest version a command on `key` must be stamped above
    /// besides its live item or tombstone: its item if it has expired but
    /// is still here, and every item that expired here before. A replica
    /// whose clock is behind may still hold such an item live; stamped
    /// above it, the command's changes find a base that replica does not
    /// hold (it is repaired) rather than a newer version (it would be left
    /// as it is). See `Store::execute`.
    pub(super) fn expired_version(&self, hash: u64, key: &[u8]) -> Option<Version> {
        let item = self
            .lru
            .find(hash, key)
            .map(|slot| self.lru.node(slot).version());
        item.max(self.expired_above)
    }

    /// The version `key` holds, live or deleted, without counting a hit or
    /// a miss (an expired item is removed, as any look at it does).
    pub(super) fn held(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<Version> {
        let live = self.live_slot(hash, key, now_ms);
        self.held_beside(live, hash, key, now_ms)
    }

    /// The version `key` holds, given its `live` slot from
    /// [`Shard::live_slot`]: the item's, or its tombstone's.
    fn held_beside(
        &mut self,
        live: Option<u32>,
        hash: u64,
        key: &[u8],
        now_ms: u64,
    ) -> Option<Version> {
        match live {
            Some(slot) => Some(self.lru.node(slot).version()),
            // A key never has both a live item and a tombstone.
            None => self.tombstones.held(hash, key, now_ms),
        }
    }

    /// The version of the tombstone of `key`, if one is within its grace.
    pub(super) fn tombstone(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<Version> {
        self.tombstones.held(hash, key, now_ms)
    }

    /// The bytes of the plain string in `slot` (from [`Shard::live`]),
    /// without the stored form's first byte; `None` when the slot holds
    /// anything else (JSON text stored through `/data`, a collection).
    pub(super) fn plain_string(&self, slot: u32) -> Option<&[u8]> {
        let value = self.lru.node(slot).parts()?.value;
        (stored::kind(value) == stored::StoredKind::Plain).then(|| &value[1..])
    }

    /// Whether `key` holds nothing live or a plain string, without
    /// counting a hit or a miss or marking the item used (an expired item
    /// is removed, as any look at it does).
    pub(super) fn holds_plain_or_nothing(&mut self, hash: u64, key: &[u8], now_ms: u64) -> bool {
        self.live_slot(hash, key, now_ms)
            .is_none_or(|slot| self.plain_string(slot).is_some())
    }

    /// [`Shard::fits`] for a plain string whose stored form is
    /// `stored_len` bytes long.
    pub(super) fn fits_string(&self, key: &[u8], stored_len: usize) -> bool {
        fits_charged(self.max_bytes, key, stored_len, stored_len)
    }

    /// Lends out the value of the live item in `slot` (from
    /// [`Shard::live`]) with its expiry: a decoded collection moves out
    /// (see [`Shard::put_back`]), anything else is decoded from a copy.
    /// `None` for stored bytes that do not decode.
    pub(super) fn lend(&mut self, slot: u32) -> Option<(Value, Option<u64>)> {
        let expires_at = self.lru.node(slot).expires_at();
        let expires_at_ms = (expires_at != 0).then_some(expires_at);
        if let Some(value) = self.lru.take_decoded(slot) {
            return Some((value, expires_at_ms));
        }
        let parts = self.lru.node(slot).parts()?;
        let value = stored::from_stored(parts.value).ok()?;
        Some((value, expires_at_ms))
    }

    /// Takes back a value lent by [`Shard::lend`], unchanged, into the same
    /// slot. A value that was decoded from stored bytes needs nothing: the
    /// item still holds them.
    pub(super) fn put_back(&mut self, slot: u32, value: Value) {
        let lent = self
            .lru
            .node(slot)
            .parts()
            .is_some_and(|p| p.value.is_empty());
        if lent && stored::is_collection(&value) {
            self.lru.put_decoded(slot, value);
        }
    }

    pub(super) fn set(
        &mut self,
        hash: u64,
        key: &[u8],
        entry: EntryRef<'_>,
        now_ms: u64,
    ) -> SetOutcome {
        let value = Held::from_stored(entry.value);
        self.store(hash, key, value, entry.version, entry.expires_at_ms, now_ms)
    }

    /// Stores `value` for `key` at `version`, as [`Shard::set`] does.
    pub(super) fn store(
        &mut self,
        hash: u64,
        key: &[u8],
        value: Held<'_>,
        version: Version,
        expires_at_ms: Option<u64>,
        now_ms: u64,
    ) -> SetOutcome {
        let entry = EntryRef {
            value: value.item_value(),
            expires_at_ms,
            version,
        };
        // Size first: an item that can never fit is refused whatever its
        // version, and refusing it changes nothing (an older value stays).
        let size = key.len() as u64 + value.charged();
        if size > self.max_bytes || !Item::fits(key.len(), entry.value.len()) {
            return SetOutcome::TooLarge;
        }
        let live = self.live_slot(hash, key, now_ms);
        let held = self.held_beside(live, hash, key, now_ms);
        if let Some(held) = held.filter(|&held| entry.version <= held) {
            if entry.expires_at_ms.is_some_and(|at| at <= now_ms) {
                // Stale here, but still an item that expired (below).
                self.note_expired(key, entry.version);
            }
            return SetOutcome::Stale { held };
        }
        let expires_at = match entry.expires_at_ms {
            None => 0,
            Some(at) if at > now_ms => at,
            Some(_) => {
                // The newer write says the key is gone by now: that is a
                // delete at its version. Leaving a tombstone (not just
                // dropping the older item) keeps replicas convergent: a
                // replica that got this write before a late older one must
                // refuse the older one, as a replica that got them in order
                // has already dropped it.
                if let Some(slot) = live {
                    self.remove(slot);
                }
                self.tombstones.record(hash, key, entry.version, now_ms);
                // And it held that version until it expired: a replica
                // whose clock is behind may hold it live (a replayed log
                // record, a handoff's copy).
                self.note_expired(key, entry.version);
                return SetOutcome::Expired;
            }
        };
        // Cannot fail: `fits` said so above.
        let Some(item) = Item::new(key, entry.value, entry.version, expires_at) else {
            return SetOutcome::TooLarge;
        };
        let decoded = value.into_decoded();
        match live {
            Some(slot) => {
                let old = self
                    .lru
                    .replace(slot, item, decoded)
                    .map_or(0, |old| old.expires_at());
                self.expiry.retrack(slot, old, expires_at);
                // The item is now the most recent and fits alone, so this
                // stops before reaching it.
                while self.lru.bytes() > self.max_bytes {
                    match self.lru.least_recent() {
                        Some(oldest) if oldest != slot => self.evict(oldest, now_ms),
                        _ => break,
                    }
                }
            }
            None => {
                self.tombstones.remove(hash, key);
                while self.lru.len() >= self.max_items
                    || self.lru.bytes().saturating_add(size) > self.max_bytes
                {
                    let Some(oldest) = self.lru.least_recent() else {
                        break;
                    };
                    self.evict(oldest, now_ms);
                }
                let slot = self.lru.insert(hash, item, decoded);
                self.expiry.retrack(slot, 0, expires_at);
            }
        }
        if self.expiry.needs_compaction() {
            let lru = &self.lru;
            self.expiry
                .compact(|expires_at, slot| lru.expires_at_is(slot, expires_at));
        }
        SetOutcome::Stored
    }

    /// Whether `key` holding `value` can be stored here at all (what
    /// `store` refuses as too large otherwise), charged as it would be.
    pub(super) fn fits(&self, key: &[u8], value: &Value) -> bool {
        fits_within(self.max_bytes, key, value)
    }

    pub(super) fn delete(
        &mut self,
        hash: u64,
        key: &[u8],
        version: Version,
        now_ms: u64,
    ) -> DeleteOutcome {
        match self.live_slot(hash, key, now_ms) {
            Some(slot) if self.lru.node(slot).version() >= version => DeleteOutcome::Stale {
                held: self.lru.node(slot).version(),
            },
            Some(slot) => {
                self.remove(slot);
                self.tombstones.record(hash, key, version, now_ms);
                DeleteOutcome::Deleted
            }
            None => {
                self.tombstones.record(hash, key, version, now_ms);
                DeleteOutcome::NotFound
            }
        }
    }

    pub(super) fn remove_if_version(&mut self, hash: u64, key: &[u8], version: Version) -> bool {
        match self.lru.find(hash, key) {
            Some(slot) if self.lru.node(slot).version() == version => {
                self.remove(slot);
                true
            }
            _ => false,
        }
    }

    /// Removes up to `budget` items expired at `now_ms`, earliest expiry
    /// first, popping at most `max_records` expiry records. Returns how many
    /// it removed and whether due records remain.
    pub(super) fn purge_items(
        &mut self,
        now_ms: u64,
        budget: usize,
        max_records: usize,
    ) -> (usize, bool) {
        let mut removed = 0;
        let mut examined = 0;
        while removed < budget && examined < max_records {
            let Some((expires_at, slot)) = self.expiry.pop_due(now_ms) else {
                break;
            };
            examined += 1;
            if self.lru.expires_at_is(slot, expires_at) {
                self.remove_expired(slot, now_ms);
                removed += 1;
            }
        }
        (removed, self.expiry.has_due(now_ms))
    }

    /// Calls `f` for every tombstone within its grace at `now_ms`.
    pub(super) fn for_each_tombstone(&self, now_ms: u64, f: impl FnMut(&[u8], Version)) {
        self.tombstones.for_each(now_ms, f);
    }

    /// Drops tombstones past their grace at `now_ms`; see [`Tombstones::purge`].
    pub(super) fn purge_tombstones(
        &mut self,
        now_ms: u64,
        budget: usize,
        max_records: usize,
    ) -> (usize, bool) {
        self.tombstones.purge(now_ms, budget, max_records)
    }

    /// Calls `f` for each item unexpired at `now_ms`, least recently used
    /// first. A collection kept decoded is lent in its stored form,
    /// encoded into one buffer reused from item to item.
    pub(super) fn for_each(&self, now_ms: u64, mut f: impl FnMut(&[u8], EntryRef<'_>)) {
        let mut buffer = Vec::new();
        for (slot, node) in self.lru.iter_slots() {
            let Some(parts) = node.parts() else { continue };
            if !is_expired(parts.expires_at, now_ms) {
                f(
                    parts.key,
                    entry_with(parts, self.lru.decoded(slot), &mut buffer),
                );
            }
        }
    }

    /// Calls `f` with the key and type of each item unexpired at `now_ms`,
    /// least recently used first. Unlike [`Shard::for_each`], a collection
    /// is not encoded: KEYS needs only the key.
    pub(super) fn for_each_key(&self, now_ms: u64, mut f: impl FnMut(&[u8], Option<ValueType>)) {
        for (slot, node) in self.lru.iter_slots() {
            let Some(parts) = node.parts() else { continue };
            if !is_expired(parts.expires_at, now_ms) {
                f(parts.key, self.value_type(slot, &parts));
            }
        }
    }

    /// Calls `f` with the key position, key and type of each item unexpired
    /// at `now_ms` whose key position is at least `from` and below `until`
    /// (`None`: to the end), in order of position, until `f` answers
    /// false. Costs O(log n) to the first item, then the items visited
    /// (expired ones among them), not the shard's size: SCAN's window. The
    /// first call builds the shard's position index (O(n log n)), which is
    /// kept from then on.
    pub(super) fn for_each_from_position(
        &mut self,
        from: u64,
        until: Option<u64>,
        now_ms: u64,
        mut f: impl FnMut(u64, &[u8], Option<ValueType>) -> bool,
    ) {
        self.lru.keep_positions();
        for (position, slot) in self.lru.by_position_from(from) {
            if until.is_some_and(|until| position >= until) {
                break;
            }
            let Some(parts) = self.lru.node(slot).parts() else {
                continue;
            };
            if !is_expired(parts.expires_at, now_ms)
                && !f(position, parts.key, self.value_type(slot, &parts))
            {
                break;
            }
        }
    }

    /// The type of the item in `slot`, whose parts are `parts`.
    fn value_type(&self, slot: u32, parts: &Parts<'_>) -> Option<ValueType> {
        match self.lru.decoded(slot) {
            Some(value) => Some(value.value_type()),
            None => stored::value_type(parts.value),
        }
    }

    /// See [`Lru::positions_are_current`].
    #[cfg(test)]
    pub(super) fn positions_are_current(&self) -> bool {
        self.lru.positions_are_current()
    }

    pub(super) fn len(&self) -> usize {
        self.lru.len()
    }

    /// Items live at `now_ms`. The due ones are reclaimed first, as the
    /// purge would (and counted as expirations): O(due items), and no
    /// walk over the live ones.
    pub(super) fn live_len(&mut self, now_ms: u64) -> usize {
        self.purge_items(now_ms, usize::MAX, usize::MAX);
        self.lru.len()
    }

    pub(super) fn stats(&self) -> StoreStats {
        StoreStats {
            items: self.lru.len() as u64,
            bytes: self.lru.bytes(),
            tombstones: self.tombstones.len() as u64,
            tombstones_dropped_early: self.tombstones.dropped_early(),
            hits: self.counters.hits,
            misses: self.counters.misses,
            evictions: self.counters.evictions,
            expirations: self.counters.expirations,
        }
    }

    /// The slot of `key`'s item if it is live at `now_ms`. An expired item is
    /// removed here and counted: for every purpose the key is gone.
    fn live_slot(&mut self, hash: u64, key: &[u8], now_ms: u64) -> Option<u32> {
        let slot = self.lru.find(hash, key)?;
        if is_expired(self.lru.node(slot).expires_at(), now_ms) {
            self.remove_expired(slot, now_ms);
            return None;
        }
        Some(slot)
    }

    /// Removes the item in `slot` to make room, counting it as evicted, or as
    /// expired if it already was.
    fn evict(&mut self, slot: u32, now_ms: u64) {
        let node = self.remove(slot);
        if is_expired(node.expires_at(), now_ms) {
            self.counters.expirations += 1;
            self.bury(&node, now_ms);
        } else {
            self.counters.evictions += 1;
        }
    }

    /// Removes the expired item in `slot`, as [`Shard::bury`] says.
    fn remove_expired(&mut self, slot: u32, now_ms: u64) {
        let node = self.remove(slot);
        self.counters.expirations += 1;
        self.bury(&node, now_ms);
    }

    /// What an item that expired leaves: its expiry was a delete at its
    /// version, so a tombstone holds that version for the grace (an older
    /// copy, from a replica that missed the write or from a restore, must
    /// not bring back the value the write replaced), and the floor for
    /// commands' versions is raised to it.
    fn bury(&mut self, node: &Node, now_ms: u64) {
        let key = node.key();
        self.tombstones
            .record(hash_key(key), key, node.version(), now_ms);
        self.note_expired(key, node.version());
    }

    /// Raises the floor to an item of this shard that expired holding
    /// `version`, and keeps it when it is the highest one yet (no
    /// allocation once the key buffer is large enough).
    pub(super) fn note_expired(&mut self, key: &[u8], version: Version) {
        self.raise_expired_floor(version);
        if self
            .expired_item
            .as_ref()
            .is_some_and(|item| item.version >= version)
        {
            return;
        }
        let item = self.expired_item.get_or_insert_with(|| ExpiredItem {
            key: Vec::new(),
            version,
        });
        item.key.clear();
        item.key.extend_from_slice(key);
        item.version = version;
    }

    /// Raises the floor to `version` (an item of another shard).
    pub(super) fn raise_expired_floor(&mut self, version: Version) {
        self.expired_above = self.expired_above.max(Some(version));
    }

    /// The highest item of this shard that expired, as an entry with an
    /// empty value and an expiry long past ([`EXPIRED_LONG_AGO_MS`]).
    pub(super) fn expired_item(&self) -> Option<(&[u8], EntryRef<'_>)> {
        self.expired_item.as_ref().map(|item| {
            let entry = EntryRef {
                value: &[],
                expires_at_ms: Some(EXPIRED_LONG_AGO_MS),
                version: item.version,
            };
            (item.key.as_slice(), entry)
        })
    }

    fn remove(&mut self, slot: u32) -> Node {
        let node = self.lru.remove(slot);
        self.expiry.retrack(slot, node.expires_at(), 0);
        node
    }
}

impl fmt::Debug for Shard {
    // A summary: the items themselves could be millions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("items", &self.lru.len())
            .field("bytes", &self.lru.bytes())
            .field("tombstones", &self.tombstones.len())
            .field("max_items", &self.max_items)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Views of the internals for tests.
#[cfg(test)]
impl Shard {
    /// Every item's key, least recently used first, expired ones included.
    pub(super) fn raw_keys(&self) -> Vec<Vec<u8>> {
        self.lru.iter().map(|node| node.key().to_vec()).collect()
    }

    pub(super) fn tombstone_dump(&self) -> Vec<(Vec<u8>, Version, u64)> {
        self.tombstones.dump()
    }

    /// (expiry records held, items with an expiry, slab slots, tombstone
    /// queue records).
    pub(super) fn index_sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.expiry.records(),
            self.expiry.tracked(),
            self.lru.slab_len(),
            self.tombstones.queue_len(),
        )
    }

    pub(super) fn limits(&self) -> (usize, u64) {
        (self.max_items, self.max_bytes)
    }

    /// Collections kept decoded.
    pub(super) fn decoded_len(&self) -> usize {
        self.lru.decoded_len()
    }
}

/// Whether `key` holding `value` can be stored in a shard of `max_bytes`
/// at all, charged as it would be ([`Shard::fits`]).
pub(super) fn fits_within(max_bytes: u64, key: &[u8], value: &Value) -> bool {
    let (charged, item_value) = if stored::is_collection(value) {
        (value.heap_bytes(), 0)
    } else {
        let len = stored::stored_len(value);
        (len, len)
    };
    fits_charged(max_bytes, key, charged, item_value)
}

/// Whether `key` fits under `max_bytes` charged `charged` bytes for its
/// value, `item_value` of them in its item.
fn fits_charged(max_bytes: u64, key: &[u8], charged: usize, item_value: usize) -> bool {
    key.len() as u64 + charged as u64 <= max_bytes && Item::fits(key.len(), item_value)
}
