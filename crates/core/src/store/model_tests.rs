//! Property tests: the store against a model simple enough to trust (a `Vec`
//! in LRU order, a `Vec` of tombstones, linear scans everywhere), and the
//! limits of a sharded store under random load.

use proptest::prelude::*;

use super::*;
use crate::value::{ListValue, Value, stored};

/// Bytes a value is charged: a collection's `heap_bytes`, anything else
/// its length.
fn charged(value: &[u8]) -> u64 {
    match stored::from_stored(value) {
        Ok(v) if stored::is_collection(&v) => v.heap_bytes() as u64,
        _ => value.len() as u64,
    }
}

/// Whether a stored value is a collection.
fn is_collection(value: &[u8]) -> bool {
    stored::from_stored(value).is_ok_and(|v| stored::is_collection(&v))
}

/// Keys are drawn from a small set, so that operations collide.
const KEYS: u8 = 8;
const START_MS: u64 = 1_000;

fn key(k: u8) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

fn version(millis: u8) -> Version {
    Version {
        millis: u64::from(millis),
        counter: 0,
        origin: 0,
    }
}

fn is_expired(entry: &Entry, now_ms: u64) -> bool {
    entry.expires_at_ms.is_some_and(|at| at <= now_ms)
}

#[derive(Clone, Debug)]
enum Op {
    Get(u8),
    Peek(u8),
    Set {
        key: u8,
        len: u8,
        version: u8,
        /// Expiry relative to now; `Some(0)` is already expired.
        ttl_ms: Option<u8>,
    },
    Delete {
        key: u8,
        version: u8,
    },
    RemoveIfVersion {
        key: u8,
        version: u8,
    },
    Purge {
        budget: u8,
    },
    Advance(u8),
}

fn op(keys: u8, max_len: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..keys).prop_map(Op::Get),
        1 => (0..keys).prop_map(Op::Peek),
        6 => (0..keys, 0..max_len, 0..10u8, prop::option::of(0..30u8)).prop_map(
            |(key, len, version, ttl_ms)| Op::Set { key, len, version, ttl_ms }
        ),
        2 => (0..keys, 0..10u8).prop_map(|(key, version)| Op::Delete { key, version }),
        1 => (0..keys, 0..10u8).prop_map(|(key, version)| Op::RemoveIfVersion { key, version }),
        1 => (0..6u8).prop_map(|budget| Op::Purge { budget }),
        2 => (0..15u8).prop_map(Op::Advance),
    ]
}

/// The entry a `Set` writes: the value's bytes tell versions apart. An
/// odd version writes a list (kept decoded by the store), an even one
/// bytes kept as they are.
fn entry_for(len: u8, v: u8, ttl_ms: Option<u8>, now_ms: u64) -> Entry {
    let bytes = vec![b'a' + v; usize::from(len)];
    let value = if v % 2 == 1 {
        let elements = usize::from(len % 3) + 1;
        let list: ListValue = (0..elements).map(|_| Bytes::from(bytes.clone())).collect();
        Bytes::from(stored::to_stored(&Value::List(list)))
    } else {
        Bytes::from(bytes)
    };
    Entry {
        value,
        expires_at_ms: ttl_ms.map(|ttl| now_ms + u64::from(ttl)),
        version: version(v),
    }
}

/// The store's semantics, written the obvious way.
#[derive(Debug)]
struct Model {
    /// Least recently used first; expired entries stay until something
    /// removes them, as in the store.
    entries: Vec<(Vec<u8>, Entry)>,
    /// `(key, version, until_ms)`.
    tombstones: Vec<(Vec<u8>, Version, u64)>,
    max_items: usize,
    max_bytes: u64,
    grace_ms: u64,
    stats: StoreStats,
}

impl Model {
    fn new(config: &StoreConfig) -> Model {
        Model {
            entries: Vec::new(),
            tombstones: Vec::new(),
            max_items: config.max_items,
            max_bytes: config.max_bytes.unwrap_or(u64::MAX),
            grace_ms: config.tombstone_grace_ms,
            stats: StoreStats::default(),
        }
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|(k, e)| k.len() as u64 + charged(&e.value))
            .sum()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            items: self.entries.len() as u64,
            bytes: self.bytes(),
            tombstones: self.tombstones.len() as u64,
            ..self.stats
        }
    }

    /// Position of the live entry; an expired one is removed, counted and
    /// leaves a tombstone at its version.
    fn live(&mut self, key: &[u8], now_ms: u64) -> Option<usize> {
        let i = self.position(key)?;
        if is_expired(&self.entries[i].1, now_ms) {
            let (_, expired) = self.entries.remove(i);
            self.stats.expirations += 1;
            self.record_tombstone(key, expired.version, now_ms);
            return None;
        }
        Some(i)
    }

    /// The tombstone's version within grace; one past grace is dropped.
    fn tombstone(&mut self, key: &[u8], now_ms: u64) -> Option<Version> {
        let i = self.tombstones.iter().position(|t| t.0 == key)?;
        if self.tombstones[i].2 <= now_ms {
            self.tombstones.remove(i);
            return None;
        }
        Some(self.tombstones[i].1)
    }

    fn record_tombstone(&mut self, key: &[u8], v: Version, now_ms: u64) {
        if self.grace_ms == 0 {
            return;
        }
        let until = now_ms + self.grace_ms;
        match self.tombstones.iter_mut().find(|t| t.0 == key) {
            Some(t) if t.2 <= now_ms || v > t.1 => {
                t.1 = v;
                t.2 = t.2.max(until);
            }
            Some(_) => {}
            None => self.tombstones.push((key.to_vec(), v, until)),
        }
    }

    fn get(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        match self.live(key, now_ms) {
            Some(i) => {
                let item = self.entries.remove(i);
                self.entries.push(item.clone());
                self.stats.hits += 1;
                Some(item.1)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    fn peek(&self, key: &[u8], now_ms: u64) -> Option<Entry> {
        let (_, entry) = &self.entries[self.position(key)?];
        (!is_expired(entry, now_ms)).then(|| entry.clone())
    }

    fn set(&mut self, key: &[u8], entry: Entry, now_ms: u64) -> SetOutcome {
        let size = key.len() as u64 + charged(&entry.value);
        if size > self.max_bytes {
            return SetOutcome::TooLarge;
        }
        let live = self.live(key, now_ms);
        let held = match live {
            Some(i) => Some(self.entries[i].1.version),
            None => self.tombstone(key, now_ms),
        };
        if let Some(held) = held.filter(|&held| entry.version <= held) {
            return SetOutcome::Stale { held };
        }
        if is_expired(&entry, now_ms) {
            if let Some(i) = live {
                self.entries.remove(i);
            }
            self.record_tombstone(key, entry.version, now_ms);
            return SetOutcome::Expired;
        }
        match live {
            Some(i) => {
                self.entries.remove(i);
            }
            None => self.tombstones.retain(|t| t.0 != key),
        }
        while self.entries.len() >= self.max_items || self.bytes() + size > self.max_bytes {
            let (evicted_key, evicted) = self.entries.remove(0);
            if is_expired(&evicted, now_ms) {
                self.stats.expirations += 1;
                self.record_tombstone(&evicted_key, evicted.version, now_ms);
            } else {
                self.stats.evictions += 1;
            }
        }
        self.entries.push((key.to_vec(), entry));
        SetOutcome::Stored
    }

    fn delete(&mut self, key: &[u8], v: Version, now_ms: u64) -> DeleteOutcome {
        match self.live(key, now_ms) {
            Some(i) if self.entries[i].1.version >= v => DeleteOutcome::Stale {
                held: self.entries[i].1.version,
            },
            Some(i) => {
                self.entries.remove(i);
                self.record_tombstone(key, v, now_ms);
                DeleteOutcome::Deleted
            }
            None => {
                self.record_tombstone(key, v, now_ms);
                DeleteOutcome::NotFound
            }
        }
    }

    fn remove_if_version(&mut self, key: &[u8], v: Version) -> bool {
        match self.position(key) {
            Some(i) if self.entries[i].1.version == v => {
                self.entries.remove(i);
                true
            }
            _ => false,
        }
    }

    /// Applies a purge the store did, checking it took what the contract
    /// allows: as many as the budget lets of the due ones, earliest first.
    /// Which of several equally early ones go is the store's choice, so the
    /// model adopts it.
    fn purged(
        &mut self,
        store: &Store,
        budget: usize,
        removed: usize,
        now_ms: u64,
    ) -> Result<(), TestCaseError> {
        let shard = store.lock(0);
        let expired: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| is_expired(e, now_ms))
            .filter_map(|(_, e)| e.expires_at_ms)
            .collect();
        prop_assert_eq!(removed, budget.min(expired.len()));
        let raw = shard.raw_keys();
        let (kept, gone): (Vec<_>, Vec<_>) =
            self.entries.drain(..).partition(|(k, _)| raw.contains(k));
        prop_assert_eq!(gone.len(), removed);
        let latest_gone = gone.iter().filter_map(|(_, e)| e.expires_at_ms).max();
        for (k, e) in &gone {
            prop_assert!(is_expired(e, now_ms), "purged a live entry {:?}", k);
        }
        let earliest_kept = kept
            .iter()
            .filter(|(_, e)| is_expired(e, now_ms))
            .filter_map(|(_, e)| e.expires_at_ms)
            .min();
        if let (Some(gone), Some(kept)) = (latest_gone, earliest_kept) {
            prop_assert!(gone <= kept, "purged expiry {} before {}", gone, kept);
        }
        self.entries = kept;
        self.stats.expirations += removed as u64;
        for (k, e) in &gone {
            self.record_tombstone(k, e.version, now_ms);
        }

        let held: Vec<Vec<u8>> = shard.tombstone_dump().into_iter().map(|t| t.0).collect();
        let due = self.tombstones.iter().filter(|t| t.2 <= now_ms).count();
        let (kept, gone): (Vec<_>, Vec<_>) =
            self.tombstones.drain(..).partition(|t| held.contains(&t.0));
        prop_assert_eq!(gone.len(), budget.min(due));
        // Any due ones may go first: a stale queue record can reach a
        // tombstone that became due later than others.
        prop_assert!(
            gone.iter().all(|t| t.2 <= now_ms),
            "dropped a tombstone in grace"
        );
        self.tombstones = kept;
        Ok(())
    }

    /// Compares everything observable, and the internals the model mirrors.
    fn check(&self, store: &Store, now_ms: u64) -> Result<(), TestCaseError> {
        let live: Vec<(Bytes, Entry)> = self
            .entries
            .iter()
            .filter(|(_, e)| !is_expired(e, now_ms))
            .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone()))
            .collect();
        prop_assert_eq!(store.export(now_ms), live);
        prop_assert_eq!(store.stats(), self.stats());
        prop_assert_eq!(store.len(), self.entries.len());
        let shard = store.lock(0);
        let keys: Vec<Vec<u8>> = self.entries.iter().map(|(k, _)| k.clone()).collect();
        prop_assert_eq!(shard.raw_keys(), keys);
        let mut tombstones = shard.tombstone_dump();
        tombstones.sort();
        let mut expected = self.tombstones.clone();
        expected.sort();
        prop_assert_eq!(tombstones, expected);
        let (records, tracked, slab, queue) = shard.index_sizes();
        let with_ttl = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at_ms.is_some())
            .count();
        prop_assert_eq!(tracked, with_ttl);
        // Every item with an expiry has a record; stale ones are bounded by
        // the most items (tombstones) there can be.
        prop_assert!(records >= tracked);
        prop_assert!(records <= 2 * self.max_items + expiry::STALE_SLACK);
        prop_assert!(slab <= self.max_items);
        prop_assert!(queue >= self.tombstones.len());
        prop_assert!(queue <= 2 * usize::from(KEYS) + expiry::STALE_SLACK);
        // A decoded collection lives exactly as long as its item: removed,
        // evicted, expired or overwritten, its side entry goes too.
        let collections = self
            .entries
            .iter()
            .filter(|(_, e)| is_collection(&e.value))
            .count();
        prop_assert_eq!(shard.decoded_len(), collections);
        Ok(())
    }
}

fn single_shard_config() -> impl Strategy<Value = StoreConfig> {
    // Byte limits below and above what a small list is charged.
    let max_bytes = prop::option::of(prop_oneof![4..40u64, 100..400u64]);
    (1..6usize, max_bytes, 0..40u64).prop_map(|(max_items, max_bytes, tombstone_grace_ms)| {
        StoreConfig {
            max_items,
            max_bytes,
            shards: 1,
            tombstone_grace_ms,
        }
    })
}

fn sharded_config() -> impl Strategy<Value = StoreConfig> {
    (1..6usize, 0..30usize, prop::option::of(0..400u64), 0..40u64).prop_map(
        |(shards, extra_items, max_bytes, tombstone_grace_ms)| StoreConfig {
            max_items: shards + extra_items,
            max_bytes,
            shards,
            tombstone_grace_ms,
        },
    )
}

/// Test cases, and where failing ones are kept: beside the test's file, so
/// that they are replayed first next time. `item_tests` uses it too.
pub(super) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(
            prop::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn single_shard_store_matches_the_model(
        config in single_shard_config(),
        ops in prop::collection::vec(op(KEYS, 12), 1..80),
    ) {
        let store = Store::new(config.clone());
        let mut model = Model::new(&config);
        let mut now = START_MS;
        for op in ops {
            match op {
                Op::Get(k) => prop_assert_eq!(store.get(&key(k), now), model.get(&key(k), now)),
                Op::Peek(k) => prop_assert_eq!(store.peek(&key(k), now), model.peek(&key(k), now)),
                Op::Set { key: k, len, version: v, ttl_ms } => {
                    let entry = entry_for(len, v, ttl_ms, now);
                    prop_assert_eq!(
                        store.set(&key(k), entry.clone(), now),
                        model.set(&key(k), entry, now)
                    );
                }
                Op::Delete { key: k, version: v } => prop_assert_eq!(
                    store.delete(&key(k), version(v), now),
                    model.delete(&key(k), version(v), now)
                ),
                Op::RemoveIfVersion { key: k, version: v } => prop_assert_eq!(
                    store.remove_if_version(&key(k), version(v)),
                    model.remove_if_version(&key(k), version(v))
                ),
                Op::Purge { budget } => {
                    let budget = usize::from(budget);
                    let removed = store.purge_expired(now, budget);
                    model.purged(&store, budget, removed, now)?;
                }
                Op::Advance(ms) => now += u64::from(ms),
            }
            model.check(&store, now)?;
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn sharded_store_stays_within_its_limits(
        config in sharded_config(),
        ops in prop::collection::vec(op(64, 30), 1..200),
    ) {
        let store = Store::new(config.clone());
        let mut now = START_MS;
        for op in ops {
            match op {
                Op::Get(k) | Op::Peek(k) => { store.get(&key(k), now); }
                Op::Set { key: k, len, version: v, ttl_ms } => {
                    store.set(&key(k), entry_for(len, v, ttl_ms, now), now);
                }
                Op::Delete { key: k, version: v } => { store.delete(&key(k), version(v), now); }
                Op::RemoveIfVersion { key: k, version: v } => {
                    store.remove_if_version(&key(k), version(v));
                }
                Op::Purge { budget } => { store.purge_expired(now, usize::from(budget)); }
                Op::Advance(ms) => now += u64::from(ms),
            }
            let stats = store.stats();
            prop_assert!(stats.items <= config.max_items as u64, "{:?}", stats);
            prop_assert!(stats.bytes <= config.max_bytes.unwrap_or(u64::MAX), "{:?}", stats);
            prop_assert_eq!(store.len() as u64, stats.items);
        }

        store.purge_expired(now, usize::MAX);
        let exported = store.export(now);
        let stats = store.stats();
        prop_assert_eq!(stats.items, exported.len() as u64);
        prop_assert_eq!(
            stats.bytes,
            exported.iter().map(|(k, e)| k.len() as u64 + charged(&e.value)).sum::<u64>()
        );
        let mut keys: Vec<&Bytes> = exported.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), exported.len());

        // Re-importing shard by shard reproduces every shard's order.
        let copy = Store::new(config);
        for (k, e) in &exported {
            prop_assert_eq!(copy.set(k, e.clone(), now), SetOutcome::Stored);
        }
        prop_assert_eq!(copy.export(now), exported);
    }
}
