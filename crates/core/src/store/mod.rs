//! The store every auxiliary serves: a sharded, exact-LRU map from keys to
//! versioned values with expiries, tombstones and counters.
//!
//! # Contract
//!
//! - **Sharding.** A key's shard is chosen by foldhash with a fixed seed,
//!   deterministic across processes and restarts (for a given foldhash
//!   version), and independent of the ring's xxh3 placement. Each shard is a
//!   `std::sync::Mutex` around an exact LRU: a hash table of slab indices plus
//!   an index-linked doubly linked list. With `shards == 1` the LRU order and
//!   the limits are exact.
//! - **Capacity.** `max_items` items and optionally `max_bytes` (key bytes +
//!   value bytes) are divided over the shards as evenly as integers allow
//!   (shares differ by at most one, the first `total % shards` shards taking
//!   the extra one), so the shares add up to exactly the configured limits
//!   and the store as a whole never holds more. The one exception: every
//!   shard holds at least one item, so with `max_items < shards` up to
//!   `shards` items are held. A write that would exceed its shard's share
//!   evicts that shard's least recently used items until it fits; a `get`
//!   that hits counts as a use. An item alone larger than its shard's byte
//!   share is refused ([`SetOutcome::TooLarge`]), whatever its version; so
//!   is, whatever the limits, a key longer than [`MAX_STORED_KEY_BYTES`]
//!   (65,535) or a value of [`MAX_STORED_VALUE_BYTES`] + 1 (2^31) bytes or
//!   more, which an item's layout cannot record (keys are validated to at
//!   most 1,024 bytes and values default to at most 1 MiB long before they
//!   get here).
//! - **Versions, last writer wins.** A `set` is applied only when its
//!   [`Version`] is higher than the version the store holds for the key (live
//!   entry or tombstone); an equal version is [`SetOutcome::Stale`]. A
//!   `delete` at version `v` is `Stale` against a live entry of version `>= v`;
//!   otherwise it removes the entry and leaves a tombstone holding `v` (or a
//!   higher version already held) for `tombstone_grace_ms`, so a late older
//!   write cannot bring the key back. Past its grace a tombstone is ignored,
//!   then dropped. Tombstones are not items: they do not count against the
//!   limits and are never evicted, but a shard holds at most as many as it
//!   may hold items (at least 1,024): past that the oldest is dropped for each new one
//!   (`tombstones_dropped_early`), so memory stays bounded however fast keys
//!   are deleted or expire.
//! - **Expiry** is an absolute Unix-millisecond time (`None` = never); an
//!   entry is expired when `expires_at_ms <= now_ms`. An expired entry is
//!   never returned. Its expiry is a delete at its version: whoever finds
//!   it (`get`, `set`, `delete`, `purge_expired`, an eviction) removes it,
//!   counts an expiration and leaves a tombstone holding its version, as a
//!   delete would. So a newer write goes through and an older one is
//!   stale: a replica that missed the write, or a restore from before it,
//!   cannot bring back the value the expired write replaced. A `get` that
//!   finds it also counts a miss. `peek`, `for_each_in_shard` and `export`
//!   skip it without removing it; [`Store::purge_expired_in_shard`] turns a
//!   shard's expired entries into their tombstones before a copy of the
//!   shard is taken.
//! - **A write that arrives already expired** is [`SetOutcome::Expired`] and
//!   stores nothing. If it is not stale it acts as a delete at its version:
//!   the held older entry is removed (not counted as an eviction or an
//!   expiration) and a tombstone is left. The newer write says the key is
//!   gone; without the tombstone a replica that received it before a late
//!   older write would keep that older value while a replica that received
//!   them in order would not.
//! - **Active expiry.** `purge_expired` reclaims due entries without
//!   scanning: each shard keeps a min-heap of `(expires_at, slot)` records,
//!   invalidated lazily and compacted when stale records pile up, and a FIFO
//!   of tombstone deadlines (the grace is the same for all). Each call
//!   removes at most `budget` entries and, separately, about `budget`
//!   tombstones, spread fairly over the shards, starting from a different
//!   shard each call.
//! - **Eviction is strictly LRU**: an expired entry is not evicted ahead of
//!   older live ones, but one that is evicted is counted as an expiration.
//!   Reclaiming expired entries early is `purge_expired`'s job.
//! - **Counters**: hits, misses, evictions, expirations; **gauges**: items and
//!   bytes (expired entries included until reclaimed) and tombstones (those
//!   past grace included until dropped), summed over shards.
//! - No method panics, except [`Store::new`] on `max_items == 0` or
//!   `shards == 0`.
//!
//! # Memory
//!
//! An item is one slab node of 32 bytes and one heap buffer holding its key
//! and value together:
//!
//! - the node: a pointer to the buffer 8, the version's millis 8, origin 4
//!   and counter 2 (when below 65,535), the key's length 2, LRU links 8;
//! - the buffer: a 4-byte word (value length and an expiry flag), 4 bytes
//!   of version counter only when the counter is 65,535 or more (clocks
//!   issue counter 0 unless writes share a millisecond, so this is rare), 8
//!   bytes of expiry only when the item has a TTL, then the key and the
//!   value; plus the allocator's overhead for one allocation (glibc: the
//!   buffer's length plus 8, rounded up to 16, at least 32). A 16-byte key
//!   and a 100-byte value without a TTL make a 120-byte buffer in a
//!   128-byte chunk: 12 bytes beyond key and value. With a TTL, 128 bytes in
//!   a 144-byte chunk, 28 beyond;
//! - about 6 to 12 bytes of hash index (a `u32` and a control byte per
//!   bucket, at 44 to 87% load);
//! - 16 to 32 bytes of expiry records if it has a TTL (stale records
//!   included);
//! - about 30 bytes of the position index SCAN walks (`lru`: a 16-byte
//!   element of a `BTreeSet`, nodes about two thirds full; measured by
//!   `cargo bench -p distcache-core --bench scan`).
//!
//! A collection (hash, list, set, sorted set) is kept decoded: its item
//! holds the key and an empty value, and the value lives in the shard's
//! side table keyed by slot (a 160-byte table entry, slot and `Value`, at
//! 44 to 87% load, plus the value's own allocations). It is charged `key +
//! Value::heap_bytes()` against the byte limit, not its encoded length.
//! Commands change it in place (see `commands`); every reader of stored
//! bytes (`get`, `peek`, `for_each_in_shard`, `export`) gets its stored
//! form, encoded on the spot.
//!
//! The slab keeps its high-water mark, which the shard's item limit bounds.
//! Tombstones cost about 40 bytes plus the key, and 16 bytes of queue record.
//!
//! Values are copied, in and out. `set` copies the caller's value into the
//! item's buffer, so the `Bytes` passed in is not kept: a value that is a
//! slice of a larger buffer (a whole request) does not keep that buffer
//! alive. `get` and `peek` return a fresh copy: one allocation and one
//! `memcpy` of the value per read, under the shard's lock, where an earlier
//! layout handed out a reference-counted `Bytes` (a counter increment, but
//! 32 bytes per node and a second allocation per item). No reader ever pins
//! an item's memory, and a replaced or evicted item's buffer is freed at
//! once. `for_each_in_shard` lends each value ([`EntryRef`]) without
//! copying it.
//!
//! # Layout
//!
//! - this file: the public types, the choice of shard, and the spreading of
//!   purge work over shards.
//! - `shard`: one shard's policy (versions, capacity, expiry, counters).
//! - `lru`: the slab, the linked list and the index.
//! - `item`: one item's buffer (key, value, version, expiry); the only
//!   `unsafe` code of the workspace, for an 8-byte pointer to it.
//! - `expiry`: the lazily invalidated expiry heap.
//! - `tombstones`: the tombstone table and its FIFO.
//! - `tests`: unit tests; `model_tests`: property tests against a model;
//!   `item_tests`: property tests of an item's encoding; `scan_tests`:
//!   SCAN loops under concurrent writes.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::version::Version;
pub use commands::{ApplyOutcome, Executed, KeyChanges, Watched};
pub use plain::Plain;
pub(crate) use shard::EXPIRED_LONG_AGO_MS;
use shard::Shard;

mod commands;
mod count;
mod expiry;
mod item;
mod lru;
mod plain;
mod shard;
mod tombstones;

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

impl Entry {
    /// A view of this entry, borrowing its value.
    pub fn view(&self) -> EntryRef<'_> {
        EntryRef {
            value: &self.value,
            expires_at_ms: self.expires_at_ms,
            version: self.version,
        }
    }
}

/// A stored value with its metadata, borrowed from the store (see
/// [`Store::for_each_in_shard`]) or from an [`Entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The value's bytes, exactly as written.
    pub value: &'a [u8],
    /// Absolute expiry in Unix milliseconds; `None` = never.
    pub expires_at_ms: Option<u64>,
    /// The version that wrote it.
    pub version: Version,
}

impl EntryRef<'_> {
    /// An owned copy.
    pub fn to_entry(&self) -> Entry {
        Entry {
            value: Bytes::copy_from_slice(self.value),
            expires_at_ms: self.expires_at_ms,
            version: self.version,
        }
    }
}

/// Longest key the store can hold, in bytes; a longer one is
/// [`SetOutcome::TooLarge`].
pub const MAX_STORED_KEY_BYTES: usize = item::MAX_KEY_LEN;

/// Longest value the store can hold, in bytes (2^31 - 1); a longer one is
/// [`SetOutcome::TooLarge`].
pub const MAX_STORED_VALUE_BYTES: usize = item::MAX_VALUE_LEN;

/// What a `set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    /// The entry is now the stored one.
    Stored,
    /// The store already holds an equal or higher version (live or tombstone),
    /// `held`; nothing changed. The writer learns `held` so that it can move
    /// its clock past it and write again.
    Stale {
        /// The version the store holds for the key.
        held: Version,
    },
    /// The entry had already expired at `now_ms`; nothing stored. Unless the
    /// write was also stale, it acted as a delete at its version: an older
    /// entry was removed and a tombstone left.
    Expired,
    /// The entry alone exceeds the store's byte limit (or per-shard share),
    /// or its key or value is longer than an item can hold
    /// ([`MAX_STORED_KEY_BYTES`], [`MAX_STORED_VALUE_BYTES`]).
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
    /// A live entry with an equal or higher version, `held`, exists; nothing
    /// changed.
    Stale {
        /// The version of the live entry.
        held: Version,
    },
}

/// What [`Store::adopt`] did with a copy it was allowed to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// An entry, stored as [`Store::set`] does.
    Set(SetOutcome),
    /// A delete, applied as [`Store::delete`] does.
    Deleted(DeleteOutcome),
    /// The copy was "nothing": nothing to store.
    Nothing,
}

/// What a store holds for a key: the answer to [`Store::lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live entry.
    Live(Entry),
    /// A tombstone within its grace: the key was deleted, or expired, at
    /// this version.
    Deleted(Version),
    /// Nothing: never written, evicted, or deleted (or expired) longer ago
    /// than the tombstone grace.
    Absent,
}

impl Lookup {
    /// The version held, live or deleted; `None` when absent.
    pub fn version(&self) -> Option<Version> {
        match self {
            Lookup::Live(entry) => Some(entry.version),
            Lookup::Deleted(version) => Some(*version),
            Lookup::Absent => None,
        }
    }

    /// The live entry, if any.
    pub fn into_entry(self) -> Option<Entry> {
        match self {
            Lookup::Live(entry) => Some(entry),
            Lookup::Deleted(_) | Lookup::Absent => None,
        }
    }
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
    /// Tombstones dropped within their grace because a shard held as many
    /// as it may hold items (its share of `max_items`, at least 1,024).
    pub tombstones_dropped_early: u64,
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
    // std's Mutex and not tokio's: a critical section is a few hash probes
    // and link updates, never held across an `.await`, so briefly blocking
    // is cheaper than an async lock's queueing.
    shards: Box<[Mutex<Shard>]>,
    /// Where the next `purge_expired` starts, so that no shard is always last.
    purge_cursor: AtomicUsize,
}

/// Seed of the shard hash. Fixed, so that a key lands in the same shard in
/// every process and an export re-imports shard by shard in LRU order.
/// Changing it (or foldhash's algorithm) only reshuffles shards; nothing is
/// persisted by shard.
const SHARD_HASH_SEED: u64 = 0x6469_7374_6361_6368; // "distcach"

/// The hash of `key` used both to pick its shard and to index it there.
fn hash_key(key: &[u8]) -> u64 {
    // `write`, not `hash_one`: `[u8]`'s `Hash` also writes a usize length,
    // which differs between 32- and 64-bit targets.
    let mut hasher = foldhash::fast::FixedState::with_seed(SHARD_HASH_SEED).build_hasher();
    hasher.write(key);
    hasher.finish()
}

/// The shard of a key hashed to `hash`, out of `shards`.
fn shard_index(hash: u64, shards: usize) -> usize {
    // hashbrown takes a bucket from the low bits of the hash and a 7-bit tag
    // from the top ones; a shard taken from either would leave each shard's
    // table a skewed slice of hashes. A folded multiply mixes all 64 bits,
    // then the high half of a multiply maps the result onto `0..shards`.
    let product = u128::from(hash) * 0x9E37_79B9_7F4A_7C15;
    let mixed = (product as u64) ^ ((product >> 64) as u64);
    ((u128::from(mixed) * shards as u128) >> 64) as usize
}

/// Shard `index`'s share of `total` over `shards`: the integer shares differ
/// by at most one and add up to `total`.
fn share(total: u64, shards: usize, index: usize) -> u64 {
    let shards = shards as u64;
    total / shards + u64::from((index as u64) < total % shards)
}

/// Most rounds of `purge_expired` over the shards; a shard still holding due
/// work after that waits for the next call.
const PURGE_ROUNDS: usize = 8;

/// Most heap or queue records a purge visit may pop for a quota of `quota`:
/// a few stale records per removal, plus slack.
fn max_records(quota: usize) -> usize {
    quota.saturating_mul(8).saturating_add(256)
}

impl Store {
    /// An empty store. Panics only if `max_items` or `shards` is 0.
    pub fn new(config: StoreConfig) -> Store {
        assert!(
            config.max_items > 0,
            "StoreConfig::max_items must be at least 1"
        );
        assert!(config.shards > 0, "StoreConfig::shards must be at least 1");
        let shards = (0..config.shards)
            .map(|index| {
                let max_items = share(config.max_items as u64, config.shards, index);
                let max_bytes = config.max_bytes.map(|b| share(b, config.shards, index));
                Mutex::new(Shard::new(
                    usize::try_from(max_items).unwrap_or(usize::MAX),
                    max_bytes,
                    config.tombstone_grace_ms,
                ))
            })
            .collect();
        Store {
            config,
            shards,
            purge_cursor: AtomicUsize::new(0),
        }
    }
    /// The configuration the store was built with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Whether `key` holding `value` can be stored at all: what
    /// [`Store::execute`] refuses as [`Executed::TooLarge`] besides its
    /// caller's value limit. Takes no lock (a shard's limit never
    /// changes), so a command running inside `execute` may ask.
    pub fn can_hold(&self, key: &[u8], value: &crate::value::Value) -> bool {
        let index = shard_index(hash_key(key), self.shards.len());
        let max_bytes = self
            .config
            .max_bytes
            .map_or(u64::MAX, |b| share(b, self.config.shards, index));
        shard::fits_within(max_bytes, key, value)
    }
    /// The live entry for `key`, marking it most recently used. Counts a hit or
    /// a miss; an expired entry is removed, counted as expired, and missed.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let hash = hash_key(key);
        self.lock_for(hash).get(hash, key, now_ms)
    }
    /// Like `get`, but a key deleted within the tombstone grace is reported
    /// as [`Lookup::Deleted`] with the delete's version, so that a reader
    /// that asks several replicas can tell a delete from a copy that has
    /// not arrived, and keep the newest answer. Counts a hit or a miss.
    pub fn lookup(&self, key: &[u8], now_ms: u64) -> Lookup {
        let hash = hash_key(key);
        self.lock_for(hash).lookup(hash, key, now_ms)
    }
    /// Like `get` but neither reorders the LRU nor counts a hit or miss
    /// (used by transfers and snapshots).
    pub fn peek(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let hash = hash_key(key);
        self.lock_for(hash).peek(hash, key, now_ms)
    }
    /// Stores a copy of `entry` under `key` if its version is higher than
    /// what the store holds, as most recently used, evicting LRU items over
    /// capacity.
    pub fn set(&self, key: &[u8], entry: Entry, now_ms: u64) -> SetOutcome {
        self.set_ref(key, entry.view(), now_ms)
    }
    /// [`Store::set`] from a borrowed entry: the store copies what it keeps
    /// either way, so a caller holding the value in a larger buffer need not
    /// copy it first.
    pub fn set_ref(&self, key: &[u8], entry: EntryRef<'_>, now_ms: u64) -> SetOutcome {
        let hash = hash_key(key);
        self.lock_for(hash).set(hash, key, entry, now_ms)
    }
    /// Stores `copy` of `key` (an entry, or a delete at its version) as
    /// [`Store::set`] or [`Store::delete`] would, but only over a history
    /// it continues: when `key` holds nothing at all (no item, no
    /// tombstone), the copy's own version, or a version in `over`. Holding
    /// anything else, it changes nothing and answers `Err(held)`.
    ///
    /// For a command's result copied after the map moved while it ran (a
    /// master's spread): a key that holds another version may hold a
    /// history that another leader made without this command, which the
    /// copy must not replace whatever the versions say. One shard lock for
    /// the check and the write, so nothing lands between them.
    pub fn adopt(
        &self,
        key: &[u8],
        copy: &Lookup,
        over: &[Version],
        now_ms: u64,
    ) -> Result<Adopted, Version> {
        let hash = hash_key(key);
        let mut shard = self.lock_for(hash);
        if let Some(held) = shard.held(hash, key, now_ms)
            && Some(held) != copy.version()
            && !over.contains(&held)
        {
            return Err(held);
        }
        Ok(match copy {
            Lookup::Live(entry) => Adopted::Set(shard.set(hash, key, entry.view(), now_ms)),
            Lookup::Deleted(version) => Adopted::Deleted(shard.delete(hash, key, *version, now_ms)),
            Lookup::Absent => Adopted::Nothing,
        })
    }
    /// Deletes `key` at `version`, leaving a tombstone.
    pub fn delete(&self, key: &[u8], version: Version, now_ms: u64) -> DeleteOutcome {
        let hash = hash_key(key);
        self.lock_for(hash).delete(hash, key, version, now_ms)
    }
    /// Removes `key` only if its live entry still has exactly `version`
    /// (used after a transfer: never drops a newer write). No tombstone.
    /// Returns whether it removed anything.
    pub fn remove_if_version(&self, key: &[u8], version: Version) -> bool {
        let hash = hash_key(key);
        self.lock_for(hash).remove_if_version(hash, key, version)
    }
    /// Reclaims up to `budget` expired entries and expired tombstones;
    /// returns how many entries it removed (tombstones not counted).
    ///
    /// Entries go earliest expiry first within a shard. The budget is spread
    /// over the shards that have due work, each taking an equal part per
    /// round; tombstones get a budget of their own, spread the same way.
    pub fn purge_expired(&self, now_ms: u64, budget: usize) -> usize {
        let start = self.purge_cursor.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let removed = self.spread(start, budget, |shard, quota| {
            shard.purge_items(now_ms, quota, max_records(quota))
        });
        self.spread(start, budget, |shard, quota| {
            shard.purge_tombstones(now_ms, quota, max_records(quota))
        });
        removed
    }
    /// Reclaims every entry of shard `shard` expired at `now_ms`, leaving
    /// their tombstones; returns how many. A handoff and a snapshot call it
    /// before they copy the shard, so that an entry that expired goes out
    /// as the delete it is rather than not at all. Does nothing for a
    /// `shard` out of range.
    pub fn purge_expired_in_shard(&self, shard: usize, now_ms: u64) -> usize {
        if shard >= self.shards.len() {
            return 0;
        }
        self.lock(shard)
            .purge_items(now_ms, usize::MAX, usize::MAX)
            .0
    }
    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.config.shards
    }
    /// The shard `key` belongs to, in `0..shard_count()`; the same in every
    /// process.
    pub fn shard_for(&self, key: &[u8]) -> usize {
        shard_index(hash_key(key), self.shards.len())
    }
    /// Calls `f` for every live (unexpired at `now_ms`) entry of shard
    /// `shard`, least recently used first, without changing the LRU order.
    /// The entry is lent, not copied ([`EntryRef::to_entry`] makes a copy);
    /// a collection, kept decoded, is lent in its stored form, encoded for
    /// the call (O(its size), as copying it would be). Holds the shard's
    /// lock throughout: keep `f` cheap. Does nothing if `shard` is out of
    /// range.
    pub fn for_each_in_shard(&self, shard: usize, now_ms: u64, f: impl FnMut(&[u8], EntryRef<'_>)) {
        if shard < self.shards.len() {
            self.lock(shard).for_each(now_ms, f);
        }
    }
    /// Calls `f` with the key and version of every tombstone of shard `shard`
    /// still within its grace at `now_ms` (used when keys move, so that a
    /// delete reaches a key's new owners). Holds the shard's lock throughout.
    pub fn for_each_tombstone_in_shard(
        &self,
        shard: usize,
        now_ms: u64,
        f: impl FnMut(&[u8], Version),
    ) {
        if shard < self.shards.len() {
            self.lock(shard).for_each_tombstone(now_ms, f);
        }
    }
    /// Calls `f` with the highest item of shard `shard` that expired (or
    /// was found expired, [`Store::note_expired`]), as an entry with an
    /// empty value and an expiry long past (1 ms after the epoch): what a snapshot carries so
    /// that the shard's floor for commands' versions survives a restart
    /// (`Store::execute`; an expired entry in a snapshot is skipped by
    /// every reader, and raises the floor in this one). Does nothing if
    /// no item expired there or `shard` is out of range.
    pub fn for_each_expired_in_shard(&self, shard: usize, f: impl FnOnce(&[u8], EntryRef<'_>)) {
        if shard < self.shards.len()
            && let Some((key, entry)) = self.lock(shard).expired_item()
        {
            f(key, entry);
        }
    }

    /// The highest item that expired in any shard, as its key and version:
    /// the floor for commands' versions that a handoff carries to the
    /// keys' new owners (they record it with [`Store::note_expired`]).
    /// `None` when no item expired here.
    pub fn highest_expired(&self) -> Option<(Bytes, Version)> {
        let mut highest: Option<(Bytes, Version)> = None;
        for shard in 0..self.shards.len() {
            self.for_each_expired_in_shard(shard, |key, entry| {
                if highest.as_ref().is_none_or(|(_, v)| entry.version > *v) {
                    highest = Some((Bytes::copy_from_slice(key), entry.version));
                }
            });
        }
        highest
    }

    /// Records that `key` held `version` until it expired
    /// (a snapshot's entry found expired when it is loaded): every shard's
    /// floor for commands' versions is raised to it, so the commands a
    /// leader runs next are stamped above it whatever shard their keys
    /// fall in and whatever shard count wrote the snapshot (a floor higher
    /// than needed only moves a lagging master's clock forward, see
    /// [`Version::above`]), and `key`'s shard keeps it for the next
    /// snapshot.
    pub fn note_expired(&self, key: &[u8], version: Version) {
        let own = self.shard_for(key);
        for index in 0..self.shards.len() {
            let mut shard = self.lock(index);
            if index == own {
                shard.note_expired(key, version);
            } else {
                shard.raise_expired_floor(version);
            }
        }
    }

    /// Every live entry, shard by shard, least recently used first within a
    /// shard: inserting them in this order into an empty store with the same
    /// shard count reproduces each shard's LRU order.
    pub fn export(&self, now_ms: u64) -> Vec<(Bytes, Entry)> {
        let mut entries = Vec::with_capacity(self.len());
        for shard in 0..self.shards.len() {
            self.for_each_in_shard(shard, now_ms, |key, entry| {
                entries.push((Bytes::copy_from_slice(key), entry.to_entry()));
            });
        }
        entries
    }
    /// Counters and gauges.
    pub fn stats(&self) -> StoreStats {
        (0..self.shards.len()).fold(StoreStats::default(), |sum, shard| {
            let part = self.lock(shard).stats();
            StoreStats {
                items: sum.items + part.items,
                bytes: sum.bytes + part.bytes,
                tombstones: sum.tombstones + part.tombstones,
                tombstones_dropped_early: sum.tombstones_dropped_early
                    + part.tombstones_dropped_early,
                hits: sum.hits + part.hits,
                misses: sum.misses + part.misses,
                evictions: sum.evictions + part.evictions,
                expirations: sum.expirations + part.expirations,
            }
        })
    }
    /// Live item count (cheap).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.lock(shard).len())
            .sum()
    }
    /// True when no items are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // A poisoned shard is still consistent: the only code that can panic
        // under a shard's lock is a caller's `for_each_in_shard` closure, and
        // iterating changes nothing, or the command `execute` runs, whose
        // guard puts back what it lent (see `commands::Lending`).
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_for(&self, hash: u64) -> MutexGuard<'_, Shard> {
        self.lock(shard_index(hash, self.shards.len()))
    }

    /// Spends `budget` units of work over the shards, starting at `start`:
    /// each round gives every shard that still has work an equal quota.
    /// `visit` does up to its quota and returns how much it did and whether
    /// work remains. Returns the work done.
    fn spread(
        &self,
        start: usize,
        budget: usize,
        mut visit: impl FnMut(&mut Shard, usize) -> (usize, bool),
    ) -> usize {
        let count = self.shards.len();
        let mut pending: Vec<usize> = (0..count).map(|i| (start + i) % count).collect();
        let mut done = 0;
        for _ in 0..PURGE_ROUNDS {
            let left = budget.saturating_sub(done);
            if left == 0 || pending.is_empty() {
                break;
            }
            let quota = left.div_ceil(pending.len());
            pending.retain(|&shard| {
                let left = budget.saturating_sub(done);
                if left == 0 {
                    return true;
                }
                let (did, more) = visit(&mut self.lock(shard), quota.min(left));
                done += did;
                more
            });
        }
        done
    }
}

#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod count_tests;
#[cfg(test)]
mod item_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod plain_tests;
#[cfg(test)]
mod scan_tests;
#[cfg(test)]
mod tests;
