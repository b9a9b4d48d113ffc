//! The store every auxiliary serves. STUB: to be implemented.
//!
//! Contract:
//! - Sharded by a hash of the key (foldhash with fixed seeds is fine; this
//!   is not placement). Each shard is a `std::sync::Mutex` around an exact
//!   LRU: a hash table of slab indices plus an index-linked doubly linked
//!   list, no `unsafe`. With `shards == 1` the LRU order is exact.
//! - Capacity: `max_items` items and optionally `max_bytes` (key bytes +
//!   value bytes), divided evenly over the shards (rounded up). A write
//!   that would exceed a shard's share evicts that shard's least recently
//!   used items first. A `get` that hits counts as a use.
//! - Every entry has a [`Version`]; a `set` is applied only when its
//!   version is higher than the version the store holds for the key (live
//!   entry or tombstone). `delete` leaves a tombstone with its version for
//!   `tombstone_grace_ms`, so a late older write cannot bring the key back.
//! - Expiry is an absolute Unix-millisecond time (`None` = never). An
//!   expired entry is never returned; `purge_expired` reclaims expired
//!   entries and old tombstones without scanning every entry.
//! - Counters: hits, misses, evictions, expirations; gauges: items, bytes,
//!   tombstones.

use bytes::Bytes;

use crate::version::Version;

/// How a store is sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most items held, over all shards. At least 1.
    pub max_items: usize,
    /// Most bytes of keys plus values held, over all shards; `None` = no limit.
    pub max_bytes: Option<u64>,
    /// Number of independently locked shards. At least 1.
    pub shards: usize,
    /// How long a delete's tombstone is kept, in milliseconds.
    pub tombstone_grace_ms: u64,
}

/// Default number of shards: enough to keep two cores from contending.
pub const DEFAULT_SHARDS: usize = 16;
/// Default tombstone grace: five minutes.
pub const DEFAULT_TOMBSTONE_GRACE_MS: u64 = 300_000;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_items: 1000,
            max_bytes: None,
            shards: DEFAULT_SHARDS,
            tombstone_grace_ms: DEFAULT_TOMBSTONE_GRACE_MS,
        }
    }
}

/// A stored value with its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value's bytes, exactly as written.
    pub value: Bytes,
    /// Absolute expiry in Unix milliseconds; `None` = never.
    pub expires_at_ms: Option<u64>,
    /// The version that wrote it.
    pub version: Version,
}

/// What a `set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The entry is now the stored one.
    Stored,
    /// The store already holds an equal or higher version (live or tombstone);
    /// nothing changed.
    Stale,
    /// The entry had already expired at `now_ms`; nothing stored.
    Expired,
    /// The entry alone exceeds the store's byte limit (or per-shard share).
    TooLarge,
}

/// What a `delete` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// A live entry was removed; a tombstone now holds the delete's version.
    Deleted,
    /// No live entry; a tombstone now holds the delete's version (or kept a
    /// higher one).
    NotFound,
    /// A live entry with an equal or higher version exists; nothing changed.
    Stale,
}

/// Counters and gauges of a store, summed over shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live items (expired-but-not-yet-purged ones included until purged).
    pub items: u64,
    /// Bytes of keys plus values of those items.
    pub bytes: u64,
    /// Tombstones held.
    pub tombstones: u64,
    /// `get`s that found a live entry.
    pub hits: u64,
    /// `get`s that found none.
    pub misses: u64,
    /// Items removed to make room.
    pub evictions: u64,
    /// Items removed because they expired (on read or by `purge_expired`).
    pub expirations: u64,
}

/// The sharded LRU store.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
}

impl Store {
    /// An empty store. Panics only if `max_items` or `shards` is 0.
    pub fn new(config: StoreConfig) -> Store {
        Store { config }
    }
    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
    /// The live entry for `key`, marking it most recently used. Counts a hit or
    /// a miss; an expired entry is removed, counted as expired, and missed.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let _ = (key, now_ms);
        todo!()
    }
    /// Like `get` but neither reorders the LRU nor counts a hit or miss
    /// (used by transfers and snapshots).
    pub fn peek(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let _ = (key, now_ms);
        todo!()
    }
    /// Stores `entry` under `key` if its version is higher than what the
    /// store holds, as most recently used, evicting LRU items over capacity.
    pub fn set(&self, key: &[u8], entry: Entry, now_ms: u64) -> SetOutcome {
        let _ = (key, entry, now_ms);
        todo!()
    }
    /// Deletes `key` at `version`, leaving a tombstone.
    pub fn delete(&self, key: &[u8], version: Version, now_ms: u64) -> DeleteOutcome {
        let _ = (key, version, now_ms);
        todo!()
    }
    /// Removes `key` only if its live entry still has exactly `version`
    /// (used after a transfer: never drops a newer write). No tombstone.
    /// Returns whether it removed anything.
    pub fn remove_if_version(&self, key: &[u8], version: Version) -> bool {
        let _ = (key, version);
        todo!()
    }
    /// Reclaims up to `budget` expired entries and expired tombstones;
    /// returns how many entries it removed (tombstones not counted).
    pub fn purge_expired(&self, now_ms: u64, budget: usize) -> usize {
        let _ = (now_ms, budget);
        todo!()
    }
    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.config.shards
    }
    /// Calls `f` for every live (unexpired at `now_ms`) entry of shard
    /// `shard`, least recently used first, without changing the LRU order.
    /// Holds the shard's lock throughout: keep `f` cheap.
    pub fn for_each_in_shard(&self, shard: usize, now_ms: u64, f: impl FnMut(&[u8], &Entry)) {
        let _ = (shard, now_ms, f);
        todo!()
    }
    /// Every live entry, shard by shard, least recently used first within a
    /// shard: inserting them in this order into an empty store with the same
    /// shard count reproduces each shard's LRU order.
    pub fn export(&self, now_ms: u64) -> Vec<(Bytes, Entry)> {
        let _ = now_ms;
        todo!()
    }
    /// Counters and gauges.
    pub fn stats(&self) -> StoreStats {
        todo!()
    }
    /// Live item count (cheap).
    pub fn len(&self) -> usize {
        todo!()
    }
    /// True when no items are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
