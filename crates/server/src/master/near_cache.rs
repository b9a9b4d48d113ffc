//! The near cache: a small cache of recently read entries inside a master,
//! so that a hot key is answered without a round trip to its auxiliary
//! (`NEAR_CACHE_SIZE` items, each kept at most `NEAR_CACHE_TTL`).
//!
//! What it promises (docs/performance.md, "The near cache"):
//!
//! - A write or delete through this master is seen by this master's next
//!   read at once: the master invalidates the key once the auxiliaries have
//!   answered, and a read that was already in flight when the write
//!   finished cannot put the old value back (the shard's generation, below).
//! - A write or delete through *another* master is seen here after at most
//!   `NEAR_CACHE_TTL`: an entry is fresh for that long from the moment the
//!   read that fetched it was *sent*, so no copy outlives a write that
//!   completed before the read by more than the TTL.
//! - An entry never outlives its own expiry (`ttl` of the write).
//!
//! Only hits are cached (a miss goes to the auxiliary every time), and only
//! values up to [`MAX_NEAR_VALUE_BYTES`], so the cache's memory stays near
//! `NEAR_CACHE_SIZE` × the typical value size.
//!
//! Layout: shards, each a `Mutex` over a hash table of slot indices and a
//! slot vector evicted by CLOCK (second chance): a hit only sets a bit, so
//! the lock is held for a lookup and a clone of `Bytes` (a reference-count
//! increment), never for an allocation.

use std::hash::BuildHasher;
use std::sync::Mutex;

use distcache_core::Entry;
use hashbrown::HashTable;

/// Values larger than this (bytes of JSON text) are never near-cached.
pub const MAX_NEAR_VALUE_BYTES: usize = 64 * 1024;

/// Shards (a power of two); fewer for a small cache so each shard keeps a
/// useful number of slots.
const MAX_SHARDS: usize = 64;

/// A shard's state when a read began; [`NearCache::insert`] keeps the
/// entry only if no write or delete touched the shard since.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    shard: usize,
    generation: u64,
    hash: u64,
    sent_at_ms: u64,
}

struct Slot {
    key: Box<str>,
    hash: u64,
    entry: Entry,
    fresh_until_ms: u64,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    hand: usize,
    /// Bumped by every invalidation in this shard.
    generation: u64,
}

impl Shard {
    fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].key.as_ref() == key)
            .map(|&i| i as usize)
    }

    fn remove_at(&mut self, at: usize) {
        let hash = self.slots[at].hash;
        if let Ok(found) = self.index.find_entry(hash, |&i| i as usize == at) {
            found.remove();
        }
        let last = self.slots.len() - 1;
        if at != last {
            // The last slot moves into `at`: repoint its index entry.
            let moved_hash = self.slots[last].hash;
            if let Some(i) = self.index.find_mut(moved_hash, |&i| i as usize == last) {
                *i = at as u32;
            }
        }
        self.slots.swap_remove(at);
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }

    /// The slot CLOCK evicts: the first one from the hand not used since the
    /// hand last passed it.
    fn victim(&mut self) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[at];
            if slot.referenced {
                slot.referenced = false;
            } else {
                return at;
            }
        }
    }
}

/// A master's near cache. See the module documentation.
pub struct NearCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    ttl_ms: u64,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

impl NearCache {
    /// A cache of about `size` items (rounded up to a multiple of the
    /// shard count), each fresh for `ttl_ms`; `None` if either is 0 (off).
    pub fn new(size: usize, ttl_ms: u64) -> Option<Self> {
        if size == 0 || ttl_ms == 0 {
            return None;
        }
        // At least 16 slots per shard, at most MAX_SHARDS shards.
        // MAX_SHARDS is a power of two, so rounding up stays within it.
        let shards = (size / 16).clamp(1, MAX_SHARDS).next_power_of_two();
        let per_shard = size.div_ceil(shards);
        Some(NearCache {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            per_shard,
            ttl_ms,
            hasher: foldhash::fast::FixedState::with_seed(0x6e65_6172),
        })
    }

    fn shard_of(&self, key: &str) -> (usize, u64) {
        let hash = self.hasher.hash_one(key);
        // The high bits pick the shard; the table uses the low ones.
        let shard = (hash >> 40) as usize & (self.shards.len() - 1);
        (shard, hash)
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave a shard inconsistent
        // in a way that matters for a cache: keep serving.
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached entry for `key` if it is fresh at `now_ms`. On a miss,
    /// the [`Ticket`] to pass to [`NearCache::insert`] with what the
    /// auxiliary answers; take it *before* asking the auxiliary.
    pub fn get(&self, key: &str, now_ms: u64) -> Result<Entry, Ticket> {
        let (shard, hash) = self.shard_of(key);
        let mut s = self.lock(shard);
        if let Some(at) = s.find(hash, key) {
            let slot = &mut s.slots[at];
            let live = slot.entry.expires_at_ms.is_none_or(|t| t > now_ms);
            if slot.fresh_until_ms > now_ms && live {
                slot.referenced = true;
                return Ok(slot.entry.clone());
            }
            s.remove_at(at);
        }
        Err(Ticket {
            shard,
            generation: s.generation,
            hash,
            sent_at_ms: now_ms,
        })
    }

    /// Caches what a read that began with `ticket` fetched, unless a write
    /// or delete in the same shard finished since (it might be older than
    /// that write) or the value is too large to be worth keeping.
    pub fn insert(&self, ticket: Ticket, key: &str, entry: &Entry) {
        if entry.value.len() > MAX_NEAR_VALUE_BYTES {
            return;
        }
        let fresh_until_ms = ticket.sent_at_ms.saturating_add(self.ttl_ms);
        let mut s = self.lock(ticket.shard);
        if s.generation != ticket.generation {
            return;
        }
        if let Some(at) = s.find(ticket.hash, key) {
            // Another read of the same key filled it meanwhile.
            let slot = &mut s.slots[at];
            slot.entry = entry.clone();
            slot.fresh_until_ms = fresh_until_ms;
            return;
        }
        let slot = Slot {
            key: key.into(),
            hash: ticket.hash,
            entry: entry.clone(),
            fresh_until_ms,
            referenced: false,
        };
        let at = if s.slots.len() >= self.per_shard {
            // The new entry takes the victim's place, so the other slots
            // keep their places relative to the hand.
            let at = s.victim();
            let old_hash = s.slots[at].hash;
            if let Ok(found) = s.index.find_entry(old_hash, |&i| i as usize == at) {
                found.remove();
            }
            s.slots[at] = slot;
            at
        } else {
            s.slots.push(slot);
            s.slots.len() - 1
        };
        let Shard { index, slots, .. } = &mut *s;
        index.insert_unique(ticket.hash, at as u32, |&i| slots[i as usize].hash);
    }

    /// Forgets `key`, and keeps reads of its shard that are in flight from
    /// caching what they fetched. Called once a write or delete of `key`
    /// through this master has been answered (whatever the outcome).
    pub fn invalidate(&self, key: &str) {
        let (shard, hash) = self.shard_of(key);
        let mut s = self.lock(shard);
        s.generation = s.generation.wrapping_add(1);
        if let Some(at) = s.find(hash, key) {
            s.remove_at(at);
        }
    }

    /// Forgets everything (after a restore, which writes around the data
    /// path).
    pub fn clear(&self) {
        for shard in 0..self.shards.len() {
            let mut s = self.lock(shard);
            s.generation = s.generation.wrapping_add(1);
            s.index.clear();
            s.slots.clear();
            s.hand = 0;
        }
    }

    /// Items cached now (some may be stale and not yet dropped).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|s| self.lock(s).slots.len())
            .sum()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most items this cache holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use distcache_core::version::Version;

    fn entry(value: &str, expires_at_ms: Option<u64>) -> Entry {
        Entry {
            value: Bytes::copy_from_slice(value.as_bytes()),
            expires_at_ms,
            version: Version::ZERO,
        }
    }

    fn fill(c: &NearCache, key: &str, value: &str, now: u64) {
        let ticket = c.get(key, now).expect_err("not cached yet");
        c.insert(ticket, key, &entry(value, None));
    }

    #[test]
    fn off_when_size_or_ttl_is_zero() {
        assert!(NearCache::new(0, 1000).is_none());
        assert!(NearCache::new(100, 0).is_none());
        assert!(NearCache::new(1, 1).is_some());
    }

    #[test]
    fn a_hit_is_served_until_the_ttl_from_when_the_read_was_sent() {
        let c = NearCache::new(100, 1000).unwrap();
        fill(&c, "k", "\"v\"", 5_000);
        assert_eq!(
            c.get("k", 5_999).unwrap().value,
            Bytes::from_static(b"\"v\"")
        );
        assert!(c.get("k", 6_000).is_err(), "stale at sent + ttl");
        assert!(c.is_empty(), "a stale entry is dropped when found");
    }

    #[test]
    fn an_entry_never_outlives_its_own_expiry() {
        let c = NearCache::new(100, 60_000).unwrap();
        let ticket = c.get("k", 1_000).unwrap_err();
        c.insert(ticket, "k", &entry("1", Some(1_500)));
        assert!(c.get("k", 1_499).is_ok());
        assert!(c.get("k", 1_500).is_err());
    }

    #[test]
    fn invalidate_forgets_the_key_and_blocks_reads_in_flight() {
        let c = NearCache::new(100, 1000).unwrap();
        fill(&c, "k", "1", 0);
        c.invalidate("k");
        assert!(c.get("k", 1).is_err());
        // A read sent before a write finished must not cache its answer.
        let ticket = c.get("k", 2).unwrap_err();
        c.invalidate("k");
        c.insert(ticket, "k", &entry("old", None));
        assert!(c.get("k", 3).is_err(), "the old value came back");
        // A read sent after it may.
        fill(&c, "k", "new", 4);
        assert_eq!(c.get("k", 5).unwrap().value, Bytes::from_static(b"new"));
    }

    #[test]
    fn clear_forgets_everything_and_blocks_reads_in_flight() {
        let c = NearCache::new(100, 1000).unwrap();
        fill(&c, "a", "1", 0);
        let ticket = c.get("b", 0).unwrap_err();
        c.clear();
        c.insert(ticket, "b", &entry("2", None));
        assert!(c.is_empty());
    }

    #[test]
    fn never_holds_more_than_its_capacity_and_keeps_recently_used_keys() {
        let c = NearCache::new(16, 60_000).unwrap();
        assert_eq!(c.capacity(), 16, "one shard of 16");
        for i in 0..16 {
            fill(&c, &format!("k{i}"), "1", 0);
        }
        // Use k0..k7; the next eight inserts must evict the others.
        for i in 0..8 {
            assert!(c.get(&format!("k{i}"), 1).is_ok());
        }
        for i in 16..24 {
            fill(&c, &format!("k{i}"), "1", 2);
        }
        assert_eq!(c.len(), 16);
        for i in 0..8 {
            assert!(c.get(&format!("k{i}"), 3).is_ok(), "k{i} was used");
        }
        for i in 8..16 {
            assert!(c.get(&format!("k{i}"), 3).is_err(), "k{i} was not");
        }
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        // Many keys through a tiny cache, with removals in the middle: every
        // key found maps to its own value.
        let c = NearCache::new(32, 60_000).unwrap();
        for i in 0..2_000u32 {
            let k = format!("k{}", i % 97);
            match c.get(&k, 0) {
                Ok(e) => assert_eq!(e.value, Bytes::from(k.clone())),
                Err(t) => c.insert(t, &k, &entry(&k, None)),
            }
            if i % 7 == 0 {
                c.invalidate(&format!("k{}", i % 13));
            }
            assert!(c.len() <= c.capacity());
        }
    }

    #[test]
    fn large_values_are_not_cached() {
        let c = NearCache::new(100, 1000).unwrap();
        let big = "x".repeat(MAX_NEAR_VALUE_BYTES + 1);
        let ticket = c.get("k", 0).unwrap_err();
        c.insert(ticket, "k", &entry(&big, None));
        assert!(c.is_empty());
    }
}
